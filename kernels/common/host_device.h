// MNIST_HD marks a function that the host (the CPU reference, the training loop) and the device
// (the kernels) both compile, so the two sides compute exactly the same thing.
#pragma once

#if defined(__CUDACC__)
#define MNIST_HD __host__ __device__ __forceinline__
#else
#define MNIST_HD inline
#endif
