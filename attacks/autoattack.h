// AutoAttack (Croce and Hein 2020), the ensemble, as fra31/auto-attack's run_standard_evaluation
// runs it (specs/attacks.md, decision 10 and Appendix B section 1):
//
//   robust = clean-correct points
//   for each attack in the list:                  standard: apgd-ce, apgd-t, fab-t, square
//     attack only the still-robust points, always from the ORIGINAL images, in batches
//     a point stays robust only if the model classifies the returned point correctly
//     print the cumulative robust accuracy and the attack's time
//   self-check: max ||x_adv - x||_p, NaN count, min and max of x_adv; a point outside the eps-ball
//   or [0, 1] FAILS the run (the reference only logs it)
//
//   attacks::AutoAttackOptions opt;  opt.norm = Norm::linf;  opt.eps = 0.3;
//   attacks::AutoAttackReport rep = attacks::run_autoattack(model, x, y, opt);
//
// With a state file the per-sample robust flags are saved after every batch, so an interrupted
// evaluation resumes where it stopped (refused when the attack list, eps, norm or data differ).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "attacks/attack.h"

namespace afd::attacks {

struct AutoAttackOptions {
  Norm norm = Norm::linf;
  double eps = 0.3;
  std::string version = "standard";  // standard | custom
  std::vector<std::string> attacks;  // the list for version custom (registry names)
  uint64_t seed = 0;
  int64_t batch_size = 250;
  std::string state_path;  // optional JSON state file (resume)
  bool verbose = true;     // one line per attack and the self-check on stderr
  // With verbose: each batch's progress overwrites one line (\r, for a terminal) or, when true,
  // gets a line of its own (for a log file).
  bool progress_lines = false;
  // Polled after every batch; true stops the evaluation (the state file says where). For SIGINT.
  std::function<bool()> should_stop;
  // Iterations and queries of the standard components (AutoAttack's defaults).
  int apgd_steps = 100, fab_steps = 100, n_target_classes = 9, square_queries = 5000;
};

struct AutoAttackReport {
  int64_t count = 0;
  bool complete = true;  // false when should_stop ended the evaluation early
  double clean_accuracy = 0;
  std::vector<std::string> attacks;
  std::vector<double> robust_accuracy;  // cumulative, after each attack
  std::vector<double> seconds;          // per attack
  std::vector<uint8_t> robust;          // per point, after all attacks
  Tensor x_adv;                         // like x: the adversarial found, x where none
  // Self-check over every point.
  double max_norm = 0;
  int64_t nan_count = 0;
  double min_value = 0, max_value = 0;
  double final_robust_accuracy() const { return robust_accuracy.empty() ? clean_accuracy : robust_accuracy.back(); }
};

// The attack list of `options` (standard: apgd-ce, apgd-t, fab-t, square) and each one's config.
std::vector<std::pair<std::string, AttackConfig>> autoattack_components(const AutoAttackOptions& options);

AutoAttackReport run_autoattack(nn::UnaryModule& model, const Tensor& x, const Tensor& y,
                                const AutoAttackOptions& options);

// The ensemble as one registered attack ("autoattack"): the standard version at config.norm and
// config.eps, seeded by config.seed, silent. success = misclassified by some component.
class AutoAttack : public Attack {
 public:
  explicit AutoAttack(AttackConfig config);
  std::string name() const override { return "autoattack"; }

 protected:
  Tensor run(const Problem& p, Generator& gen) override;
  bool randomized() const override { return false; }
};

}  // namespace afd::attacks
