// dlopen and dlsym for the vendor libraries of libraries.h, each table filled once.
#include "gpu/libraries.h"

#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include "error.h"

namespace mnist::lib {
namespace {

#define MNIST_LIBRARY_NAME_(fn) #fn
#define MNIST_LIBRARY_NAME(fn) MNIST_LIBRARY_NAME_(fn)  // the name after macro expansion

struct Spec {
  const char* what;       // "cuBLASLt"
  const char* soname;     // "libcublasLt.so.13"
  const char* test_env;   // the tests' override of the file to load
  const char* needed_by;  // "the cublas backend"
  const char* remedy;     // where to get it
};

// `remedy`: what to do, when it is not spec.remedy (a library found but of another version).
[[noreturn]] void missing(const Spec& spec, const std::string& detail,
                          const char* remedy = nullptr) {
  throw Error(ExitCode::kBadArguments,
              std::string(spec.what) + " (" + spec.soname + "), which " + spec.needed_by +
                  " needs, cannot be loaded: " + detail + ". " +
                  (remedy != nullptr ? remedy : spec.remedy),
              "library_missing");
}

// Opens the library for good: the tables live until exit, and CUDA libraries must not be unloaded
// while a handle or stream of theirs may still be destroyed.
void* open(const Spec& spec) {
  const char* test_path = std::getenv(spec.test_env);
  const std::string path = test_path != nullptr && *test_path != '\0' ? test_path : spec.soname;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = dlerror();
    missing(spec, error != nullptr ? error : "dlopen failed for " + path);
  }
  return handle;
}

template <typename Fn>
void bind(const Spec& spec, void* library, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(library, name));
  if (fn == nullptr) {
    missing(spec, std::string("it has no entry point ") + name,
            "The file found is not the version this build was made for (CUDA 13's): check the "
            "loader's path (LD_LIBRARY_PATH, ldconfig -p)");
  }
}
#define MNIST_BIND(spec, table, fn) bind(spec, (table).library, MNIST_LIBRARY_NAME(fn), (table).fn)

const Spec kCublasLt{"cuBLASLt", "libcublasLt.so.13", "MNIST_TEST_CUBLASLT_LIBRARY",
                     "the cublas backend (and the benchmark's comparison with it)",
                     "The node-check image leaves it out: use the -baseline image, or install CUDA "
                     "13's cuBLAS (libcublasLt.so.13 comes with it)"};
const Spec kNccl{"NCCL", "libnccl.so.2", "MNIST_TEST_NCCL_LIBRARY",
                 "training over several GPUs or processes",
                 "Install NCCL 2 for CUDA 13 (the node-check and -baseline images have it, the "
                 "-single-gpu one does not), or train on one GPU"};

CublasLt load_cublas_lt() {
  CublasLt t;
  t.library = open(kCublasLt);
  MNIST_BIND(kCublasLt, t, cublasLtCreate);
  MNIST_BIND(kCublasLt, t, cublasLtDestroy);
  MNIST_BIND(kCublasLt, t, cublasLtGetStatusName);
  MNIST_BIND(kCublasLt, t, cublasLtMatmulDescCreate);
  MNIST_BIND(kCublasLt, t, cublasLtMatmulDescDestroy);
  MNIST_BIND(kCublasLt, t, cublasLtMatmulDescSetAttribute);
  MNIST_BIND(kCublasLt, t, cublasLtMatrixLayoutCreate);
  MNIST_BIND(kCublasLt, t, cublasLtMatrixLayoutDestroy);
  MNIST_BIND(kCublasLt, t, cublasLtMatmulPreferenceCreate);
  MNIST_BIND(kCublasLt, t, cublasLtMatmulPreferenceDestroy);
  MNIST_BIND(kCublasLt, t, cublasLtMatmulPreferenceSetAttribute);
  MNIST_BIND(kCublasLt, t, cublasLtMatmulAlgoGetHeuristic);
  MNIST_BIND(kCublasLt, t, cublasLtMatmul);
  return t;
}

Nccl load_nccl() {
  Nccl t;
  t.library = open(kNccl);
  MNIST_BIND(kNccl, t, ncclGetVersion);
  MNIST_BIND(kNccl, t, ncclGetUniqueId);
  MNIST_BIND(kNccl, t, ncclGetErrorString);
  MNIST_BIND(kNccl, t, ncclGetLastError);
  MNIST_BIND(kNccl, t, ncclCommInitRankConfig);
  MNIST_BIND(kNccl, t, ncclCommFinalize);
  MNIST_BIND(kNccl, t, ncclCommDestroy);
  MNIST_BIND(kNccl, t, ncclCommAbort);
  MNIST_BIND(kNccl, t, ncclCommGetAsyncError);
  MNIST_BIND(kNccl, t, ncclGroupStart);
  MNIST_BIND(kNccl, t, ncclGroupEnd);
  MNIST_BIND(kNccl, t, ncclAllReduce);
  MNIST_BIND(kNccl, t, ncclAllGather);
  MNIST_BIND(kNccl, t, ncclBroadcast);
  return t;
}

}  // namespace

// A function-local static: loaded once, by whichever thread comes first. A failed load throws out
// of the initialiser, so the next call tries again (and fails the same way).
const CublasLt& cublas_lt() {
  static const CublasLt table = load_cublas_lt();
  return table;
}

const Nccl& nccl() {
  static const Nccl table = load_nccl();
  return table;
}

}  // namespace mnist::lib
