// PGD in Linf, L2 and (dense) L1; FGSM is its one-step Linf case.
#include <string>

#include "attacks/core.h"
#include "attacks/gradient_attacks.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::attacks {

namespace {

// The steepest-ascent direction of each norm: sign(g) (Linf), g/||g||_2 (L2), g/||g||_1 (dense L1,
// Foolbox's L1PGD; the sparse variant is SparseL1).
Tensor direction(const Tensor& g, Norm p) { return p == Norm::linf ? ops::sign(g) : normalize_rows(g, p); }

// x <- clip(P(x + alpha_i d)): one projected step.
Tensor projected_step(const Tensor& x0, const Tensor& x, const Tensor& d, const std::vector<double>& alpha,
                      const std::vector<double>& eps, Norm p) {
  Tensor moved = ops::add(x, ops::mul(d, as_rows(alpha, x)));
  return clip_box(project_ball(x0, moved, eps, p));
}

}  // namespace

std::string PGD::name() const { return std::string("pgd-") + norm_name(config_.norm); }

Tensor PGD::run(const Problem& p, Generator& gen) {
  const std::vector<double> alpha = step_sizes(p);
  Tensor x = start_point(p, gen);
  for (int step = 0; step < config_.steps; ++step) {
    LossGrad lg = ascent(p, x);
    x = projected_step(p.x, x, direction(lg.grad, config_.norm), alpha, p.eps, config_.norm);
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
  return projected_step(p.x, x, ops::sign(lg.grad), p.eps, p.eps, Norm::linf);
}

}  // namespace afd::attacks
