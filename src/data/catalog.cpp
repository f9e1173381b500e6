#include "data/catalog.h"

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "error.h"

namespace mnist {

extern const char* const kDatasetsJson;  // generated from data/datasets.json

namespace {
constexpr std::uint64_t kUnknownRawBound = std::uint64_t{256} << 20;  // MNIST's largest is 45 MiB
}  // namespace

std::uint64_t DataFileSpec::max_raw_bytes() const {
  return raw_size > 0 ? raw_size : kUnknownRawBound;
}

std::uint64_t DataFileSpec::max_gz_bytes() const {
  // Stored (uncompressed) deflate blocks cost 5 bytes per 64 KiB; the header may carry a name.
  const std::uint64_t raw = max_raw_bytes();
  return raw + raw / 64 + 4096;
}

DatasetSpec builtin_dataset_spec(const std::string& name) {
  const auto all = nlohmann::json::parse(kDatasetsJson);
  if (!all.contains(name)) throw Error(ExitCode::kBadArguments, "unknown dataset '" + name + "'");
  const auto& d = all.at(name);
  auto file = [&](const char* key) {
    const auto& f = d.at("files").at(key);
    return DataFileSpec{f.at("name").get<std::string>(),
                        f.at("sha256").get<std::vector<std::string>>(),
                        f.at("raw_size").get<std::uint64_t>()};
  };
  return DatasetSpec{name,
                     d.at("mirrors").get<std::vector<std::string>>(),
                     file("train_images"),
                     file("train_labels"),
                     file("test_images"),
                     file("test_labels")};
}

std::vector<std::string> resolve_mirrors(const std::vector<std::string>& flags,
                                         const std::vector<std::string>& defaults) {
  if (!flags.empty()) return flags;
  std::vector<std::string> baked;  // a folder of files shipped with a container image, tried first
  if (const char* dir = std::getenv("MNIST_BAKED_DATA"); dir && *dir) {
    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec) && !std::filesystem::is_empty(dir, ec)) {
      baked.push_back(std::string("file://") + dir + "/");
    }
  }
  if (const char* env = std::getenv("MNIST_MIRROR"); env && *env) {
    std::vector<std::string> out;
    std::stringstream ss(env);
    for (std::string item; std::getline(ss, item, ',');) {
      item.erase(0, item.find_first_not_of(" \t"));
      item.erase(item.find_last_not_of(" \t") + 1);
      if (!item.empty()) out.push_back(item);
    }
    if (!out.empty()) {
      out.insert(out.begin(), baked.begin(), baked.end());
      return out;
    }
  }
  baked.insert(baked.end(), defaults.begin(), defaults.end());
  return baked;
}

}  // namespace mnist
