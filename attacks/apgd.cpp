// APGD (Croce and Hein 2020) as fra31/auto-attack's autopgd_base.py runs it: specs/attacks.md,
// Appendix B section 2. The algorithm and its quirks are described in attacks/apgd.h.
//
// Tensors hold the iterates ([n, ...], dtype and device of x); the per-sample bookkeeping (losses,
// step sizes, flags: n values) lives on the host. The L1 pieces sort, so they run on host rows.
#include "attacks/apgd.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>

#include "attacks/core.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::attacks {

// ---- the box-aware L1 projection (AutoAttack's L1_projection) --------------------------------
namespace {

// One row: x, y [d] (x in [0, 1]), radius eps; writes dy [d]. Notation of apgd.h: the magnitude
// of coordinate j shrinks by r_j(theta) = clamp(theta, -u_j, |y_j|), where -u_j >= 0 is the
// shrink the box forces (u_j = min(0, 1 - x_j - y_j, x_j + y_j)); theta solves
// R(theta) = sum_j r_j(theta) = ||y||_1 - eps. R is piecewise linear and non-decreasing, with
// slope #{j : -u_j <= theta < |y_j|}, so its kinks are the 2d breakpoints {-u_j} (slope +1) and
// {|y_j|} (slope -1).
void box_l1_projection_row(const double* x, const double* y, double eps, int64_t d, double* dy,
                           std::vector<std::pair<double, int>>& kinks, std::vector<double>& reduction,
                           std::vector<int64_t>& slope) {
  double box_shrink = 0, l1 = 0;  // s1 = -sum u, ||y||_1
  for (int64_t j = 0; j < d; ++j) {
    const double u = std::min(0.0, std::min(1.0 - x[j] - y[j], x[j] + y[j]));
    dy[j] = u;  // |y_j| + u_j: the box alone
    box_shrink -= u;
    l1 += std::fabs(y[j]);
  }
  const double c = eps - l1;  // -(the shrink the ball needs)
  auto signed_shrink = [&](double theta) {
    for (int64_t j = 0; j < d; ++j) {
      const double a = std::fabs(y[j]), r = std::min(std::max(-dy[j], theta), a);
      dy[j] = y[j] > 0 ? -r : (y[j] < 0 ? r : 0.0);
    }
  };
  if (!(box_shrink + c < 0)) {  // the box-clipped point is inside the ball
    for (int64_t j = 0; j < d; ++j) dy[j] = y[j] > 0 ? dy[j] : (y[j] < 0 ? -dy[j] : 0.0);
    return;
  }
  const int64_t m = 2 * d;
  kinks.resize(m);
  for (int64_t j = 0; j < d; ++j) {
    kinks[j] = {-dy[j], +1};
    kinks[d + j] = {std::fabs(y[j]), -1};
  }
  std::sort(kinks.begin(), kinks.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  // slope[q]: R's slope right after kink q. reduction[q] = R(kink q + 1), accumulated gap by gap
  // from R(kink 0) = s1; the reference pads the last "next kink" with 0 (where slope is 0 anyway).
  slope.resize(m);
  reduction.resize(m);
  double r = box_shrink;
  int64_t s = 0;
  for (int64_t q = 0; q < m; ++q) {
    s += kinks[q].second;
    slope[q] = s;
    const double next = q + 1 < m ? kinks[q + 1].first : 0.0;
    r += (next - kinks[q].first) * static_cast<double>(s);
    reduction[q] = r;
  }
  // Binary search, ceil(log2 2d) halvings from [0, 2d - 1]: lb ends at the last q with
  // R(kink q + 1) < ||y||_1 - eps, so theta lies on the segment after kink lb + 1.
  int iterations = 0;
  while ((int64_t{1} << iterations) < m) ++iterations;
  int64_t lb = 0, ub = m - 1;
  for (int it = 0; it < iterations; ++it) {
    const int64_t mid = (lb + ub) / 2;
    if (reduction[mid] + c < 0) lb = mid; else ub = mid;
  }
  double theta;
  if (!(reduction[lb] + c < 0)) {
    // Not in the reference: the target lies on the first segment [kink 0, kink 1] (lb never
    // moved; only when at most one coordinate is free of the box, e.g. d = 1). The reference
    // extrapolates from kink 1 with the wrong slope (-inf for d = 1: no projection at all); the
    // slope there is 1 (kink 0 is a lone -u breakpoint).
    theta = kinks[0].first + (-box_shrink - c) / static_cast<double>(std::max<int64_t>(slope[0], 1));
  } else if (slope[lb + 1] <= 0) {
    // Not in the reference (0/0 or x/0 there): the target is at R's end (eps ~ 0 up to rounding):
    // every coordinate shrinks to 0.
    theta = kinks[m - 1].first;
  } else {
    theta = (-reduction[lb] - c) / static_cast<double>(slope[lb + 1]) + kinks[lb + 1].first;
  }
  signed_shrink(theta);
}

}  // namespace

Tensor box_l1_projection(const Tensor& x, const Tensor& y, const std::vector<double>& eps) {
  AFD_CHECK(x.defined() && y.defined() && x.shape() == y.shape() && x.dim() >= 1,
            "box_l1_projection: x and y must have one shape [n, ...], got {} and {}",
            x.defined() ? x.str() : "undefined", y.defined() ? y.str() : "undefined");
  const int64_t n = x.size(0), d = n == 0 ? 0 : x.numel() / n;
  AFD_CHECK(static_cast<int64_t>(eps.size()) == n, "box_l1_projection: {} radii for {} rows", eps.size(), n);
  std::vector<double> hx = host_rows(x), hy = host_rows(y), dy(hy.size());
  std::vector<std::pair<double, int>> kinks;
  std::vector<double> reduction;
  std::vector<int64_t> slope;
  for (int64_t i = 0; i < n; ++i)
    box_l1_projection_row(hx.data() + i * d, hy.data() + i * d, eps[i], d, dy.data() + i * d, kinks, reduction,
                          slope);
  return from_host_rows(dy, y);
}

// ---- the attack ------------------------------------------------------------------------------
struct APGD::Rows {
  nn::UnaryModule* model;
  Tensor x;             // [n, ...] clean points
  Tensor y;             // i64 [n]
  Tensor target;        // i64 [n] or undefined
  Tensor clean_logits;  // [n, K] for the kl loss, else undefined
  std::vector<double> eps;
};

namespace {

// A row mask [n, 1, ..., 1] in like's dtype and device, for ops::where.
Tensor row_mask(const std::vector<uint8_t>& m, const Tensor& like) {
  std::vector<double> v(m.begin(), m.end());
  return as_rows(v, like);
}

// v / (||v_i||_p + 1e-12) per row: AutoAttack's normalize (a fixed 1e-12, added, not a floor).
Tensor normalize_plus(const Tensor& v, Norm p) {
  return ops::div(v, as_rows(ops::add_scalar(row_norms(v, p), 1e-12), v));
}

// ||v_i||_0 per row, on the host.
std::vector<double> l0_rows(const Tensor& v) {
  const int64_t n = v.size(0), d = n == 0 ? 0 : v.numel() / n;
  std::vector<double> h = host_rows(v), out(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) out[i] += h[i * d + j] != 0;
  return out;
}

}  // namespace

APGD::APGD(AttackConfig config, bool use_largereps, std::string name)
    : Attack(config), use_largereps_(use_largereps), name_(std::move(name)) {
  const LossKind l = config.loss;
  AFD_CHECK(!(config.targeted && (l == LossKind::dlr || l == LossKind::dlr_targeted)),
            "apgd: a targeted config needs the ce or cw loss (got {}); dlr-targeted takes target labels in "
            "perturb without config.targeted, and succeeds on any misclassification (APGD-T)", loss_name(l));
  AFD_CHECK(!use_largereps || config.norm == Norm::l1, "apgd: use_largereps needs the l1 norm, got {}",
            norm_name(config.norm));
}

std::string APGD::name() const {
  if (!name_.empty()) return name_;
  switch (config_.loss) {
    case LossKind::dlr_targeted: return "apgd-t";
    default: return std::string("apgd-") + loss_name(config_.loss);
  }
}

std::vector<int> APGD::checkpoint_iterations(int n_iter, Norm norm) {
  std::vector<int> out;
  const bool l1 = norm == Norm::l1;
  // The constants are int() of a double product, as Python computes them.
  int k = l1 ? std::max(static_cast<int>(0.04 * n_iter), 1) : std::max(static_cast<int>(0.22 * n_iter), 1);
  const int k_min = std::max(static_cast<int>(0.06 * n_iter), 1);
  const int decrement = std::max(static_cast<int>(0.03 * n_iter), 1);
  for (int i = 0, counter = 0; i < n_iter; ++i) {
    if (++counter < k) continue;
    out.push_back(i);
    counter = 0;
    if (!l1) k = std::max(k - decrement, k_min);
  }
  return out;
}

APGDRun APGD::attack_once(const Rows& r, const Tensor& x_init, int n_iter, Generator* gen) const {
  const Norm norm = config_.norm;
  const Tensor& x = r.x;
  const int64_t n = x.size(0), d = n == 0 ? 0 : x.numel() / n;
  // The reference's scalar bookkeeping (step sizes, sparsity ratios) runs in x's float type;
  // wp() rounds a value to it so the f32 and f64 reference runs are both reproduced.
  const bool f32 = x.dtype() == DType::f32;
  auto wp = [f32](double v) { return f32 ? static_cast<double>(static_cast<float>(v)) : v; };
  const double alpha = norm == Norm::l1 ? 1.0 : 2.0;

  // ---- the start: x + eps t / (||t|| + 1e-12), t ~ U(-1, 1)^d (Linf) or N(0, I) (L2, on the
  // sphere); L1: the box-aware projection of x + t, t ~ N(0, I). Then clamped to the box.
  Tensor x_adv;
  if (x_init.defined()) {
    AFD_CHECK(x_init.shape() == x.shape(), "{}: x_init must have the shape of x {}, got {}", name(),
              shape_str(x.shape()), x_init.str());
    x_adv = x_init.to(x.dtype()).to(x.device());
  } else {
    AFD_CHECK(gen != nullptr, "{}: a random start needs a generator", name());
    if (norm == Norm::l1) {
      Tensor t = randn(x.shape(), *gen, x.dtype(), x.device());
      x_adv = ops::add(x, ops::add(t, box_l1_projection(x, t, r.eps)));
    } else {
      Tensor t = norm == Norm::linf ? rand(x.shape(), *gen, x.dtype(), x.device(), -1.0, 1.0)
                                    : randn(x.shape(), *gen, x.dtype(), x.device());
      x_adv = ops::add(x, ops::mul(as_rows(r.eps, x), normalize_plus(t, norm)));
    }
  }
  x_adv = clip_box(x_adv);

  // ---- loss, gradient and misclassification at an iterate -----------------------------------
  const bool targeted = config_.targeted;
  const double sign = targeted ? -1.0 : 1.0;  // a targeted config ascends -L(x, target)
  LossInputs in{&r.y, &r.target, &r.clean_logits};
  std::vector<double> loss;
  std::vector<uint8_t> fooled_now;
  auto evaluate = [&](const Tensor& xa) {
    LossGrad lg = loss_and_grad(*r.model, xa, config_.loss, in, targeted, sign);
    loss = lg.loss.to(Device::cpu()).to(DType::f64).to_vector<double>();
    for (double& l : loss) l *= sign;
    fooled_now = success_mask(lg.logits, r.y, r.target, targeted).to_vector<uint8_t>();
    return lg.grad;
  };

  APGDRun run;
  Tensor grad = evaluate(x_adv);
  Tensor x_best = x_adv, x_best_adv = x_adv, grad_best = grad;
  std::vector<double> loss_best = loss;
  std::vector<uint8_t> fooled = fooled_now;

  std::vector<double> step(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) step[i] = wp(alpha * r.eps[i]);
  Tensor x_old = x_adv;
  // Linf / L2 checkpoint state. The constants come from config.steps (AutoAttack's __init__);
  // n_iter differs from it only in the L1 largereps stages, where L1's own k applies.
  const int n_total = config_.steps;
  const int k_min = std::max(static_cast<int>(0.06 * n_total), 1);
  const int decrement = std::max(static_cast<int>(0.03 * n_total), 1);
  int k = norm == Norm::l1 ? std::max(static_cast<int>(0.04 * n_iter), 1)
                           : std::max(static_cast<int>(0.22 * n_total), 1);
  int counter = 0;
  std::vector<double> loss_steps(static_cast<size_t>(n_iter) * n, 0.0);  // L[i][row], zeros (the wrap)
  std::vector<double> loss_best_last = loss_best;
  std::vector<uint8_t> reduced_last(static_cast<size_t>(n), 1);
  // L1 state: the kept fraction of coordinates and the sparsity of x_best at the last checkpoint.
  std::vector<double> topk(static_cast<size_t>(n), wp(0.2)), sp_old(static_cast<size_t>(n), static_cast<double>(d));
  if (norm == Norm::l1 && x_init.defined()) {
    sp_old = l0_rows(ops::sub(x_adv, x));
    for (int64_t i = 0; i < n; ++i) topk[i] = wp(wp(sp_old[i] / static_cast<double>(d)) / 1.5);
  }

  // Linf: the ball as [x - eps, x + eps]; P(v) = clamp(min(max(v, lo), hi), 0, 1) (reference order).
  Tensor lo, hi;
  if (norm == Norm::linf) {
    Tensor e = as_rows(r.eps, x);
    lo = ops::sub(x, e);
    hi = ops::add(x, e);
  }
  auto project_linf = [&](const Tensor& v) { return clip_box(ops::minimum(ops::maximum(v, lo), hi)); };
  // L2: P(v) = clamp(x + (v - x) / (||v - x|| + 1e-12) min(eps, ||v - x||), 0, 1).
  auto project_l2 = [&](const Tensor& v) {
    Tensor w = ops::sub(v, x);
    std::vector<double> nrm = row_norms(w, Norm::l2).to(Device::cpu()).to(DType::f64).to_vector<double>();
    std::vector<double> scale(nrm.size());
    for (size_t i = 0; i < nrm.size(); ++i) scale[i] = std::min(r.eps[i], nrm[i]);
    return clip_box(ops::add(x, ops::mul(normalize_plus(w, Norm::l2), as_rows(scale, w))));
  };
  // L1: a step of eta sign(g) / ||sign(g)||_1 on the coordinates with |g| >= the
  // int((1 - topk) d)-th smallest |g|, then x + dy + box_l1_projection(x, dy) with dy = x1 - x.
  const std::vector<double> hx = norm == Norm::l1 ? host_rows(x) : std::vector<double>();
  auto l1_step = [&](const Tensor& xa, const Tensor& g) {
    std::vector<double> hg = host_rows(g), ha = host_rows(xa), delta(ha.size()), dy(ha.size()), mag(d);
    for (int64_t i = 0; i < n; ++i) {
      const double* gi = hg.data() + i * d;
      for (int64_t j = 0; j < d; ++j) mag[j] = std::fabs(gi[j]);
      double q = std::clamp(wp(wp(1.0 - topk[i]) * static_cast<double>(d)), 0.0, static_cast<double>(d - 1));
      auto at = mag.begin() + static_cast<int64_t>(q);
      std::nth_element(mag.begin(), at, mag.end());
      const double threshold = *at;
      double count = 0;  // ||sign(sparse g)||_1
      for (int64_t j = 0; j < d; ++j) count += std::fabs(gi[j]) >= threshold && gi[j] != 0;
      for (int64_t j = 0; j < d; ++j) {
        const double s = std::fabs(gi[j]) >= threshold ? static_cast<double>((gi[j] > 0) - (gi[j] < 0)) : 0.0;
        delta[i * d + j] = ha[i * d + j] + step[i] * s / (count + 1e-10) - hx[i * d + j];
      }
    }
    std::vector<std::pair<double, int>> kinks;
    std::vector<double> reduction;
    std::vector<int64_t> slope;
    for (int64_t i = 0; i < n; ++i)
      box_l1_projection_row(hx.data() + i * d, delta.data() + i * d, r.eps[i], d, dy.data() + i * d, kinks,
                            reduction, slope);
    for (size_t j = 0; j < delta.size(); ++j) delta[j] = hx[j] + (delta[j] + dy[j]);
    return from_host_rows(delta, xa);
  };

  for (int i = 0; i < n_iter; ++i) {
    // ---- the step --------------------------------------------------------------------------
    Tensor momentum = ops::sub(x_adv, x_old);  // x_k - x_{k-1}
    x_old = x_adv;
    const double a = i > 0 ? 0.75 : 1.0;
    if (norm == Norm::linf) {
      Tensor z = project_linf(ops::add(x_adv, ops::mul(as_rows(step, x), ops::sign(grad))));
      x_adv = project_linf(ops::add(ops::add(x_adv, ops::mul_scalar(ops::sub(z, x_adv), a)),
                                    ops::mul_scalar(momentum, 1.0 - a)));
    } else if (norm == Norm::l2) {
      Tensor z = project_l2(ops::add(x_adv, ops::mul(as_rows(step, x), normalize_plus(grad, Norm::l2))));
      x_adv = project_l2(ops::add(ops::add(x_adv, ops::mul_scalar(ops::sub(z, x_adv), a)),
                                  ops::mul_scalar(momentum, 1.0 - a)));
    } else {
      x_adv = l1_step(x_adv, grad);
    }

    // ---- loss and gradient at the new iterate; the bests -----------------------------------
    grad = evaluate(x_adv);
    for (int64_t j = 0; j < n; ++j) fooled[j] |= fooled_now[j];
    x_best_adv = ops::where(row_mask(fooled_now, x), x_adv, x_best_adv);  // latest misclassified
    std::vector<uint8_t> improved(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      loss_steps[static_cast<size_t>(i) * n + j] = loss[j];
      improved[j] = loss[j] > loss_best[j];
      if (improved[j]) loss_best[j] = loss[j];
    }
    Tensor improved_rows = row_mask(improved, x);
    x_best = ops::where(improved_rows, x_adv, x_best);
    grad_best = ops::where(improved_rows, grad, grad_best);

    // ---- checkpoint ------------------------------------------------------------------------
    if (++counter < k) continue;
    run.checkpoints.push_back(i);
    counter = 0;
    std::vector<uint8_t> restart(static_cast<size_t>(n));
    if (norm != Norm::l1) {
      // Oscillation: loss increases among the last k steps, L[i - c] > L[i - c - 1] for c < k;
      // index -1 wraps to L[N - 1] as in Python (still 0 at the first checkpoint).
      const double threshold = wp(k * config_.rho);
      for (int64_t j = 0; j < n; ++j) {
        int increases = 0;
        for (int c = 0; c < k; ++c) {
          const int now = i - c, before = ((i - c - 1) % n_iter + n_iter) % n_iter;
          increases += loss_steps[static_cast<size_t>(now) * n + j] > loss_steps[static_cast<size_t>(before) * n + j];
        }
        const bool oscillating = increases <= threshold;
        const bool stalled = !reduced_last[j] && loss_best_last[j] >= loss_best[j];
        restart[j] = oscillating || stalled;
        reduced_last[j] = restart[j];
        loss_best_last[j] = loss_best[j];
        if (restart[j]) step[j] /= 2;
      }
      k = std::max(k - decrement, k_min);
    } else {
      // Sparsity of x_best: where it dropped by 5 % the step resets to alpha eps, else it shrinks.
      std::vector<double> sp = l0_rows(ops::sub(x_best, x));
      for (int64_t j = 0; j < n; ++j) {
        const double full = wp(alpha * r.eps[j]);
        restart[j] = wp(sp[j] / sp_old[j]) < wp(0.95);  // 0/0 = NaN: no
        topk[j] = wp(wp(sp[j] / static_cast<double>(d)) / 1.5);
        step[j] = restart[j] ? full : wp(step[j] / 1.5);
        step[j] = std::clamp(step[j], wp(alpha * r.eps[j] / 10.0), full);
        sp_old[j] = sp[j];
      }
    }
    Tensor restart_rows = row_mask(restart, x);
    x_adv = ops::where(restart_rows, x_best, x_adv);  // x_old is not reset (decision 10)
    grad = ops::where(restart_rows, grad_best, grad);
  }

  run.x_best = x_best;
  run.x_best_adv = x_best_adv;
  run.x_last = x_adv;
  run.loss_best = Tensor::from_vector<double>(loss_best, {n});
  run.fooled = Tensor::from_vector<uint8_t>(fooled, {n});
  return run;
}

APGDRun APGD::attack_largereps(const Rows& r, Generator& gen) const {
  // Stages eps x {3, 2, 1} with ceil(0.3 N), ceil(0.3 N) and the rest of the iterations (at least 0).
  const int n_total = config_.steps;
  const int first = static_cast<int>(std::ceil(0.3 * n_total));
  const int iters[3] = {first, first, std::max(n_total - 2 * first, 0)};
  const double scale[3] = {3.0, 2.0, 1.0};
  auto stage_rows = [&r](double s) {
    Rows rs = r;
    for (double& e : rs.eps) e *= s;
    return rs;
  };
  // x + t + dy: the start x + N(0, I) brought into the 3 eps ball and the box.
  auto project = [&r](const Tensor& x_init, const std::vector<double>& eps) {
    Tensor t = ops::sub(x_init, r.x);
    return ops::add(r.x, ops::add(t, box_l1_projection(r.x, t, eps)));
  };
  Tensor x_init = ops::add(r.x, randn(r.x.shape(), gen, r.x.dtype(), r.x.device()));
  x_init = project(x_init, stage_rows(3.0).eps);
  APGDRun out;
  for (int s = 0; s < 3; ++s) {
    Rows rs = stage_rows(scale[s]);
    x_init = project(x_init, rs.eps);
    out = attack_once(rs, x_init, iters[s], &gen);
    x_init = out.x_best;
  }
  return out;  // only the last stage's fooled flags and x_best_adv count
}

APGDRun APGD::attack_any(const Rows& r, Generator& gen) const {
  return use_largereps_ ? attack_largereps(r, gen) : attack_once(r, Tensor(), config_.steps, &gen);
}

APGDRun APGD::single_run(nn::UnaryModule& model, const Tensor& x, const Tensor& y, const Tensor& target,
                         const std::vector<double>& eps, const Tensor& x_init, Generator* gen) {
  AFD_CHECK(x.defined() && x.dim() >= 2 && (x.dtype() == DType::f32 || x.dtype() == DType::f64),
            "{}: expected a float batch x [N, ...], got {}", name(), x.defined() ? x.str() : "an undefined tensor");
  AFD_CHECK(static_cast<int64_t>(eps.size()) == x.size(0), "{}: {} budgets for {} points", name(), eps.size(),
            x.size(0));
  EvalModeGuard eval_mode(model);
  Rows r{&model, x, y, target, config_.loss == LossKind::kl ? logits_of(model, x) : Tensor(), eps};
  Generator own(config_.seed);
  return attack_once(r, x_init, config_.steps, gen ? gen : &own);
}

Tensor APGD::run(const Problem& p, Generator& gen) {
  const int64_t n = p.x.size(0);
  Tensor out = p.x.clone();  // the clean image for every point not fooled
  // AutoAttack attacks only the points the model gets right; the others come back clean.
  Tensor clean_logits = logits_of(*p.model, p.x);
  std::vector<uint8_t> done = success_mask(clean_logits, p.y, p.target, config_.targeted).to_vector<uint8_t>();

  // Attacks the rows not done yet with the given targets [n] (or p.target) and writes back what
  // one run returns: x_best_adv where it fooled, the last iterate elsewhere when asked.
  auto attack_rest = [&](const Tensor& target) {
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < n; ++i)
      if (!done[i]) idx.push_back(i);
    if (idx.empty()) return;
    Rows r{p.model, take_rows(p.x, idx), take_rows(p.y, idx), take_rows(target, idx), take_rows(p.clean_logits, idx),
           {}};
    for (int64_t i : idx) r.eps.push_back(p.eps[i]);
    APGDRun res = attack_any(r, gen);
    std::vector<uint8_t> fooled = res.fooled.to_vector<uint8_t>();
    for (size_t j = 0; j < idx.size(); ++j) {
      const auto jj = static_cast<int64_t>(j);
      if (fooled[j]) out.select(idx[j]).copy_(res.x_best_adv.select(jj));
      else if (config_.return_last_iterate) out.select(idx[j]).copy_(res.x_last.select(jj));
      done[idx[j]] = done[idx[j]] || fooled[j];
    }
  };

