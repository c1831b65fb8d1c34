// DeepFool (Moosavi-Dezfooli et al., CVPR 2016), Linf and L2; see minimal_norm_attacks.h.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "attacks/core.h"
#include "attacks/minimal_norm_attacks.h"
#include "autograd/ops.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::attacks {

namespace {

// a where mask_j, else b (rows).
Tensor where_rows(const std::vector<uint8_t>& mask, const Tensor& a, const Tensor& b) {
  std::vector<double> m(mask.begin(), mask.end());
  return ops::where(as_rows(m, a), a, b);
}

}  // namespace

DeepFool::DeepFool(AttackConfig config) : Attack(config) {
  AFD_CHECK(config.norm != Norm::l1, "deepfool: the norm must be linf or l2, got l1");
  AFD_CHECK(!config.targeted, "deepfool: there is no targeted DeepFool (it steps to the nearest boundary); "
            "use ddn or cw-l2 for a targeted minimal-norm attack");
  AFD_CHECK(!config.random_start, "deepfool: random_start is not supported (a minimal-norm attack runs once from x)");
  AFD_CHECK(config.candidates >= 2, "deepfool: candidates must be >= 2, got {}", config.candidates);
  AFD_CHECK(std::isfinite(config.overshoot) && config.overshoot >= 0, "deepfool: overshoot must be >= 0, got {}",
            config.overshoot);
}

std::string DeepFool::name() const { return std::string("deepfool-") + norm_name(config_.norm); }

Tensor DeepFool::run(const Problem& p, Generator&) {
  const Tensor& x0 = p.x;
  const int64_t n = x0.size(0);
  if (n == 0) return x0.clone();
  const Norm dual = config_.norm == Norm::linf ? Norm::l1 : Norm::l2;

  // Candidate classes: the clean logits sorted in decreasing order, the first K of them.
  const Tensor clean = logits_of(*p.model, x0);
  const int64_t classes = clean.size(1);
  AFD_CHECK(classes >= 2, "deepfool: the model must have at least 2 classes, it has {}", classes);
  const int64_t K = std::min<int64_t>(config_.candidates, classes);
  std::vector<std::vector<int64_t>> cand(static_cast<size_t>(n));
  {
    std::vector<double> z = host_rows(clean);
    for (int64_t i = 0; i < n; ++i) {
      std::vector<int64_t> order(static_cast<size_t>(classes));
      std::iota(order.begin(), order.end(), 0);
      const double* row = z.data() + i * classes;
      std::stable_sort(order.begin(), order.end(), [row](int64_t a, int64_t b) { return row[a] > row[b]; });
      cand[i].assign(order.begin(), order.begin() + K);
    }
  }
  const std::vector<int64_t> labels = p.y.to(Device::cpu()).to_vector<int64_t>();

  Tensor x = x0.clone();                                                  // [n, ...] the iterate
  Tensor r_total = Tensor::zeros(x0.shape(), x0.dtype(), x0.device());  // [n, ...] accumulated steps
  std::vector<int64_t> active(static_cast<size_t>(n));  // rows not yet adversarial
  std::iota(active.begin(), active.end(), 0);

  for (int step = 0; step < config_.steps && !active.empty(); ++step) {
    const int64_t m = static_cast<int64_t>(active.size());
    const bool everyone = m == n;
    Tensor xa = everyone ? x : take_rows(x, active);

    GradModeGuard grad_on(true);
    Var xv(xa, /*requires_grad=*/true);
    Var logits = p.model->forward(xv);  // [m, classes]
    std::vector<double> z = host_rows(logits.data());
    std::vector<int64_t> pred = ops::argmax(logits.data(), 1).to(Device::cpu()).to_vector<int64_t>();
    std::vector<uint8_t> adv(static_cast<size_t>(m));
    bool all_adv = true;
    for (int64_t j = 0; j < m; ++j) all_adv &= (adv[j] = pred[j] != labels[active[j]]) != 0;
    if (all_adv) break;

    // For k = 1 .. K-1: w_k = grad of l_k = z_{C_k} - z_{C_0} (one backward of the shared forward,
    // seeded with +1 at C_k and -1 at C_0 per row); keep the k with the smallest
    // d_k = |l_k| / (||w_k||_q + 1e-8) (strict <: the first on ties, as argmin).
    std::vector<double> best_d(static_cast<size_t>(m), std::numeric_limits<double>::infinity());
    Tensor w;
    for (int64_t k = 1; k < K; ++k) {
      std::vector<double> seed(static_cast<size_t>(m * classes), 0.0), l(static_cast<size_t>(m));
      for (int64_t j = 0; j < m; ++j) {
        const std::vector<int64_t>& c = cand[active[j]];
        seed[j * classes + c[k]] += 1;
        seed[j * classes + c[0]] -= 1;
        l[j] = z[j * classes + c[k]] - z[j * classes + c[0]];
      }
      Tensor seed_t = from_host_rows(seed, logits.data());
      std::vector<Var> g = afd::grad({logits}, {xv}, {seed_t}, /*retain_graph=*/k + 1 < K);
      Tensor w_k = g[0].defined() ? g[0].data() : Tensor::zeros(xa.shape(), xa.dtype(), xa.device());
      std::vector<double> q = host_rows(row_norms(w_k, dual));
      std::vector<uint8_t> closer(static_cast<size_t>(m), 0);
      for (int64_t j = 0; j < m; ++j) {
        const double d = std::fabs(l[j]) / (q[j] + 1e-8);
        if (d < best_d[j]) {
          best_d[j] = d;
          closer[j] = 1;
        }
      }
      w = k == 1 ? w_k : where_rows(closer, w_k, w);
    }

    // r = (d + 1e-4) sign(w) (Linf) or (d + 1e-4) w / (||w||_2 + 1e-8) (L2); accumulated, and the
    // rows not adversarial move to clip(x0 + (1 + overshoot) r_total).
    std::vector<double> scale(static_cast<size_t>(m));
    Tensor r;
    if (config_.norm == Norm::linf) {
      for (int64_t j = 0; j < m; ++j) scale[j] = best_d[j] + 1e-4;
      r = ops::mul(ops::sign(w), as_rows(scale, w));
    } else {
      std::vector<double> w_norm = host_rows(row_norms(w, Norm::l2));
      for (int64_t j = 0; j < m; ++j) scale[j] = (best_d[j] + 1e-4) / (w_norm[j] + 1e-8);
      r = ops::mul(w, as_rows(scale, w));
    }
    Tensor total = ops::add(everyone ? r_total : take_rows(r_total, active), r);
    Tensor x0a = everyone ? x0 : take_rows(x0, active);
    Tensor moved = where_rows(adv, xa, clip_box(ops::add(x0a, ops::mul_scalar(total, 1 + config_.overshoot))));
    if (everyone) {
      r_total = total;
      x = moved;
    } else {
      r_total = put_rows(r_total, active, total);
      x = put_rows(x, active, moved);
    }
    std::vector<int64_t> still;
    for (int64_t j = 0; j < m; ++j)
      if (!adv[j]) still.push_back(active[j]);
    active = std::move(still);
  }
  return x;
}

}  // namespace afd::attacks
