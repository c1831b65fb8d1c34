// afd_run eval's report, written from numbers alone: eval.json (every accuracy, interval, AUC,
// timing, H-divergence estimate and representation count) and the per-sample flags
// (per_sample.safetensors). Both an evaluation (eval_command.cpp) and a merge of several earlier
// evaluations (`afd_run eval --merge A,B,...`: one model and attack per part, so that a long
// evaluation runs in resumable pieces) end here, so a merged report is the report that one run
// would have written.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace afd::cli {

// The per-sample results: u8 flags and f64 norms named m<model>.<what> (the layout string in
// write_eval_report), the eps of each flag matrix's rows, and the labels of the points.
struct PerSample {
  std::vector<std::pair<std::string, Tensor>> tensors;
  nlohmann::json eps = nlohmann::json::object();  // tensor name -> the eps of its rows
  std::vector<int64_t> labels;
};

// The Wilson 95% interval of an accuracy measured on n points as [lo, hi] (null for NaN), and
// the same for each accuracy of a curve.
nlohmann::json ci_json(double acc, int64_t n);
nlohmann::json ci_list(const std::vector<double>& accs, int64_t n);

// Writes OUT/eval.json, per_sample.safetensors, table1.csv, table2.csv, plots/*.svg and eval.md,
// and returns eval.md's text. Adds report["claims"]: the paper's claims judged on these numbers
// where the report holds the models they compare (AFD against AT and TRADES).
std::string write_eval_report(nlohmann::json& report, const PerSample& per_sample, const std::string& out);

// Reads the eval.json and per_sample.safetensors of each folder and merges them: models by name,
// each attack of a model from exactly one part. Throws RunError naming the folder when parts
// disagree (dataset, points, labels, a model's checkpoint or clean flags) or overlap. Errors begin
// with `flag`, the option that named the folders.
std::pair<nlohmann::json, PerSample> merge_eval_parts(const std::vector<std::string>& dirs,
                                                     const std::string& flag = "--merge");

// ---- pieces of the report shared with the report over training seeds (seeds_report.h) ----------

// A column of a table at the paper's budgets: the accuracy of one attack at one eps, white-box
// ("attacks") or black-box ("black_box", from `source`); the clean accuracy where section is empty.
struct BudgetColumn {
  std::string title, key, section, attack, norm;
  double eps;
  std::string source;
};
// Table 1's columns for a report: clean; PGD-Linf, C&W-L2 and AutoAttack white-box; PGD-Linf and
// C&W-L2 black-box from the NT source (else the first).
std::vector<BudgetColumn> table1_columns(const nlohmann::json& report);
// A model's accuracy in one column, NaN where not evaluated.
double budget_value(const nlohmann::json& model, const BudgetColumn& column);

// Figure 2 of the paper from a report's numbers: for each attack, robust accuracy (%) vs eps with
// one line per model, written to OUT/plots/accuracy_vs_eps_ATTACK.svg. Returns the Markdown
// section that embeds them.
std::string write_accuracy_plots(const nlohmann::json& report, const std::vector<std::string>& attack_list,
                                 const std::string& out);

// A Markdown table: the first column left-aligned, the others right-aligned.
std::string md_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

// "AFD-WGAN", "AT", ...: a model's method as the paper names it.
std::string method_label(const nlohmann::json& model);
// Whether two eval.json entries (models or black-box sources) name the same weights: by their
// checksum where both recorded it (a moved checkpoint folder is the same model), else by path.
bool same_weights(const nlohmann::json& a, const nlohmann::json& b);
// Per point: the clean flag of model `m`, as 0/1 (empty where the report lacks it).
std::vector<double> clean_scores(const PerSample& ps, size_t m);

// One attack's per-point scores of an AFD model (sa) and a baseline (sb), on the same points.
struct PairedScores {
  std::string attack;
  std::vector<double> sa, sb;
};
// The claims that compare an AFD model with a baseline point by point over several attacks.
struct PairedClaim {
  enum Kind { unseen_auc, feature_shift, norm_baseline_auc, transfer_auc } kind;
  std::string id;       // eval.json's "claim": "auc_unseen_attacks", ...
  std::string measure;  // "auc" or "shift"
  bool lower_is_better;
  std::vector<std::string> against;  // the baselines' methods
  std::string title;                 // its heading in eval.md: "1. AFD's AUC on unseen attacks ..."
};
// Claims 1 (AUC on unseen attacks), 5 (feature shift), 6 (AUC against the norm baseline) and 7
// (AUC under transfer from the robust models), in the report's order.
const std::vector<PairedClaim>& paired_claims();
const PairedClaim& paired_claim(PairedClaim::Kind kind);
// Per attack, the per-point scores of AFD model `a` and baseline `b` of `report` that `claim`
// compares (empty where the report holds none).
std::vector<PairedScores> paired_claim_scores(const PairedClaim& claim, const nlohmann::json& report,
                                              const PerSample& ps, size_t a, size_t b);
// A claim judged over several attacks: holds if AFD is significantly better on at least half of
// them and worse on none, does not hold if worse on more than better, otherwise inconclusive.
std::string verdict_over_attacks(int better, int worse, int attacks);
// The claims section of eval.md; sets report["claims"] to the verdicts.
std::string claims_section(nlohmann::json& report, const PerSample& ps);

}  // namespace afd::cli
