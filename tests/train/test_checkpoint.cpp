// Checkpoints as untrusted input: round trip, checksum, every header field checked, a corrupt
// newest file skipped for the previous one, never moving backwards, links not followed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/fileio.h"
#include "data/sha256.h"
#include "error.h"
#include "train/checkpoint.h"
#include "train/cpu_backend.h"

namespace mnist {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

RunConfig small_run(const fs::path& dir) {
  RunConfig run;
  run.train.model = ModelKind::kSoftmax;
  run.train.keep_prob = 1.0f;
  run.train.batch_size = 8;
  run.checkpoint_dir = dir.string();
  run.fake_data = true;
  return run;
}

const MnistData& fake() {
  static const MnistData data = make_fake_data(2);
  return data;
}

TrainState some_state(const RunConfig& run, std::int64_t step) {
  TrainState s;
  const std::size_t n = make_layout(run.train.model, run.train.hidden_units).total;
  s.params.resize(n);
  s.adam_m.resize(n);
  s.adam_v.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    s.params[i] = 0.001f * float(i % 97) - 0.02f;
    s.adam_m[i] = 1e-4f * float(i % 13);
    s.adam_v[i] = 1e-6f * float(i % 7);
  }
  s.step = step;
  return s;
}

// A file with `header` (as given) and a valid checksum: exercises the field checks themselves.
std::vector<std::uint8_t> with_header(const json& header, std::size_t parameters) {
  const std::string text = header.dump();
  std::vector<std::uint8_t> b = {'M', 'N', 'I', 'S', 'T', 'C', 'K', '2'};
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(text.size() >> (8 * i)));
  b.insert(b.end(), text.begin(), text.end());
  b.resize(b.size() + 3 * parameters * sizeof(float), 0);
  const std::string digest = sha256_hex(b);
  for (std::size_t i = 0; i < 32; ++i)
    b.push_back(static_cast<std::uint8_t>(std::stoi(digest.substr(2 * i, 2), nullptr, 16)));
  return b;
}

ExitCode decode_error(const std::vector<std::uint8_t>& bytes, std::string* message = nullptr) {
  try {
    decode_checkpoint(bytes, "f.ckpt");
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return ExitCode::kOk;
}

class CheckpointFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mnist_ckpt_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const char* name) const { return (dir_ / name).string(); }
  std::int64_t iteration_in(const char* name) const {
    return decode_checkpoint(read_file(path(name), 1 << 24), name).iteration;
  }
  fs::path dir_;
};

TEST(Checkpoint, RoundTripsEveryField) {
  const RunConfig run = small_run("/nowhere");
  const Checkpoint c = make_checkpoint(run, some_state(run, 41), 47, 0.25f);
  const Checkpoint back = decode_checkpoint(encode_checkpoint(c), "f.ckpt");
  EXPECT_EQ(back.model, "softmax");
  EXPECT_EQ(back.batch_size, 8);
  EXPECT_EQ(back.iteration, 47);
  EXPECT_EQ(back.state.step, 41);
  EXPECT_FLOAT_EQ(back.last_loss, 0.25f);
  EXPECT_EQ(back.state.params, c.state.params);
  EXPECT_EQ(back.state.adam_m, c.state.adam_m);
  EXPECT_EQ(back.state.adam_v, c.state.adam_v);
}

TEST(Checkpoint, AnyFlippedBitIsDetected) {
  const RunConfig run = small_run("/nowhere");
  const auto good = encode_checkpoint(make_checkpoint(run, some_state(run, 3), 4, 1.0f));
  for (std::size_t at : {std::size_t(3), std::size_t(10), std::size_t(40), good.size() / 2,
                         good.size() - 40, good.size() - 1}) {
    auto bad = good;
    bad[at] ^= 0x10;
    EXPECT_EQ(decode_error(bad), ExitCode::kDataInvalid) << "byte " << at;
  }
  EXPECT_EQ(decode_error({}), ExitCode::kDataInvalid);
  EXPECT_EQ(decode_error(std::vector<std::uint8_t>(good.begin(), good.end() - 1)),
            ExitCode::kDataInvalid);
}

