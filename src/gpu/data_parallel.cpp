#include "gpu/data_parallel.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "data/sha256.h"
#include "error.h"
#include "gpu/event_stopwatch.h"
#include "kernels/launch.cuh"

namespace mnist {
namespace {

// While replica 0 traces its step, the other replicas' launches must not reach its tracer (its
// events live on GPU 0).
class ObserverPaused {
 public:
  ObserverPaused() : saved_(kernels::launch_observer()) { kernels::launch_observer() = nullptr; }
  ~ObserverPaused() { kernels::launch_observer() = saved_; }
  ObserverPaused(const ObserverPaused&) = delete;
  ObserverPaused& operator=(const ObserverPaused&) = delete;

 private:
  kernels::LaunchObserver* saved_;
};

// Replica 0's stopwatch, with its GPU current for every call, and the world's work drained (with
// NCCL watched) before its events are read.
class ReplicaStopwatch final : public Stopwatch {
 public:
  ReplicaStopwatch(DataParallelBackend& backend, int device, cudaStream_t stream)
      : backend_(backend), device_(device), inner_((set_device(device), stream)) {}
  void mark() override {
    set_device(device_);
    inner_.mark();
  }
  std::vector<double> intervals_us() override {
    backend_.synchronize();
    set_device(device_);
    return inner_.intervals_us();
  }

