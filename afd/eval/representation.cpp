#include "afd/eval/representation.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "attacks/core.h"
#include "autograd/var.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::eval {

namespace {
// The fraction of v's values for which keep(v) holds.
template <class Keep>
double fraction(const Tensor& v, Keep keep) {
  std::vector<double> h = v.to(Device::cpu()).to_vector<double>();
  int64_t n = 0;
  for (double x : h) n += keep(x);
  return h.empty() ? 0.0 : double(n) / double(h.size());
}
}  // namespace

HDivergence h_divergence(const Tensor& d_clean, const Tensor& d_adv) {
  AFD_CHECK(d_clean.defined() && d_adv.defined() && d_clean.numel() == d_adv.numel() && d_clean.numel() > 0,
            "h_divergence: D outputs on clean and adversarial features must be non-empty and of one size, got {} "
            "and {}", d_clean.defined() ? d_clean.str() : "undefined", d_adv.defined() ? d_adv.str() : "undefined");
  HDivergence h;
  h.count = d_clean.numel();
  h.clean_right = fraction(d_clean, [](double x) { return x > 0; });
  h.adv_right = fraction(d_adv, [](double x) { return x < 0; });
  h.alpha = h.clean_right + h.adv_right;
  h.d_hat = 2 * std::abs(h.alpha - 1);
  return h;
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

HDivergence estimate_h_divergence(nn::Classifier& model, nn::SNPDFC3& disc, const Tensor& x, const Tensor& x_adv,
                                  const Tensor& y, int64_t batch_size) {
  AFD_CHECK(x.defined() && x_adv.defined() && x.shape() == x_adv.shape(),
            "estimate_h_divergence: clean and adversarial batches differ: {} and {}", x.str(), x_adv.str());
  Tensor z = features_of(model, x, batch_size), z_adv = features_of(model, x_adv, batch_size);
  attacks::EvalModeGuard eval_disc(disc);  // spectral norm: the stored u, v (no power iteration)
  NoGradGuard no_grad;
  Tensor d_clean = disc.forward(Var(z), y).data(), d_adv = disc.forward(Var(z_adv), y).data();
  return h_divergence(d_clean, d_adv);
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
