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

TEST(StudentT, ClosedFormsAtOneAndTwoDegrees) {
  // df = 1 is the Cauchy distribution, F(t) = 1/2 + atan(t) / pi; df = 2 has F(t) = 1/2 + t / (2 sqrt(2 + t^2)),
  // so its quantile is (2p - 1) / sqrt(2 p (1 - p)).
  const double pi = std::acos(-1.0);
  for (double t : {-50.0, -3.0, -0.4, 0.0, 0.7, 2.5, 12.0, 400.0}) {
    EXPECT_NEAR(student_t_cdf(t, 1), 0.5 + std::atan(t) / pi, 1e-14) << t;
    EXPECT_NEAR(student_t_cdf(t, 2), 0.5 + t / (2 * std::sqrt(2 + t * t)), 1e-14) << t;
  }
  for (double p : {1e-6, 0.01, 0.3, 0.5, 0.8, 0.975, 1 - 0.05 / 14, 0.999999}) {
    EXPECT_NEAR(student_t_quantile(p, 1), std::tan(pi * (p - 0.5)), 1e-9 * std::max(1.0, std::abs(std::tan(pi * (p - 0.5)))))
        << p;
    const double q2 = (2 * p - 1) / std::sqrt(2 * p * (1 - p));  // the far tail: F is known to 1e-16 / (1 - p)
    EXPECT_NEAR(student_t_quantile(p, 2), q2, 1e-10 * std::max(1.0, std::abs(q2))) << p;
  }
}

TEST(StudentT, QuantilesOfTheTables) {
  // Two-sided 95% and 99% critical values as printed in t tables (to 12 digits).
  EXPECT_NEAR(student_t_quantile(0.975, 4), 2.776445105198, 1e-10);
  EXPECT_NEAR(student_t_quantile(0.975, 5), 2.570581835636, 1e-10);
  EXPECT_NEAR(student_t_quantile(0.975, 10), 2.228138851986, 1e-10);
  EXPECT_NEAR(student_t_quantile(0.975, 30), 2.042272456301, 1e-10);
  EXPECT_NEAR(student_t_quantile(0.995, 3), 5.840909309733, 1e-9);
  // Many degrees of freedom approach the normal; df = inf is it.
  EXPECT_NEAR(student_t_quantile(0.975, 1e7), kZ95, 1e-6);
  EXPECT_NEAR(student_t_quantile(0.975, INFINITY), kZ95, 1e-12);
  afd::testing::expect_error([] { student_t_quantile(0.5, 0); }, "df must be > 0, got 0");
  afd::testing::expect_error([] { student_t_quantile(1.0, 3); }, "p must be in (0, 1), got 1");
}

TEST(StudentT, CdfIntegratesTheDensityAtAnyDf) {
  // Welch-Satterthwaite df are not integers: check F against Simpson's rule on the density
  // f(x) = Gamma((df+1)/2) / (sqrt(df pi) Gamma(df/2)) (1 + x^2/df)^(-(df+1)/2), from 0 (F(0) = 1/2).
  const double pi = std::acos(-1.0);
  for (double df : {0.7, 2.5, 5.88, 17.3, 250.0}) {
    const double c = std::exp(std::lgamma((df + 1) / 2) - std::lgamma(df / 2)) / std::sqrt(df * pi);
    auto f = [&](double x) { return c * std::pow(1 + x * x / df, -(df + 1) / 2); };
    for (double t : {0.3, 1.7, 4.2}) {
      const int steps = 20000;
      const double h = t / steps;
      double area = f(0) + f(t);
      for (int i = 1; i < steps; ++i) area += (i % 2 ? 4 : 2) * f(i * h);
      EXPECT_NEAR(student_t_cdf(t, df), 0.5 + area * h / 3, 1e-11) << "df " << df << " t " << t;
      EXPECT_NEAR(student_t_cdf(-t, df), 0.5 - area * h / 3, 1e-11) << "df " << df << " t " << t;
      EXPECT_NEAR(student_t_quantile(student_t_cdf(t, df), df), t, 1e-9) << "df " << df << " t " << t;
    }
  }
}

TEST(DifferenceOverRuns, WelchWithThePointsTerm) {
  // Without the points term and with equal run variances, Welch's df is 2 (k - 1): here runs
  // {1, 2, 3} and {2, 3, 4}, s^2 / k = 1/3 a side, df = (2/3)^2 / (2 (1/3)^2 / 2) = 4, and the
  // interval -1 +- t_{0.975, 4} sqrt(2/3) = -1 +- 2.776445105198 * 0.816496580928.
  const RunsDifference w = difference_over_runs({1, 2, 3}, {2, 3, 4}, 0, 1000);
  EXPECT_NEAR(w.mean, -1, 1e-15);
  EXPECT_NEAR(w.df, 4, 1e-12);
  EXPECT_NEAR(w.ci.lo, -1 - 2.776445105198 * 0.816496580928, 1e-9);
  EXPECT_NEAR(w.ci.hi, -1 + 2.776445105198 * 0.816496580928, 1e-9);
  // Runs {0.70, 0.74, 0.72} and {0.68, 0.70} with var_points 1e-4 on 1000 points: s_a^2/3 = 4e-4/3,
  // s_b^2/2 = 1e-4, V = 3.3333e-4, df = V^2 / ((4e-4/3)^2 / 2 + (1e-4)^2 / 1 + (1e-4)^2 / 999) = 5.87924.
  const RunsDifference r = difference_over_runs({0.70, 0.74, 0.72}, {0.68, 0.70}, 1e-4, 1000);
  EXPECT_NEAR(r.mean, 0.03, 1e-14);
  EXPECT_NEAR(r.var_a, 4e-4 / 3, 1e-15);
  EXPECT_NEAR(r.var_b, 1e-4, 1e-15);
  const double v = 4e-4 / 3 + 2e-4;
  EXPECT_NEAR(r.df, v * v / (std::pow(4e-4 / 3, 2) / 2 + 1e-8 + 1e-8 / 999), 1e-9);
  EXPECT_NEAR(r.df, 5.87924, 1e-5);
  EXPECT_NEAR(r.ci.hi - r.mean, student_t_quantile(0.975, r.df) * std::sqrt(v), 1e-14);
  // A Bonferroni level widens it; points that dominate bring df to about n - 1 (the normal).
  EXPECT_GT(difference_over_runs({0.70, 0.74, 0.72}, {0.68, 0.70}, 1e-4, 1000, 1 - 0.05 / 7).ci.hi, r.ci.hi);
  const RunsDifference pts = difference_over_runs({0.5, 0.5}, {0.4, 0.4 + 1e-9}, 1e-4, 1000);
  EXPECT_NEAR(pts.df, 999, 1e-3);
  // Identical runs everywhere: no error left, a point interval.
  const RunsDifference none = difference_over_runs({0.5, 0.5}, {0.4, 0.4}, 0, 10);
  EXPECT_TRUE(std::isinf(none.df));
  EXPECT_NEAR(none.ci.lo, 0.1, 1e-15);
  EXPECT_NEAR(none.ci.hi, 0.1, 1e-15);
  afd::testing::expect_error([] { difference_over_runs({0.5}, {0.4, 0.3}, 0, 10); }, "at least 2 runs a side, got 1 and 2");
  afd::testing::expect_error([] { difference_over_runs({0.5, 0.6}, {0.4, 0.3}, -1, 10); }, "var_points must be >= 0");
}

}  // namespace
}  // namespace afd::eval
