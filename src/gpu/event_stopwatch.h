// Stopwatch on CUDA events, shared by the GPU backends.
#pragma once

#include <memory>
#include <vector>

#include "gpu/cuda_resources.h"
#include "train/backend.h"

namespace mnist {

// Device events recorded in a stream's order; intervals between consecutive marks.
class EventStopwatch final : public Stopwatch {
 public:
  explicit EventStopwatch(cudaStream_t stream) : stream_(stream) {}
  void mark() override {
    events_.emplace_back(std::make_unique<CudaEvent>());
    MNIST_CUDA_CHECK(cudaEventRecord(events_.back()->get(), stream_));
  }
  std::vector<double> intervals_us() override {
    std::vector<double> out;
    if (events_.empty()) return out;
    MNIST_CUDA_CHECK(cudaEventSynchronize(events_.back()->get()));
    for (std::size_t i = 1; i < events_.size(); ++i) {
      float ms = 0;
      MNIST_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[i - 1]->get(), events_[i]->get()));
      out.push_back(ms * 1000.0);
    }
    return out;
  }

 private:
  cudaStream_t stream_;
  std::vector<std::unique_ptr<CudaEvent>> events_;
};

}  // namespace mnist
