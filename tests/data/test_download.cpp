#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "data/fileio.h"
#include "download_fixture.h"

namespace mnist {
namespace {

namespace fs = std::filesystem;
using testing::HttpResponse;
using testing::HttpServer;

TEST_F(DownloadTest, DownloadsVerifiesAndCaches) {
  HttpServer server([&](const std::string&) { return HttpResponse{200, body_}; });
  EXPECT_EQ(fetch(policy({server.url()})), raw_);
  EXPECT_EQ(server.requests("/labels.gz"), 1);
  EXPECT_TRUE(cached());
  EXPECT_FALSE(leftovers());
  EXPECT_EQ(read_file(cache_path().string(), 1 << 20), gz_);
  EXPECT_NE(log_.str().find("Successfully downloaded labels.gz " + std::to_string(gz_.size()) +
                            " bytes.\n"),
            std::string::npos);
  EXPECT_NE(log_.str().find("Extracting " + (dir_ / "labels.gz").string()), std::string::npos);
}

TEST_F(DownloadTest, FallsBackToTheNextMirrorAfter404WithoutRetrying) {
  HttpServer missing([&](const std::string&) { return HttpResponse{404, "gone"}; });
  HttpServer good([&](const std::string&) { return HttpResponse{200, body_}; });
  EXPECT_EQ(fetch(policy({missing.url(), good.url()})), raw_);
  EXPECT_EQ(missing.total_requests(), 1);
  EXPECT_EQ(good.total_requests(), 1);
  EXPECT_NE(log_.str().find("HTTP 404"), std::string::npos);
}

TEST_F(DownloadTest, RetriesAfter500) {
  int calls = 0;
  HttpServer flaky([&](const std::string&) {
    return ++calls == 1 ? HttpResponse{500, "oops"} : HttpResponse{200, body_};
  });
  EXPECT_EQ(fetch(policy({flaky.url()})), raw_);
  EXPECT_EQ(flaky.total_requests(), 2);
}

TEST_F(DownloadTest, GivesUpAfterTheAttemptsAndNamesEveryMirror) {
  HttpServer broken([&](const std::string&) { return HttpResponse{503, "busy"}; });
  const std::string refused = "http://127.0.0.1:" + std::to_string(testing::unused_port()) + "/";
  const std::string error = fetch_error(policy({broken.url(), refused}));
  EXPECT_EQ(broken.total_requests(), 3);
  EXPECT_EQ(error.rfind("labels.gz: could not get a valid copy from any of 2 mirror(s):", 0), 0u)
      << error;
  EXPECT_NE(error.find(broken.url() + "labels.gz: HTTP 503"), std::string::npos) << error;
  EXPECT_NE(error.find(refused + "labels.gz: Couldn't connect to server"), std::string::npos)
      << error;
  EXPECT_FALSE(cached());
  EXPECT_FALSE(leftovers());
}

TEST_F(DownloadTest, ConnectionRefusedFallsBack) {
  HttpServer good([&](const std::string&) { return HttpResponse{200, body_}; });
  const std::string refused = "http://127.0.0.1:" + std::to_string(testing::unused_port()) + "/";
  EXPECT_EQ(fetch(policy({refused, good.url()})), raw_);
}

TEST_F(DownloadTest, BodyCutShortIsRetriedAndNeverCached) {
  HttpServer cut([&](const std::string&) { return HttpResponse{200, body_, true}; });
  const std::string error = fetch_error(policy({cut.url()}));
  EXPECT_EQ(cut.total_requests(), 3);
  EXPECT_NE(error.find("Transferred a partial file"), std::string::npos) << error;
  EXPECT_FALSE(cached());
  EXPECT_FALSE(leftovers());
}

TEST_F(DownloadTest, TamperedFileFailsChecksumAndNothingIsCached) {
  auto tampered = raw_;
  tampered.back() = 7;
  const auto bad_gz = gzip(tampered);
  HttpServer evil([&](const std::string&) {
    return HttpResponse{200, std::string(bad_gz.begin(), bad_gz.end())};
  });
  const std::string error = fetch_error(policy({evil.url()}), ExitCode::kDataInvalid);
  EXPECT_EQ(evil.total_requests(), 1) << "a bad checksum is not retried on the same mirror";
  EXPECT_NE(error.find("checksum mismatch"), std::string::npos) << error;
  EXPECT_FALSE(cached());
  EXPECT_FALSE(leftovers());
}

TEST_F(DownloadTest, AlreadyCachedFileMakesNoRequest) {
  fs::create_directories(dir_);
  write_file_atomically((dir_ / "labels.gz").string(), gz_);
  HttpServer server([&](const std::string&) { return HttpResponse{200, body_}; });
  EXPECT_EQ(fetch(policy({server.url()})), raw_);
  EXPECT_EQ(server.total_requests(), 0);
  EXPECT_EQ(log_.str().find("Successfully downloaded"), std::string::npos);
}

TEST_F(DownloadTest, InvalidCachedFileIsReplaced) {
  fs::create_directories(dir_);
  write_file_atomically((dir_ / "labels.gz").string(), {1, 2, 3});
  HttpServer server([&](const std::string&) { return HttpResponse{200, body_}; });
  EXPECT_EQ(fetch(policy({server.url()})), raw_);
  EXPECT_EQ(server.total_requests(), 1);
  EXPECT_EQ(read_file(cache_path().string(), 1 << 20), gz_);
}

TEST_F(DownloadTest, RecompressedCopyVerifiesByContentHash) {
  file_.sha256 = {"0000", sha256_hex(raw_)};  // the .gz hash is unknown; the content's is listed
  HttpServer server([&](const std::string&) { return HttpResponse{200, body_}; });
  EXPECT_EQ(fetch(policy({server.url()})), raw_);
}

TEST_F(DownloadTest, FileUrlsWork) {
  const fs::path src = dir_ / "mirror";
  fs::create_directories(src);
  write_file_atomically((src / "labels.gz").string(), gz_);
  EXPECT_EQ(fetch(policy({"file://" + src.string()})), raw_);
  fs::remove(dir_ / "labels.gz");
  const std::string missing = fetch_error(policy({"file://" + (dir_ / "nowhere").string() + "/"}));
  EXPECT_NE(missing.find("nowhere/labels.gz"), std::string::npos) << missing;
}

// The mirror tests start from an environment without the data layer's variables.
class Mirrors : public ::testing::Test {
 protected:
  CleanDataEnvironment env_;
};

TEST_F(Mirrors, FlagsBeatEnvironmentWhichBeatsDefaults) {
  EXPECT_EQ(resolve_mirrors({}, {"d"}), std::vector<std::string>{"d"});
  env_.mirror.set(" http://a/ ,file:///b,");
  EXPECT_EQ(resolve_mirrors({}, {"d"}), (std::vector<std::string>{"http://a/", "file:///b"}));
  EXPECT_EQ(resolve_mirrors({"f"}, {"d"}), std::vector<std::string>{"f"});
}

TEST_F(Mirrors, ABakedFolderGoesFirstWhenItHoldsFiles) {
  const fs::path dir = fs::temp_directory_path() / ("mnist_baked_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  env_.baked.set(dir.string());
  EXPECT_EQ(resolve_mirrors({}, {"d"}), std::vector<std::string>{"d"})
      << "an empty folder is skipped";
  std::ofstream(dir / "train-images-idx3-ubyte.gz") << "x";
  EXPECT_EQ(resolve_mirrors({}, {"d"}),
            (std::vector<std::string>{"file://" + dir.string() + "/", "d"}));
  EXPECT_EQ(resolve_mirrors({"f"}, {"d"}), std::vector<std::string>{"f"})
      << "--mirror still replaces all";
  fs::remove_all(dir);
}

TEST_F(Mirrors, BuiltinListsPutTheOriginalMnistAddressLast) {
  const DatasetSpec mnist = builtin_dataset_spec("mnist");
  ASSERT_GE(mnist.mirrors.size(), 2u);
  EXPECT_EQ(mnist.mirrors.front().find("yann.lecun.com"), std::string::npos);
  EXPECT_NE(mnist.mirrors.back().find("yann.lecun.com"), std::string::npos);
  EXPECT_EQ(mnist.train_images.name, "train-images-idx3-ubyte.gz");
  EXPECT_EQ(mnist.test_labels.sha256.size(), 2u);  // official .gz and raw content
  const DatasetSpec fashion = builtin_dataset_spec("fashion-mnist");
  EXPECT_EQ(fashion.test_images.name, "t10k-images-idx3-ubyte.gz");
  EXPECT_FALSE(fashion.mirrors.empty());
}

}  // namespace
}  // namespace mnist
