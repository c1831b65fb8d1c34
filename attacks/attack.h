// One interface for every attack (specs/attacks.md, decisions 1-4, 12).
//
//   attacks::AttackConfig cfg;                  // norm, eps, steps, step size, loss, seed, ...
//   cfg.eps = 0.3; cfg.steps = 40; cfg.step_size = 0.01;
//   auto pgd = attacks::make_attack("pgd-linf", cfg);
//   attacks::AttackResult r = pgd->perturb(model, x, y);   // x [N, C, H, W] in [0, 1], y i64 [N]
//   // r.x_adv [N, C, H, W] (device and dtype of x), r.success u8 [N], r.norms f64 [N]
//
// Rules every attack keeps:
// - The model maps [0, 1] images to logits and runs in eval mode during the attack (its previous
//   mode is restored afterwards). The attack asks autograd for input gradients only
//   (afd::grad(loss, {x})), so no parameter gradient is ever computed.
// - The loss is summed over the batch, so a sample's gradient does not depend on the batch size.
//   Every attack ascends its loss: untargeted attacks ascend L(x, y); targeted attacks descend
//   L(x, target), i.e. ascend -L(x, target). sign(0) = 0.
// - x is never modified. x_adv stays in the eps-ball around x (in the attack's norm) and in [0, 1].
// - success[i] = 1 when the model's prediction on x_adv[i] is wrong (untargeted) or equals the
//   target (targeted); norms[i] = ||x_adv[i] - x[i]||_p in the attack's norm.
// - One seed drives every random draw (Philox, tensor/rng.h): a call is reproducible, and with
//   random start off an attack is batch-consistent (a sample alone gives the same x_adv as inside
//   a batch).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace afd::attacks {

struct LossGrad;  // attacks/core.h

enum class Norm { linf, l2, l1 };
// ce: cross-entropy. cw: Carlini-Wagner margin max_{j != y} z_j - z_y. dlr / dlr_targeted: Croce and
// Hein's difference of logits ratio (APGD). kl: KL(softmax(f(x)) || softmax(f(x_adv))), the TRADES
// inner loss (labels unused).
enum class LossKind { ce, cw, dlr, dlr_targeted, kl };

const char* norm_name(Norm norm);        // "linf", "l2", "l1"
const char* loss_name(LossKind loss);    // "ce", "cw", "dlr", "dlr-targeted", "kl"
Norm parse_norm(const std::string& s);   // throws naming the value and the accepted ones
LossKind parse_loss(const std::string& s);

struct AttackConfig {
  Norm norm = Norm::linf;
  double eps = 0.3;
  int steps = 40;
  double step_size = 0.01;     // absolute, or a multiple of eps when relative_step is set
  bool relative_step = false;  // step = step_size * eps (Foolbox's rel_stepsize)
  bool random_start = false;
  int restarts = 1;            // random restarts; the per-sample best is kept
  bool targeted = false;       // perturb() then needs target labels
  LossKind loss = LossKind::ce;
  uint64_t seed = 0;
  // MIM: momentum of the accumulator g <- decay g + grad / ||grad||_1.
  double decay = 1.0;
  // sparse-l1: keep the top k = round((1 - sparsity) d) coordinates of |grad|; or, when quantile
  // is in (0, 1), the coordinates with |grad| >= the per-sample quantile (Foolbox's rule).
  double sparsity = 0.95;
  double quantile = 0;
  // APGD: momentum rho of the oscillation test, and what to return for points it did not fool:
  // the clean image (AutoAttack) or the last iterate (return_last_iterate).
  double rho = 0.75;
  bool return_last_iterate = false;
  int n_target_classes = 9;  // APGD-T / FAB-T: how many of the top clean classes are tried as targets
  // Minimal-norm attacks (decisions 8, 9). DeepFool: candidate classes and overshoot. DDN: gamma
  // (eps grows or shrinks by 1 +- gamma) and the initial norm. C&W: binary search steps over c, its
  // start c0, the margin confidence kappa, abort-early; the Adam learning rate is step_size.
  int candidates = 10;
  double overshoot = 0.02;
  double gamma = 0.05;
  double init_norm = 1.0;
  int binary_steps = 9;
  double initial_const = 1e-3;
  double confidence = 0;
  bool abort_early = true;
  // FAB: the extrapolation step eta, the bias toward the original point alpha_max, and beta.
  double fab_eta = 1.05, fab_alpha_max = 0.1, fab_beta = 0.9;
  // Square: query budget (steps is unused) and the initial fraction of pixels per window.
  int n_queries = 5000;
  double p_init = 0.8;

  double step_for(double eps_value) const { return relative_step ? step_size * eps_value : step_size; }
  void validate(const char* attack) const;  // throws naming the bad field and value
};

struct AttackResult {
  Tensor x_adv;    // like x
  Tensor success;  // u8 [N], on the CPU
  Tensor norms;    // f64 [N], on the CPU: ||x_adv - x||_p in the attack's norm
  int64_t success_count() const;
};

class Attack {
 public:
  explicit Attack(AttackConfig config) : config_(config) {}
  virtual ~Attack() = default;
  virtual std::string name() const = 0;
  const AttackConfig& config() const { return config_; }
  // Minimal-norm attacks (DDN, DeepFool, C&W) ignore eps: they run once and return the smallest
  // adversarial they found (x0 with success = false where none); robust accuracy at eps then
  // re-evaluates x0 + clip_eps(x_adv - x0) (specs/attacks.md, decision 8).
  virtual bool minimal_norm() const { return false; }

  // x [N, ...] float in [0, 1]; y i64 [N] true labels; target i64 [N], required when the config is
  // targeted (and used by APGD's dlr_targeted); eps f64 [N] per-sample budgets (default: config.eps).
  AttackResult perturb(nn::UnaryModule& model, const Tensor& x, const Tensor& y, const Tensor& target = Tensor(),
                       const Tensor& eps = Tensor());

 protected:
  // Everything one run needs. Rows are a subset of the caller's batch (restarts re-attack the
  // points not broken yet).
  struct Problem {
    nn::UnaryModule* model;
    Tensor x;       // [n, ...] clean points
    Tensor y;       // i64 [n]
    Tensor target;  // i64 [n] or undefined
    std::vector<double> eps;  // per row
    Tensor clean_logits;      // [n, K], for the kl loss
  };
  // One run of the attack from scratch; returns x_adv [n, ...]. `gen` is this restart's stream.
  virtual Tensor run(const Problem& p, Generator& gen) = 0;
  // Whether a second run can differ from the first (random start); otherwise restarts are skipped.
  virtual bool randomized() const { return config_.random_start; }
  // The configured loss and its ascent gradient at x (targeted: of -L(x, target)).
  LossGrad ascent(const Problem& p, const Tensor& x) const;
  // x0, or clip(x0 + a uniform draw from the eps-ball) when random_start is set.
  Tensor start_point(const Problem& p, Generator& gen) const;
  // alpha_i for every row: config.step_for(eps_i).
  std::vector<double> step_sizes(const Problem& p) const;

  AttackConfig config_;
};

// ---- registry --------------------------------------------------------------------------------
// make_attack("pgd-l2", cfg): the name fixes what it implies (here norm = l2), the config gives
// the rest. Unknown names throw, listing the known ones.
struct AttackInfo {
  std::string name;
  std::string summary;
  std::function<std::unique_ptr<Attack>(AttackConfig)> make;
};
const std::vector<AttackInfo>& attack_registry();
std::unique_ptr<Attack> make_attack(const std::string& name, AttackConfig config);

}  // namespace afd::attacks
