// The speed probe's two kernels (src/gpu/speed_probe.h times them): one that keeps every SM's FP32
// pipes busy with fused multiply-adds, and one that copies device memory. Each fills the whole
// current device, so its time measures the device, not the launch.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace mnist::kernels {

// Independent FMA chains per thread: enough that every FP32 lane has an FMA to issue each cycle
// while the chains' earlier FMAs are still in the pipeline (latency ~4 cycles).
constexpr int kFmaChains = 8;
// Steps of every chain written out per loop pass, so the loop's own instructions cost ~1 % of the
// issue slots; fma_throughput's `steps` is a multiple of it.
constexpr int kFmaUnroll = 16;

// How many threads fma_throughput launches on the current device: as many 256-thread blocks as fit
// on all its SMs at once, so every SM works to the end (no partial last wave).
int fma_throughput_threads();

// Each of `threads` threads runs kFmaChains independent chains of `steps` FMAs x = x * a + b
// (__fmaf_rn: never split into a multiply and an add, never reassociated, even under
// --use_fast_math; the chains start at fma(thread in block, 1e-3, chain)), then writes the sum of
// its chains to out[thread], so the compiler keeps every FMA. Performs exactly threads * kFmaChains
// * steps FMAs (2 flops each), plus 7 adds per thread. threads: fma_throughput_threads(); out:
// `threads` floats; steps > 0, a multiple of kFmaUnroll. Throws std::invalid_argument on other
// shapes.
void fma_throughput(float* out, int threads, int steps, cudaStream_t stream);

// dst[i] = src[i] for i < count: 16-byte loads and stores, grid-stride over as many blocks as fit
// on the device at once. Moves 2 * 16 * count bytes (read and write). src and dst do not overlap;
// count > 0 (std::invalid_argument otherwise).
void copy_float4(const float4* src, float4* dst, std::size_t count, cudaStream_t stream);

}  // namespace mnist::kernels
