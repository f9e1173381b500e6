// The speed probe: whether each GPU is as fast as its own properties promise, and as fast as its
// siblings. A GPU can pass every correctness check and still run at half its clock (a power cap,
// overheating, a stuck clock) or with slow memory; training on it works, only slowly, and a node
// built of such GPUs passes for healthy. The probe measures two figures in well under a second:
//
//   fp32_throughput   TFLOP/s of FP32 fused multiply-adds (2 flops each), against
//                     2 x FP32 lanes per SM x SMs x SM clock;
//   memory_bandwidth  GB/s (10^9 bytes/s) of a device-to-device copy, counting every byte twice
//                     (read and written), against 2 (double data rate) x memory clock x bus width.
//
// The clocks are the ones CUDA reports (cudaDevAttrClockRate, cudaDevAttrMemoryClockRate): the
// maximum (boost) clocks, not the present ones. An idle GPU runs below them until work arrives, so
// the probe warms the GPU up before it times anything. Where the driver does not report a clock (or
// the compute capability is not in the table), the promise is unknown and its check reads
// "unavailable"; the sibling checks still compare the measured figures.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "gpu/health.h"

namespace mnist {

// What a device's properties promise rests on, as CUDA reports it (0: not reported).
struct DeviceSpeedFacts {
  int major = 0, minor = 0;  // compute capability
  int multiprocessors = 0;
  int sm_clock_khz = 0;      // cudaDevAttrClockRate: the maximum (boost) SM clock
  int memory_clock_khz = 0;  // cudaDevAttrMemoryClockRate: the peak memory clock
  int memory_bus_bits = 0;   // cudaDevAttrGlobalMemoryBusWidth
};

// FP32 FMA results per clock per SM, from the CUDA C Programming Guide's table of arithmetic
// instruction throughput (the CUDA samples' _ConvertSMVer2Cores has the same figures): 64 for 6.0
// and 7.x and 8.0, 128 for 5.x, 6.1, 6.2, 8.6, 8.7, 8.9, 9.0, 10.x, 11.x and 12.x. 0 for any other
// compute capability: the table does not promise it.
int fp32_lanes_per_sm(int major, int minor);

// One measured figure and its promise.
struct SpeedFigure {
  double promise = 0;       // what the properties promise; 0 when unknown (unknown_why says why)
  double achieved = 0;      // the median of the timed repetitions
  std::string unknown_why;  // empty when the promise is known
  double ratio() const { return promise > 0 ? achieved / promise : 0; }
};

// The promises, in TFLOP/s and GB/s (achieved left 0).
SpeedFigure fp32_promise(const DeviceSpeedFacts& facts);
SpeedFigure memory_promise(const DeviceSpeedFacts& facts);

struct SpeedProbeResult {
  int ordinal = 0;          // CUDA's device number in this process
  std::string name;         // "NVIDIA H200": the siblings of a GPU are the others of its name
  SpeedFigure fp32_tflops;  // TFLOP/s
  SpeedFigure memory_gbps;  // GB/s, read and write counted
  double duration_s = 0;    // the whole probe (buffers, warm-up, timing), on the host's clock
};

// Probes device `ordinal` (made current for the probe, which creates its context; the current
// device is restored after it): a warm-up of FMAs (at least 10 ms, then until two launches in a row
// agree within 2 %), then the median of 5 timed launches of each kernel (kernels/speed_probe.h),
// timed with CUDA events. Budgeted at under 100 ms on an H200 (speed_gpu_tests prints what it
// takes); needs 2 x 256 MiB of device memory (more where the L2 cache is over 64 MiB, so that the
// copy measures memory, not cache). Throws CudaError (exit code 4) on a CUDA failure, Error
// (kGpuUnusable) when the device's properties cannot be read.
SpeedProbeResult probe_speed(int ordinal);

// Where the checks draw the line, as fractions. Measured on a healthy H200 (speed_gpu_tests and the
// seed job, docs/PERFORMANCE.md "Node check"): its FMA reaches 0.97 of the promise (65.1 of 132 SMs
// x 128 lanes x 1980 MHz x 2 = 66.9 TFLOP/s) and its copy 0.79-0.80 of 4814 GB/s (3807-3835 GB/s,
// read + write). The fail lines sit far below: a GPU at half its clock (FMA ~0.49) or with half
// its memory bandwidth (~0.40) fails, a healthy one passes with a margin of 1.6-1.9x, which covers
// power and thermal variation between runs. The warn lines catch a GPU that is held back (a power
// cap, a hot node) without being broken.
struct SpeedThresholds {
  double fail_fp32_ratio = 0.5;  // of the FP32 promise
  double warn_fp32_ratio = 0.7;
  double fail_memory_ratio = 0.5;  // of the memory promise
  double warn_memory_ratio = 0.7;
  // Of the median of the other GPUs of the same name in this process: GPUs of one model in one
  // node measured by the same kernels agree within a few percent, so a fifth below is a GPU that
  // is wrong, caught even where its promise is unknown.
  double fail_sibling_ratio = 0.8;
  double warn_sibling_ratio = 0.9;
};

// The four checks of gpus[which], in this order, as the verdict lists them beside the GPU's health
// checks (src/gpu/health.h's Check: value in `unit`, threshold the fail line in `unit`, absent when
// unavailable; a one-line detail with the figures and the lines drawn, or why unavailable):
//
//   fp32_throughput           TFLOP/s against the FP32 promise (thresholds.*_fp32_ratio)
//   memory_bandwidth          GB/s against the memory promise (thresholds.*_memory_ratio)
//   sibling_fp32_throughput   TFLOP/s against the median of the other GPUs of gpus with the same
//                             name (thresholds.*_sibling_ratio); unavailable without one
//   sibling_memory_bandwidth  GB/s, likewise
//
// A figure exactly on a fail or warn line passes that line. Pure host code: no CUDA call, so tests
// drive it with injected figures.
std::vector<health::Check> evaluate_speed(const std::vector<SpeedProbeResult>& gpus,
                                          std::size_t which,
                                          const SpeedThresholds& thresholds = {});

}  // namespace mnist
