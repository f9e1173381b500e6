// The arithmetic of the model's matrix products (--precision), for the host and the device alike:
// fp32 on the CUDA cores (the default, and the parity reference), or the tensor cores with TF32 or
// BF16 inputs rounded from the fp32 operands as they are read (products accumulated in fp32).
// Parameters, gradients, Adam's state and every other op stay fp32 whatever it is.
#pragma once

namespace mnist {

enum class Precision { kFp32, kTf32, kBf16 };

}  // namespace mnist
