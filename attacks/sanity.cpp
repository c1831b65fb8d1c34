#include "attacks/sanity.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>

#include "attacks/core.h"
#include "attacks/evaluate.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::attacks {

bool SanityReport::all_ok() const {
  return std::all_of(items.begin(), items.end(), [](const SanityItem& i) { return i.ok; });
}

std::string SanityReport::str() const {
  std::string s;
  for (const SanityItem& i : items) s += fmt::format("[{}] {}: {}\n", i.ok ? "ok" : "!!", i.name, i.detail);
  return s;
}

namespace {

double fraction(int64_t a, int64_t b) { return b ? static_cast<double>(a) / static_cast<double>(b) : 0; }

}  // namespace

SanityReport sanity_report(nn::UnaryModule& model, const Tensor& x, const Tensor& y, const SanityOptions& o) {
  AFD_CHECK(o.max_points >= 1 && o.batch_size >= 1 && o.pgd_steps >= 1,
            "sanity_report: max_points, batch_size and pgd_steps must be >= 1");
  AFD_CHECK(x.defined() && x.dim() >= 2 && y.defined() && y.dim() == 1 && y.size(0) == x.size(0),
            "sanity_report: expected x [N, ...] and labels [N], got {} and {}", x.str(), y.str());
  const int64_t n = std::min(x.size(0), o.max_points), nb = std::min(n, o.batch_size);
  Tensor xs = x.slice(0, n), ys = y.slice(0, n), xb = x.slice(0, nb), yb = y.slice(0, nb);
  EvalModeGuard eval_mode(model);
  SanityReport rep;

  // Randomised forward: 5 passes, same predictions and L2-normalised logits within 1e-4.
  {
    Tensor first = logits_of(model, xb);
    Tensor unit0 = normalize_rows(first, Norm::l2);
    std::vector<int64_t> pred0 = ops::argmax(first, 1).to(Device::cpu()).to_vector<int64_t>();
    double worst = 0;
    int64_t changed = 0;
    for (int k = 1; k < 5; ++k) {
      Tensor again = logits_of(model, xb);
      worst = std::max(worst, ops::max(row_norms(ops::sub(normalize_rows(again, Norm::l2), unit0), Norm::l2).reshape({1, -1}), 1)
                                  .first.item_double());
      std::vector<int64_t> pred = ops::argmax(again, 1).to(Device::cpu()).to_vector<int64_t>();
      for (size_t i = 0; i < pred.size(); ++i) changed += pred[i] != pred0[i];
    }
    bool ok = worst <= 1e-4 && changed == 0;
    rep.items.push_back({"randomised forward", ok,
                         fmt::format("5 passes on {} points: max logit distance {:.3g}, {} predictions changed{}", nb,
                                     worst, changed, ok ? "" : " (randomised model: use EoT attacks)")});
  }
  // Logits, not probabilities.
  const Tensor logits = logits_of(model, xb);
  const int64_t classes = logits.size(1);
  {
    std::vector<double> z = host_rows(logits);
    double lo = *std::min_element(z.begin(), z.end()), hi = *std::max_element(z.begin(), z.end()), worst_sum = 0;
    for (int64_t i = 0; i < nb; ++i) {
      double s = 0;
      for (int64_t k = 0; k < classes; ++k) s += z[i * classes + k];
      worst_sum = std::max(worst_sum, std::fabs(s - 1));
    }
    bool probabilities = hi < 1 + 1e-5 && lo > -1e-5 && worst_sum < 1e-5;
    rep.items.push_back({"logits", !probabilities,
                         fmt::format("outputs in [{:.3g}, {:.3g}], rows sum to 1 within {:.3g}{}", lo, hi, worst_sum,
                                     probabilities ? " (looks like softmax: give the attacks logits)" : "")});
  }
  // Input gradients of the CE loss: none all-zero, NaN or Inf.
  {
    LossInputs in{&yb, nullptr, nullptr};
    LossGrad lg = loss_and_grad(model, xb, LossKind::ce, in, false, 1.0);
    std::vector<double> g = host_rows(lg.grad);
    const int64_t d = nb ? static_cast<int64_t>(g.size()) / nb : 0;
    int64_t zero = 0, bad = 0;
    for (int64_t i = 0; i < nb; ++i) {
      double s = 0;
      for (int64_t j = 0; j < d; ++j) {
        double v = g[i * d + j];
        if (!std::isfinite(v)) ++bad;
        s += std::fabs(v);
      }
      zero += s == 0;
    }
    bool ok = zero == 0 && bad == 0;
    rep.items.push_back({"gradients", ok,
                         fmt::format("{} of {} points have an all-zero input gradient, {} NaN/Inf entries{}", zero, nb,
                                     bad, ok ? "" : " (masked gradients: try Square or BPDA)")});
  }
  // Attack-based checks on the first n points.
  EvalOptions quiet;
  quiet.batch_size = o.batch_size;
  quiet.progress = false;
  const std::string pgd = std::string("pgd-") + norm_name(o.norm);
  auto pgd_accuracy = [&](int steps, double eps) {
    AttackConfig c;
    c.norm = o.norm;
    c.steps = steps;
    c.relative_step = true;
    c.step_size = 2.5 / steps;  // Madry et al.: 2.5 eps / steps
    c.seed = o.seed;
    return robust_accuracy(model, pgd, c, xs, ys, {eps}, quiet).robust_accuracy[0];
  };
  {
    AttackConfig c;
    c.steps = o.pgd_steps;
    c.relative_step = true;
    c.step_size = 2.5 / o.pgd_steps;
    double acc = robust_accuracy(model, "pgd-linf", c, xs, ys, {1.0}, quiet).robust_accuracy[0];
    double chance = 1.0 / static_cast<double>(classes);
    bool ok = acc <= chance;
    rep.items.push_back({"unbounded budget", ok,
                         fmt::format("PGD-Linf eps 1: accuracy {:.2f}% (chance {:.2f}%){}", 100 * acc, 100 * chance,
                                     ok ? "" : " (an unbounded attack must win: gradient masking or a bug)")});
  }
  const double acc_s = pgd_accuracy(o.pgd_steps, o.eps), acc_2s = pgd_accuracy(2 * o.pgd_steps, o.eps);
  {
    bool ok = acc_s - acc_2s <= 0.02;
    rep.items.push_back({"convergence", ok,
                         fmt::format("{} eps {:g}: {:.2f}% with {} steps, {:.2f}% with {}{}", pgd, o.eps, 100 * acc_s,
                                     o.pgd_steps, 100 * acc_2s, 2 * o.pgd_steps,
                                     ok ? "" : " (not converged: use more steps)")});
  }
  if (o.norm == Norm::linf) {
    AttackConfig c;
    double acc_fgsm = robust_accuracy(model, "fgsm", c, xs, ys, {o.eps}, quiet).robust_accuracy[0];
    double best = std::min(acc_s, acc_2s);
    bool ok = best <= acc_fgsm;
    rep.items.push_back({"iterative vs single step", ok,
                         fmt::format("FGSM {:.2f}%, PGD {:.2f}%{}", 100 * acc_fgsm, 100 * best,
                                     ok ? "" : " (PGD weaker than FGSM: a masked or noisy gradient)")});
  }
  if (o.autoattack) {
    const AutoAttackReport& aa = *o.autoattack;
    auto it = std::find(aa.attacks.begin(), aa.attacks.end(), "square");
    if (it != aa.attacks.end() && static_cast<size_t>(it - aa.attacks.begin()) < aa.robust_accuracy.size()) {
      size_t k = static_cast<size_t>(it - aa.attacks.begin());
      double before = k == 0 ? aa.clean_accuracy : aa.robust_accuracy[k - 1], after = aa.robust_accuracy[k];
      bool ok = before - after <= 0.002;
      rep.items.push_back({"square vs white-box", ok,
                           fmt::format("Square lowered robust accuracy from {:.2f}% to {:.2f}%{}", 100 * before,
                                       100 * after, ok ? "" : " (a black-box attack beat the white-box ones: gradient masking)")});
    }
  }
  if (o.transfer_source) {
    AttackConfig c;
    c.norm = o.norm;
    c.eps = o.eps;
    c.steps = 2 * o.pgd_steps;
    c.relative_step = true;
    c.step_size = 2.5 / c.steps;
    auto atk = make_attack(pgd, c);
    int64_t robust = 0;
    std::vector<int64_t> labels = ys.to(Device::cpu()).to_vector<int64_t>();
    for (int64_t b = 0; b < n; b += o.batch_size) {
      Tensor xr = xs.slice(b, std::min(n, b + o.batch_size)), yr = ys.slice(b, std::min(n, b + o.batch_size));
      Tensor adv = atk->perturb(*o.transfer_source, xr, yr).x_adv;  // crafted on the source
      std::vector<int64_t> clean = ops::argmax(logits_of(model, xr), 1).to(Device::cpu()).to_vector<int64_t>();
      std::vector<int64_t> pred = ops::argmax(logits_of(model, adv), 1).to(Device::cpu()).to_vector<int64_t>();
      for (size_t j = 0; j < pred.size(); ++j) robust += clean[j] == labels[b + j] && pred[j] == labels[b + j];
    }
    double transfer = fraction(robust, n), white = std::min(acc_s, acc_2s);
    bool ok = white <= transfer;
    rep.items.push_back({"white-box vs transfer", ok,
                         fmt::format("transfer from the source model {:.2f}%, white-box {:.2f}%{}", 100 * transfer,
                                     100 * white, ok ? "" : " (transfer beat white-box: gradient masking)")});
  }
  return rep;
}

}  // namespace afd::attacks
