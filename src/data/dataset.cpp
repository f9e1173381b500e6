#include "data/dataset.h"

#include <algorithm>
#include <random>

#include "data/catalog.h"
#include "data/download.h"
#include "data/idx.h"
#include "error.h"

namespace mnist {
namespace {

// `fetched` gets where each of the two files came from.
Dataset load_split(const DataFileSpec& images_file, const DataFileSpec& labels_file,
                   const std::string& data_dir, const FetchPolicy& policy, std::ostream& log,
                   std::vector<FetchReport>& fetched) {
  fetched.emplace_back();
  const auto images_raw = fetch_verified(images_file, data_dir, policy, log, &fetched.back());
  fetched.emplace_back();
  const auto labels_raw = fetch_verified(labels_file, data_dir, policy, log, &fetched.back());
  IdxImages images = parse_idx_images(images_raw, images_file.name);
  std::vector<std::uint8_t> labels = parse_idx_labels(labels_raw, labels_file.name);
  check_counts_agree(images, labels, images_file.name, labels_file.name);
  if (images.rows * images.cols != kImagePixels) {
    throw Error(ExitCode::kDataInvalid,
                images_file.name + ": images are " + std::to_string(images.rows) + "x" +
                    std::to_string(images.cols) + ", the model reads 28x28");
  }
  return Dataset{images.count, std::move(images.pixels), std::move(labels)};
}

// Images [begin, end) of d.
Dataset slice(const Dataset& d, int begin, int end) {
  Dataset out;
  out.count = end - begin;
  out.images.assign(d.images.begin() + std::ptrdiff_t{begin} * kImagePixels,
                    d.images.begin() + std::ptrdiff_t{end} * kImagePixels);
  out.labels.assign(d.labels.begin() + begin, d.labels.begin() + end);
  return out;
}

// Where the files came from, for the verdict. The description is "cache DIR" when every file
// was there, else the mirrors the downloads came from, e.g. "downloaded from https://a/ into DIR
// (2 files from the cache)".
DataOrigin origin_of(const std::string& dataset, const std::string& data_dir,
                     const std::vector<FetchReport>& fetched) {
  DataOrigin origin;
  origin.dataset = dataset;
  std::vector<std::string> mirrors;  // each file's URL without the file name, in order, once
  std::size_t cached = 0;
  for (const FetchReport& f : fetched) {
    origin.sources.push_back(f.source);
    origin.fetch_seconds += f.download_seconds;
    origin.downloaded_bytes += static_cast<std::int64_t>(f.downloaded_bytes);
    if (!f.downloaded) {
      ++cached;
      continue;
    }
    const std::string mirror = f.source.substr(0, f.source.rfind('/') + 1);
    if (std::find(mirrors.begin(), mirrors.end(), mirror) == mirrors.end())
      mirrors.push_back(mirror);
  }
  if (mirrors.empty()) {
    origin.description = "cache " + data_dir;
    return origin;
  }
  origin.description = "downloaded from ";
  for (std::size_t i = 0; i < mirrors.size(); ++i)
    origin.description += (i ? ", " : "") + mirrors[i];
  origin.description += " into " + data_dir;
  if (cached > 0) {
    origin.description +=
        " (" + std::to_string(cached) + (cached == 1 ? " file" : " files") + " from the cache)";
  }
  return origin;
}

}  // namespace

MnistData load_dataset(const DataSource& source, std::ostream& log) {
  const DatasetSpec spec = builtin_dataset_spec(source.dataset);
  FetchPolicy policy;
  policy.mirrors = resolve_mirrors(source.mirror_flags, spec.mirrors);
  policy.timeout_s = source.timeout_s;
  policy.attempts = source.attempts;
  policy.show_progress = source.show_progress;
  std::vector<FetchReport> fetched;
  const Dataset all_train =
      load_split(spec.train_images, spec.train_labels, source.data_dir, policy, log, fetched);
  Dataset test =
      load_split(spec.test_images, spec.test_labels, source.data_dir, policy, log, fetched);
  if (all_train.count <= kValidationSize) {
    throw Error(ExitCode::kDataInvalid,
                spec.train_images.name + ": has " + std::to_string(all_train.count) +
                    " images, needs more than the " + std::to_string(kValidationSize) +
                    " held out for validation");
  }
  MnistData data;
  data.train = slice(all_train, kValidationSize, all_train.count);
  data.validation = slice(all_train, 0, kValidationSize);
  data.test = std::move(test);
  data.origin = origin_of(source.dataset, source.data_dir, fetched);
  return data;
}

MnistData make_fake_data(std::uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0x5eedfa4edaa7aULL);
  std::uniform_int_distribution<int> pixel(0, 255);
  std::vector<std::vector<std::uint8_t>> prototypes(kClasses);
  for (auto& p : prototypes) {
    p.resize(kImagePixels);
    for (auto& v : p) v = pixel(rng) < 64 ? 255 : 0;  // a sparse random stroke pattern per class
  }
  auto make = [&](int count) {
    Dataset d;
    d.count = count;
    d.images.resize(std::size_t(count) * kImagePixels);
    d.labels.resize(count);
    for (int i = 0; i < count; ++i) {
      const int label = static_cast<int>(rng() % kClasses);
      d.labels[i] = static_cast<std::uint8_t>(label);
      for (int k = 0; k < kImagePixels; ++k) {
        // Flip 40% of the pixels so the classes overlap and accuracy climbs over many steps.
        const bool flip = pixel(rng) < 102;
        const std::uint8_t base = prototypes[label][k];
        d.images[std::size_t(i) * kImagePixels + k] =
            flip ? static_cast<std::uint8_t>(255 - base) : base;
      }
    }
    return d;
  };
  MnistData data;
  data.train = make(kFakeTrainImages);
  data.validation =
      make(1000);  // drawn between the two, so the test images stay those of earlier releases
  data.test = make(2000);
  data.origin.dataset = "synthetic";
  data.origin.description = "synthetic (--fake_data): ten noisy class prototypes from seed " +
                            std::to_string(seed) + ", no download";
  return data;
}

}  // namespace mnist
