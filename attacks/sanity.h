// The sanity checks a trustworthy robustness evaluation runs (Carlini et al. 2019, "On evaluating
// adversarial robustness"; AutoAttack's checks.py), as one reusable report:
//
//   randomised forward   5 forward passes agree (same predictions, L2-normalised logits within 1e-4)
//   logits               the outputs do not look like probabilities (attacks expect logits)
//   gradients            no input gradient of the CE loss is all-zero, NaN or Inf
//   unbounded budget     PGD-Linf with eps = 1 drives accuracy to chance or below
//   convergence          PGD with 2S steps is not much stronger than with S steps
//   iterative vs single  PGD is at least as strong as FGSM
//   square vs white-box  Square did not beat the white-box attacks by more than 0.2 pp (AutoAttack)
//   transfer             attacks crafted on a source model are weaker than white-box ones
//
// A failed item does not prove a defence broken; it says the evaluation may be unreliable (gradient
// masking, randomness, a softmax output, too few steps) and names what to look at.
#pragma once
#include <string>
#include <vector>

#include "attacks/attack.h"
#include "attacks/autoattack.h"

namespace afd::attacks {

struct SanityOptions {
  Norm norm = Norm::linf;  // the threat model evaluated (the PGD checks use it)
  double eps = 0.3;
  int64_t max_points = 500;  // the checks run on the first points only
  int64_t batch_size = 250;
  int pgd_steps = 20;
  uint64_t seed = 0;
  nn::UnaryModule* transfer_source = nullptr;  // optional: a naturally trained source model
  const AutoAttackReport* autoattack = nullptr;  // optional: adds the Square check
};

struct SanityItem {
  std::string name;
  bool ok = true;
  std::string detail;  // the measured numbers, and what to do when it failed
};

struct SanityReport {
  std::vector<SanityItem> items;
  bool all_ok() const;
  std::string str() const;  // one line per item: "[ok] name: detail" or "[!!] name: detail"
};

SanityReport sanity_report(nn::UnaryModule& model, const Tensor& x, const Tensor& y, const SanityOptions& options);

}  // namespace afd::attacks
