// Confidence intervals for the accuracies afd_run eval reports.
//
// An accuracy measured on n test points is a binomial proportion p_hat = k / n. Its Wilson score
// interval (Wilson 1927) at normal quantile z (1.959964 for 95%) is the set of p with
// |p_hat - p| <= z sqrt(p (1 - p) / n), i.e. the roots of a quadratic in p:
//
//   center    = (p_hat + z^2 / (2n)) / (1 + z^2 / n)
//   half      = z / (1 + z^2 / n) * sqrt(p_hat (1 - p_hat) / n + z^2 / (4 n^2))
//   [lo, hi]  = [center - half, center + half]
//
// Unlike the normal (Wald) interval p_hat +- z sqrt(p_hat (1 - p_hat) / n) it stays inside [0, 1]
// and does not collapse to a point at p_hat = 0 or 1, where robust accuracies often sit.
//
//   eval::Interval ci = eval::wilson_interval(974, 1000);  // [0.9622, 0.9822]
//
// Comparisons between models evaluated on the same n points (the per-claim verdicts of
// afd_run eval) use the points' paired scores: with d_i = a_i - b_i (a_i, b_i a point's robust
// flag, or its normalised area under the accuracy-vs-eps curve, so that the mean of a_i is the
// accuracy or the AUC), the difference of the means is mean(d) and its normal interval
//
//   mean(d) +- z sd(d) / sqrt(n),    sd with n - 1,
//
// which pairing makes much narrower than two separate Wilson intervals (the two models agree on
// most points). A Pearson correlation r over n pairs gets the Fisher interval
// tanh(atanh(r) +- z / sqrt(n - 3)).
#pragma once
#include <cstdint>
#include <vector>

namespace afd::eval {

struct Interval {
  double lo = 0, hi = 1;
};

// 95% two-sided normal quantile, Phi^-1(0.975).
inline constexpr double kZ95 = 1.959963984540054;

// Wilson interval of `successes` out of `n` (0 <= successes <= n); n = 0 gives [0, 1] (no
// information). Throws on a count out of range or z <= 0.
Interval wilson_interval(int64_t successes, int64_t n, double z = kZ95);
// The same from a proportion measured on n points: successes = round(p n).
Interval wilson_interval(double p, int64_t n, double z = kZ95);

// Phi^-1(p) for 0 < p < 1 (bisection on erfc to 1e-15; throws outside (0, 1)).
double normal_quantile(double p);

// The mean of a - b over paired samples and its normal interval at quantile z (above). Throws on
// different lengths or fewer than 2 pairs.
struct Difference {
  double mean = 0;
  Interval ci{0, 0};
};
Difference paired_difference(const std::vector<double>& a, const std::vector<double>& b, double z = kZ95);

// The Fisher interval of a Pearson correlation r over n pairs (n >= 4, |r| <= 1; r = +-1 gives
// [r, r]).
Interval pearson_interval(double r, int64_t n, double z = kZ95);

}  // namespace afd::eval
