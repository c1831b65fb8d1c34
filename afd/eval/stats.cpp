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

}  // namespace afd::eval
