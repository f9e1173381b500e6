// A run over several GPUs: which GPUs this process trains on (--gpus), its rank among the
// processes of the run (--world_size, JOB_COMPLETION_INDEX), their rendezvous (--rendezvous), and
// the data-parallel backend they build together (gpu/data_parallel.h).
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "app/cli.h"
#include "app/report.h"
#include "data/dataset.h"
#include "gpu/data_parallel.h"

namespace mnist {

struct GpuPlan {
  std::vector<int> ordinals = {0};  // this process's GPUs (CUDA ordinals)
  bool data_parallel = false;       // several GPUs here, or several processes
  int rank = 0;                     // this process's rank (JOB_COMPLETION_INDEX), 0 alone
  std::vector<DeviceInfo> devices;  // the checked GPUs (data-parallel runs)
};

// Only the cuda backend trains data-parallel. For it: the GPUs --gpus names (Error(kGpuUnusable)
// for a missing one) and, for several GPUs or processes, each checked (gpu/gpu_check.h), with a
// "Found device" line per GPU. The one-GPU run on GPU 0 stays exactly as before (resolve_backend
// logged it). The cublas baseline trains on the first GPU of the selection. Leaves the plan's
// first GPU current.
GpuPlan plan_gpus(const Options& options, BackendKind kind, std::ostream& log);

// What every process of a run must agree on: the flags that shape the training, the number of
// GPUs per process and the program's version. The rendezvous refuses a process that differs.
std::string rendezvous_configuration(const Options& options, int local_gpus);

// Meets the other processes (rank 0 hands out NCCL's id), builds the data-parallel backend on the
// plan's GPUs, measures the all-reduce and logs the world; fills record.data_parallel.
std::unique_ptr<DataParallelBackend> make_data_parallel(const Options& options,
                                                        const TrainConfig& config,
                                                        const MnistData& data, const GpuPlan& plan,
                                                        RunRecord& record, std::ostream& log);

}  // namespace mnist
