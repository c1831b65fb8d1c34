// The loaders on the real datasets, when present (skipped otherwise):
//   MNIST:    $AFD_MNIST_DIR, else <source>/data/mnist   (bash tools/fetch_data.sh mnist)
//   CIFAR-10: $AFD_CIFAR10_DIR, else <source>/data/cifar10, else the workspace's ../shared/data/cifar10
// Counts and label histograms are the published ones; pixel sums were computed independently
// (Python over the raw bytes).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <numeric>

#include "afd/data/dataset.h"
#include "afd/data/md5.h"
#include "afd/data/readers.h"

namespace afd::data {
namespace {

namespace fs = std::filesystem;

std::string first_existing(const char* env, std::vector<std::string> candidates, const std::string& probe) {
  if (const char* v = std::getenv(env); v && *v) candidates.insert(candidates.begin(), v);
  for (const auto& dir : candidates)
    if (fs::exists(fs::path(dir) / probe)) return dir;
  return "";
}

int64_t pixel_sum(const Tensor& images, int64_t begin, int64_t end) {
  const int64_t per = images.numel() / images.size(0);
  const uint8_t* p = images.data<uint8_t>();
  return std::accumulate(p + begin * per, p + end * per, int64_t(0));
}

TEST(RealData, Mnist) {
  std::string dir = first_existing("AFD_MNIST_DIR", {std::string(AFD_SOURCE_DIR) + "/data/mnist"},
                                   "t10k-labels-idx1-ubyte");
  if (dir.empty()) GTEST_SKIP() << "no MNIST (run: bash tools/fetch_data.sh mnist)";
  Dataset train = load_mnist(dir, Split::train);
  Dataset test = load_mnist(dir, Split::test);
  EXPECT_EQ(train.images.shape(), (Shape{60000, 1, 28, 28}));
  EXPECT_EQ(test.images.shape(), (Shape{10000, 1, 28, 28}));
  EXPECT_EQ(train.label_histogram(), (std::vector<int64_t>{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}));
  EXPECT_EQ(test.label_histogram(), (std::vector<int64_t>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}));
  EXPECT_EQ(train.labels.slice(0, 5).to_vector<int64_t>(), (std::vector<int64_t>{5, 0, 4, 1, 9}));
  EXPECT_EQ(pixel_sum(train.images, 0, 60000), 1567298545);
  EXPECT_EQ(pixel_sum(train.images, 0, 1), 27525);
  EXPECT_EQ(pixel_sum(train.images, 59999, 60000), 20920);
  EXPECT_EQ(pixel_sum(test.images, 0, 10000), 264923200);
  EXPECT_EQ(pixel_sum(test.images, 0, 1), 18454);
  // The optional checksum verification, on the official files.
  check_md5(dir + "/t10k-images-idx3-ubyte", read_file(dir + "/t10k-images-idx3-ubyte"), "2646ac647ad5339dbf082846283269ea");
  check_md5(dir + "/train-labels-idx1-ubyte", read_file(dir + "/train-labels-idx1-ubyte"), "a25bea736e30d166cdddb491f175f624");
}

TEST(RealData, Cifar10) {
  std::string dir = first_existing("AFD_CIFAR10_DIR",
                                   {std::string(AFD_SOURCE_DIR) + "/data/cifar10",
                                    std::string(AFD_SOURCE_DIR) + "/../shared/data/cifar10"},
                                   "test_batch.bin");
  if (dir.empty()) GTEST_SKIP() << "no CIFAR-10 (set AFD_CIFAR10_DIR or run: bash tools/fetch_data.sh cifar10)";
  Dataset test = load_cifar10(dir, Split::test);
  EXPECT_EQ(test.images.shape(), (Shape{10000, 3, 32, 32}));
  EXPECT_EQ(test.label_histogram(), std::vector<int64_t>(10, 1000));
  EXPECT_EQ(test.labels.slice(0, 5).to_vector<int64_t>(), (std::vector<int64_t>{3, 8, 8, 0, 6}));
  EXPECT_EQ(pixel_sum(test.images, 0, 10000), 3733375634);
  EXPECT_EQ(pixel_sum(test.images, 0, 1), 332962);
  EXPECT_EQ(test.class_names.size(), 10u);
  if (!test.class_names.empty()) {
    EXPECT_EQ(test.class_names[0], "airplane");
  }

  Dataset train = load_cifar10(dir, Split::train);
  // data_batch_1.bin comes first whatever else is there.
  EXPECT_EQ(pixel_sum(train.images, 0, 10000), 3718380578);
  EXPECT_EQ(pixel_sum(train.images, 0, 1), 317790);
  std::vector<int64_t> batch1_hist(10, 0);
  for (int64_t y : train.labels.slice(0, 10000).to_vector<int64_t>()) ++batch1_hist[size_t(y)];
  EXPECT_EQ(batch1_hist, (std::vector<int64_t>{1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981}));
  if (train.size() < 50000) {
    ASSERT_EQ(train.notes.size(), 1u);
    EXPECT_NE(train.notes[0].find("partial"), std::string::npos);
  } else {
    EXPECT_EQ(train.label_histogram(), std::vector<int64_t>(10, 5000));
  }
}

}  // namespace
}  // namespace afd::data
