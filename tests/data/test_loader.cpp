// Batching, shuffling, augmentation and prefetch: determinism and statistics.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "afd/data/loader.h"
#include "tensor/backend.h"
#include "tensor/cuda/cuda_info.h"
#include "tests/support/checks.h"

namespace afd::data {
namespace {

using afd::testing::expect_error;

// N images [C, H, W] whose pixel encodes its position: 1 + (n + c * 7 + y * W + x) % 250 (never 0).
Dataset make_dataset(int64_t n, int64_t C, int64_t H, int64_t W, int64_t classes = 10) {
  Dataset d;
  d.name = "synthetic/train";
  d.classes = classes;
  d.images = Tensor({n, C, H, W}, DType::u8);
  d.labels = Tensor({n}, DType::i64);
  uint8_t* p = d.images.data<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    d.labels.data<int64_t>()[i] = i % classes;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) *p++ = uint8_t(1 + (i + c * 7 + y * W + x) % 250);
  }
  return d;
}

std::vector<Batch> epoch_batches(Loader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<Batch> out;
  for (Batch b; loader.next(b);) out.push_back(b);
  return out;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

TEST(Loader, SequentialBatchesKeepTheLastPartialBatch) {
  Dataset d = make_dataset(10, 1, 4, 4);
  LoaderOptions opt;
  opt.batch_size = 4;
  opt.shuffle = false;
  Loader loader(d, opt);
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  auto batches = epoch_batches(loader, 0);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[2].images.shape(), (Shape{2, 1, 4, 4}));
  EXPECT_EQ(batches[2].indices.to_vector<int64_t>(), (std::vector<int64_t>{8, 9}));
  EXPECT_EQ(batches[1].labels.to_vector<int64_t>(), (std::vector<int64_t>{4, 5, 6, 7}));
  // Without augmentation a batch is the images scaled to [0, 1], exactly as mul_scalar computes it.
  Tensor expected = ops::mul_scalar(d.images.slice(4, 8).to(DType::f32), 1.0 / 255.0);
  EXPECT_TRUE(same_bytes(batches[1].images, expected));
}

TEST(Loader, DropLastDropsThePartialBatch) {
  Dataset d = make_dataset(10, 1, 2, 2);
  LoaderOptions opt;
  opt.batch_size = 4;
  opt.drop_last = true;
  Loader loader(d, opt);
  EXPECT_EQ(loader.batches_per_epoch(), 2);
  auto batches = epoch_batches(loader, 3);
  ASSERT_EQ(batches.size(), 2u);
  for (const auto& b : batches) EXPECT_EQ(b.images.size(0), 4);
}

TEST(Loader, ShuffleIsAPermutationThatChangesWithEpochAndSeed) {
  std::vector<int64_t> a = epoch_order(1000, 5, 0, true);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[size_t(i)], i);
  EXPECT_EQ(a, epoch_order(1000, 5, 0, true));
  EXPECT_NE(a, epoch_order(1000, 5, 1, true));
  EXPECT_NE(a, epoch_order(1000, 6, 0, true));
  EXPECT_EQ(epoch_order(3, 5, 0, false), (std::vector<int64_t>{0, 1, 2}));
}

// The same numbers on every machine: Philox is fully specified, so these values are fixed forever.
TEST(Loader, SeedGivesFixedOrderAndAugmentation) {
  std::vector<int64_t> order = epoch_order(10, 42, 0, true);
  EXPECT_EQ(order, (std::vector<int64_t>{1, 0, 7, 9, 6, 4, 2, 8, 5, 3}));
  Augment a = draw_augment(42, 0, 0, 4, true);
  Augment b = draw_augment(42, 3, 12345, 4, true);
  EXPECT_EQ((std::vector<int64_t>{a.dy, a.dx, a.flip, b.dy, b.dx, b.flip}), (std::vector<int64_t>{4, 1, 1, 6, 0, 0}));
}

