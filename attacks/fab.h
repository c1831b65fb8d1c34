// FAB, the Fast Adaptive Boundary attack (Croce and Hein, ICML 2020), as fra31/auto-attack's
// fab_base.py / fab_pt.py / fab_projections.py run it (specs/attacks.md, Appendix B section 3,
// decision 10): FAB-T (targeted, AutoAttack's "fab-t") and untargeted FAB, in Linf, L2 and L1.
//
//   attacks::AttackConfig cfg;
//   cfg.norm = attacks::Norm::linf; cfg.eps = 0.3; cfg.steps = 100;  // n_iter
//   cfg.n_target_classes = 9;                                         // FAB-T: targets tried
//   auto fab = attacks::make_attack("fab-t", cfg);                    // or "fab" (untargeted)
//   attacks::AttackResult r = fab->perturb(model, x, y);
//   // r.x_adv: the closest adversarial iterate where it is within eps, the clean x elsewhere
//
// FAB minimises the norm; eps only bounds what is accepted (and sizes random starts). One run from
// x1 = x0 (the clean point), n_iter = config.steps iterations:
//   hyperplane  targeted (FAB-T, one target t):  f = z_t - z_y,  g = grad f           (1 backward)
//               untargeted: f_k = z_k - z_y, g_k = grad z_k - grad z_y for every class k, f_y = 1e10
//               (the full Jacobian, K backwards); k* = argmin_k |f_k| / (1e-12 + ||g_k||_q), q the
//               dual norm (L1 for Linf, L2 for L2, Linf for L1); w = g_k*, b = -f_k* + <w, x1>
//   projection  d1 = proj_p(x1; w, b), d2 = proj_p(x0; w, b): the smallest ||d||_p with
//               <w, z + d> = b and 0 <= z + d <= 1 (the box corner nearest to it when infeasible)
//   step        a_i = max(||d_i||_p, 1e-8); alpha = clamp(a1 / (a1 + a2), 0, alpha_max)
//               x1 <- clip01((x1 + eta d1)(1 - alpha) + (x0 + eta d2) alpha)
//   bookkeeping where argmax f(x1) != y (any misclassification, also for FAB-T): keep x1 as the
//               best adversarial if ||x1 - x0||_p < the best so far (strict <), then
//               x1 <- x0 + beta (x1 - x0)
// There is no final search (the original FAB's linear_approximation_search is not in AutoAttack).
//
// perturb(): only the points the model classifies correctly are attacked (the others come back
// clean). FAB-T tries the tc-th largest clean logit as the target for tc = 2 .. n_target_classes + 1
// (or the given target labels, when perturb gets them), each with config.restarts runs on the points
// not broken yet; untargeted FAB does config.restarts runs. Run r > 0 starts at
// clip01(x0 + 0.5 eps t / ||t||_p), t ~ U(-1, 1) (Linf) or N(0, 1) (L2, L1); run 0 starts at x0, so
// with restarts = 1 (AutoAttack's FAB-T) no random number is drawn. A point counts as broken, and
// takes the run's result, when the model misclassifies it AND ||adv - x||_p <= eps_i; every other
// point is returned as x. config.targeted must stay false: FAB-T succeeds on any misclassification.
//
// Quirk kept (decision 10): the reference sorts with torch's unstable sort; where that order could
// matter (equal |w_i| in the L1 projection, both answers are optimal) we sort stably, lowest index
// first. Ties in the Linf and L2 projections do not change their result.
#pragma once
#include <string>
#include <vector>

#include "attacks/attack.h"

