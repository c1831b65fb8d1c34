// afd_run: the command line of afd (train, eval, attack, data, help).
//
//   afd_run train --preset paper --dataset mnist --method afd --epochs 5 --out runs/afd
//   afd_run eval --checkpoint runs/afd/checkpoint,runs/at/checkpoint --attacks pgd-linf --eps 0.3
//   afd_run attack --checkpoint runs/afd/checkpoint --attack cw-l2 --count 100 --save-adv
//   afd_run data --dataset mnist --fetch
//
// run() is the whole program: it returns the exit status (0 ok, 1 a run failed: data, files,
// checkpoints, a NaN; 2 a usage error: flags and values; 130 stopped by SIGINT after writing a
// checkpoint) and writes results to `out`, progress and errors (one line each) to `err`.
// The tests call it in-process; main.cpp passes std::cout and std::cerr.
#pragma once
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "afd/train/config.h"
#include "attacks/attack.h"
#include "tools/afd_run/flags.h"

namespace afd::cli {

struct Io {
  std::ostream& out;
  std::ostream& err;
  bool tty = false;  // err is a terminal: progress rewrites one line instead of printing lines
};

int run(const std::vector<std::string>& args, Io io);

// The one table every flag of every subcommand comes from (flag_table.cpp).
const std::vector<Flag>& flag_table();

// Help pages and the generated flag reference (docs/cli.md).
std::string help_text(Command command, const std::map<std::string, std::string>& defaults = {});
std::string overview_text();
std::string markdown_reference();

// `train`'s resolution, for tests: explicit flags (after --resume's resolved.flags) over the
// defaults of --preset/--dataset/--method; throws UsageError.
struct TrainPlan {
  Options options;
  train::TrainConfig config;
};
TrainPlan resolve_train(const FlagSet& set, const std::vector<Assignment>& given);
// The defaults each train flag shows in --help and takes when not given.
std::map<std::string, std::string> train_defaults(const FlagSet& set, const std::vector<Assignment>& given);

// The paper's evaluation setting of an attack on a dataset (specs/afd.md, "Evaluation protocol"):
// the attack's config and its eps grid. Attacks the table does not list get the Table 1 budget.
struct EvalPreset {
  attacks::AttackConfig config;
  std::vector<double> eps;
};
// Table 1's budget in `norm` on `dataset` (Linf: 0.3 MNIST, 8/255 CIFAR, 0.015 Tiny-ImageNet; L2 1.0;
// L1 10, the first non-zero eps of the paper's L1 grid): the eps of afd_run attack.
double table1_eps(attacks::Norm norm, const std::string& dataset);
EvalPreset eval_preset(const std::string& attack, const std::string& dataset);

// Normalised area under accuracy(eps) over the grid (trapezoid / (eps_max - eps_min)); NaN for one eps.
double curve_auc(const std::vector<double>& eps, const std::vector<double>& accuracy);

// Mean and sample standard deviation (n - 1; 0 for one value).
std::pair<double, double> mean_std(const std::vector<double>& values);

}  // namespace afd::cli
