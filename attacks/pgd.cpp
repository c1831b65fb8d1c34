// PGD in Linf, L2 and (dense) L1; FGSM is its one-step Linf case.
#include <string>

#include "attacks/core.h"
#include "attacks/gradient_attacks.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::attacks {

namespace {

// x <- clip(P(x + alpha_i d)) along the steepest-ascent direction d of the norm: sign(g) for Linf
// (sign_step: the whole step in one pass), g/||g||_2 for L2, g/||g||_1 for dense L1 (Foolbox's
// L1PGD; the sparse variant is SparseL1).
Tensor projected_step(const Tensor& x0, const Tensor& x, const Tensor& g, const std::vector<double>& alpha,
                      const std::vector<double>& eps, Norm p) {
  if (p == Norm::linf) return sign_step(x0, x, g, alpha, eps);
  Tensor moved = ops::add(x, ops::mul(normalize_rows(g, p), as_rows(alpha, x)));
  return clip_box(project_ball(x0, moved, eps, p));
}

}  // namespace

std::string PGD::name() const { return std::string("pgd-") + norm_name(config_.norm); }

Tensor PGD::run(const Problem& p, Generator& gen) {
  const std::vector<double> alpha = step_sizes(p);
  Tensor x = start_point(p, gen);
  // Linf: the step sizes and radii uploaded once for all steps
  const Tensor steps = config_.norm == Norm::linf ? sign_steps(alpha, p.eps, x) : Tensor();
  for (int step = 0; step < config_.steps; ++step) {
    LossGrad lg = ascent(p, x);
    x = steps.defined() ? sign_step(p.x, x, lg.grad, steps)
                        : projected_step(p.x, x, lg.grad, alpha, p.eps, config_.norm);
  }
  return x;
}

FGSM::FGSM(AttackConfig config) : Attack(config) {
  AFD_CHECK(config.norm == Norm::linf, "fgsm: the norm must be linf, got {} (use pgd-{} with steps 1)",
            norm_name(config.norm), norm_name(config.norm));
}

Tensor FGSM::run(const Problem& p, Generator& gen) {
  Tensor x = start_point(p, gen);
  LossGrad lg = ascent(p, x);
  return projected_step(p.x, x, lg.grad, p.eps, p.eps, Norm::linf);
}

}  // namespace afd::attacks