  if (config_.loss != LossKind::dlr_targeted) {
    attack_rest(p.target);  // one run; Attack::perturb does the restarts
    return out;
  }
  // APGD-T: for each target (the given one, or the t-th largest clean logit, t = 2 .. n_target_classes
  // + 1), config.restarts runs on the points not fooled yet.
  const int64_t classes = clean_logits.size(1);
  std::vector<Tensor> targets;
  if (p.target.defined()) {
    targets.push_back(p.target);
  } else {
    AFD_CHECK(config_.n_target_classes + 1 <= classes,
              "{}: n_target_classes + 1 = {} exceeds the model's {} classes", name(), config_.n_target_classes + 1,
              classes);
    std::vector<double> z = host_rows(clean_logits);
    std::vector<int64_t> order(static_cast<size_t>(classes));
    std::vector<std::vector<int64_t>> by_rank(static_cast<size_t>(config_.n_target_classes),
                                              std::vector<int64_t>(static_cast<size_t>(n)));
    for (int64_t i = 0; i < n; ++i) {
      const double* zi = z.data() + i * classes;
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [zi](int64_t a, int64_t b) { return zi[a] < zi[b]; });
      for (int t = 2; t <= config_.n_target_classes + 1; ++t) by_rank[t - 2][i] = order[classes - t];
    }
    for (const auto& t : by_rank) targets.push_back(Tensor::from_vector<int64_t>(t, {n}).to(p.y.device()));
  }
  for (const Tensor& t : targets)
    for (int r = 0; r < config_.restarts; ++r) attack_rest(t);
  return out;
}

}  // namespace afd::attacks