namespace afd::attacks {

// ---- the box-constrained projections onto a hyperplane (fab_projections.py) --------------------
// Every row i: t [n, D] points in [0, 1], w [n, D] normals, b [n] offsets (any float dtype, any
// device). Returns d [n, D] (f64, on the CPU) with <w_i, t_i + d_i> = b_i and 0 <= t_i + d_i <= 1 and
// ||d_i||_p smallest, or, when no point of the box lies on the hyperplane, the box corner that moves
// <w_i, .> toward b_i the most (coordinates with w = 0 stay). The algorithms are the reference's,
// step for step: first (w, b) is flipped so that c = <w, t> - b >= 0, then
//   Linf  d_max = [w < 0] - t (the corner), p = |d_max|; <w, t + d(lambda)> moves by
//         -sum |w_j| min(lambda, p_j). If even the smallest p does not bind, lambda = c / ||w||_1 and
//         d = lambda sign(-w); if the corner reaches b, a binary search over p sorted descending
//         finds lambda >= 0 and d_j = clamp(-lambda sign(w_j), toward the corner); else the corner.
//   L2    d_j(lambda) = clip(-lambda w_j, -t_j, 1 - t_j): breakpoints r_j = max(t_j / w_j, (t_j - 1) / w_j)
//         (1e12 where |w_j| < 1e-8), sorted; nothing saturates: d = -(c / ||w||^2) w; infeasible:
//         d = -r w; otherwise a binary search gives alpha and d_j = -r_j w_j where alpha > r_j, else
//         -alpha w_j.
//   L1    greedy by decreasing |w_j|: coordinate j can move <w, .> by at most
//         ds_j = min(-w_j t_j, w_j (1 - t_j)); the cumulative sums s = cumsum([c, ds]) are searched
//         for the first index where s <= 0: earlier coordinates go to the box bound, that one gets
//         -s / w_j, the rest stay 0; infeasible: every coordinate goes to the bound.
// Each binary search takes ceil(log2 D) halvings, as the reference's. The result is multiplied by
// [w != 0] (Linf) or [|w| > 1e-8] (L2, L1).
Tensor projection_linf(const Tensor& t, const Tensor& w, const Tensor& b);
Tensor projection_l2(const Tensor& t, const Tensor& w, const Tensor& b);
Tensor projection_l1(const Tensor& t, const Tensor& w, const Tensor& b);
// The one of config norm p.
Tensor fab_projection(Norm p, const Tensor& t, const Tensor& w, const Tensor& b);

// The outcome of one FAB run (AutoAttack's attack_single_run) on n points.
struct FABRun {
  Tensor x_adv;       // [n, ...] the closest misclassified iterate, x where none (not checked against eps)
  Tensor best_norm;   // f64 [n] on the CPU: ||x_adv - x||_p, 1e10 where none was found
  Tensor found;       // u8 [n] on the CPU: some iterate was misclassified
  // With record_iterates: x1 at the start of iteration k (the point where the gradient is taken),
  // k = 0 .. n_iter - 1, each [n, ...] like x; then the last x1 (after the final update).
  std::vector<Tensor> iterates;
};

class FAB : public Attack {
 public:
  // targeted: FAB-T (the registry's "fab-t"); else untargeted FAB ("fab").
  FAB(AttackConfig config, bool targeted);
  std::string name() const override { return targeted_ ? "fab-t" : "fab"; }
  bool targeted() const { return targeted_; }

  // One run (attack_single_run) on every row of x [n, ...] in [0, 1], with labels y i64 [n], in
  // eval mode. target i64 [n]: FAB-T's target class per row (required when targeted(), ignored
  // otherwise). eps [n]: only sizes the random start. random_start: start at
  // clip01(x0 + 0.5 eps t / ||t||_p) drawn from gen (required then), else at x0. No clean-point
  // filtering and no eps check: every row is attacked and its best iterate returned.
  FABRun single_run(nn::UnaryModule& model, const Tensor& x, const Tensor& y, const Tensor& target,
                    const std::vector<double>& eps, bool random_start = false, Generator* gen = nullptr,
                    bool record_iterates = false) const;

 protected:
  Tensor run(const Problem& p, Generator& gen) override;
  // The (target, restart) loop runs inside run(), as in the reference.
  bool randomized() const override { return false; }

 private:
  bool targeted_;
};

}  // namespace afd::attacks
