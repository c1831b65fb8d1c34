// Momentum iterative method (Dong et al., CVPR 2018), Linf and L2.
#include <string>

#include "attacks/core.h"
#include "attacks/gradient_attacks.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::attacks {

MIM::MIM(AttackConfig config) : Attack(config) {
  AFD_CHECK(config.norm != Norm::l1, "mim: the norm must be linf or l2, got l1");
}

std::string MIM::name() const { return std::string("mim-") + norm_name(config_.norm); }

Tensor MIM::run(const Problem& p, Generator& gen) {
  const std::vector<double> alpha = step_sizes(p);
  Tensor x = start_point(p, gen);
  Tensor acc = Tensor::zeros(x.shape(), x.dtype(), x.device());
  const Tensor steps = config_.norm == Norm::linf ? sign_steps(alpha, p.eps, x) : Tensor();  // uploaded once
  for (int step = 0; step < config_.steps; ++step) {
    LossGrad lg = ascent(p, x);
    // a <- decay a + g / max(||g||_1, floor)
    acc = ops::add(ops::mul_scalar(acc, config_.decay), normalize_rows(lg.grad, Norm::l1));
    if (config_.norm == Norm::linf) {
      x = sign_step(p.x, x, acc, steps);  // clip(P(x + alpha sign(a))) in one pass
      continue;
    }
    Tensor d = normalize_rows(acc, Norm::l2);
    x = clip_box(project_ball(p.x, ops::add(x, ops::mul(d, as_rows(alpha, x))), p.eps, config_.norm));
  }
  return x;
}

}  // namespace afd::attacks
