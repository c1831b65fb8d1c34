#include "afd/eval/stats.h"

#include <algorithm>
#include <cmath>

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

Difference paired_difference(const std::vector<double>& a, const std::vector<double>& b, double z) {
  AFD_CHECK(a.size() == b.size(), "paired_difference: {} and {} samples are not paired", a.size(), b.size());
  AFD_CHECK(a.size() >= 2, "paired_difference: need at least 2 pairs, got {}", a.size());
  AFD_CHECK(z > 0, "paired_difference: z must be > 0, got {}", z);
  const double n = static_cast<double>(a.size());
  double mean = 0;
  for (size_t i = 0; i < a.size(); ++i) mean += (a[i] - b[i]) / n;
  double ss = 0;
  for (size_t i = 0; i < a.size(); ++i) ss += (a[i] - b[i] - mean) * (a[i] - b[i] - mean);
  const double half = z * std::sqrt(ss / (n - 1)) / std::sqrt(n);
  return {mean, {mean - half, mean + half}};
}

Interval pearson_interval(double r, int64_t n, double z) {
  AFD_CHECK(n >= 4, "pearson_interval: need at least 4 pairs, got {}", n);
  AFD_CHECK(std::abs(r) <= 1, "pearson_interval: |r| must be <= 1, got {}", r);
  if (std::abs(r) == 1) return {r, r};
  const double half = z / std::sqrt(static_cast<double>(n - 3));
  return {std::tanh(std::atanh(r) - half), std::tanh(std::atanh(r) + half)};
}

}  // namespace afd::eval