 private:
  static void set_device(int device) { MNIST_CUDA_CHECK(cudaSetDevice(device)); }
  DataParallelBackend& backend_;
  int device_;
  EventStopwatch inner_;
};

}  // namespace

DataParallelBackend::DataParallelBackend(const TrainConfig& config, const MnistData& data,
                                         std::vector<float> initial_params,
                                         const std::vector<int>& devices, const NcclWorld& world)
    : devices_(devices), parameters_(initial_params.size()) {
  if (devices.empty()) throw std::invalid_argument("DataParallelBackend: no GPU");
  if (config.batch_size < world.ranks) {
    throw Error(ExitCode::kBadArguments,
                "--batch_size " + std::to_string(config.batch_size) + " cannot be split over " +
                    std::to_string(world.ranks) + " GPUs: each needs at least one row");
  }
  for (std::size_t i = 0; i < devices.size(); ++i) {
    on_device(static_cast<int>(i));
    shards_.push_back(
        shard_of(config.batch_size, world.first_rank + static_cast<int>(i), world.ranks));
    replicas_.push_back(
        std::make_unique<CudaBackend>(config, data, initial_params, shards_.back()));
  }
  nccl_ =
      std::make_unique<NcclGroup>(world.id, devices, world.first_rank, world.ranks, world.timeout);
}

DataParallelBackend::~DataParallelBackend() {
  // Let the steps in flight finish (bounded, watched), so no peer is left inside a collective;
  // then the communicators, which may still reference the replicas' buffers.
  try {
    if (nccl_) nccl_->wait(streams(), "finishing the last steps", std::chrono::seconds(10));
  } catch (...) {  // a failed or stuck peer, or a stop: the communicators are aborted by now
  }
  nccl_.reset();
  for (std::size_t i = 0; i < replicas_.size(); ++i) {
    if (cudaSetDevice(devices_[i]) == cudaSuccess) replicas_[i].reset();
  }
}

void DataParallelBackend::on_device(int i) const { MNIST_CUDA_CHECK(cudaSetDevice(devices_[i])); }

std::vector<cudaStream_t> DataParallelBackend::streams() const {
  std::vector<cudaStream_t> out;
  for (const auto& replica : replicas_) out.push_back(replica->stream());
  return out;
}

void DataParallelBackend::set_epoch_order(std::int64_t epoch,
                                          const std::vector<std::int32_t>& order) {
  synchronize();  // the replicas' own waits below then cannot block on a collective
  for (std::size_t i = 0; i < replicas_.size(); ++i) {
    on_device(static_cast<int>(i));
    replicas_[i]->set_epoch_order(epoch, order);
  }
}

void DataParallelBackend::all_reduce_gradients() {
  nccl_->group("all-reducing the gradients", [&] {
    for (std::size_t i = 0; i < replicas_.size(); ++i) {
      on_device(static_cast<int>(i));
      float* g = replicas_[i]->gradient();
      nccl_->note(lib::nccl().ncclAllReduce(g, g, parameters_, ncclFloat, ncclSum,
                                            nccl_->comm(static_cast<int>(i)),
                                            replicas_[i]->stream()));
    }
  });
}

// A replica about to read back its device buffers waits with a plain stream synchronisation,
// which a collective stuck on a peer would hold forever; and the host must not run arbitrarily far
// ahead of the GPUs. So every kMaxStepsInFlight steps, and before such a read-back, all replicas
// are drained through the watched wait.
void DataParallelBackend::before_enqueue() {
  bool full = steps_in_flight_ >= kMaxStepsInFlight;
  for (const auto& replica : replicas_) full = full || replica->holds_full_buffers();
  if (full) synchronize();
}

void DataParallelBackend::train_step() {
  before_enqueue();
  ++steps_in_flight_;
  for (std::size_t i = 0; i < replicas_.size(); ++i) {
    on_device(static_cast<int>(i));
    replicas_[i]->enqueue_gradients();
  }
  all_reduce_gradients();
  for (std::size_t i = 0; i < replicas_.size(); ++i) {
    on_device(static_cast<int>(i));
    replicas_[i]->enqueue_apply();
  }
}

// Replica 0's halves op by op between its device events, the all-reduce as one op of its trace;
// the other replicas replay their graphs as usual.
void DataParallelBackend::traced_train_step() {
  before_enqueue();
  ++steps_in_flight_;
  on_device(0);
  replicas_[0]->begin_traced_step();
  try {
    replicas_[0]->enqueue_gradients();
    {
      const ObserverPaused paused;
      for (std::size_t i = 1; i < replicas_.size(); ++i) {
        on_device(static_cast<int>(i));
        replicas_[i]->enqueue_gradients();
      }
    }
    on_device(0);
    replicas_[0]->traced_op("all_reduce", [&] {
      const ObserverPaused paused;
      all_reduce_gradients();
      on_device(0);
    });
    replicas_[0]->enqueue_apply();
    {
      const ObserverPaused paused;
      for (std::size_t i = 1; i < replicas_.size(); ++i) {
        on_device(static_cast<int>(i));
        replicas_[i]->enqueue_apply();
      }
    }
  } catch (...) {
    kernels::launch_observer() = nullptr;
    replicas_[0]->abandon_traced_step();
    throw;
  }
  on_device(0);
  replicas_[0]->end_traced_step();
}

void DataParallelBackend::synchronize() {
  nccl_->wait(streams(), "waiting for the training steps");
  steps_in_flight_ = 0;
}

float DataParallelBackend::last_loss() {
  synchronize();
  double weighted = 0.0, rows = 0.0;
  for (std::size_t i = 0; i < replicas_.size(); ++i) {
    on_device(static_cast<int>(i));
    weighted += double(replicas_[i]->last_loss()) * shards_[i].rows;
    rows += shards_[i].rows;
  }
  return static_cast<float>(weighted / rows);
}

Evaluation DataParallelBackend::evaluate(EvalSplit split, bool with_loss) {
  synchronize();
  on_device(0);
  return replicas_[0]->evaluate(split, with_loss);
}

void DataParallelBackend::enable_step_metrics() {
  for (std::size_t i = 0; i < replicas_.size(); ++i) {
    on_device(static_cast<int>(i));
    replicas_[i]->enable_step_metrics();
  }
}

void DataParallelBackend::record_statistics() {
  // Its forward pass is GPU 0's shard; the summaries' dropout mask is indexed from row 0.
  if (shards_[0].row_offset != 0)
    throw std::logic_error("statistics are recorded by the process holding rank 0");
  before_enqueue();
  on_device(0);
  replicas_[0]->record_statistics();
}

// The per-step scalars of this process's shards, weighted by their rows; statistics and traces
// from its first GPU.
Summaries DataParallelBackend::take_summaries() {
  synchronize();
  on_device(0);
  Summaries out = replicas_[0]->take_summaries();
  if (replicas_.size() == 1) return out;
  std::vector<double> loss(out.steps.size()), accuracy(out.steps.size());
  double rows = 0.0;
  for (std::size_t i = 0; i < replicas_.size(); ++i) {
    Summaries s;
    if (i == 0) {
      s.steps = out.steps;
    } else {
      on_device(static_cast<int>(i));
      s = replicas_[i]->take_summaries();
    }
    if (s.steps.size() != out.steps.size())
      throw std::logic_error("data-parallel replicas hold different numbers of step metrics");
    for (std::size_t j = 0; j < s.steps.size(); ++j) {
      loss[j] += double(s.steps[j].cross_entropy) * shards_[i].rows;
      accuracy[j] += double(s.steps[j].accuracy) * shards_[i].rows;
    }
    rows += shards_[i].rows;
  }
  for (std::size_t j = 0; j < out.steps.size(); ++j) {
    out.steps[j].cross_entropy = static_cast<float>(loss[j] / rows);
    out.steps[j].accuracy = static_cast<float>(accuracy[j] / rows);
  }
  return out;
}

std::int64_t DataParallelBackend::steps_taken() const { return replicas_[0]->steps_taken(); }

TrainState DataParallelBackend::state() {
  synchronize();
  on_device(0);
  return replicas_[0]->state();
}

void DataParallelBackend::set_state(const TrainState& state) {
  synchronize();
  for (std::size_t i = 0; i < replicas_.size(); ++i) {
    on_device(static_cast<int>(i));
    replicas_[i]->set_state(state);
  }
}

std::unique_ptr<Stopwatch> DataParallelBackend::stopwatch() {
  return std::make_unique<ReplicaStopwatch>(*this, devices_[0], replicas_[0]->stream());
}

ResumePoint DataParallelBackend::agree_on_start(const ResumePoint& resume) {
  TrainState state = this->state();
  const std::size_t p = state.params.size();
  // Rank 0's state as one float payload [params, m, v] and a header {iteration, loss bits, step}.
  std::vector<float> payload;
  payload.reserve(3 * p);
  for (const auto* part : {&state.params, &state.adam_m, &state.adam_v})
    payload.insert(payload.end(), part->begin(), part->end());
  std::int32_t loss_bits = 0;
  std::memcpy(&loss_bits, &resume.last_loss, sizeof loss_bits);
  const std::vector<std::int64_t> header = {resume.iteration, loss_bits, state.step};
  std::vector<DeviceBuffer<float>> payloads;
  std::vector<DeviceBuffer<std::int64_t>> headers;
  for (std::size_t i = 0; i < replicas_.size(); ++i) {
    on_device(static_cast<int>(i));
    payloads.emplace_back(payload);
    headers.emplace_back(header);
  }
  nccl_->group("handing rank 0's parameters to every GPU", [&] {
    for (std::size_t i = 0; i < replicas_.size(); ++i) {
      on_device(static_cast<int>(i));
      const cudaStream_t s = replicas_[i]->stream();
      const ncclComm_t comm = nccl_->comm(static_cast<int>(i));
      nccl_->note(lib::nccl().ncclBroadcast(payloads[i].get(), payloads[i].get(), payload.size(),
                                            ncclFloat, 0, comm, s));
      nccl_->note(lib::nccl().ncclBroadcast(headers[i].get(), headers[i].get(), header.size(),
                                            ncclInt64, 0, comm, s));
    }
  });
  synchronize();
  on_device(0);
  const std::vector<float> agreed = payloads[0].download(replicas_[0]->stream());
  const std::vector<std::int64_t> agreed_header = headers[0].download(replicas_[0]->stream());
  state.params.assign(agreed.begin(), agreed.begin() + p);
  state.adam_m.assign(agreed.begin() + p, agreed.begin() + 2 * p);
  state.adam_v.assign(agreed.begin() + 2 * p, agreed.end());
  state.step = agreed_header[2];
  set_state(state);
  ResumePoint out;
  out.iteration = agreed_header[0];
  const auto bits = static_cast<std::int32_t>(agreed_header[1]);
  std::memcpy(&out.last_loss, &bits, sizeof bits);
  return out;
}

AllReduceFigure DataParallelBackend::measure_all_reduce(int iterations) {
  synchronize();
  constexpr int kWarmUp = 5;
  for (int i = 0; i < kWarmUp; ++i) all_reduce_gradients();
  std::vector<std::unique_ptr<CudaEvent>> events;
  on_device(0);
  const cudaStream_t s0 = replicas_[0]->stream();
  for (int i = 0; i < iterations; ++i) {
    on_device(0);
    events.push_back(std::make_unique<CudaEvent>());
    MNIST_CUDA_CHECK(cudaEventRecord(events.back()->get(), s0));
    all_reduce_gradients();
    on_device(0);
    events.push_back(std::make_unique<CudaEvent>());
    MNIST_CUDA_CHECK(cudaEventRecord(events.back()->get(), s0));
  }
  synchronize();
  on_device(0);
  std::vector<double> us;
  for (std::size_t i = 0; i + 1 < events.size(); i += 2) {
    float ms = 0;
    MNIST_CUDA_CHECK(cudaEventElapsedTime(&ms, events[i]->get(), events[i + 1]->get()));
    us.push_back(ms * 1000.0);
  }
  AllReduceFigure f;
  f.ranks = nccl_->ranks();
  f.bytes = parameters_ * sizeof(float);
  if (us.empty()) return f;
  std::sort(us.begin(), us.end());
  f.latency_us = us[us.size() / 2];
  // One rank moves nothing (NCCL skips an in-place all-reduce): no bandwidth to speak of.
  if (f.latency_us > 0 && f.ranks > 1) {
    f.algorithm_gbps = double(f.bytes) / (f.latency_us * 1e-6) / 1e9;
    f.bus_gbps = f.algorithm_gbps * 2.0 * (f.ranks - 1) / f.ranks;
  }
  return f;
}

void DataParallelBackend::check_replicas_agree(const std::vector<DeviceInfo>& infos) {
  synchronize();
  auto named = [&](std::size_t i) {
    return i < infos.size() ? gpu_label(infos[i]) : "GPU " + std::to_string(devices_[i]);
  };
  on_device(0);
  const std::vector<float> reference = replicas_[0]->state().params;
  for (std::size_t i = 1; i < replicas_.size(); ++i) {
    on_device(static_cast<int>(i));
    const std::vector<float> params = replicas_[i]->state().params;
    if (std::memcmp(params.data(), reference.data(), reference.size() * sizeof(float)) != 0) {
      throw Error(ExitCode::kGpuUnusable, named(i) +
                                              " ended the run with parameters that differ "
                                              "from those of " +
                                              named(0) + " after identical updates: a faulty GPU?");
    }
  }
  if (nccl_->ranks() == nccl_->local_size()) return;
  // Other processes: every rank's digest of its parameters, gathered everywhere.
  std::vector<std::uint8_t> bytes(reference.size() * sizeof(float));
  std::memcpy(bytes.data(), reference.data(), bytes.size());
  const std::string hex = sha256_hex(bytes);
  const std::vector<std::uint8_t> digest(hex.begin(), hex.end());  // 64 bytes
  const std::size_t n = digest.size();
  std::vector<DeviceBuffer<std::uint8_t>> sends, receives;
  for (std::size_t i = 0; i < replicas_.size(); ++i) {
    on_device(static_cast<int>(i));
    sends.emplace_back(digest);
    receives.emplace_back(n * nccl_->ranks());
  }
  nccl_->group("comparing the parameters of every rank", [&] {
    for (std::size_t i = 0; i < replicas_.size(); ++i) {
      on_device(static_cast<int>(i));
      nccl_->note(lib::nccl().ncclAllGather(sends[i].get(), receives[i].get(), n, ncclUint8,
                                            nccl_->comm(static_cast<int>(i)),
                                            replicas_[i]->stream()));
    }
  });
  synchronize();
  on_device(0);
  const std::vector<std::uint8_t> all = receives[0].download(replicas_[0]->stream());
  for (int rank = 1; rank < nccl_->ranks(); ++rank) {
    if (!std::equal(all.begin() + rank * n, all.begin() + (rank + 1) * n, all.begin())) {
      throw Error(ExitCode::kGpuUnusable,
                  "rank " + std::to_string(rank) +
                      " ended the run with parameters that differ from rank 0's after identical "
                      "updates: a faulty GPU in that process (its own log names it)?");
    }
  }
}

}  // namespace mnist
