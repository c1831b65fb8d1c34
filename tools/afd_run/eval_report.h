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
// disagree (dataset, points, labels, a model's checkpoint or clean flags) or overlap.
std::pair<nlohmann::json, PerSample> merge_eval_parts(const std::vector<std::string>& dirs);

}  // namespace afd::cli
