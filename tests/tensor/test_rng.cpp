// Philox 4x32-10: the published known-answer vectors, the documented counter layout, and the
// statistics of the derived distributions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tensor/ops.h"
#include "tensor/rng.h"

using namespace afd;

TEST(Philox, KnownAnswerVectors) {
  // Known-answer tests of Salmon et al.'s Random123 distribution (philox4x32, 10 rounds).
  using C = std::array<uint32_t, 4>;
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}), (C{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
            (C{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (C{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
  // The project layout: counter (lo(block), hi(block), 0, 0), key (lo(seed), hi(seed)).
  EXPECT_EQ(philox4x32(0x0000000500000007ull, 0x0000000300000002ull),
            philox4x32_10({2, 3, 0, 0}, {7, 5}));
}

TEST(Philox, UniformFollowsTheCounterLayout) {
  Generator gen(42, 10);
  Tensor u = rand({9}, gen);
  EXPECT_EQ(gen.offset, 10u + 3u);  // 9 floats use 3 blocks
  std::vector<float> v = u.to_vector<float>();
  for (int i = 0; i < 9; ++i) {
    auto r = philox4x32(42, 10 + i / 4);
    EXPECT_EQ(v[i], float(r[i % 4] >> 8) / 16777216.0f) << i;
  }
  Tensor d = rand({3}, gen, DType::f64);
  EXPECT_EQ(gen.offset, 13u + 2u);
  auto r = philox4x32(42, 13);
  EXPECT_EQ(d.at<double>({0}), double(((uint64_t(r[0]) << 32 | r[1]) >> 11)) / 9007199254740992.0);
}

TEST(Philox, SameSeedAndCounterSameStream) {
  Generator a(7), b(7), c(8);
  EXPECT_EQ(rand({100}, a).to_vector<float>(), rand({100}, b).to_vector<float>());
  EXPECT_NE(rand({100}, a).to_vector<float>(), rand({100}, c).to_vector<float>());
  // Consecutive draws do not overlap: the second draw equals a fresh generator at its offset.
  Generator d(7);
  rand({5}, d);
  Generator e(7, d.offset);
  EXPECT_EQ(randn({6}, d).to_vector<float>(), randn({6}, e).to_vector<float>());
}

TEST(Philox, DistributionsHaveTheRightMoments) {
  Generator gen(2024);
  const int64_t n = 200000;
  for (DType dt : {DType::f32, DType::f64}) {
    std::vector<double> u = rand({n}, gen, dt, Device::cpu(), -1, 3).to_vector<double>();
    double mean = std::accumulate(u.begin(), u.end(), 0.0) / n;
    EXPECT_NEAR(mean, 1.0, 0.02);
    EXPECT_GE(*std::min_element(u.begin(), u.end()), -1.0);
    EXPECT_LT(*std::max_element(u.begin(), u.end()), 3.0);
    std::vector<double> z = randn({n}, gen, dt, Device::cpu(), 2, 0.5).to_vector<double>();
    double m = std::accumulate(z.begin(), z.end(), 0.0) / n, var = 0;
    for (double x : z) var += (x - m) * (x - m);
    EXPECT_NEAR(m, 2.0, 0.01);
    EXPECT_NEAR(std::sqrt(var / n), 0.5, 0.01);
    for (double x : z) ASSERT_TRUE(std::isfinite(x));
  }
  std::vector<float> b = bernoulli({n}, 0.3, gen).to_vector<float>();
  for (float x : b) ASSERT_TRUE(x == 0.0f || x == 1.0f);
  EXPECT_NEAR(std::accumulate(b.begin(), b.end(), 0.0) / n, 0.3, 0.01);
}

TEST(Philox, PermutationIsAPermutationAndReproducible) {
  Generator a(5), b(5);
  std::vector<int64_t> p = randperm(1000, a).to_vector<int64_t>();
  EXPECT_EQ(p, randperm(1000, b).to_vector<int64_t>());
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_NE(p, sorted);  // 1000! orderings: equal to identity only by a broken generator
  EXPECT_EQ(randperm(0, a).numel(), 0);
}
