// Kernel launches with programmatic dependent launch (PDL, Hopper and later): a kernel launched
// with launch() may be scheduled while the kernel before it in the stream is still finishing, so
// the launch latency between the dependent kernels of a training step overlaps the previous
// kernel's tail (captured into the step's graph as programmatic edges). Every such kernel starts
// with await_previous_kernel(), which returns once the previous kernel has completed and its writes
// are visible; before that it must not read anything the previous kernel writes. On older GPUs
// (and for launches made without the attribute) both device calls are no-ops.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "cuda_error.h"

namespace mnist::kernels {

__device__ __forceinline__ void await_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  // The next kernel may now be scheduled: it waits for this one in turn.
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// What the kernels' launch planning needs to know of the current device, queried once per device
// (launches sit on the training loop's path when graphs are off).
struct DeviceFacts {
  int major = 0;  // compute capability
  int sms = 0;    // streaming multiprocessors
};

inline const DeviceFacts& device_facts() {
  constexpr int kMaxDevices = 64;
  static DeviceFacts facts[kMaxDevices];
  int device = 0;
  MNIST_CUDA_CHECK(cudaGetDevice(&device));
  DeviceFacts& f = facts[device % kMaxDevices];
  if (f.sms == 0) {
    MNIST_CUDA_CHECK(cudaDeviceGetAttribute(&f.major, cudaDevAttrComputeCapabilityMajor, device));
    MNIST_CUDA_CHECK(cudaDeviceGetAttribute(&f.sms, cudaDevAttrMultiProcessorCount, device));
  }
  return f;
}

// Whether the current device supports programmatic dependent launch (compute capability >= 9).
inline bool pdl_supported() { return device_facts().major >= 9; }

// Step traces: while an observer is set (on this host thread), launch() tells it of every kernel it
// enqueues, before and after, so that it can bracket the kernel with device events. Never set
// while a stream is being captured into a graph.
class LaunchObserver {
 public:
  virtual ~LaunchObserver() = default;
  virtual void before(const char* kernel, cudaStream_t stream) = 0;
  virtual void after(const char* kernel, cudaStream_t stream) = 0;
};

inline LaunchObserver*& launch_observer() {
  thread_local LaunchObserver* observer = nullptr;
  return observer;
}

// Where a launch is written, so a failed launch names its caller: MNIST_HERE.
struct Site {
  const char* file;
  int line;
};
#define MNIST_HERE (::mnist::kernels::Site{__FILE__, __LINE__})

template <class... Params, class... Args>
void launch(Site site, const char* name, void (*kernel)(Params...), dim3 grid, dim3 block,
            unsigned shared_bytes, cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = pdl_supported() ? 1 : 0;
  LaunchObserver* observer = launch_observer();
  if (observer) observer->before(name, stream);
  cuda_check(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...), name, site.file,
             site.line);
  if (observer) observer->after(name, stream);
}

}  // namespace mnist::kernels
