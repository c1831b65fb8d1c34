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

// Student's t distribution with df > 0 degrees of freedom (any real df: the Welch-Satterthwaite df
// below is not an integer). For t >= 0, P(T <= t) = 1 - I_x(df/2, 1/2) / 2 with x = df / (df + t^2)
// and I the regularised incomplete beta function, evaluated by its continued fraction (modified
// Lentz); P(T <= -t) = 1 - P(T <= t). df = inf is the normal distribution.
double student_t_cdf(double t, double df);
// Its quantile for 0 < p < 1 (bisection on student_t_cdf; throws outside (0, 1) or for df <= 0).
double student_t_quantile(double p, double df);

// The mean of the values (the sum of v_i / n; 0 for none), and their sample variance (n - 1 in
// the denominator; throws with fewer than 2 values).
double mean(const std::vector<double>& v);
double sample_variance(const std::vector<double>& v);

// The mean of a - b over paired samples and its normal interval at quantile z (above). Throws on
// different lengths or fewer than 2 pairs.
struct Difference {
  double mean = 0;
  Interval ci{0, 0};
  double variance = 0;  // of the mean: sd(a - b)^2 / n
};
Difference paired_difference(const std::vector<double>& a, const std::vector<double>& b, double z = kZ95);

// Two methods compared over independent training runs (seeds), every run evaluated on the same n
// points. Method a's runs have mean scores A_1..A_ka (a run's AUC, say), b's B_1..B_kb; the
// difference D = mean(A) - mean(B) has two sources of error:
//
//   runs     which seeds were drawn: s_a^2 / ka + s_b^2 / kb (Welch; s^2 the runs' variance, k - 1),
//   points   which test points: var_points, the variance of a paired difference's mean over the
//            points (sd(d)^2 / n of a run pair, averaged over the pairs). The same points serve
//            every run, so more runs do not shrink it.
//
// The interval is D +- t_{(1 + level) / 2, df} sqrt(V), V the sum of the three variances, with the
// Welch-Satterthwaite df = V^2 / ((s_a^2/ka)^2 / (ka - 1) + (s_b^2/kb)^2 / (kb - 1) + var_points^2 / (n - 1)).
// With two or three runs a side, df is small and the interval wide: that is what few seeds can
// say. Throws with fewer than 2 runs a side, n < 2, var_points < 0 or level outside (0, 1).
struct RunsDifference {
  double mean = 0;
  double var_a = 0, var_b = 0, var_points = 0;  // s_a^2 / ka, s_b^2 / kb and var_points
  double df = 0;                                // inf when every variance is 0
  Interval ci{0, 0};
};
RunsDifference difference_over_runs(const std::vector<double>& a, const std::vector<double>& b, double var_points,
                                    int64_t n, double level = 0.95);

// The Fisher interval of a Pearson correlation r over n pairs (n >= 4, |r| <= 1; r = +-1 gives
// [r, r]).
Interval pearson_interval(double r, int64_t n, double z = kZ95);

}  // namespace afd::eval
