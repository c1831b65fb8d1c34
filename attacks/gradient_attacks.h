// The classic fixed-eps gradient attacks (specs/attacks.md, Appendix A, decisions 5-7):
//
//   FGSM      x_adv = clip(P(x_s + eps sign(g))), x_s = x0 or a random start   one step (pgd.cpp)
//   PGD       x <- clip(P(x + alpha d(g))), d = sign(g) | g/||g||_2 | g/||g||_1   (pgd.cpp)
//   SparseL1  x <- clip(x0 + Duchi(x - x0 + alpha e)), e = sign(g) on the top-k |g|, / k   (sparse_l1.cpp)
//   MIM       a <- mu a + g/||g||_1;  x <- clip(P(x + alpha d(a)))       (mim.cpp)
//
// g is the gradient of the summed loss at the current iterate (the ascent direction: targeted
// attacks use the gradient of -L(x, target)), P the eps-ball of the attack's norm around x0 (Linf:
// clip each coordinate; L2 and dense L1: rescale by min(1, eps/||x - x0||)), clip the box [0, 1].
// All return the last iterate (Attack::perturb keeps the per-sample best over random restarts).
#pragma once
#include "attacks/attack.h"

namespace afd::attacks {

// Projected gradient descent in config.norm: Linf (Madry et al.), L2 (ball then box, decision 5),
// L1 (the paper's dense Foolbox-style variant, decision 6a).
class PGD : public Attack {
 public:
  explicit PGD(AttackConfig config) : Attack(config) {}
  std::string name() const override;

 protected:
  Tensor run(const Problem& p, Generator& gen) override;
};

// One Linf step of size eps (optionally from a uniform random start in the ball). config.norm must
// be linf; steps and step_size are ignored.
class FGSM : public Attack {
 public:
  explicit FGSM(AttackConfig config);
  std::string name() const override { return "fgsm"; }

 protected:
  Tensor run(const Problem& p, Generator& gen) override;
};

// Sparse L1 descent (Tramer and Boneh's SLIDE, AdverTorch's SparseL1DescentAttack; decision 6b):
// gradient entries that would push a coordinate past the box are zeroed, the k largest |g| are kept
// (k = round((1 - sparsity) d), or |g| >= the per-sample quantile when config.quantile > 0), the
// step is alpha sign(g) / k on them, then the exact Duchi L1-ball projection and the box clip.
class SparseL1 : public Attack {
 public:
  explicit SparseL1(AttackConfig config);
  std::string name() const override { return "sparse-l1"; }

 protected:
  Tensor run(const Problem& p, Generator& gen) override;
};

// Momentum iterative method (Dong et al. 2018), Linf or L2: the accumulator a <- decay a +
// g / max(||g||_1, 1e-12) (the paper's and AdverTorch's rule); Linf steps alpha sign(a), L2 steps
// alpha a / ||a||_2 and rescales into the ball (never AdverTorch's elementwise division).
class MIM : public Attack {
 public:
  explicit MIM(AttackConfig config);
  std::string name() const override;

 protected:
  Tensor run(const Problem& p, Generator& gen) override;
};

}  // namespace afd::attacks