TEST(Checkpoint, EveryHeaderFieldIsTypeAndRangeChecked) {
  const json good = {{"format", 2}, {"model", "softmax"}, {"hidden_units", 500}, {"batch_size", 8},
                     {"seed", 1},   {"dataset", "mnist"}, {"fake_data", true},   {"iteration", 20},
                     {"step", 18},  {"parameters", 7850}, {"last_loss", 0.5}};
  std::string why;
  ASSERT_EQ(decode_error(with_header(good, 7850), &why), ExitCode::kOk) << why;
  const std::vector<std::pair<const char*, json>> faults = {
      {"step", -1},
      {"step", 21},  // more steps than iterations
      {"step", "18"},
      {"iteration", -5},
      {"iteration", 4.6e18},
      {"iteration", json::number_unsigned_t(18446744073709551615ULL)},
      {"batch_size", 0},
      {"batch_size", 1 << 21},
      {"hidden_units", -3},
      {"model", "cnn"},
      {"model", 7},
      {"seed", -1},
      {"seed", 1.5},
      {"fake_data", 1},
      {"dataset", std::string(200, 'x')},
      {"parameters", 7851},
      {"last_loss", "nan"},
      {"last_loss", nullptr},
      {"format", 1},
      {"format", -3},
      {"format", "3"}};
  for (const auto& [key, value] : faults) {
    json header = good;
    header[key] = value;
    EXPECT_EQ(decode_error(with_header(header, 7850), &why), ExitCode::kDataInvalid)
        << key << "=" << value.dump();
    EXPECT_NE(why.find("invalid checkpoint"), std::string::npos) << why;
  }
  json missing = good;
  missing.erase("step");
  EXPECT_EQ(decode_error(with_header(missing, 7850), &why), ExitCode::kDataInvalid);
  EXPECT_NE(why.find("\"step\""), std::string::npos) << why;
  EXPECT_EQ(decode_error(with_header(json::array({1, 2}), 7850)), ExitCode::kDataInvalid);
}

// An intact file of a higher format is a newer mnist-train's, not damage: exit 2 saying so.
TEST(Checkpoint, ANewerFormatIsNamedAsSuchNotAsDamage) {
  const json newer = {{"format", 3}, {"model", "softmax"}, {"fields", "of format 3"}};
  std::string why;
  EXPECT_EQ(decode_error(with_header(newer, 10), &why), ExitCode::kBadArguments) << why;
  EXPECT_NE(why.find("f.ckpt: written by a newer version of mnist-train (format 3, this binary "
                     "reads 2): use that version or another --checkpoint_dir"),
            std::string::npos)
      << why;
  auto damaged = with_header(newer, 10);
  damaged[20] ^= 1;
  EXPECT_EQ(decode_error(damaged), ExitCode::kDataInvalid) << "the checksum is checked first";
}

TEST(Checkpoint, NonFiniteOrImpossibleValuesAreRefused) {
  const RunConfig run = small_run("/nowhere");
  TrainState s = some_state(run, 3);
  s.params[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(decode_error(encode_checkpoint(make_checkpoint(run, s, 4, 1.0f))),
            ExitCode::kDataInvalid);
  s = some_state(run, 3);
  s.adam_v[9] = -1.0f;
  EXPECT_EQ(decode_error(encode_checkpoint(make_checkpoint(run, s, 4, 1.0f))),
            ExitCode::kDataInvalid);
}

TEST_F(CheckpointFiles, KeepsTheLastTwoAndNeverMovesBackwards) {
  const RunConfig run = small_run(dir_);
  CpuBackend backend(run.train, fake(), some_state(run, 0).params);
  for (std::int64_t it : {10, 20, 30}) save_checkpoint(run, backend, it, 1.0f);
  EXPECT_EQ(iteration_in("model.ckpt"), 30);
  EXPECT_EQ(iteration_in("model.ckpt.1"), 20);
  save_checkpoint(run, backend, 25, 1.0f);  // e.g. a rerun with a smaller --max_steps
  EXPECT_EQ(iteration_in("model.ckpt"), 30);
  EXPECT_EQ(iteration_in("model.ckpt.1"), 20);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 2)
      << "no temporaries left behind";
}

