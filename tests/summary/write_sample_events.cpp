// Writes the sample run that read_events.py --check-sample verifies with its own reader: every
// kind of value the summaries use, in one event file under DIR (printed on stdout). The values
// here and in read_events.py's SAMPLE are the same by construction, not by sharing code.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

#include "error.h"
#include "summary/event_writer.h"
#include "summary/histogram.h"
#include "summary/png.h"

int main(int argc, char** argv) {
  using namespace mnist;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  try {
    EventWriter writer(argv[1]);
    // Scalars: loss = 1 / (step + 1) for steps 0..9, and a zero, which must still be written.
    for (int step = 0; step < 10; ++step) {
      writer.add_scalar("cross_entropy", step, 1.0f / static_cast<float>(step + 1));
    }
    writer.add_scalar("zero", 3, 0.0f);
    // Several values in one event.
    writer.write(
        20,
        SummaryBuilder().scalar("accuracy", 0.5f).scalar("dropout/dropout_keep_probability", 0.9f));

    // Histograms of values: (i - 500) / 64 for i in 0..999, plus values in the outermost buckets.
    for (int step : {0, 10}) {
      std::vector<float> values;
      for (int i = 0; i < 1000; ++i)
        values.push_back(static_cast<float>(i - 500) / 64.0f * (step + 1));
      values.push_back(1e-13f);   // in [0, 1e-12)
      values.push_back(-1e-13f);  // in [-1e-12, 0)
      values.push_back(1e25f);    // past 1e20: in [last limit, DBL_MAX)
      values.push_back(-3.5f);
      writer.add_histogram("layer1/weights/summaries/histogram", step, values);
    }
    // A histogram from precomputed counts (as a GPU reduction hands them over): 3 x 0.5, 2 x -2.
    std::vector<double> counts(default_bucket_limits().size(), 0.0);
    counts[default_bucket_index(0.5)] += 3;
    counts[default_bucket_index(-2.0)] += 2;
    writer.add_histogram("precomputed", 5, histogram_from_counts(counts, -2.0, 0.5, -2.5, 8.75));
    writer.add_histogram("empty", 5, std::vector<float>{});

    // A 28x28 grey image (x * 9 + y * 5) % 256, and a 3x2 RGB one.
    std::vector<std::uint8_t> grey(28 * 28);
    for (int y = 0; y < 28; ++y) {
      for (int x = 0; x < 28; ++x)
        grey[y * 28 + x] = static_cast<std::uint8_t>((x * 9 + y * 5) % 256);
    }
    writer.add_gray_image("input_reshape/input/image/0", 0, grey.data(), 28, 28);
    std::vector<std::uint8_t> rgb(3 * 2 * 3);
    for (std::size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<std::uint8_t>(i * 13);
    writer.add_image("rgb", 1, encode_png(rgb.data(), 3, 2, 3), 2, 3, 3);

    writer.add_text("flags", 0, "--max_steps 500\n**bold** \xc3\xbcnicode");
    std::printf("%s\n", writer.path().c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "write_sample_events: error: %s\n", e.what());
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "write_sample_events: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
