// DDN, decoupled direction and norm (Rony et al., CVPR 2019), L2; see minimal_norm_attacks.h.
#include <cmath>
#include <numbers>
#include <vector>

#include "attacks/core.h"
#include "attacks/minimal_norm_attacks.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::attacks {

namespace {

// a where mask_i, else b (rows).
Tensor where_rows(const std::vector<uint8_t>& mask, const Tensor& a, const Tensor& b) {
  std::vector<double> m(mask.begin(), mask.end());
  return ops::where(as_rows(m, a), a, b);
}

}  // namespace

DDN::DDN(AttackConfig config, DDNOptions options) : Attack(config), options_(options) {
  AFD_CHECK(config.norm == Norm::l2, "ddn: the norm must be l2, got {}", norm_name(config.norm));
  AFD_CHECK(!config.random_start, "ddn: random_start is not supported (a minimal-norm attack runs once from x)");
  AFD_CHECK(config.gamma > 0 && config.gamma < 1, "ddn: gamma must be in (0, 1), got {}", config.gamma);
  AFD_CHECK(std::isfinite(config.init_norm) && config.init_norm > 0, "ddn: init_norm must be > 0, got {}",
            config.init_norm);
  AFD_CHECK(options.quantize_levels == 0 || options.quantize_levels >= 2,
            "ddn: quantize_levels must be 0 (off) or >= 2, got {}", options.quantize_levels);
}

Tensor DDN::run(const Problem& p, Generator& gen) {
  const Tensor& x0 = p.x;
  const int64_t n = x0.size(0);
  const int steps = config_.steps;
  LossInputs in{&p.y, &p.target, nullptr};
  const double sign = config_.targeted ? -1.0 : 1.0;  // targeted: ascend -CE(f(x), t)

  // The farthest point of the box from x0, per sample: ||max(x0, 1 - x0)||_2.
  std::vector<double> worst = host_rows(row_norms(ops::maximum(x0, ops::add_scalar(ops::neg(x0), 1.0)), Norm::l2));
  std::vector<double> best_norm = worst, eps(static_cast<size_t>(n), config_.init_norm);
  Tensor best = x0.clone();  // x0 where no iterate is adversarial
  Tensor delta = Tensor::zeros(x0.shape(), x0.dtype(), x0.device());

  for (int i = 0; i < steps; ++i) {
    const double k = i + options_.schedule_offset;
    const double lr = 0.01 + 0.99 * (1 + std::cos(std::numbers::pi * k / steps)) / 2;

    Tensor x = ops::add(x0, delta);
    std::vector<double> norm = host_rows(row_norms(delta, Norm::l2));
    LossGrad lg = loss_and_grad(*p.model, x, LossKind::ce, in, config_.targeted, sign);
    std::vector<uint8_t> adv = success_mask(lg.logits, p.y, p.target, config_.targeted).to_vector<uint8_t>();

    // Keep the smallest adversarial iterate (evaluated before this step).
    std::vector<uint8_t> better(static_cast<size_t>(n), 0);
    bool any_better = false;
    for (int64_t r = 0; r < n; ++r) {
      const bool smaller = options_.replace_on_equal ? norm[r] <= best_norm[r] : norm[r] < best_norm[r];
      if (adv[r] && smaller) {
        better[r] = 1;
        best_norm[r] = norm[r];
        any_better = true;
      }
    }
    if (any_better) best = where_rows(better, x, best);

    // Direction: g / ||g||_2; an all-zero gradient row gets a random unit direction instead.
    Tensor g = lg.grad;
    std::vector<double> g_norm = host_rows(row_norms(g, Norm::l2));
    std::vector<uint8_t> zero(static_cast<size_t>(n), 0);
    bool any_zero = false;
    for (int64_t r = 0; r < n; ++r) any_zero |= (zero[r] = g_norm[r] == 0) != 0;
    if (any_zero) g = where_rows(zero, randn(g.shape(), gen, g.dtype(), g.device()), g);
    delta = ops::add(delta, ops::mul_scalar(normalize_rows(g, Norm::l2), lr));

    // Norm: eps shrinks by (1 - gamma) while adversarial, grows by (1 + gamma) otherwise; delta is
    // put on the eps-sphere, then into the box.
    for (int64_t r = 0; r < n; ++r) {
      eps[r] *= adv[r] ? 1 - config_.gamma : 1 + config_.gamma;
      if (options_.cap_at_worst_norm) eps[r] = std::min(eps[r], worst[r]);
    }
    std::vector<double> scale = host_rows(row_norms(delta, Norm::l2));
    for (int64_t r = 0; r < n; ++r) scale[r] = eps[r] / std::max(scale[r], kNormFloor);
    delta = scale_rows(delta, Tensor::from_vector<double>(scale, {n}));
    Tensor moved = ops::add(x0, delta);
    if (options_.quantize_levels > 0) {
      // round(x (levels - 1)) / (levels - 1), half to even as torch.round.
      const double q = options_.quantize_levels - 1;
      std::vector<double> v = host_rows(moved);
      for (double& e : v) e = std::nearbyint(e * q) / q;
      moved = from_host_rows(v, moved);
    }
    delta = ops::sub(clip_box(moved), x0);
  }
  return best;
}

}  // namespace afd::attacks
