// cuBLASLt and NCCL, loaded when first used instead of linked: the cuda and cpu backends on one
// GPU need neither, so the node-check image leaves cuBLASLt out (the baseline image has it) and
// `ldd mnist-train` lists neither.
//   cublas_lt()  the cublas backend and the benchmark's vendor comparison
//   nccl()       data-parallel training: several GPUs or processes
// Each loads its library on the first call (thread-safe) and answers its table of entry points
// from then on. A library that cannot be loaded, or lacks an entry point, is
// Error(kBadArguments, ..., "library_missing"): exit 2, one line naming the library and what
// needs it; retrying on the same installation cannot help.
//
// Members are named as the libraries' headers name the functions, so a call reads as in their
// documentation: cublas_lt().cublasLtMatmul(...).
// For tests only, MNIST_TEST_CUBLASLT_LIBRARY and MNIST_TEST_NCCL_LIBRARY name another file to
// load instead (a path that does not exist stands for a missing library).
#pragma once

#include <cublasLt.h>
#include <nccl.h>

namespace mnist::lib {

// The member of a table for `fn` (macro-expanded first, should a header map a name to another).
#define MNIST_LIBRARY_FN(fn) decltype(&::fn) fn = nullptr

struct CublasLt {
  void* library = nullptr;  // dlopen's handle, never closed: the tables live until exit
  MNIST_LIBRARY_FN(cublasLtCreate);
  MNIST_LIBRARY_FN(cublasLtDestroy);
  MNIST_LIBRARY_FN(cublasLtGetStatusName);
  MNIST_LIBRARY_FN(cublasLtMatmulDescCreate);
  MNIST_LIBRARY_FN(cublasLtMatmulDescDestroy);
  MNIST_LIBRARY_FN(cublasLtMatmulDescSetAttribute);
  MNIST_LIBRARY_FN(cublasLtMatrixLayoutCreate);
  MNIST_LIBRARY_FN(cublasLtMatrixLayoutDestroy);
  MNIST_LIBRARY_FN(cublasLtMatmulPreferenceCreate);
  MNIST_LIBRARY_FN(cublasLtMatmulPreferenceDestroy);
  MNIST_LIBRARY_FN(cublasLtMatmulPreferenceSetAttribute);
  MNIST_LIBRARY_FN(cublasLtMatmulAlgoGetHeuristic);
  MNIST_LIBRARY_FN(cublasLtMatmul);
};

struct Nccl {
  void* library = nullptr;
  MNIST_LIBRARY_FN(ncclGetVersion);
  MNIST_LIBRARY_FN(ncclGetUniqueId);
  MNIST_LIBRARY_FN(ncclGetErrorString);
  MNIST_LIBRARY_FN(ncclGetLastError);
  MNIST_LIBRARY_FN(ncclCommInitRankConfig);
  MNIST_LIBRARY_FN(ncclCommFinalize);
  MNIST_LIBRARY_FN(ncclCommDestroy);
  MNIST_LIBRARY_FN(ncclCommAbort);
  MNIST_LIBRARY_FN(ncclCommGetAsyncError);
  MNIST_LIBRARY_FN(ncclGroupStart);
  MNIST_LIBRARY_FN(ncclGroupEnd);
  MNIST_LIBRARY_FN(ncclAllReduce);
  MNIST_LIBRARY_FN(ncclAllGather);
  MNIST_LIBRARY_FN(ncclBroadcast);
};

#undef MNIST_LIBRARY_FN

const CublasLt& cublas_lt();
const Nccl& nccl();

}  // namespace mnist::lib
