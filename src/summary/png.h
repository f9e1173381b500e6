// A PNG encoder for the summaries' images (TensorBoard's image dashboard shows PNG): 8-bit
// samples, no interlacing, every row with filter type 0, compressed with zlib.
#pragma once

#include <cstdint>
#include <string>

namespace mnist {

// The PNG file of `height` rows of `width` pixels, top row first, each pixel `channels` 8-bit
// samples: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA. `pixels` holds width * height * channels bytes.
// Throws Error(ExitCode::kInternal) for a size or channel count PNG cannot hold (a caller's bug).
std::string encode_png(const std::uint8_t* pixels, int width, int height, int channels = 1);

}  // namespace mnist
