// AttackConfig: the names of norms and losses (as flags and JSON spell them) and the checks of a
// configuration. Kept apart from the attacks so the config's JSON parser links on its own (fuzz/).
#include <cmath>

#include "attacks/attack.h"
#include "tensor/error.h"

namespace afd::attacks {

const char* norm_name(Norm norm) {
  switch (norm) {
    case Norm::linf: return "linf";
    case Norm::l2: return "l2";
    case Norm::l1: return "l1";
  }
  return "?";
}

const char* loss_name(LossKind loss) {
  switch (loss) {
    case LossKind::ce: return "ce";
    case LossKind::cw: return "cw";
    case LossKind::dlr: return "dlr";
    case LossKind::dlr_targeted: return "dlr-targeted";
    case LossKind::kl: return "kl";
  }
  return "?";
}

Norm parse_norm(const std::string& s) {
  for (Norm n : {Norm::linf, Norm::l2, Norm::l1})
    if (s == norm_name(n)) return n;
  AFD_FAIL("unknown norm '{}' (expected linf, l2 or l1)", s);
}

LossKind parse_loss(const std::string& s) {
  for (LossKind l : {LossKind::ce, LossKind::cw, LossKind::dlr, LossKind::dlr_targeted, LossKind::kl})
    if (s == loss_name(l)) return l;
  AFD_FAIL("unknown attack loss '{}' (expected ce, cw, dlr, dlr-targeted or kl)", s);
}

void AttackConfig::validate(const char* attack) const {
  AFD_CHECK(std::isfinite(eps) && eps >= 0, "{}: eps must be finite and >= 0, got {}", attack, eps);
  AFD_CHECK(steps >= 0, "{}: steps must be >= 0, got {}", attack, steps);
  AFD_CHECK(std::isfinite(step_size) && step_size >= 0, "{}: step size must be finite and >= 0, got {}", attack,
            step_size);
  AFD_CHECK(restarts >= 1, "{}: restarts must be >= 1, got {}", attack, restarts);
  AFD_CHECK(std::isfinite(decay) && decay >= 0, "{}: decay must be >= 0, got {}", attack, decay);
  AFD_CHECK(sparsity >= 0 && sparsity <= 1, "{}: sparsity must be in [0, 1], got {}", attack, sparsity);
  AFD_CHECK(quantile >= 0 && quantile < 1, "{}: quantile must be in [0, 1), got {}", attack, quantile);
  AFD_CHECK(rho > 0 && rho <= 1, "{}: rho must be in (0, 1], got {}", attack, rho);
  AFD_CHECK(n_target_classes >= 1, "{}: n_target_classes must be >= 1, got {}", attack, n_target_classes);
  AFD_CHECK(!(targeted && loss == LossKind::kl), "{}: the kl loss has no targeted form", attack);
}

}  // namespace afd::attacks