TEST(Loader, PrefetchGivesTheSameBatchesAsNoPrefetch) {
  Dataset d = make_dataset(103, 3, 8, 8);
  LoaderOptions opt;
  opt.batch_size = 16;
  opt.seed = 11;
  opt.crop_padding = 2;
  opt.flip = true;
  for (int64_t prefetch : {0, 1, 3}) {
    opt.prefetch = prefetch;
    Loader loader(d, opt);
    LoaderOptions base = opt;
    base.prefetch = 0;
    Loader reference(d, base);
    for (int64_t epoch : {0, 2}) {
      auto got = epoch_batches(loader, epoch);
      auto want = epoch_batches(reference, epoch);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_TRUE(same_bytes(got[i].images, want[i].images)) << "prefetch " << prefetch << " batch " << i;
        EXPECT_TRUE(same_bytes(got[i].labels, want[i].labels));
        EXPECT_EQ(got[i].index, int64_t(i));
      }
    }
  }
}

TEST(Loader, RestartingAnEpochMidwayIsSafe) {
  Dataset d = make_dataset(200, 1, 4, 4);
  LoaderOptions opt;
  opt.batch_size = 8;
  opt.prefetch = 2;
  Loader loader(d, opt);
  loader.start_epoch(0);
  Batch first;
  ASSERT_TRUE(loader.next(first));
  loader.start_epoch(0);  // the worker is blocked on a full queue: it must stop cleanly
  Batch again;
  ASSERT_TRUE(loader.next(again));
  EXPECT_TRUE(same_bytes(first.images, again.images));
}

TEST(Augment, FlipRateIsAboutOneHalfAndCropOffsetsAreUniform) {
  const int64_t P = 4, samples = 40000;
  int64_t flips = 0;
  std::vector<int64_t> dy_hist(2 * P + 1, 0), dx_hist(2 * P + 1, 0);
  for (int64_t i = 0; i < samples; ++i) {
    Augment a = draw_augment(7, i % 3, i, P, true);
    flips += a.flip;
    ASSERT_GE(a.dy, 0);
    ASSERT_LE(a.dy, 2 * P);
    ASSERT_GE(a.dx, 0);
    ASSERT_LE(a.dx, 2 * P);
    ++dy_hist[size_t(a.dy)];
    ++dx_hist[size_t(a.dx)];
  }
  // Binomial(40000, 1/2): sd 100, so +-500 is 5 sd.
  EXPECT_NEAR(double(flips), samples / 2.0, 500.0);
  const double expected = double(samples) / double(2 * P + 1);  // 4444, sd about 63
  for (int64_t v = 0; v <= 2 * P; ++v) {
    EXPECT_NEAR(double(dy_hist[size_t(v)]), expected, 350.0) << "dy = " << v;
    EXPECT_NEAR(double(dx_hist[size_t(v)]), expected, 350.0) << "dx = " << v;
  }
  Augment none = draw_augment(7, 0, 1, 0, false);
  EXPECT_EQ(none.dy + none.dx + none.flip, 0);
}

// The crop is a window of the zero-padded image, within the padding, then optionally mirrored.
TEST(Augment, CropStaysWithinThePaddingAndMatchesTheDefinition) {
  const int64_t C = 2, H = 5, W = 6, P = 3;
  Dataset d = make_dataset(1, C, H, W);
  const uint8_t* src = d.images.data<uint8_t>();
  for (int64_t dy = 0; dy <= 2 * P; ++dy)
    for (int64_t dx = 0; dx <= 2 * P; ++dx)
      for (bool flip : {false, true}) {
        std::vector<uint8_t> out(size_t(C * H * W), 99);
        augment_image(src, out.data(), C, H, W, P, Augment{dy, dx, flip});
        int64_t wrong = 0, kept = 0;
        for (int64_t c = 0; c < C; ++c)
          for (int64_t y = 0; y < H; ++y)
            for (int64_t x = 0; x < W; ++x) {
              int64_t xs = (flip ? W - 1 - x : x) + dx - P, ys = y + dy - P;
              bool inside = ys >= 0 && ys < H && xs >= 0 && xs < W;
              uint8_t want = inside ? src[(c * H + ys) * W + xs] : 0;
              wrong += out[size_t((c * H + y) * W + x)] != want;
              kept += inside;
            }
        EXPECT_EQ(wrong, 0) << "dy " << dy << " dx " << dx << " flip " << flip;
        // The window overlaps the image in (H - |dy - P|) x (W - |dx - P|) pixels per channel.
        EXPECT_EQ(kept, C * (H - std::abs(dy - P)) * (W - std::abs(dx - P)));
      }
}

