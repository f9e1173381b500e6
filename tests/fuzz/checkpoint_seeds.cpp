// checkpoint_seeds DIR: writes valid checkpoints of small models into DIR, the checkpoint
// fuzzer's seeds. Generated at test time rather than checked in, so they follow the format as it
// changes (a softmax checkpoint is ~94 KB; an mlp with 1 or 2 hidden units is ~10-20 KB).
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "train/checkpoint.h"
#include "train/model.h"

namespace {

void write_seed(const std::filesystem::path& file, int hidden_units, std::int64_t iteration,
                std::int64_t step, const char* dataset) {
  mnist::RunConfig run;
  run.train.hidden_units = hidden_units;
  run.dataset = dataset;
  run.fake_data = std::string(dataset) == "mnist" && hidden_units == 1;
  mnist::TrainState state;
  const std::size_t n = mnist::make_layout(mnist::ModelKind::kMlp, hidden_units).total;
  for (std::size_t i = 0; i < n; ++i) {
    state.params.push_back(0.01f * static_cast<float>(i % 17) - 0.08f);
    state.adam_m.push_back(0.001f * static_cast<float>(i % 5));
    state.adam_v.push_back(1e-6f * static_cast<float>(i % 3));
  }
  state.step = step;
  const std::vector<std::uint8_t> bytes =
      mnist::encode_checkpoint(mnist::make_checkpoint(run, state, iteration, 2.3f));
  std::ofstream(file, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: checkpoint_seeds DIR" << std::endl;
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  write_seed(dir / "mlp1_start.ckpt", 1, 0, 0, "mnist");
  write_seed(dir / "mlp1_resumed.ckpt", 1, 470, 423, "mnist");
  write_seed(dir / "mlp2_fashion.ckpt", 2, 1000, 900, "fashion-mnist");
  std::cout << "checkpoint seeds in " << dir.string() << std::endl;
  return 0;
}
