// Attacks by name. A name fixes what it implies (norm, loss); the config supplies the rest.
#include <string>

#include "attacks/apgd.h"
#include "attacks/attack.h"
#include "attacks/autoattack.h"
#include "attacks/fab.h"
#include "attacks/gradient_attacks.h"
#include "attacks/minimal_norm_attacks.h"
#include "attacks/square.h"
#include "tensor/error.h"

namespace afd::attacks {

namespace {

template <class A>
std::function<std::unique_ptr<Attack>(AttackConfig)> with_norm(Norm norm) {
  return [norm](AttackConfig c) {
    c.norm = norm;
    return std::unique_ptr<Attack>(std::make_unique<A>(c));
  };
}

// APGD with a loss the name fixes; the norm (and everything else) comes from the config.
std::function<std::unique_ptr<Attack>(AttackConfig)> apgd_with_loss(LossKind loss) {
  return [loss](AttackConfig c) {
    c.loss = loss;
    return std::unique_ptr<Attack>(std::make_unique<APGD>(c));
  };
}

}  // namespace

const std::vector<AttackInfo>& attack_registry() {
  static const std::vector<AttackInfo> registry = {
      {"fgsm", "one Linf step of size eps (Goodfellow et al. 2015)", with_norm<FGSM>(Norm::linf)},
      {"pgd-linf", "projected gradient descent, Linf (Madry et al. 2018)", with_norm<PGD>(Norm::linf)},
      {"pgd-l2", "projected gradient descent, L2: ball then box", with_norm<PGD>(Norm::l2)},
      {"pgd-l1", "projected gradient descent, dense L1 steps g/||g||_1 (Foolbox's L1PGD, the paper's)",
       with_norm<PGD>(Norm::l1)},
      {"sparse-l1", "sparse L1 descent, top-k coordinates, exact L1 projection (Tramer and Boneh 2019)",
       with_norm<SparseL1>(Norm::l1)},
      {"mim-linf", "momentum iterative method, Linf (Dong et al. 2018)", with_norm<MIM>(Norm::linf)},
      {"mim-l2", "momentum iterative method, L2", with_norm<MIM>(Norm::l2)},
      {"apgd-ce", "Auto-PGD on cross-entropy, norm from the config (Croce and Hein 2020, AutoAttack)",
       apgd_with_loss(LossKind::ce)},
      {"apgd-dlr", "Auto-PGD on the DLR loss, norm from the config", apgd_with_loss(LossKind::dlr)},
      {"apgd-t", "Auto-PGD on targeted DLR (APGD-T): the given targets or the top n_target_classes",
       apgd_with_loss(LossKind::dlr_targeted)},
      {"apgd", "Auto-PGD with the config's loss and norm",
       [](AttackConfig c) { return std::unique_ptr<Attack>(std::make_unique<APGD>(c, false, "apgd")); }},
      {"ddn", "decoupled direction and norm, minimal L2 (Rony et al. 2019)", with_norm<DDN>(Norm::l2)},
      {"deepfool-linf", "DeepFool, minimal Linf (Moosavi-Dezfooli et al. 2016)", with_norm<DeepFool>(Norm::linf)},
      {"deepfool-l2", "DeepFool, minimal L2", with_norm<DeepFool>(Norm::l2)},
      {"cw-l2", "Carlini-Wagner L2: Adam in tanh space, binary search over c (Carlini and Wagner 2017)",
       with_norm<CarliniWagnerL2>(Norm::l2)},
      {"fab-t", "targeted FAB (FAB-T, AutoAttack): the top n_target_classes classes in turn, norm from the config",
       [](AttackConfig c) { return std::unique_ptr<Attack>(std::make_unique<FAB>(c, true)); }},
      {"fab", "untargeted FAB, the full Jacobian per step (Croce and Hein 2020), norm from the config",
       [](AttackConfig c) { return std::unique_ptr<Attack>(std::make_unique<FAB>(c, false)); }},
      {"square", "Square Attack, score-based black box, margin loss (Andriushchenko et al. 2020), Linf or L2",
       [](AttackConfig c) { return std::unique_ptr<Attack>(std::make_unique<Square>(c)); }},
      {"autoattack", "AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square) at the config's norm and eps",
       [](AttackConfig c) { return std::unique_ptr<Attack>(std::make_unique<AutoAttack>(c)); }},
  };
  return registry;
}

std::unique_ptr<Attack> make_attack(const std::string& name, AttackConfig config) {
  std::string known;
  for (const AttackInfo& info : attack_registry()) {
    if (info.name == name) return info.make(config);
    known += (known.empty() ? "" : ", ") + info.name;
  }
  AFD_FAIL("unknown attack '{}' (known: {})", name, known);
}

}  // namespace afd::attacks
