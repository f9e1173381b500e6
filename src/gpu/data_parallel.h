// Data-parallel training over NCCL: one CudaBackend replica per GPU of this process, each taking
// its shard of the global batch (rows row_offset.. of it, so the sample stream and every sample's
// dropout mask are those of a one-GPU run at the same batch), the replicas' gradients summed by an
// all-reduce, and the same Adam step applied on every GPU. A step is two CUDA graphs per GPU with
// one NCCL group call between them:
//   enqueue_gradients (forward, loss, backward, weight gradients)  -> gradient, scaled rows / batch
//   ncclAllReduce (sum) of the gradient, every GPU of the world
//   enqueue_apply (Adam over all parameters)
// The world may span processes (pods of an Indexed Job): each process drives its GPUs as the ranks
// first_rank.., and the collectives run between all of them.
//
// What is not collective: evaluation runs on this process's first GPU (every replica holds the
// same parameters); the loss and per-step scalars are those of this process's shards; statistics
// and traces are those of its first GPU. So every process can run the training loop alone, and
// only the process holding rank 0 writes summaries and checkpoints.
// Collective (every process must call them, in the same order): the constructor,
// agree_on_start, measure_all_reduce and check_replicas_agree.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gpu/cuda_backend.h"
#include "gpu/device.h"
#include "gpu/nccl.h"
#include "train/checkpoint.h"

namespace mnist {

// Where this process stands in the world of GPUs.
struct NcclWorld {
  std::string id;      // ncclUniqueId bytes (new_nccl_id on rank 0, handed out by the rendezvous)
  int first_rank = 0;  // the global rank of this process's first GPU
  int ranks = 1;       // GPUs in the world
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};  // joining, and every wait
};

// An all-reduce measured as nccl-tests reports it: algorithm bandwidth bytes / time, bus bandwidth
// algbw * 2 (n - 1) / n (what each link carries in a ring all-reduce).
struct AllReduceFigure {
  int ranks = 0;
  std::size_t bytes = 0;
  double latency_us = 0.0;                      // median of the timed all-reduces
  double algorithm_gbps = 0.0, bus_gbps = 0.0;  // 1e9 bytes per second
};

class DataParallelBackend final : public Backend {
 public:
  // Builds a replica on each of `devices` (CUDA ordinals: this process's GPUs, ranks
  // world.first_rank..) and joins the world. config.batch_size is the global batch: at least one
  // row per GPU of the world.
  DataParallelBackend(const TrainConfig& config, const MnistData& data,
                      std::vector<float> initial_params, const std::vector<int>& devices,
                      const NcclWorld& world);
  ~DataParallelBackend() override;

  std::string name() const override { return backend_name(BackendKind::kCuda); }
  std::string step_kernel() const override { return "tiled"; }  // the replicas' halves
  void set_epoch_order(std::int64_t epoch, const std::vector<std::int32_t>& order) override;
  void train_step() override;
  void synchronize() override;
  float last_loss() override;
  Evaluation evaluate(EvalSplit split, bool with_loss) override;
  void enable_step_metrics() override;
  void record_statistics() override;
  Summaries take_summaries() override;
  void traced_train_step() override;
  std::int64_t steps_taken() const override;
  TrainState state() override;
  void set_state(const TrainState& state) override;
  std::unique_ptr<Stopwatch> stopwatch() override;

  int ranks() const { return nccl_->ranks(); }
  const std::vector<int>& devices() const { return devices_; }

  // Collective. Global rank 0's parameters, Adam state and step, and its resume point, become
  // every rank's (a resumed run loads its checkpoint on rank 0 only). Returns the resume point.
  ResumePoint agree_on_start(const ResumePoint& resume);
  // Collective. Times `iterations` all-reduces of the gradient's size (after 5 untimed ones).
  AllReduceFigure measure_all_reduce(int iterations);
  // Collective. Throws Error(kGpuUnusable) naming the GPU (or the rank of another process) whose
  // parameters are not bit for bit those of global rank 0.
  void check_replicas_agree(const std::vector<DeviceInfo>& infos);

 private:
  void all_reduce_gradients();
  void before_enqueue();  // drains the replicas when they must read back or run too far ahead
  std::vector<cudaStream_t> streams() const;
  void on_device(int i) const;

  std::vector<int> devices_;
  std::vector<Shard> shards_;
  std::vector<std::unique_ptr<CudaBackend>> replicas_;
  std::size_t parameters_ = 0;
  std::unique_ptr<NcclGroup> nccl_;
  static constexpr int kMaxStepsInFlight = 128;
  int steps_in_flight_ = 0;  // enqueued since the last watched wait
};

}  // namespace mnist
