// Where the fused step's time goes: builds kernels/fused_step.cu with its phase timestamps
// (MNIST_FUSED_STEP_PROFILE), runs steps of the seed's shape on random data, and prints each
// phase's duration (the median over steps of the slowest block's) and when the last block
// reached each mark. Diagnostics only, like the rest of bench/:
//   fused_phases [batch] [hidden] [steps]
#define MNIST_FUSED_STEP_PROFILE
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "../kernels/fused_step.cu"

namespace {

template <class T>
T* device_copy(const std::vector<T>& host) {
  T* d = nullptr;
  MNIST_CUDA_CHECK(cudaMalloc(&d, host.size() * sizeof(T)));
  MNIST_CUDA_CHECK(cudaMemcpy(d, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

const char* const kMarks[] = {"start",
                              "parameters + images",
                              "pixels",
                              "forward sums",
                              "hidden finished",
                              "partial logits",
                              "grid barrier 1",
                              "loss rows",
                              "grid barrier 2",
                              "dlogits staged",
                              "dh",
                              "dW1 sums",
                              "W1 Adam + stores (end)"};

}  // namespace

int main(int argc, char** argv) {
  using namespace mnist;
  const int batch = argc > 1 ? std::atoi(argv[1]) : 100;
  const int hidden = argc > 2 ? std::atoi(argv[2]) : 500;
  const int steps = argc > 3 ? std::atoi(argv[3]) : 50;
  const int train = 60000;
  std::mt19937 rng(1);
  std::vector<std::uint8_t> images(std::size_t(train) * kImagePixels), labels(train);
  for (auto& b : images) b = static_cast<std::uint8_t>(rng() % 256);
  for (auto& l : labels) l = static_cast<std::uint8_t>(rng() % kClasses);
  std::vector<std::int32_t> orders(2 * std::size_t(train));
  for (std::size_t i = 0; i < orders.size(); ++i) orders[i] = static_cast<std::int32_t>(i % train);
  std::shuffle(orders.begin(), orders.begin() + train, rng);
  const std::size_t w1 = 0, b1 = std::size_t(kImagePixels) * hidden, w2 = b1 + hidden,
                    b2 = w2 + std::size_t(hidden) * kClasses, total = b2 + kClasses;
  std::normal_distribution<float> normal(0.0f, 0.1f);
  std::vector<float> params(total);
  for (auto& p : params) p = normal(rng);

  float* p = device_copy(params);
  kernels::FusedStep a;
  a.batch =
      kernels::ByteRows{device_copy(images), nullptr, device_copy(orders), train, nullptr, batch};
  a.labels = device_copy(labels);
  a.w1 = p + w1, a.b1 = p + b1, a.w2 = p + w2, a.b2 = p + b2;
  a.m = device_copy(std::vector<float>(total, 0.0f));
  a.v = device_copy(std::vector<float>(total, 0.0f));
  a.w1_offset = w1, a.b1_offset = b1, a.w2_offset = w2, a.b2_offset = b2;
  a.hidden = hidden;
  a.keep_prob = 0.9f;
  a.seed = 1;
  a.lr = 1e-4f, a.beta1 = 0.9f, a.beta2 = 0.999f, a.eps = 1e-8f;
  a.step = device_copy(std::vector<std::int64_t>{0});
  a.row_loss = device_copy(std::vector<float>(batch));
  a.row_correct = device_copy(std::vector<std::uint8_t>(batch));
  a.batch_images = device_copy(std::vector<std::int32_t>(batch));
  a.batch_labels = device_copy(std::vector<std::uint8_t>(batch));
  a.batch_step = device_copy(std::vector<std::int64_t>{0});
  a.scratch = device_copy(std::vector<float>(kernels::fused_step_scratch_floats(batch, hidden)));

  const kernels::FusedPlan plan = kernels::plan_fused_step(batch, hidden);
  if (plan.unsupported) {
    std::fprintf(stderr, "fused_phases: %s\n", plan.unsupported);
    return 2;
  }
  const int blocks = plan.blocks;
  constexpr int kMarkCount = sizeof(kMarks) / sizeof(kMarks[0]);
  std::vector<std::vector<double>> phase(kMarkCount), reached(kMarkCount);
  std::vector<double> whole;
  cudaEvent_t start, stop;
  MNIST_CUDA_CHECK(cudaEventCreate(&start));
  MNIST_CUDA_CHECK(cudaEventCreate(&stop));
  for (int s = 0; s < steps + 5; ++s) {
    MNIST_CUDA_CHECK(cudaEventRecord(start));
    kernels::fused_step(a, plan, nullptr);
    MNIST_CUDA_CHECK(cudaEventRecord(stop));
    MNIST_CUDA_CHECK(cudaEventSynchronize(stop));
    if (s < 5) continue;  // warm-up
    float ms = 0;
    MNIST_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    whole.push_back(ms * 1000.0);
    static unsigned long long t[1024][13];
    MNIST_CUDA_CHECK(cudaMemcpyFromSymbol(t, kernels::fused_phase_ns, sizeof t));
    unsigned long long first = ~0ull;
    for (int b = 0; b < blocks; ++b) first = std::min(first, t[b][0]);
    for (int m = 0; m < kMarkCount; ++m) {
      double slowest = 0, last = 0;
      for (int b = 0; b < blocks; ++b) {
        if (m > 0) slowest = std::max(slowest, double(t[b][m] - t[b][m - 1]) / 1000.0);
        last = std::max(last, double(t[b][m] - first) / 1000.0);
      }
      phase[m].push_back(slowest);
      reached[m].push_back(last);
    }
  }
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("fused step, batch %d, hidden %d, %d blocks: %.2f us per launch (events, median)\n",
              batch, hidden, blocks, median(whole));
  std::printf("%-22s %12s %16s\n", "phase (ends at mark)", "slowest us", "last block at us");
  for (int m = 0; m < kMarkCount; ++m)
    std::printf("%-22s %12.2f %16.2f\n", kMarks[m], median(phase[m]), median(reached[m]));
  return 0;
}
