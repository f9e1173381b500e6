// The fixed shape of an MNIST example, one name each, for the host and the device alike.
#pragma once

namespace mnist {

constexpr int kImageSide = 28;
constexpr int kImagePixels = kImageSide * kImageSide;  // 784: the model's input width
constexpr int kClasses = 10;                           // digits 0..9: the model's output width
// Pixels are bytes 0..255, read as floats in [0, 1] (multiplied, so host and device round alike).
constexpr float kPixelScale = 1.0f / 255.0f;

}  // namespace mnist
