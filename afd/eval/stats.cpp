#include "afd/eval/stats.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "tensor/error.h"

namespace afd::eval {

Interval wilson_interval(int64_t successes, int64_t n, double z) {
  AFD_CHECK(n >= 0 && successes >= 0 && successes <= n, "wilson_interval: need 0 <= successes <= n, got {} of {}",
            successes, n);
  AFD_CHECK(z > 0, "wilson_interval: z must be > 0, got {}", z);
  if (n == 0) return {0, 1};
  const double nd = static_cast<double>(n);
  const double p = static_cast<double>(successes) / nd;
  const double z2 = z * z;
  const double denom = 1 + z2 / nd;
  const double center = (p + z2 / (2 * nd)) / denom;
  const double half = z / denom * std::sqrt(p * (1 - p) / nd + z2 / (4 * nd * nd));
  // In real arithmetic lo <= p <= hi, lo = 0 at k = 0 and hi = 1 at k = n; the differences of
  // nearly equal numbers above miss these by rounding (e.g. lo = 3e-17 for 0 of 12), so they are
  // set exactly.
  const double lo = successes == 0 ? 0.0 : std::min(p, center - half);
  const double hi = successes == n ? 1.0 : std::max(p, center + half);
  return {lo, hi};
}

Interval wilson_interval(double p, int64_t n, double z) {
  AFD_CHECK(p >= 0 && p <= 1, "wilson_interval: proportion must be in [0, 1], got {}", p);
  return wilson_interval(static_cast<int64_t>(std::llround(p * static_cast<double>(n))), n, z);
}

double normal_quantile(double p) {
  AFD_CHECK(p > 0 && p < 1, "normal_quantile: p must be in (0, 1), got {}", p);
  // Phi(x) = erfc(-x / sqrt 2) / 2 rises monotonically; Phi(+-40) is 0 or 1 in double.
  double lo = -40, hi = 40;
  while (hi - lo > 1e-15 * std::max(1.0, std::abs(lo))) {
    const double mid = 0.5 * (lo + hi);
    if (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p) lo = mid;
    else hi = mid;
    if (mid == lo && mid == hi) break;
  }
  return 0.5 * (lo + hi);
}

namespace {

// I_x(a, b), the regularised incomplete beta function, for x in [0, 1] given with y = 1 - x (both,
// so that neither loses digits to the subtraction) and a, b > 0:
//   I_x(a, b) = x^a y^b / (a B(a, b)) * 1 / (1 + d_1 / (1 + d_2 / (1 + ...))),
//   d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)),  d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m)),
// which converges fast for x < (a + 1) / (a + b + 2); above it, I_x(a, b) = 1 - I_y(b, a).
double incomplete_beta(double x, double y, double a, double b) {
  if (x <= 0) return 0;
  if (y <= 0) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - incomplete_beta(y, x, b, a);
  const double front =
      std::exp(a * std::log(x) + b * std::log(y) - std::log(a) - (std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b)));
  // Modified Lentz: the continued fraction as a product of ratios C_j D_j of successive
  // convergents, with a tiny value in place of a zero denominator.
  constexpr double tiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  d = 1 / (std::abs(d) < tiny ? tiny : d);
  double f = d;
  for (int m = 1; m <= 1000; ++m) {
    for (const double dm : {m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))}) {
      d = 1 + dm * d;
      d = 1 / (std::abs(d) < tiny ? tiny : d);
      c = 1 + dm / c;
      if (std::abs(c) < tiny) c = tiny;
      f *= c * d;
      if (std::abs(c * d - 1) < 1e-16) return front * f;
    }
  }
  return front * f;
}

}  // namespace

double student_t_cdf(double t, double df) {
  AFD_CHECK(df > 0, "student_t_cdf: df must be > 0, got {}", df);
  if (std::isinf(df)) return 0.5 * std::erfc(-t / std::sqrt(2.0));
  const double tail = 0.5 * incomplete_beta(df / (df + t * t), t * t / (df + t * t), df / 2, 0.5);  // P(T > |t|)
  return t >= 0 ? 1 - tail : tail;
}

