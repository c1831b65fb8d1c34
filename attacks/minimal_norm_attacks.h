// The minimal-norm attacks (specs/attacks.md, decisions 1-3, 8, 9; Appendix A sections 6-9):
//
//   DDN              L2, Rony et al. 2019: a gradient step for the direction, a separate norm eps
//                    that shrinks while adversarial and grows otherwise          (ddn.cpp)
//   DeepFool         Linf or L2, Moosavi-Dezfooli et al. 2016: repeated steps onto the nearest
//                    linearised class boundary                                  (deepfool.cpp)
//   CarliniWagnerL2  L2, Carlini and Wagner 2017: Adam in tanh space on distance^2 + c * margin,
//                    binary search over c                                        (cw.cpp)
//
//   attacks::AttackConfig cfg;
//   cfg.steps = 100;                                    // DDN / DeepFool iterations, C&W Adam steps
//   auto ddn = attacks::make_attack("ddn", cfg);        // or "deepfool-linf", "deepfool-l2", "cw-l2"
//   attacks::AttackResult r = ddn->perturb(model, x, y);
//   // r.x_adv: the smallest adversarial found per sample (x itself where none), r.norms its L2 norm
//   auto curve = attacks::robust_accuracy(model, "ddn", cfg, x, y, {0.5, 1.0, 1.5});  // one run
//
// What they share (decision 8): they minimise the perturbation instead of staying inside a budget,
// so config.eps (and per-sample eps) is ignored; they run once (minimal_norm() is true: no
// restarts; random_start is rejected); Attack::perturb reports success as the model's verdict on
// x_adv and the norm in the attack's norm. Robust accuracy at eps re-evaluates x0 + clip_eps(x_adv
// - x0) (attacks/evaluate.h). A point never broken comes back as x0 with success = false (never
// Foolbox's all-zeros image). config.loss is not used: each attack has its own objective.
// Everything is batched with per-sample state; only input gradients are computed.
#pragma once
#include <limits>
#include <string>

#include "attacks/attack.h"

namespace afd::attacks {

// ---- DDN ---------------------------------------------------------------------------------------
// Decoupled direction and norm (Rony et al., CVPR 2019), L2. Per sample, with delta_0 = 0,
// eps_0 = config.init_norm, T = config.steps, gamma = config.gamma, and for i = 0 .. T-1:
//   lr_i    = 0.01 + 0.99 (1 + cos(pi k / T)) / 2,   k = i + schedule_offset     (cosine annealing)
//   x_i     = x0 + delta_i;  adv_i = argmax f(x_i) != y   (targeted: == t)
//   best    <- x_i  if adv_i and ||delta_i||_2 < best_norm   (best_norm starts at ||max(x0, 1 - x0)||_2)
//   g       = grad of CE(f(x_i), y)  (targeted: of -CE(f(x_i), t)),  g <- g / ||g||_2
//   eps     <- eps (1 - gamma) if adv_i else eps (1 + gamma)
//   delta   <- eps (delta_i + lr_i g) / ||delta_i + lr_i g||_2              (onto the eps-sphere)
//   delta   <- clip(x0 + delta) - x0                                      (into the box [0, 1])
// and returns best (x0 where no iterate was adversarial; the iterate after the last step is never
// evaluated). A zero gradient row gets a random unit direction from the attack's generator (seeded
// by config.seed; Foolbox's rule, AdverTorch steps along an unnormalised N(0, I) draw), so batch
// consistency holds except on exactly zero gradients.
//
// Where AdverTorch (DDNL2Attack, written by Rony, the paper's author) and Foolbox (DDNAttack)
// differ, the defaults follow AdverTorch, the author's code, except quantisation (off: the inputs
// need not be on an 8-bit grid); each difference is an option, so either library can be replayed:
struct DDNOptions {
  // k = i + schedule_offset in the cosine schedule: 1 = AdverTorch (its scheduler steps before the
  // first iteration, so lr_0 < 1 and the last lr is exactly 0.01), 0 = Foolbox (lr_0 = 1).
  int schedule_offset = 1;
  // best is replaced when ||delta_i|| < best_norm (false, AdverTorch) or <= (true, Foolbox).
  bool replace_on_equal = false;
  // Foolbox caps eps at the farthest possible distance ||max(x0, 1 - x0)||_2 after each update.
  bool cap_at_worst_norm = false;
  // AdverTorch's quantize: after the sphere step, x0 + delta is rounded to `levels` grey levels
  // (round((x0 + delta)(levels - 1)) / (levels - 1), half to even); 0 = off (Foolbox; AdverTorch's
  // default is quantize=True, levels=256).
  int quantize_levels = 0;
};

class DDN : public Attack {
 public:
  // config: norm must be l2; uses steps, gamma in (0, 1), init_norm > 0, targeted, seed.
  explicit DDN(AttackConfig config, DDNOptions options = {});
  std::string name() const override { return "ddn"; }
  bool minimal_norm() const override { return true; }
  const DDNOptions& options() const { return options_; }

