#include "app/parallel.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "dist/rendezvous.h"
#include "error.h"
#include "gpu/gpu_check.h"
#include "gpu/nccl.h"
#include "kernels/cuda_error.h"
#include "train/model.h"

namespace mnist {
namespace {

std::string list_of(const std::vector<int>& ordinals) {
  std::string text;
  for (int o : ordinals) text += (text.empty() ? "" : ",") + std::to_string(o);
  return text;
}

}  // namespace

GpuPlan plan_gpus(const Options& options, BackendKind kind, std::ostream& log) {
  GpuPlan plan;
  plan.ordinals = {0};
  if (kind == BackendKind::kCpu) return plan;
  if (options.world_size > 1) plan.rank = rank_from_environment(options.world_size);
  plan.ordinals = resolve_gpus(options.gpus, probe_gpus().device_count);
  if (kind == BackendKind::kCublas) {
    if (plan.ordinals.size() > 1 || plan.ordinals[0] != 0) {
      log << "The cublas baseline trains on one GPU: GPU " << plan.ordinals[0]
          << " (data-parallel training is the cuda backend's)" << std::endl;
    }
    plan.ordinals.resize(1);
    if (plan.ordinals[0] != 0) plan.devices = check_gpus(plan.ordinals, log);
    MNIST_CUDA_CHECK(cudaSetDevice(plan.ordinals[0]));
    return plan;
  }
  plan.data_parallel = plan.ordinals.size() > 1 || options.world_size > 1;
  if (plan.data_parallel || plan.ordinals[0] != 0) {
    plan.devices = check_gpus(plan.ordinals, log);
    log << "Checked " << plan.devices.size() << " GPU" << (plan.devices.size() == 1 ? "" : "s")
        << " (" << list_of(plan.ordinals) << "): each computed the same answer" << std::endl;
  }
  MNIST_CUDA_CHECK(cudaSetDevice(plan.ordinals[0]));
  return plan;
}

// Every flag that changes what a rank computes, or how many collectives it joins, is compared:
// the model and its width, the global batch, the learning rate and the dropout keep (the
// effective one: softmax has none), the seed (initial parameters, sample order, dropout masks),
// the steps and the evaluation cadence (each evaluation and step is a collective every rank must
// join), the dataset and synthetic data, the precision of the wide products (fp32, tf32 and bf16
// ranks would average gradients of different arithmetic), the step kernel and CUDA graphs (which
// kernels run), the world and the GPUs per process (the ranks' layout), and the program's and
// the rendezvous protocol's versions. Not compared: what only shapes one rank's output or its
// machine (paths, mirrors, download settings, summaries, checkpoints: rank 0 alone writes them),
// and --backend (several processes always train on cuda).
std::string rendezvous_configuration(const Options& o, int local_gpus) {
  const RunConfig run = run_config(o);
  char numbers[160];
  std::snprintf(numbers, sizeof numbers, "learning_rate=%a keep=%a",
                double(run.train.learning_rate), double(run.train.keep_prob));
  return std::string("mnist-train ") + program_version() + "; model=" + model_name(o.model) +
         " hidden_units=" + std::to_string(o.hidden_units) +
         " batch_size=" + std::to_string(o.batch_size) + " " + numbers +
         " seed=" + std::to_string(o.seed) + " max_steps=" + std::to_string(o.max_steps) +
         " eval_every=" + std::to_string(o.eval_every) + " dataset=" + o.dataset +
         (o.fake_data ? " fake_data" : "") + " precision=" + precision_name(o.precision) +
         " step_kernel=" + step_kernel_name(o.step_kernel) +
         " cuda_graphs=" + (o.cuda_graphs ? "on" : "off") +
         " world_size=" + std::to_string(o.world_size) +
         " gpus_per_process=" + std::to_string(local_gpus);
}

namespace {

// This machine, as every pod on it names it: the kernel's boot id (pods share their node's
// kernel, so it tells nodes apart where PCI bus ids repeat), else the host name.
std::string this_node() {
  std::ifstream file("/proc/sys/kernel/random/boot_id");
  std::string id;
  if (std::getline(file, id) && !id.empty()) return "the node with boot id " + id;
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return std::string("host ") + name;
}

// Each GPU of the plan as the rendezvous compares them: its PCI bus id and its node.
std::vector<std::string> device_names(const GpuPlan& plan) {
  const std::string node = this_node();
  std::vector<std::string> names;
  for (const int ordinal : plan.ordinals) {
    char bus[32] = {};
    MNIST_CUDA_CHECK(cudaDeviceGetPCIBusId(bus, sizeof bus, ordinal));
    names.push_back(std::string("PCI ") + bus + " of " + node);
  }
  return names;
}

}  // namespace

std::unique_ptr<DataParallelBackend> make_data_parallel(const Options& options,
                                                        const TrainConfig& config,
                                                        const MnistData& data, const GpuPlan& plan,
                                                        RunRecord& record, std::ostream& log) {
  const int local = static_cast<int>(plan.ordinals.size());
  const auto timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(options.rendezvous_timeout_s * 1000.0));
  NcclWorld world;
  world.first_rank = plan.rank * local;
  world.ranks = options.world_size * local;
  world.timeout = timeout;
  if (options.world_size > 1) {
    RendezvousOptions meet;
    meet.rank = plan.rank;
    meet.world_size = options.world_size;
    meet.rank0 = parse_endpoint(options.rendezvous);
    meet.configuration = rendezvous_configuration(options, local);
    meet.secret = read_rendezvous_secret(options.rendezvous_secret_file);
    meet.devices = device_names(plan);
    meet.blob_bytes = kNcclIdBytes;
    meet.timeout = timeout;
    log << "Rank " << plan.rank << " of " << options.world_size << ": "
        << (plan.rank == 0 ? "waiting for the others at " : "joining rank 0 at ")
        << options.rendezvous << std::endl;
    world.id = rendezvous(meet, plan.rank == 0 ? new_nccl_id() : std::string());
    check_rendezvous_blob(world.id, kNcclIdBytes);
  } else {
    world.id = new_nccl_id();
  }
  auto backend = std::make_unique<DataParallelBackend>(
      config, data, initial_parameters(make_layout(config.model, config.hidden_units), config.seed),
      plan.ordinals, world);
  const AllReduceFigure f = backend->measure_all_reduce(20);
  RunRecord::DataParallel& p = record.data_parallel.emplace();
  p.rank = plan.rank;
  p.world_size = options.world_size;
  p.first_rank = world.first_rank;
  p.ranks = world.ranks;
  p.nccl = nccl_version_string();
  p.all_reduce_bytes = f.bytes;
  p.all_reduce_us = f.latency_us;
  p.algorithm_gbps = f.algorithm_gbps;
  p.bus_gbps = f.bus_gbps;
  char line[256];
  std::snprintf(line, sizeof line,
                "Data-parallel over %d GPUs (%s): GPUs %s here are ranks %d..%d; all-reduce of the "
                "gradient (%.2f MB): %.1f us, bus bandwidth %.1f GB/s",
                world.ranks, p.nccl.c_str(), list_of(plan.ordinals).c_str(), world.first_rank,
                world.first_rank + local - 1, double(f.bytes) / 1e6, f.latency_us, f.bus_gbps);
  log << line << std::endl;
  return backend;
}

}  // namespace mnist
