// The fixed shape of an MNIST example, one name each, for the host and the device alike.
#pragma once

namespace mnist {

constexpr int kImageSide = 28;
constexpr int kImagePixels = kImageSide * kImageSide;  // 784: the model's input width
constexpr int kClasses = 10;                           // digits 0..9: the model's output width

}  // namespace mnist
