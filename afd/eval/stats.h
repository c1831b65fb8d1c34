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
#pragma once
#include <cstdint>

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

}  // namespace afd::eval
