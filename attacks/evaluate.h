// Robust accuracy of a model under one attack over a list of eps values, batched, with progress.
//
//   attacks::EvalOptions opt;  opt.batch_size = 500;
//   auto curve = attacks::robust_accuracy(model, "pgd-linf", cfg, x, y, {0.1, 0.2, 0.3}, opt);
//   // curve.clean_accuracy, curve.robust_accuracy[j] for curve.eps[j]
//
// A point counts as robust at eps when the model classifies it correctly clean AND on the attack's
// x_adv (re-evaluated with one forward pass). Only clean-correct points are attacked (a clean
// mistake is non-robust at every eps). A fixed-eps attack runs once per eps; a minimal-norm attack
// runs once, and at each eps the point x0 + clip_eps(x_adv - x0) is evaluated (Linf: clip each
// coordinate; L2, L1: rescale by min(1, eps / ||x_adv - x0||)), Foolbox's rule.
//
// For reports that need the adversarial points themselves (transfer to other models, the
// discriminator's H-divergence estimate), EvalOptions::on_adversarial is called with every batch of
// points evaluated: the eps index, the rows of x (clean-correct points only) and x_eval [rows, ...]
// (for minimal-norm attacks already clipped into that eps-ball).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "attacks/attack.h"

namespace afd::attacks {

struct EvalOptions {
  int64_t batch_size = 256;
  bool progress = true;  // one status line per batch on stderr
  // Optional: called for each batch at each eps with (eps index, rows of x, x_eval on x's device).
  std::function<void(size_t, const std::vector<int64_t>&, const Tensor&)> on_adversarial;
};

struct RobustnessCurve {
  std::string attack;
  int64_t count = 0;            // points evaluated
  double clean_accuracy = 0;    // fraction
  std::vector<double> eps;
  std::vector<double> robust_accuracy;  // fraction, per eps
  std::vector<std::vector<uint8_t>> robust;  // per eps, per point
  // Minimal-norm attacks only (empty otherwise): per point, the norm of the adversarial found,
  // ||x_adv - x||_p in the attack's norm; 0 for clean mistakes (adversarial already at eps 0),
  // +inf where the attack found none.
  std::vector<double> norms;
};

RobustnessCurve robust_accuracy(nn::UnaryModule& model, const std::string& attack, const AttackConfig& config,
                                const Tensor& x, const Tensor& y, const std::vector<double>& eps_list,
                                const EvalOptions& options = {});

}  // namespace afd::attacks
