#include "attacks/attack.h"

#include <cmath>
#include <limits>

#include "attacks/core.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::attacks {

int64_t AttackResult::success_count() const {
  int64_t c = 0;
  for (uint8_t s : success.to_vector<uint8_t>()) c += s != 0;
  return c;
}

namespace {

void check_labels(const Tensor& t, const char* what, int64_t n) {
  AFD_CHECK(t.defined(), "perturb: {} labels are required", what);
  AFD_CHECK(t.dtype() == DType::i64 && t.dim() == 1 && t.size(0) == n, "perturb: expected {} labels i64 [{}], got {}",
            what, n, t.str());
}

}  // namespace

AttackResult Attack::perturb(nn::UnaryModule& model, const Tensor& x, const Tensor& y, const Tensor& target,
                             const Tensor& eps) {
  const std::string attack = name();
  config_.validate(attack.c_str());
  AFD_CHECK(x.defined() && x.dim() >= 2 && (x.dtype() == DType::f32 || x.dtype() == DType::f64),
            "{}: expected a float batch x [N, ...], got {}", attack, x.defined() ? x.str() : "an undefined tensor");
  const int64_t n = x.size(0);
  check_labels(y, "true", n);
  if (config_.targeted || config_.loss == LossKind::dlr_targeted) {
    if (config_.targeted || target.defined()) check_labels(target, "target", n);
  }
  if (x.numel() > 0) {
    Tensor flat = x.reshape({1, -1});
    double lo = -ops::max(ops::neg(flat), 1).first.item_double(), hi = ops::max(flat, 1).first.item_double();
    AFD_CHECK(lo >= 0 && hi <= 1, "{}: inputs must lie in [0, 1] (normalisation belongs inside the model), got "
              "values in [{}, {}]", attack, lo, hi);
  }
  std::vector<double> eps_rows(static_cast<size_t>(n), config_.eps);
  if (eps.defined()) {
    AFD_CHECK(eps.dim() == 1 && eps.size(0) == n, "{}: per-sample eps must be [{}], got {}", attack, n, eps.str());
    eps_rows = eps.to(Device::cpu()).to_vector<double>();
    for (int64_t i = 0; i < n; ++i)
      AFD_CHECK(std::isfinite(eps_rows[i]) && eps_rows[i] >= 0, "{}: eps[{}] = {} must be finite and >= 0", attack,
                i, eps_rows[i]);
  }

  EvalModeGuard eval_mode(model);
  Tensor clean_logits = config_.loss == LossKind::kl ? logits_of(model, x) : Tensor();
  AttackResult result;
  result.x_adv = x.clone();
  std::vector<uint8_t> success(static_cast<size_t>(n), 0);
  std::vector<double> best_loss(static_cast<size_t>(n), -std::numeric_limits<double>::infinity());
  std::vector<int64_t> active(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) active[i] = i;

  Generator gen(config_.seed);
  const int runs = randomized() ? config_.restarts : 1;
  for (int r = 0; r < runs && !active.empty(); ++r) {
    const bool everyone = static_cast<int64_t>(active.size()) == n;
    Problem p{&model, everyone ? x : take_rows(x, active), everyone ? y : take_rows(y, active),
              everyone ? target : take_rows(target, active), {}, everyone ? clean_logits : take_rows(clean_logits, active)};
    for (int64_t i : active) p.eps.push_back(eps_rows[i]);
    Tensor adv = run(p, gen);

    Tensor logits = logits_of(model, adv);
    std::vector<uint8_t> ok = success_mask(logits, p.y, p.target, config_.targeted).to_vector<uint8_t>();
    std::vector<double> loss;
    if (runs > 1) {
      NoGradGuard no_grad;
      LossInputs in{&p.y, &p.target, &p.clean_logits};
      loss = per_sample_loss(config_.loss, Var(logits), in, config_.targeted).data().to_vector<double>();
      if (config_.targeted) for (double& l : loss) l = -l;  // targeted attacks descend the loss
    }
    std::vector<int64_t> still;
    // Later restarts write rows into x_adv: it must own its storage (never alias x).
    if (everyone && r == 0) result.x_adv = adv.shares_storage(x) ? adv.clone() : adv;
    for (size_t j = 0; j < active.size(); ++j) {
      const int64_t i = active[j];
      const bool take = ok[j] || (runs > 1 && loss[j] > best_loss[i]);
      if (take && !(everyone && r == 0)) result.x_adv.select(i).copy_(adv.select(static_cast<int64_t>(j)));
      if (take && runs > 1) best_loss[i] = loss[j];
      success[i] = ok[j];
      if (!ok[j]) still.push_back(i);
    }
    active = std::move(still);
  }
  result.success = Tensor::from_vector<uint8_t>(success, {n});
  result.norms = row_norms(ops::sub(result.x_adv, x), config_.norm).to(Device::cpu()).to(DType::f64);
  return result;
}

}  // namespace afd::attacks

namespace afd::attacks {

LossGrad Attack::ascent(const Problem& p, const Tensor& x) const {
  LossInputs in{&p.y, &p.target, &p.clean_logits};
  return loss_and_grad(*p.model, x, config_.loss, in, config_.targeted, config_.targeted ? -1.0 : 1.0);
}

Tensor Attack::start_point(const Problem& p, Generator& gen) const {
  if (!config_.random_start) return p.x;
  return clip_box(ops::add(p.x, random_in_ball(p.x, p.eps, config_.norm, gen)));
}

std::vector<double> Attack::step_sizes(const Problem& p) const {
  std::vector<double> alpha;
  for (double e : p.eps) alpha.push_back(config_.step_for(e));
  return alpha;
}

}  // namespace afd::attacks
