// Wilson score intervals (afd/eval/stats.h) against values worked out by hand from the closed
// forms, and against the equivalent count form (k + z^2/2 +- z sqrt(k (n - k) / n + z^2 / 4)) / (n + z^2).
#include <gtest/gtest.h>

#include <cmath>

#include "afd/eval/stats.h"
#include "tests/support/checks.h"

namespace afd::eval {
namespace {

constexpr double z = kZ95, z2 = kZ95 * kZ95;  // z^2 = 3.841458820694124

TEST(Wilson, EndsHaveClosedForms) {
  // k = 0: lo = 0, hi = z^2 / (n + z^2) = 3.8415 / 13.8415 = 0.277533 for n = 10.
  Interval none = wilson_interval(int64_t{0}, 10);
  EXPECT_DOUBLE_EQ(none.lo, 0.0);
  EXPECT_NEAR(none.hi, z2 / (10 + z2), 1e-15);
  EXPECT_NEAR(none.hi, 0.277532799863, 1e-11);
  // k = n: lo = n / (n + z^2) = 10 / 13.8415 = 0.722467, hi = 1.
  Interval all = wilson_interval(int64_t{10}, 10);
  EXPECT_NEAR(all.lo, 10 / (10 + z2), 1e-15);
  EXPECT_DOUBLE_EQ(all.hi, 1.0);
  // Exactly 0 and 1 at the ends for every n (the formula's differences round: 3e-17 for 0 of 12).
  for (int64_t n = 1; n <= 1000; ++n) {
    ASSERT_EQ(wilson_interval(int64_t{0}, n).lo, 0.0) << n;
    ASSERT_EQ(wilson_interval(n, n).hi, 1.0) << n;
  }
  // n = 0: no information.
  Interval empty = wilson_interval(int64_t{0}, 0);
  EXPECT_EQ(empty.lo, 0.0);
  EXPECT_EQ(empty.hi, 1.0);
}

TEST(Wilson, MatchesTheCountForm) {
  // p = 1/2: centred at 0.5, half width z sqrt(n/4 + z^2/4) / (n + z^2) = 0.263407 for n = 10.
  Interval half = wilson_interval(int64_t{5}, 10);
  EXPECT_NEAR(half.lo, 0.236593090513, 1e-11);
  EXPECT_NEAR(half.hi, 0.763406909487, 1e-11);
  for (auto [k, n] : {std::pair<int64_t, int64_t>{81, 263}, {974, 1000}, {1, 1}, {3, 7}}) {
    const double kd = double(k), nd = double(n);
    const double b = z * std::sqrt(kd * (nd - kd) / nd + z2 / 4);
    Interval ci = wilson_interval(k, n);
    EXPECT_NEAR(ci.lo, (kd + z2 / 2 - b) / (nd + z2), 1e-14) << k << "/" << n;
    EXPECT_NEAR(ci.hi, (kd + z2 / 2 + b) / (nd + z2), 1e-14) << k << "/" << n;
    EXPECT_LE(ci.lo, kd / nd);  // the interval contains the point estimate
    EXPECT_GE(ci.hi, kd / nd);
  }
  // 974 of 1000 (a typical MNIST robust accuracy): [96.22%, 98.22%].
  Interval ci = wilson_interval(0.974, 1000);
  EXPECT_NEAR(ci.lo, 0.962176171157, 1e-11);
  EXPECT_NEAR(ci.hi, 0.982196061798, 1e-11);
  // A wider z widens the interval.
  EXPECT_LT(wilson_interval(int64_t{5}, 10, 2.5758).lo, half.lo);
}

TEST(Wilson, RejectsBadCounts) {
  afd::testing::expect_error([] { wilson_interval(int64_t{11}, 10); }, "0 <= successes <= n, got 11 of 10");
  afd::testing::expect_error([] { wilson_interval(1.5, 10); }, "proportion must be in [0, 1], got 1.5");
  afd::testing::expect_error([] { wilson_interval(int64_t{1}, 2, 0.0); }, "z must be > 0");
}

TEST(NormalQuantile, MatchesPython) {
  // statistics.NormalDist().inv_cdf of Python 3.11.
  EXPECT_NEAR(normal_quantile(0.975), 1.9599639845400536, 1e-12);
  EXPECT_NEAR(normal_quantile(1 - 0.05 / 16), 2.734368786533176, 1e-12);  // Bonferroni over 8 two-sided tests
  EXPECT_NEAR(normal_quantile(1e-6), -4.753424308822899, 1e-11);
  EXPECT_NEAR(normal_quantile(0.5), 0.0, 1e-15);
  afd::testing::expect_error([] { normal_quantile(1.0); }, "p must be in (0, 1), got 1");
}

TEST(PairedDifference, MeanAndNormalInterval) {
  // Expected values: the formula of stats.h evaluated in Python.
  const std::vector<double> a = {1, 1, 0, 1, 0.5, 1, 0, 1}, b = {1, 0, 0, 1, 0.25, 0, 0, 1};
  const Difference d = paired_difference(a, b);
  EXPECT_NEAR(d.mean, 0.28125, 1e-15);
  EXPECT_NEAR(d.ci.lo, -0.03191602333812171, 1e-12);
  EXPECT_NEAR(d.ci.hi, 0.5944160233381217, 1e-12);
  // Swapping the models negates the difference; identical models give [0, 0].
  const Difference back = paired_difference(b, a);
  EXPECT_NEAR(back.ci.lo, -d.ci.hi, 1e-15);
  const Difference same = paired_difference(a, a);
  EXPECT_EQ(same.ci.lo, 0.0);
  EXPECT_EQ(same.ci.hi, 0.0);
  afd::testing::expect_error([&] { paired_difference(a, {1, 2}); }, "8 and 2 samples are not paired");
  afd::testing::expect_error([] { paired_difference({1}, {0}); }, "at least 2 pairs");
}

TEST(PearsonInterval, FisherTransform) {
  const Interval ci = pearson_interval(0.6, 30);
  EXPECT_NEAR(ci.lo, 0.3058420678082048, 1e-12);
  EXPECT_NEAR(ci.hi, 0.7895901951336387, 1e-12);
  EXPECT_EQ(pearson_interval(1.0, 10).lo, 1.0);
  // Fewer pairs, wider interval; it stays inside [-1, 1].
  const Interval few = pearson_interval(0.6, 5);
  EXPECT_LT(few.lo, ci.lo);
  EXPECT_GE(few.lo, -1.0);
  afd::testing::expect_error([] { pearson_interval(0.5, 3); }, "at least 4 pairs");
}

}  // namespace
}  // namespace afd::eval
