// APGD, Auto-PGD (Croce and Hein, ICML 2020), as fra31/auto-attack's autopgd_base.py runs it
// (specs/attacks.md, Appendix B section 2, decisions 10 and 11), in Linf, L2 and L1 ("Mind the box",
// Croce and Hein, ICML 2021).
//
//   attacks::AttackConfig cfg;
//   cfg.norm = attacks::Norm::linf; cfg.eps = 8.0 / 255; cfg.steps = 100;  // n_iter
//   auto apgd = attacks::make_attack("apgd-ce", cfg);                      // or "apgd-dlr", "apgd-t"
//   attacks::AttackResult r = apgd->perturb(model, x, y);
//   // r.x_adv: a misclassified iterate where one was found, the clean x elsewhere
//
// One run (attack_single_run) from x_0, with the per-sample step eta_i = alpha eps_i (alpha = 2 in
// Linf and L2, 1 in L1) and N = config.steps iterations:
//   z       = P(x_k + eta sign(g_k))                  Linf   (L2: eta g_k / (||g_k||_2 + 1e-12))
//   x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1})),  a = 1 at k = 0, else 0.75 (momentum)
// P is the box [0, 1] after the eps-ball (Linf: clip each coordinate to [x - eps, x + eps]; L2:
// x + (v - x) / (||v - x||_2 + 1e-12) min(eps, ||v - x||_2)). L1 has no momentum: a step of eta
// sign(g) / ||sign(g)||_1 on the top-k |g|, then box_l1_projection. After each step the loss and
// gradient at x_{k+1} are computed; x_best keeps the highest loss (strict >) with its gradient,
// x_best_adv the latest misclassified iterate.
//
// Step-size checkpoints (Linf, L2): after k iterations since the last one (k starts at
// n_iter_2 = max(int(0.22 N), 1), then k <- max(k - size_decr, n_iter_min), size_decr =
// max(int(0.03 N), 1), n_iter_min = max(int(0.06 N), 1)), a sample halves its step and restarts from
// (x_best, grad_best) when
//   #{c < k : L[i - c] > L[i - c - 1]} <= rho k        (oscillation; "<=", the paper has "<")
//   or (the step was not reduced at the previous checkpoint and loss_best did not increase).
// Quirks kept (decision 10): at the first checkpoint L[i - k] is L[-1], which wraps to L[N - 1] = 0
// (not yet written); x_{k-1} of the momentum term is not reset by a restart from x_best.
// L1 checkpoints come every k = max(int(0.04 N), 1) iterations: with sparsity sp = ||x_best - x||_0,
// topk = sp / d / 1.5; where sp / sp_old < 0.95 the step resets to alpha eps and the run restarts
// from (x_best, grad_best), elsewhere the step shrinks by 1.5; the step stays in [alpha eps / 10,
// alpha eps].
//
// perturb(): Attack::perturb's restarts re-run APGD on the points not fooled yet (AutoAttack's
// n_restarts; every run draws a random start, so restarts always apply). A point the model already
// misclassifies is returned clean, unattacked (AutoAttack attacks only the clean-correct points).
// Points not fooled come back clean (AutoAttack), or as the last iterate with
// config.return_last_iterate (decision 11).
//
// Losses: ce, cw, dlr, kl ascend L(x, y); dlr_targeted ascends DLR-T(x, y, t) and succeeds on any
// misclassification (APGD-T). With a target tensor, perturb uses it; without, it tries the t-th
// largest clean logit for t = 2 .. n_target_classes + 1 on the points not fooled yet, with
// config.restarts runs per target (AutoAttack's APGDAttack_targeted; targets outside, restarts
// inside, so restarts happen in run() for this loss). config.targeted (ce, cw only) ascends
// -L(x, target) and succeeds when the prediction is the target (AutoAttack's ce-targeted).
#pragma once
#include <string>
#include <vector>

#include "attacks/attack.h"

