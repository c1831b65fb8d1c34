#include "afd/eval/representation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "attacks/core.h"
#include "autograd/var.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::eval {

namespace {
// The fraction of v's values for which keep(v) holds.
template <class Keep>
double fraction(const std::vector<double>& v, Keep keep) {
  int64_t n = 0;
  for (double x : v) n += keep(x);
  return v.empty() ? 0.0 : double(n) / double(v.size());
}

std::vector<double> host_values(const Tensor& v) { return v.to(Device::cpu()).to_vector<double>(); }

void check_outputs(const Tensor& d_clean, const Tensor& d_adv, const char* who) {
  AFD_CHECK(d_clean.defined() && d_adv.defined() && d_clean.numel() == d_adv.numel() && d_clean.numel() > 0,
            "{}: D outputs on clean and adversarial features must be non-empty and of one size, got {} and {}", who,
            d_clean.defined() ? d_clean.str() : "undefined", d_adv.defined() ? d_adv.str() : "undefined");
}

HDivergence from_fractions(double clean_right, double adv_right, int64_t count) {
  HDivergence h;
  h.count = count;
  h.clean_right = clean_right;
  h.adv_right = adv_right;
  h.alpha = clean_right + adv_right;
  h.d_hat = 2 * std::abs(h.alpha - 1);
  return h;
}
}  // namespace

HDivergence h_divergence(const Tensor& d_clean, const Tensor& d_adv) {
  check_outputs(d_clean, d_adv, "h_divergence");
  const std::vector<double> c = host_values(d_clean), a = host_values(d_adv);
  return from_fractions(fraction(c, [](double x) { return x > 0; }), fraction(a, [](double x) { return x < 0; }),
                        d_clean.numel());
}

Threshold fit_threshold(const std::vector<double>& d_clean, const std::vector<double>& d_adv) {
  AFD_CHECK(!d_clean.empty() && !d_adv.empty(), "fit_threshold: needs clean and adversarial outputs, got {} and {}",
            d_clean.size(), d_adv.size());
  // All outputs ascending, each with its kind; t sweeps from -inf upwards and every output it
  // passes moves from "called clean" (D > t) to "called adversarial" (D <= t).
  std::vector<std::pair<double, bool>> v;  // (D, is clean)
  for (double x : d_clean) v.emplace_back(x, true);
  for (double x : d_adv) v.emplace_back(x, false);
  for (const auto& [x, clean] : v)
    AFD_CHECK(std::isfinite(x), "fit_threshold: D output {} on a{} point is not finite", x, clean ? " clean" : "n adversarial");
  std::sort(v.begin(), v.end());
  const double nc = double(d_clean.size()), na = double(d_adv.size());
  int64_t clean_called_clean = int64_t(d_clean.size()), adv_called_adv = 0;  // at t = -inf
  const double inf = std::numeric_limits<double>::infinity();
  double hi = 1, lo = 1;  // alpha(-inf) = 1 + 0
  Threshold up{-inf, false}, down{-inf, true};
  for (size_t i = 0; i < v.size();) {
    const double value = v[i].first;
    for (; i < v.size() && v[i].first == value; ++i) (v[i].second ? clean_called_clean -= 1 : adv_called_adv += 1);
    const double t = i < v.size() ? std::midpoint(value, v[i].first) : inf;  // between this output and the next
    const double alpha = double(clean_called_clean) / nc + double(adv_called_adv) / na;
    if (alpha > hi) hi = alpha, up.t = t;
    if (alpha < lo) lo = alpha, down.t = t;
  }
  return hi - 1 >= 1 - lo ? up : down;
}

HDivergence h_divergence_fitted(const Tensor& d_clean, const Tensor& d_adv) {
  check_outputs(d_clean, d_adv, "h_divergence_fitted");
  const std::vector<double> c = host_values(d_clean), a = host_values(d_adv);
  const auto finite = [](double x) { return std::isfinite(x); };
  if (c.size() < 2 || !std::all_of(c.begin(), c.end(), finite) || !std::all_of(a.begin(), a.end(), finite))
    return from_fractions(NAN, NAN, int64_t(c.size()));
  std::vector<double> fold_c[2], fold_a[2];  // fold f: the points i with i % 2 == f
  for (size_t i = 0; i < c.size(); ++i) fold_c[i % 2].push_back(c[i]), fold_a[i % 2].push_back(a[i]);
  int64_t clean_right = 0, adv_right = 0;
  for (int f = 0; f < 2; ++f) {
    const Threshold th = fit_threshold(fold_c[1 - f], fold_a[1 - f]);  // fitted on the other half
    for (double x : fold_c[f]) clean_right += (x > th.t) != th.flipped;  // called clean
    for (double x : fold_a[f]) adv_right += (x > th.t) == th.flipped;    // called adversarial
  }
  const double n = double(c.size());
  return from_fractions(double(clean_right) / n, double(adv_right) / n, int64_t(c.size()));
}