TEST_F(CheckpointFiles, ACorruptNewestFileFallsBackToThePreviousOne) {
  const RunConfig run = small_run(dir_);
  CpuBackend backend(run.train, fake(), some_state(run, 0).params);
  backend.set_state(some_state(run, 9));
  save_checkpoint(run, backend, 10, 0.5f);
  backend.set_state(some_state(run, 18));
  save_checkpoint(run, backend, 20, 0.25f);
  auto bytes = read_file(path("model.ckpt"), 1 << 24);
  bytes[bytes.size() / 2] ^= 1;
  write_file_atomically(path("model.ckpt"), bytes);
  std::ostringstream log;
  CpuBackend fresh(run.train, fake(), some_state(run, 0).params);
  const ResumePoint resume = load_checkpoint_if_present(run, fresh, log);
  EXPECT_EQ(resume.iteration, 10);
  EXPECT_FLOAT_EQ(resume.last_loss, 0.5f);
  EXPECT_EQ(fresh.steps_taken(), 9);
  EXPECT_NE(log.str().find("model.ckpt: invalid checkpoint: checksum mismatch"), std::string::npos)
      << log.str();

  // A new save replaces the damaged file and keeps the good previous one.
  save_checkpoint(run, fresh, 30, 0.125f);
  EXPECT_EQ(iteration_in("model.ckpt"), 30);
  EXPECT_EQ(iteration_in("model.ckpt.1"), 10);

  // Both damaged: nothing usable, and nothing silently started over.
  write_file_atomically(path("model.ckpt"), {1, 2, 3});
  write_file_atomically(path("model.ckpt.1"), {4, 5, 6});
  try {
    load_checkpoint_if_present(run, fresh, log);
    ADD_FAILURE() << "two damaged checkpoints must not start a fresh run";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kDataInvalid);
    EXPECT_NE(std::string(e.what()).find("model.ckpt.1"), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointFiles, ADamagedNewestFileNeverLetsAnOlderStateBeLabelledNewer) {
  const RunConfig run = small_run(dir_);
  CpuBackend backend(run.train, fake(), some_state(run, 0).params);
  backend.set_state(some_state(run, 18));
  save_checkpoint(run, backend, 20, 1.0f);
  backend.set_state(some_state(run, 27));
  save_checkpoint(run, backend, 30, 1.0f);
  write_file_atomically(path("model.ckpt"), {1, 2, 3});  // damaged: model.ckpt.1 (20) is valid
  CpuBackend resumed(run.train, fake(), some_state(run, 0).params);
  std::ostringstream log;
  EXPECT_EQ(load_checkpoint_if_present(run, resumed, log).iteration, 20);
  save_checkpoint(run, resumed, 10, 1.0f);  // a rerun with --max_steps 10: nothing to save
  EXPECT_EQ(iteration_in("model.ckpt.1"), 20);
  save_checkpoint(run, resumed, 20, 1.0f);
  EXPECT_EQ(iteration_in("model.ckpt.1"), 20);
  EXPECT_EQ(read_file(path("model.ckpt"), 10).size(), 3u) << "nothing newer to write yet";
  save_checkpoint(run, resumed, 25, 1.0f);
  EXPECT_EQ(iteration_in("model.ckpt"), 25);
  EXPECT_EQ(iteration_in("model.ckpt.1"), 20);
}

TEST_F(CheckpointFiles, StaleTemporariesOfAKilledWriteAreRemoved) {
  const RunConfig run = small_run(dir_);
  CpuBackend backend(run.train, fake(), some_state(run, 0).params);
  write_file_atomically(path("model.ckpt.tmp.123.0.456"), std::vector<std::uint8_t>(1000, 7));
  save_checkpoint(run, backend, 10, 1.0f);
  EXPECT_FALSE(fs::exists(path("model.ckpt.tmp.123.0.456")));
}

TEST_F(CheckpointFiles, AnotherRunsCheckpointIsExitCode2) {
  RunConfig run = small_run(dir_);
  CpuBackend backend(run.train, fake(), some_state(run, 0).params);
  save_checkpoint(run, backend, 10, 1.0f);
  run.train.seed = 2;
  std::ostringstream log;
  try {
    load_checkpoint_if_present(run, backend, log);
    ADD_FAILURE() << "a checkpoint of another seed must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kBadArguments);
    EXPECT_NE(std::string(e.what()).find("seed=1, this run has 2"), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointFiles, ANewerVersionsCheckpointIsNeitherSkippedNorReplaced) {
  const RunConfig run = small_run(dir_);
  CpuBackend backend(run.train, fake(), some_state(run, 0).params);
  save_checkpoint(run, backend, 10, 1.0f);
  save_checkpoint(run, backend, 20, 1.0f);  // model.ckpt.1 is a valid older checkpoint
  const auto newer = with_header({{"format", 7}, {"iteration", 90}}, 10);
  write_file_atomically(path("model.ckpt"), newer);
  std::ostringstream log;
  try {
    load_checkpoint_if_present(run, backend, log);
    ADD_FAILURE() << "resumed from the older checkpoint past a newer version's";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kBadArguments);
    EXPECT_NE(std::string(e.what()).find("model.ckpt: written by a newer version of mnist-train "
                                         "(format 7, this binary reads 2)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(save_checkpoint(run, backend, 30, 1.0f), Error);
  EXPECT_EQ(read_file(path("model.ckpt"), 1 << 24), newer) << "a newer version's file was replaced";
  EXPECT_EQ(iteration_in("model.ckpt.1"), 10);
}

TEST_F(CheckpointFiles, LinksAndOddFilesAreNeitherFollowedNorTrusted) {
  const RunConfig run = small_run(dir_);
  CpuBackend backend(run.train, fake(), some_state(run, 0).params);
  // A link planted under the checkpoint's name: saving replaces the link, never writes through it.
  const std::string victim = (dir_ / "victim.txt").string();
  write_file_atomically(victim, {'k', 'e', 'e', 'p'});
  fs::create_symlink(victim, path("model.ckpt"));
  std::ostringstream log;
  try {
    load_checkpoint_if_present(run, backend, log);
    ADD_FAILURE() << "a link is not a checkpoint";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kDataInvalid);
    EXPECT_NE(std::string(e.what()).find("symbolic link"), std::string::npos) << e.what();
  }
  save_checkpoint(run, backend, 10, 1.0f);
  EXPECT_EQ(read_file(victim, 100), (std::vector<std::uint8_t>{'k', 'e', 'e', 'p'}));
  EXPECT_FALSE(fs::is_symlink(path("model.ckpt")));
  EXPECT_EQ(iteration_in("model.ckpt"), 10);
  // A folder under either name is reported at load and replaced at the next save.
  fs::remove(path("model.ckpt"));
  fs::create_directory(path("model.ckpt"));
  save_checkpoint(run, backend, 20, 1.0f);
  EXPECT_EQ(iteration_in("model.ckpt"), 20);
  fs::remove(path("model.ckpt.1"));
  fs::create_directories(path("model.ckpt.1/inner"));  // a folder where the previous one goes
  save_checkpoint(run, backend, 30, 1.0f);
  EXPECT_EQ(iteration_in("model.ckpt"), 30);
  EXPECT_EQ(iteration_in("model.ckpt.1"), 20);
  fs::remove(path("model.ckpt"));
  fs::remove(path("model.ckpt.1"));
  fs::create_directory(path("model.ckpt.1"));
  try {
    load_checkpoint_if_present(run, backend, log);
    ADD_FAILURE() << "a folder is not a checkpoint";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kDataInvalid);
  }
}

}  // namespace
}  // namespace mnist