namespace afd::attacks {

// The outcome of one APGD run (AutoAttack's attack_single_run) on n points.
struct APGDRun {
  Tensor x_best;      // [n, ...] the iterate with the highest loss (the start if none beat it)
  Tensor x_best_adv;  // [n, ...] the latest misclassified iterate; the start where none was
  Tensor x_last;      // [n, ...] the last iterate (x_best where the last iteration restarted from it)
  Tensor loss_best;   // f64 [n] on the CPU: the loss at x_best (the ascended value: -L(x, target)
                      // for a targeted config)
  Tensor fooled;      // u8 [n] on the CPU: some iterate, the start included, was misclassified
                      // (targeted config: predicted as the target); AutoAttack's 1 - acc
  std::vector<int> checkpoints;  // 0-based iterations i at which the `counter == k` check fired
};

// AutoAttack's L1_projection: the perturbation change dy with ||y + dy||_1 <= eps_i and
// 0 <= x + y + dy <= 1, the Euclidean projection of x + y onto that set. Per coordinate, with
// cap_j = |y_j| clipped by the box in the direction sign(y_j), the new magnitude is
//   |y_j + dy_j| = clamp(|y_j| - theta, 0, cap_j),
// theta = 0 when the box alone is enough, else the theta >= 0 for which they sum to eps. theta is
// found as the reference does: the 2d breakpoints {|y_j| - cap_j} and {|y_j|} sorted, the reduction
// at each one by a cumulative sum of slope x gap, a binary search of ceil(log2 2d) halvings for the
// segment that holds sum |y| - eps, and linear interpolation on it. x, y [n, ...] (x in [0, 1]);
// returns dy like y.
Tensor box_l1_projection(const Tensor& x, const Tensor& y, const std::vector<double>& eps);

class APGD : public Attack {
 public:
  // use_largereps (L1 only, AutoAttack's L1 standard version): run three stages with eps 3 eps,
  // 2 eps, eps and ceil(0.3 N), ceil(0.3 N), the rest of the N iterations, each starting from the
  // previous stage's x_best (the first from x + N(0, I) projected onto the 3 eps ball).
  // name: what name() reports (the registry passes its own); empty: "apgd-" + the loss ("apgd-ce",
  // "apgd-dlr", "apgd-cw", "apgd-kl"), "apgd-t" for dlr_targeted.
  explicit APGD(AttackConfig config, bool use_largereps = false, std::string name = "");
  std::string name() const override;
  bool use_largereps() const { return use_largereps_; }

  // The 0-based iterations at which the checkpoint test fires in a run of n_iter iterations:
  // Linf / L2: for 100, 21 40 56 69 79 86 92 98; L1: every max(int(0.04 n_iter), 1) iterations.
  static std::vector<int> checkpoint_iterations(int n_iter, Norm norm = Norm::linf);

  // One run from a given start (AutoAttack's attack_single_run(x, y, x_init)), in eval mode, with
  // the config's norm, loss, rho and steps. x [n, ...] in [0, 1]; y i64 [n]; target i64 [n] (for
  // dlr_targeted or a targeted config, else may be undefined); eps [n] per-sample budgets; x_init
  // like x, clamped to [0, 1] (undefined: a random start drawn from `gen`, or from a Generator seeded
  // with config.seed when gen is null).
  // No restarts and no clean-point filtering: every row is attacked.
  APGDRun single_run(nn::UnaryModule& model, const Tensor& x, const Tensor& y, const Tensor& target,
                     const std::vector<double>& eps, const Tensor& x_init, Generator* gen = nullptr);

 protected:
  Tensor run(const Problem& p, Generator& gen) override;
  // Every run draws a random start; dlr_targeted runs its (target, restart) loop inside run().
  bool randomized() const override { return config_.loss != LossKind::dlr_targeted; }

 private:
  struct Rows;  // the points of one attack call (apgd.cpp)
  APGDRun attack_once(const Rows& r, const Tensor& x_init, int n_iter, Generator* gen) const;
  APGDRun attack_largereps(const Rows& r, Generator& gen) const;
  APGDRun attack_any(const Rows& r, Generator& gen) const;  // attack_once or attack_largereps

  bool use_largereps_;
  std::string name_;
};

}  // namespace afd::attacks