 protected:
  Tensor run(const Problem& p, Generator& gen) override;
  bool randomized() const override { return false; }

 private:
  DDNOptions options_;
};

// ---- DeepFool ----------------------------------------------------------------------------------
// DeepFool (Moosavi-Dezfooli et al., CVPR 2016), Linf or L2 (config.norm), as Foolbox runs it
// (AdverTorch's DeepfoolLinfAttack is the same with an extra Linf clamp of the accumulated
// perturbation, which a large eps turns off). With C = the clean logits' classes sorted by
// decreasing logit, K = min(config.candidates, number of classes) (>= 2) and, per sample:
//   x = x0, r_total = 0; repeat config.steps times:
//     stop for the rows with argmax f(x) != y (frozen; all frozen: stop)
//     l_k = z_{C_k}(x) - z_{C_0}(x),  w_k = grad_x l_k                     k = 1 .. K-1
//     d_k = |l_k| / (||w_k||_q + 1e-8)     q = 1 for Linf, 2 for L2 (the dual norm)
//     k* = argmin d_k (first on ties);  d = d_k* + 1e-4;  w = w_k*
//     r_total += d sign(w)  (Linf)   |   d w / (||w||_2 + 1e-8)  (L2)
//     x = clip(x0 + (1 + config.overshoot) r_total)
// and returns the last x, adversarial or not (success then says which). C_0 is the clean top-1
// class, not the label: on a clean-correct point they agree; a clean-misclassified point is frozen
// at once and returned unchanged. One forward and K-1 input-only backward passes per iteration, on
// the rows not yet frozen. DeepFool has no targeted mode: a targeted config is rejected.
class DeepFool : public Attack {
 public:
  // config: norm linf or l2; uses steps, candidates >= 2, overshoot >= 0.
  explicit DeepFool(AttackConfig config);
  std::string name() const override;
  bool minimal_norm() const override { return true; }

 protected:
  Tensor run(const Problem& p, Generator& gen) override;
  bool randomized() const override { return false; }
};

// ---- Carlini-Wagner L2 -------------------------------------------------------------------------
// C&W L2 (Carlini and Wagner, S&P 2017), decision 9. In tanh space x(w) = (tanh(w) + 1) / 2 with
// w0 = atanh((2 x0 - 1) 0.999999) (the shrink keeps 0 and 1 finite) and, per binary-search step,
// w = w0 + delta, delta = 0 and a fresh Adam (lr = config.step_size, betas 0.9 / 0.999, eps 1e-8,
// bias-corrected) minimising the batch sum
//   loss = sum_i c_i max(0, m_i + kappa) + ||x(w_i) - x(w0_i)||_2^2      (kappa = config.confidence)
//   m_i  = z_y - max_{j != y} z_j           (targeted: max_{j != t} z_j - z_t)
// for config.steps steps. The distance is to the reconstruction x(w0), not x0 (both references).
// Each step evaluates loss, logits and x(w) at the current delta, then takes the Adam step. Abort
// early (config.abort_early): at steps s with s % ceil(steps / 10) == 0, stop this binary step if
// NOT loss <= abort_threshold * prev, else prev = loss (prev starts at abort_initial_prev); a stop
// skips that step's bookkeeping. Otherwise a sample counts as found when it is adversarial with the
// confidence margin (argmax(z + kappa onehot_y) != y; targeted argmax(z - kappa onehot_t) == t), and
// x(w) replaces its best when also ||x(w) - x0||_2 < the best so far.
// Binary search over c (Foolbox's rules; c starts at config.initial_const, lo = 0, hi = inf):
//   found in this binary step: hi = c, else lo = c;  c = 10 c if hi == inf else (lo + hi) / 2,
//   and with config.binary_steps >= 10 the last binary step uses c = min(hi, 1e10).
// Returns each sample's best, or x0 where none was found. The loss, and so the abort, is over the
// whole batch: C&W is not batch-consistent (neither reference is).
struct CarliniWagnerOptions {
  // Foolbox (and Carlini's code): 0.9999 and +inf. AdverTorch: 0.999999 and 1e6 (its check runs at
  // s % max(steps / 10, 1) == 0 with integer division: the same steps when steps is a multiple of 10).
  double abort_threshold = 0.9999;
  double abort_initial_prev = std::numeric_limits<double>::infinity();
};

class CarliniWagnerL2 : public Attack {
 public:
  // config: norm must be l2; uses steps, step_size (Adam's lr), binary_steps >= 1,
  // initial_const > 0, confidence >= 0, abort_early, targeted.
  explicit CarliniWagnerL2(AttackConfig config, CarliniWagnerOptions options = {});
  std::string name() const override { return "cw-l2"; }
  bool minimal_norm() const override { return true; }
  const CarliniWagnerOptions& options() const { return options_; }

 protected:
  Tensor run(const Problem& p, Generator& gen) override;
  bool randomized() const override { return false; }

 private:
  CarliniWagnerOptions options_;
};

}  // namespace afd::attacks
