// The pieces every attack is made of: per-sample norms and projections, the losses, one input
// gradient, predictions and random starts. All work on batches [n, ...] row by row (a row is one
// sample), so that no sample influences another.
#pragma once
#include <vector>

#include "attacks/attack.h"
#include "autograd/var.h"
#include "tensor/rng.h"

namespace afd::attacks {

// Foolbox's norm floor (decision 3): g / max(||g||, kNormFloor).
inline constexpr double kNormFloor = 1e-12;

// ---- per-row tensors -------------------------------------------------------------------------
// ||d_i||_p for every row of d [n, ...] -> [n] (dtype and device of d).
Tensor row_norms(const Tensor& d, Norm p);
// v [n] (or a per-row list) as [n, 1, ..., 1], ready to broadcast against `like` [n, ...].
Tensor as_rows(const Tensor& v, const Tensor& like);
Tensor as_rows(const std::vector<double>& v, const Tensor& like);
// x_i * s_i for every row.
Tensor scale_rows(const Tensor& x, const Tensor& s);
// g_i / max(||g_i||_p, floor).
Tensor normalize_rows(const Tensor& g, Norm p, double floor = kNormFloor);
// Onto the eps-ball around x0: Linf clips each coordinate of x - x0 to [-eps_i, eps_i]; L2 and L1
// rescale x - x0 by min(1, eps_i / max(||x - x0||, floor)) (Foolbox's clip_perturbation; for L1 this
// is a rescaling, not the Euclidean projection: see duchi_l1_projection).
Tensor project_ball(const Tensor& x0, const Tensor& x, const std::vector<double>& eps, Norm p);
// Onto the image box [0, 1].
Tensor clip_box(const Tensor& x);
// One Linf PGD step, x <- clip_box(project_ball(x0, x + alpha_i sign(g), eps, linf)), in one pass
// (ops::linf_sign_step: the same bits as those ops, one launch instead of nine). The step sizes
// and radii travel as one [2, n] tensor (sign_steps, converted to x's dtype as as_rows converts);
// a loop makes it once and passes it to every step.
Tensor sign_steps(const std::vector<double>& alpha, const std::vector<double>& eps, const Tensor& like);
Tensor sign_step(const Tensor& x0, const Tensor& x, const Tensor& g, const Tensor& steps);
Tensor sign_step(const Tensor& x0, const Tensor& x, const Tensor& g, const std::vector<double>& alpha,
                 const std::vector<double>& eps);
// The exact Euclidean projection of every row of d onto the L1 ball of radius eps_i (Duchi et al.
// 2008): rows already inside are returned unchanged; otherwise w = sign(d) max(|d| - theta, 0) with
// theta = (sum_{j <= rho} u_j - eps) / (rho + 1), u = |d| sorted descending and rho the LAST index
// with u_rho > (sum_{j <= rho} u_j - eps) / (rho + 1).
Tensor duchi_l1_projection(const Tensor& d, const std::vector<double>& eps);

// ---- losses and gradients --------------------------------------------------------------------
struct LossInputs {
  const Tensor* y = nullptr;             // i64 [n] true labels
  const Tensor* target = nullptr;        // i64 [n] target labels (targeted CE / CW, DLR-targeted)
  const Tensor* clean_logits = nullptr;  // [n, K] (kl)
};
// The per-sample loss [n] of `kind` at `logits`; for targeted CE / CW the labels are the targets.
Var per_sample_loss(LossKind kind, const Var& logits, const LossInputs& in, bool targeted);

struct LossGrad {
  Tensor loss;    // [n] per-sample loss, the value the gradient belongs to
  Tensor grad;    // [n, ...] d(sum_i sign * loss_i) / dx: the ascent direction of the attack
  Tensor logits;  // [n, K]
};
// One forward and one input-only backward. sign = -1 for targeted attacks that descend the loss.
LossGrad loss_and_grad(nn::UnaryModule& model, const Tensor& x, LossKind kind, const LossInputs& in,
                       bool targeted, double sign);
// Logits without recording a tape.
Tensor logits_of(nn::UnaryModule& model, const Tensor& x);
// u8 [n]: argmax(logits) != y (untargeted) or == target (targeted), on the CPU.
Tensor success_mask(const Tensor& logits, const Tensor& y, const Tensor& target, bool targeted);

// ---- random starts (uniform in the ball, Foolbox's samplers) ---------------------------------
// Linf: U(-eps_i, eps_i) per coordinate. L2: the first d coordinates of a normalised N(0, I_{d+2})
// draw (uniform in the unit d-ball, Voelker et al. 2017) times eps_i. L1: sorted-uniform spacings
// with random signs (uniform in the unit L1 ball) times eps_i. Returns a perturbation like `like`.
Tensor random_in_ball(const Tensor& like, const std::vector<double>& eps, Norm p, Generator& gen);

// Rows `idx` of t (any dtype, any device; a new tensor).
Tensor take_rows(const Tensor& t, const std::vector<int64_t>& idx);
// dst with its rows idx[j] replaced by src's row j (floating tensors, distinct idx; a new tensor):
// a few whole-tensor ops instead of a copy per row.
Tensor put_rows(const Tensor& dst, const std::vector<int64_t>& idx, const Tensor& src);

// ---- host helpers for row algorithms that sort (top-k, projections) --------------------------
// Row-major f64 copy of x on the CPU, and back into a tensor of `like`'s dtype and device.
std::vector<double> host_rows(const Tensor& x);
Tensor from_host_rows(const std::vector<double>& v, const Tensor& like);

// Eval mode while alive, then the model's previous mode.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(nn::Module& m) : module_(m), was_training_(m.is_training()) { m.eval(); }
  ~EvalModeGuard() { module_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  nn::Module& module_;
  bool was_training_;
};

}  // namespace afd::attacks
