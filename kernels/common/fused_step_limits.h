// The largest batch the fused whole-step kernel (fused_step.h) takes: each of its blocks stages
// the batch's pixels in shared memory. Host code (the command line) checks it too.
#pragma once

namespace mnist {

constexpr int kFusedMaxBatch = 128;

}  // namespace mnist