double student_t_quantile(double p, double df) {
  AFD_CHECK(p > 0 && p < 1, "student_t_quantile: p must be in (0, 1), got {}", p);
  AFD_CHECK(df > 0, "student_t_quantile: df must be > 0, got {}", df);
  // Bracket by doubling (the tails of df = 1 reach 1e15 at p = 1e-16), then bisect.
  double hi = 1;
  while (student_t_cdf(hi, df) < p && hi < 1e300) hi *= 2;
  double lo = -1;
  while (student_t_cdf(lo, df) > p && lo > -1e300) lo *= 2;
  for (int i = 0; i < 2000 && hi - lo > 1e-15 * std::max(1.0, std::abs(lo)); ++i) {
    const double mid = 0.5 * (lo + hi);
    if (mid == lo || mid == hi) break;
    (student_t_cdf(mid, df) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

double mean(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m += x / static_cast<double>(v.size());
  return m;
}

double sample_variance(const std::vector<double>& v) {
  AFD_CHECK(v.size() >= 2, "sample_variance: need at least 2 values, got {}", v.size());
  const double m = mean(v);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return ss / static_cast<double>(v.size() - 1);
}

Difference paired_difference(const std::vector<double>& a, const std::vector<double>& b, double z) {
  AFD_CHECK(a.size() == b.size(), "paired_difference: {} and {} samples are not paired", a.size(), b.size());
  AFD_CHECK(a.size() >= 2, "paired_difference: need at least 2 pairs, got {}", a.size());
  AFD_CHECK(z > 0, "paired_difference: z must be > 0, got {}", z);
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  const double n = static_cast<double>(d.size()), m = mean(d), s2 = sample_variance(d);
  const double half = z * std::sqrt(s2) / std::sqrt(n);
  return {m, {m - half, m + half}, s2 / n};
}

RunsDifference difference_over_runs(const std::vector<double>& a, const std::vector<double>& b, double var_points,
                                    int64_t n, double level) {
  AFD_CHECK(a.size() >= 2 && b.size() >= 2, "difference_over_runs: need at least 2 runs a side, got {} and {}",
            a.size(), b.size());
  AFD_CHECK(n >= 2, "difference_over_runs: need at least 2 points, got {}", n);
  AFD_CHECK(var_points >= 0, "difference_over_runs: var_points must be >= 0, got {}", var_points);
  AFD_CHECK(level > 0 && level < 1, "difference_over_runs: level must be in (0, 1), got {}", level);
  // The runs' mean and its variance s^2 / k.
  const double ma = mean(a), va = sample_variance(a) / static_cast<double>(a.size());
  const double mb = mean(b), vb = sample_variance(b) / static_cast<double>(b.size());
  RunsDifference r;
  r.mean = ma - mb, r.var_a = va, r.var_b = vb, r.var_points = var_points;
  const double v = va + vb + var_points;
  if (v == 0) {
    r.df = INFINITY, r.ci = {r.mean, r.mean};
    return r;
  }
  r.df = v * v / (va * va / double(a.size() - 1) + vb * vb / double(b.size() - 1) +
                  var_points * var_points / double(n - 1));
  const double half = student_t_quantile(0.5 + level / 2, r.df) * std::sqrt(v);
  r.ci = {r.mean - half, r.mean + half};
  return r;
}

Interval pearson_interval(double r, int64_t n, double z) {
  AFD_CHECK(n >= 4, "pearson_interval: need at least 4 pairs, got {}", n);
  AFD_CHECK(std::abs(r) <= 1, "pearson_interval: |r| must be <= 1, got {}", r);
  if (std::abs(r) == 1) return {r, r};
  const double half = z / std::sqrt(static_cast<double>(n - 3));
  return {std::tanh(std::atanh(r) - half), std::tanh(std::atanh(r) + half)};
}

}  // namespace afd::eval