Tensor features_of(nn::Classifier& model, const Tensor& x, int64_t batch_size) {
  AFD_CHECK(x.defined() && x.dim() >= 2 && x.size(0) > 0, "features_of: expected a batch x [N, ...], got {}",
            x.defined() ? x.str() : "undefined");
  AFD_CHECK(batch_size > 0, "features_of: batch size {} must be > 0", batch_size);
  attacks::EvalModeGuard eval_mode(model);
  NoGradGuard no_grad;
  std::vector<Tensor> parts;
  for (int64_t i = 0; i < x.size(0); i += batch_size)
    parts.push_back(model.features(Var(x.slice(i, std::min(x.size(0), i + batch_size)))).data());
  return cat(parts, 0);
}

DOutputs discriminator_outputs(nn::SNPDFC3& disc, const Tensor& z, const Tensor& z_adv, const Tensor& y) {
  AFD_CHECK(z.defined() && z_adv.defined() && z.dim() == 2 && z.shape() == z_adv.shape(),
            "discriminator_outputs: clean and adversarial features must be [N, F] of one shape, got {} and {}",
            z.defined() ? z.str() : "undefined", z_adv.defined() ? z_adv.str() : "undefined");
  attacks::EvalModeGuard eval_disc(disc);  // spectral norm: the stored u, v (no power iteration)
  NoGradGuard no_grad;
  const int64_t n = z.size(0);
  return {disc.forward(Var(z), y).data().reshape({n}), disc.forward(Var(z_adv), y).data().reshape({n})};
}

FeatureShift feature_shift(const Tensor& z, const Tensor& z_adv) {
  AFD_CHECK(z.defined() && z_adv.defined() && z.dim() == 2 && z.shape() == z_adv.shape(),
            "feature_shift: clean and adversarial features must be [N, F] of one shape, got {} and {}",
            z.defined() ? z.str() : "undefined", z_adv.defined() ? z_adv.str() : "undefined");
  const Tensor zd = z.to(Device::cpu()).to(DType::f64), ad = z_adv.to(Device::cpu()).to(DType::f64);
  FeatureShift s;
  s.shift = attacks::host_rows(attacks::row_norms(ops::sub(ad, zd), attacks::Norm::l2));
  const std::vector<double> norm = attacks::host_rows(attacks::row_norms(zd, attacks::Norm::l2));
  for (size_t i = 0; i < norm.size(); ++i) s.relative.push_back(norm[i] > 0 ? s.shift[i] / norm[i] : NAN);
  return s;
}

std::vector<double> symmetric_eigenvalues(std::vector<double> a, int64_t n) {
  AFD_CHECK(n >= 0 && int64_t(a.size()) == n * n, "symmetric_eigenvalues: {} values for a {} x {} matrix", a.size(),
            n, n);
  auto at = [&](int64_t i, int64_t j) -> double& { return a[size_t(i * n + j)]; };
  double total = 0;
  for (double v : a) total += v * v;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q) off += at(p, q) * at(p, q);
    if (off <= 1e-22 * total || off == 0) break;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q) {
        const double apq = at(p, q);
        if (std::abs(apq) < 1e-300) continue;
        // The rotation that zeroes a_pq: t = tan(phi) solves t^2 + 2 theta t - 1 = 0, smaller root.
        const double theta = (at(q, q) - at(p, p)) / (2 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int64_t k = 0; k < n; ++k) {
          if (k == p || k == q) continue;
          const double akp = at(k, p), akq = at(k, q);
          at(k, p) = at(p, k) = c * akp - s * akq;
          at(k, q) = at(q, k) = s * akp + c * akq;
        }
        at(p, p) -= t * apq;
        at(q, q) += t * apq;
        at(p, q) = at(q, p) = 0;
      }
  }
  std::vector<double> eig(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) eig[size_t(i)] = at(i, i);
  std::sort(eig.begin(), eig.end(), std::greater<double>());
  return eig;
}

Dimensionality dimensionality(const Tensor& z, double threshold) {
  AFD_CHECK(z.defined() && z.dim() == 2 && z.size(0) >= 2, "dimensionality: expected features z [N >= 2, F], got {}",
            z.defined() ? z.str() : "undefined");
  AFD_CHECK(threshold > 0 && threshold <= 1, "dimensionality: variance threshold {} must be in (0, 1]", threshold);
  Dimensionality d;
  const int64_t N = z.size(0), F = z.size(1);
  d.features = F;
  Tensor zd = z.to(Device::cpu()).to(DType::f64);
  std::vector<double> peak = ops::max(ops::abs(zd), 0).first.to_vector<double>();
  d.nonzero = std::count_if(peak.begin(), peak.end(), [](double v) { return v > 0; });
  // Covariance of the centred features, C = Zc^T Zc / (N - 1), and its eigenvalues.
  Tensor centred = ops::sub(zd, ops::mean(zd, {0}, /*keepdim=*/true));
  Tensor cov = ops::mul_scalar(ops::matmul(centred, centred, /*trans_a=*/true), 1.0 / double(N - 1));
  std::vector<double> eig = symmetric_eigenvalues(cov.to_vector<double>(), F);
  for (double& e : eig) e = std::max(e, 0.0);  // rounding can leave tiny negatives
  const double sum = std::accumulate(eig.begin(), eig.end(), 0.0);
  if (sum <= 0) return d;  // constant features: no variance to explain
  double cumulative = 0;
  for (double e : eig) {
    d.explained.push_back(e / sum);
    if (cumulative < threshold * (1 - 1e-12)) ++d.pca_99;
    cumulative += e / sum;
  }
  return d;
}

}  // namespace afd::eval
