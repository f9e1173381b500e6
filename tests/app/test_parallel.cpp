// A run over several GPUs and processes, the parts that need no GPU: --gpus, --world_size and
// --rendezvous on the command line, which GPUs a selection names, and what the processes of a run
// must agree on at the rendezvous.
#include <gtest/gtest.h>

#include "app/cli.h"
#include "app/cli_test_util.h"
#include "app/parallel.h"
#include "error.h"
#include "gpu/cuda_backend.h"
#include "gpu/gpu_check.h"

namespace mnist {
namespace {

using cli_test::contains;
using cli_test::refusal;
using cli_test::secret_file;

Options parse(std::vector<const char*> args) { return *cli_test::parse(std::move(args)); }

TEST(GpusFlag, AllFirstNOrAList) {
  EXPECT_EQ(parse({}).gpus.kind, GpuSelection::Kind::kAll);
  const Options first = parse({"--gpus", "4"});
  EXPECT_EQ(first.gpus.kind, GpuSelection::Kind::kFirst);
  EXPECT_EQ(first.gpus.first, 4);
  const Options list = parse({"--gpus=3,0,2"});
  EXPECT_EQ(list.gpus.kind, GpuSelection::Kind::kList);
  EXPECT_EQ(list.gpus.list, (std::vector<int>{3, 0, 2}));
  EXPECT_EQ(list.gpus.text, "3,0,2");
}

TEST(GpusFlag, RefusesWhatIsNotASelection) {
  EXPECT_TRUE(contains(refusal({"--gpus", "0"}), "how many GPUs"));  // "0 GPUs" is no run
  EXPECT_TRUE(contains(refusal({"--gpus", "1,-0"}), "0 or more"));
  EXPECT_TRUE(contains(refusal({"--gpus", "two"}), "expected all, a count N or a list"));
  EXPECT_TRUE(contains(refusal({"--gpus", "1,1"}), "listed twice"));
  EXPECT_TRUE(contains(refusal({"--gpus", "1,,2"}), "empty item"));
  EXPECT_TRUE(contains(refusal({"--gpus", "0,-1"}), "0 or more"));
  EXPECT_TRUE(contains(refusal({"--gpus", "0,99999"}), "out of range"));
  EXPECT_TRUE(contains(refusal({"--gpus", "ALL"}), "expected all"));
  EXPECT_TRUE(contains(refusal({"--gpus", "2", "--backend", "cpu"}), "uses no GPU"));
  EXPECT_NO_THROW(parse({"--backend", "cpu"}));  // the default "all" is no contradiction
}

TEST(WorldFlags, SeveralProcessesNeedARendezvousAndTheCudaBackend) {
  const Options o =
      parse({"--world_size", "4", "--rendezvous_secret_file", secret_file(), "--rendezvous",
             "mnist-train-0.mnist-train:29400", "--rendezvous_timeout", "12.5"});
  EXPECT_EQ(o.world_size, 4);
  EXPECT_EQ(o.rendezvous, "mnist-train-0.mnist-train:29400");
  EXPECT_DOUBLE_EQ(o.rendezvous_timeout_s, 12.5);
  EXPECT_EQ(parse({}).world_size, 1);
  EXPECT_TRUE(contains(refusal({"--world_size", "2", "--rendezvous_secret_file", secret_file()}),
                       "needs --rendezvous"));
  EXPECT_TRUE(contains(refusal({"--world_size", "0", "--rendezvous_secret_file", secret_file()}),
                       "out of range"));
  EXPECT_TRUE(contains(refusal({"--world_size", "5000", "--rendezvous_secret_file", secret_file()}),
                       "out of range"));
  EXPECT_TRUE(contains(refusal({"--world_size", "2", "--rendezvous_secret_file", secret_file(),
                                "--rendezvous", "host"}),
                       "host"));
  EXPECT_TRUE(contains(refusal({"--world_size", "2", "--rendezvous_secret_file", secret_file(),
                                "--rendezvous", "h:0"}),
                       "h:0"));
  EXPECT_TRUE(contains(refusal({"--world_size", "2", "--rendezvous_secret_file", secret_file(),
                                "--rendezvous", "h:1", "--backend", "cublas"}),
                       "--backend cuda"));
  EXPECT_TRUE(contains(refusal({"--rendezvous_timeout", "0"}), "out of range"));
  EXPECT_TRUE(contains(refusal({"--rendezvous", "no-port"}), "no-port"));  // checked even alone
  EXPECT_TRUE(contains(refusal({"--rendezvous", "a\nb:80"}), "control character"));
  EXPECT_TRUE(contains(refusal({"--world_size", "2", "--rendezvous_secret_file", secret_file(),
                                "--rendezvous", "h:1", "--benchmark"}),
                       "one process"));
  EXPECT_TRUE(contains(refusal({"--gpus", "2", "--benchmark"}), "CUDA_VISIBLE_DEVICES"));
}

// Several processes need the Job's shared secret, read and checked while parsing (so --dry_run
// checks the mounted Secret too); a world of one ignores the flag, as it ignores --rendezvous.
TEST(WorldFlags, SeveralProcessesNeedTheSecretFile) {
  const Options o = parse(
      {"--world_size", "2", "--rendezvous", "h:1", "--rendezvous_secret_file", secret_file()});
  EXPECT_EQ(o.rendezvous_secret_file, secret_file());
  EXPECT_TRUE(contains(refusal({"--world_size", "2", "--rendezvous", "h:1"}),
                       "needs --rendezvous_secret_file PATH"));
  EXPECT_TRUE(contains(refusal({"--world_size", "2", "--rendezvous", "h:1",
                                "--rendezvous_secret_file", "/nonexistent/secret"}),
                       "/nonexistent/secret: No such file"));
  const cli_test::SecretFile short_secret("0123456789abcdef0123456789abcde\n");  // 31 + newline
  const std::string why = refusal({"--world_size", "2", "--rendezvous", "h:1",
                                   "--rendezvous_secret_file", short_secret.path()});
  EXPECT_TRUE(contains(why, "31 bytes, fewer than 32")) << why;
  EXPECT_FALSE(contains(why, "0123456789abcdef")) << "the secret is never shown: " << why;
  EXPECT_NO_THROW(parse({"--rendezvous_secret_file", "/nonexistent/secret"}));
  EXPECT_NO_THROW(parse({"--world_size", "1", "--rendezvous_secret_file", short_secret.path()}));
}

TEST(WorldFlags, EveryGpuOfTheWorldNeedsARowOfTheBatch) {
  EXPECT_TRUE(contains(refusal({"--world_size", "101", "--rendezvous_secret_file", secret_file(),
                                "--rendezvous", "h:1", "--batch_size", "100"}),
                       "cannot be split over 101 GPUs"));
  EXPECT_TRUE(contains(refusal({"--gpus", "8", "--world_size", "16", "--rendezvous_secret_file",
                                secret_file(), "--rendezvous", "h:1"}),
                       "cannot be split over 128 GPUs"));
  EXPECT_TRUE(contains(refusal({"--gpus", "0,1,2", "--batch_size", "2"}), "over 3 GPUs"));
  EXPECT_NO_THROW(parse({"--gpus", "4", "--world_size", "25", "--rendezvous_secret_file",
                         secret_file(), "--rendezvous", "h:1"}));  // 100
  EXPECT_NO_THROW(parse({"--backend", "cpu", "--batch_size", "1"}));
}

TEST(ResolveGpus, NamesWhatIsMissing) {
  GpuSelection all;
  EXPECT_EQ(resolve_gpus(all, 3), (std::vector<int>{0, 1, 2}));
  GpuSelection first;
  first.kind = GpuSelection::Kind::kFirst;
  first.first = 2;
  EXPECT_EQ(resolve_gpus(first, 8), (std::vector<int>{0, 1}));
  GpuSelection list;
  list.kind = GpuSelection::Kind::kList;
  list.list = {3, 1};
  list.text = "3,1";
  EXPECT_EQ(resolve_gpus(list, 4), (std::vector<int>{3, 1}));
  auto error_of = [](const GpuSelection& s, int visible) -> std::string {
    try {
      resolve_gpus(s, visible);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kGpuUnusable);
      return e.what();
    }
    ADD_FAILURE() << "accepted";
    return "";
  };
  EXPECT_TRUE(contains(error_of(list, 3), "GPU 3 is missing"));
  EXPECT_TRUE(contains(error_of(list, 3), "CUDA sees 3 GPUs (ordinals 0 to 2)"));
  first.first = 8;
  EXPECT_TRUE(contains(error_of(first, 7), "asks for 8 GPUs"));
  EXPECT_TRUE(contains(error_of(all, 0), "CUDA sees 0 GPUs"));
}

TEST(Shards, TheGlobalBatchSplitInOrderAsEvenlyAsItGoes) {
  int next = 0;
  for (int r = 0; r < 8; ++r) {
    const Shard s = shard_of(100, r, 8);
    EXPECT_EQ(s.row_offset, next);
    EXPECT_EQ(s.rows, r < 4 ? 13 : 12);
    EXPECT_EQ(s.global_batch, 100);
    next += s.rows;
  }
  EXPECT_EQ(next, 100);
}

TEST(RendezvousConfiguration, DiffersWhenTheTrainingWouldDiffer) {
  const Options base = parse(
      {"--world_size", "2", "--rendezvous_secret_file", secret_file(), "--rendezvous", "h:1"});
  const std::string reference = rendezvous_configuration(base, 1);
  EXPECT_EQ(rendezvous_configuration(base, 1), reference);
  EXPECT_NE(rendezvous_configuration(base, 2), reference);  // GPUs per pod
  for (std::vector<const char*> changed : {std::vector<const char*>{"--batch_size", "101"},
                                           {"--learning_rate", "0.0011"},
                                           {"--dropout", "0.8"},
                                           {"--seed", "2"},
                                           {"--max_steps", "999"},
                                           {"--eval_every", "5"},
                                           {"--hidden_units", "499"},
                                           {"--model", "softmax"},
                                           {"--dataset", "fashion-mnist"},
                                           {"--fake_data"},
                                           {"--cuda_graphs", "off"},
                                           {"--precision", "bf16"},
                                           {"--precision", "tf32"},
                                           {"--step_kernel", "tiled"}}) {
    std::vector<const char*> args = {
        "--world_size", "2", "--rendezvous_secret_file", secret_file(), "--rendezvous", "h:1"};
    args.insert(args.end(), changed.begin(), changed.end());
    EXPECT_NE(rendezvous_configuration(parse(args), 1), reference) << changed[0];
  }
  // Where each process keeps its files is its own business.
  EXPECT_EQ(rendezvous_configuration(parse({"--world_size", "2", "--rendezvous_secret_file",
                                            secret_file(), "--rendezvous", "h:1", "--log_dir", "/x",
                                            "--data_dir", "/y", "--checkpoint_dir", "/z"}),
                                     1),
            reference);
}

}  // namespace
}  // namespace mnist
