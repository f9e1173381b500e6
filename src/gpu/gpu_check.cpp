#include "gpu/gpu_check.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "error.h"
#include "gpu/cuda_resources.h"
#include "kernels/cuda_error.h"
#include "kernels/gemm.h"

namespace mnist {
namespace {

// The check's product: Y = X W + b, 96 x 784 times 784 x 256, the first layer's shape at a small
// batch, on values drawn from a fixed generator.
constexpr int kRows = 96, kDepth = 784, kCols = 256;

std::vector<float> fixed_values(std::size_t n, std::uint32_t seed, float lo, float hi) {
  std::vector<float> v(n);
  std::uint32_t x = seed;
  for (float& f : v) {
    x = x * 1664525u + 1013904223u;  // LCG: the same values on every host
    f = lo + (hi - lo) * static_cast<float>(x >> 8) / float(1u << 24);
  }
  return v;
}

struct Product {
  std::vector<float> x, w, b;
  std::vector<double> expected, bound;  // host result in double, and its fp32 error allowance
};

Product make_product() {
  Product p;
  p.x = fixed_values(std::size_t(kRows) * kDepth, 1u, 0.0f, 1.0f);
  p.w = fixed_values(std::size_t(kDepth) * kCols, 2u, -0.1f, 0.1f);
  p.b = fixed_values(kCols, 3u, -0.1f, 0.1f);
  p.expected.resize(std::size_t(kRows) * kCols);
  p.bound.resize(p.expected.size());
  for (int r = 0; r < kRows; ++r) {
    for (int c = 0; c < kCols; ++c) {
      double sum = p.b[c], magnitude = std::fabs(p.b[c]);
      for (int k = 0; k < kDepth; ++k) {
        const double term =
            double(p.x[std::size_t(r) * kDepth + k]) * p.w[std::size_t(k) * kCols + c];
        sum += term;
        magnitude += std::fabs(term);
      }
      p.expected[std::size_t(r) * kCols + c] = sum;
      // fp32 accumulation over 785 terms errs by at most ~785 * 2^-24 of their magnitude; a GPU
      // that computes wrongly is far beyond even ten times that.
      p.bound[std::size_t(r) * kCols + c] = 1e-4 * magnitude + 1e-6;
    }
  }
  return p;
}

std::vector<float> run_product(const Product& p) {
  const DeviceBuffer<float> x(p.x), w(p.w), b(p.b);
  DeviceBuffer<float> y(std::size_t(kRows) * kCols);
  const CudaStream stream;
  kernels::linear_forward(x.get(), w.get(), b.get(), y.get(), kRows, kDepth, kCols, {},
                          stream.get());
  return y.download(stream.get());
}

}  // namespace

std::vector<int> resolve_gpus(const GpuSelection& selection, int visible) {
  const std::string seen =
      "CUDA sees " + std::to_string(visible) + " GPU" + (visible == 1 ? "" : "s") +
      (visible > 0 ? " (ordinals 0 to " + std::to_string(visible - 1) + ")" : "");
  std::vector<int> ordinals;
  switch (selection.kind) {
    case GpuSelection::Kind::kAll:
      for (int i = 0; i < visible; ++i) ordinals.push_back(i);
      if (ordinals.empty()) throw Error(ExitCode::kGpuUnusable, "--gpus all: " + seen);
      break;
    case GpuSelection::Kind::kFirst:
      if (selection.first > visible) {
        throw Error(ExitCode::kGpuUnusable, "--gpus " + std::to_string(selection.first) +
                                                " asks for " + std::to_string(selection.first) +
                                                " GPUs, but " + seen + ": GPUs missing");
      }
      for (int i = 0; i < selection.first; ++i) ordinals.push_back(i);
      break;
    case GpuSelection::Kind::kList:
      for (int ordinal : selection.list) {
        if (ordinal >= visible) {
          throw Error(ExitCode::kGpuUnusable, "--gpus " + selection.text + ": GPU " +
                                                  std::to_string(ordinal) + " is missing; " + seen);
        }
      }
      ordinals = selection.list;
      break;
  }
  return ordinals;
}

std::vector<DeviceInfo> check_gpus(const std::vector<int>& ordinals, std::ostream& log) {
  const Product product = make_product();
  std::vector<DeviceInfo> infos;
  std::vector<std::vector<float>> answers;
  for (int ordinal : ordinals) {
    const std::string line = found_device_line(ordinal);  // current from here on
    const DeviceInfo info = device_info(ordinal);
    log << line << std::endl;
    std::vector<float> y;
    try {
      y = run_product(product);
    } catch (const CudaError& e) {
      throw Error(ExitCode::kGpuUnusable, gpu_label(info) + " failed its check: " + e.what());
    }
    for (std::size_t i = 0; i < y.size(); ++i) {
      const double error = std::fabs(double(y[i]) - product.expected[i]);
      if (!(error <= product.bound[i])) {  // NaN fails too
        throw Error(ExitCode::kGpuUnusable,
                    gpu_label(info) + " computes a wrong answer in its check: element " +
                        std::to_string(i) + " is " + std::to_string(y[i]) + ", expected " +
                        std::to_string(product.expected[i]),
                    "wrong_answer");
      }
    }
    // The same model runs the same kernels in the same order: the same bits.
    for (std::size_t j = 0; j < infos.size(); ++j) {
      if (infos[j].name != info.name || infos[j].multiprocessors != info.multiprocessors) continue;
      if (std::memcmp(answers[j].data(), y.data(), y.size() * sizeof(float)) != 0) {
        throw Error(ExitCode::kGpuUnusable,
                    gpu_label(info) + " gives a different answer in its check than " +
                        gpu_label(infos[j]) + ", the same model",
                    "wrong_answer");
      }
      break;
    }
    infos.push_back(info);
    answers.push_back(std::move(y));
  }
  return infos;
}

}  // namespace mnist