TEST(Augment, LoaderBatchesAreCropsAndFlipsOfTheirImages) {
  const int64_t P = 2;
  Dataset d = make_dataset(64, 3, 8, 8);
  LoaderOptions opt;
  opt.batch_size = 64;
  opt.seed = 3;
  opt.crop_padding = P;
  opt.flip = true;
  opt.prefetch = 0;
  Loader loader(d, opt);
  auto batches = epoch_batches(loader, 1);
  ASSERT_EQ(batches.size(), 1u);
  const Batch& b = batches[0];
  int64_t flipped = 0;
  for (int64_t i = 0; i < 64; ++i) {
    int64_t row = b.indices.data<int64_t>()[i];
    EXPECT_EQ(b.labels.data<int64_t>()[i], row % 10);
    Augment a = draw_augment(opt.seed, 1, row, P, true);
    flipped += a.flip;
    std::vector<float> want(3 * 64);
    augment_image(d.images.data<uint8_t>() + row * 192, want.data(), 3, 8, 8, P, a);
    EXPECT_EQ(std::memcmp(want.data(), b.images.data<float>() + i * 192, 192 * sizeof(float)), 0) << "sample " << i;
  }
  EXPECT_GT(flipped, 10);
  EXPECT_LT(flipped, 54);
  float lo = 1, hi = 0;
  for (int64_t i = 0; i < b.images.numel(); ++i) {
    lo = std::min(lo, b.images.data<float>()[i]);
    hi = std::max(hi, b.images.data<float>()[i]);
  }
  EXPECT_EQ(lo, 0.0f);  // padding shows up somewhere
  EXPECT_LE(hi, 1.0f);
}

// On a GPU the batch travels as u8 and is converted there: the same numbers as the CPU path.
TEST(Loader, CudaBatchesEqualCpuBatches) {
  if (!cuda::built_with_cuda()) GTEST_SKIP() << "built without CUDA";
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device is visible on this machine";
  Dataset d = make_dataset(50, 3, 8, 8);
  LoaderOptions opt;
  opt.batch_size = 16;
  opt.seed = 9;
  opt.crop_padding = 2;
  opt.flip = true;
  Loader cpu(d, opt);
  opt.device = Device::cuda(0);
  Loader gpu(d, opt);
  auto want = epoch_batches(cpu, 1);
  auto got = epoch_batches(gpu, 1);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(got[i].images.device().is_cuda());
    EXPECT_TRUE(same_bytes(got[i].images.to(Device::cpu()), want[i].images)) << "batch " << i;
    EXPECT_EQ(got[i].labels.to_vector<int64_t>(), want[i].labels.to_vector<int64_t>());
  }
}

TEST(Loader, BadOptionsAndMisuse) {
  Dataset d = make_dataset(4, 1, 2, 2);
  LoaderOptions opt;
  opt.batch_size = 0;
  expect_error([&] { Loader l(d, opt); }, "loader: batch_size 0 (expected > 0)");
  opt.batch_size = 2;
  Loader loader(d, opt);
  Batch b;
  expect_error([&] { loader.next(b); }, "next() before start_epoch()");
  Dataset bad = d;
  bad.labels = Tensor::from_vector<int64_t>({0, 1, 2, 10}, {4});
  expect_error([&] { Loader l(bad, opt); }, "label 10 of sample 3 (expected 0 to 9)");
}

}  // namespace
}  // namespace afd::data
