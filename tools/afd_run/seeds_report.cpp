// afd_run eval --over-seeds: the report over training seeds (seeds_report.h). The claims take
// their per-point scores from the single-report code (eval_report.h: paired_claim_scores,
// clean_scores), so a claim means the same thing here and in eval.md; only the error model differs
// (eval::difference_over_runs instead of eval::paired_difference).
#include "tools/afd_run/seeds_report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <tuple>
#include <nlohmann/json.hpp>

#include "afd/eval/stats.h"
#include "tools/afd_run/common.h"
#include "tools/afd_run/eval_report.h"

namespace afd::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kFlag = "--over-seeds";

// One report folder: its report (with its own claims judged) and per-sample results.
struct Folder {
  std::string dir;
  json report;
  PerSample ps;
};

// A model over the folders: its index in each folder's models (-1 where absent) and its runs, the
// folders of each set of weights, in the order first seen.
struct SeededModel {
  std::string name, method, label;
  std::vector<int64_t> index;
  std::vector<std::vector<size_t>> runs;
  const json& entry(const std::vector<Folder>& folders, size_t f) const {
    return folders[f].report["models"][size_t(index[f])];
  }
};

// The mean and sample sd (n - 1; NaN for one value) of the finite values.
struct Spread {
  double mean = NAN, sd = NAN;
  std::vector<double> values;
};
Spread spread(const std::vector<double>& v) {
  Spread s;
  for (double x : v)
    if (std::isfinite(x)) s.values.push_back(x);
  if (s.values.empty()) return s;
  s.mean = eval::mean(s.values);
  if (s.values.size() >= 2) s.sd = std::sqrt(eval::sample_variance(s.values));
  return s;
}

// A fraction in % with 2 decimals ("92.10"), else a score with 3 ("0.712"); `sign`: "+0.712".
std::string scaled(double v, bool as_percent, bool sign = false) {
  if (as_percent) return sign ? fmt::format("{:+.2f}", 100 * v) : fmt::format("{:.2f}", 100 * v);
  return sign ? fmt::format("{:+.3f}", v) : fmt::format("{:.3f}", v);
}

// "92.10 ± 0.40" (percent) or "0.712 ± 0.030"; the mean alone for one run; "-" for none.
std::string spread_cell(const Spread& s, bool as_percent) {
  if (s.values.empty()) return "-";
  const std::string m = scaled(s.mean, as_percent);
  return std::isfinite(s.sd) ? m + " ± " + scaled(s.sd, as_percent) : m;
}

json spread_json(const Spread& s) {
  return json{{"values", s.values}, {"mean", number(s.mean)}, {"sd", number(s.sd)}};
}

// A run's value: the mean over its folders of value(folder) (a model's own white-box numbers are
// the same in each; black-box ones may come from other sources' runs).
template <typename F>
double run_value(const std::vector<size_t>& run, F value) {
  std::vector<double> v;
  for (size_t f : run) v.push_back(value(f));
  return eval::mean(v);
}

// The runs of a model among some folders (a run keeps the folders it has there).
std::vector<std::vector<size_t>> runs_among(const SeededModel& m, const std::vector<size_t>& among) {
  std::vector<std::vector<size_t>> runs;
  for (const std::vector<size_t>& run : m.runs) {
    std::vector<size_t> kept;
    for (size_t f : run)
      if (std::find(among.begin(), among.end(), f) != among.end()) kept.push_back(f);
    if (!kept.empty()) runs.push_back(kept);
  }
  return runs;
}

// The verdict of `claim` for (afd, baseline) in one folder's own report, "-" where it has none.
std::string folder_verdict(const Folder& f, const std::string& claim, const std::string& afd,
                           const std::string& baseline, const std::string& estimator = "") {
  for (const json& c : f.report["claims"])
    if (c["claim"] == claim && c["afd"] == afd && c.value("baseline", "") == baseline &&
        c.value("estimator", "") == estimator)
      return c["verdict"];
  return "-";
}

std::vector<Folder> read_folders(const std::vector<std::string>& dirs) {
  if (dirs.size() < 2)
    throw UsageError(fmt::format("{}: name 2 or more report folders of afd_run eval, one per training seed, got {}",
                                 kFlag, dirs.size()));
  // The same report twice would count one run as two (and narrow every interval).
  for (size_t i = 0; i < dirs.size(); ++i)
    for (size_t k = 0; k < i; ++k) {
      std::error_code ec;
      if (dirs[i] == dirs[k] || std::filesystem::equivalent(dirs[i], dirs[k], ec))
        throw UsageError(fmt::format("{}: {} is named twice ({}): each report folder once", kFlag, dirs[i], dirs[k]));
    }
  std::vector<Folder> folders;
  for (const std::string& dir : dirs) {
    auto [report, ps] = merge_eval_parts({dir}, kFlag);
    claims_section(report, ps);  // the folder's own verdicts, by the rules of this version
    if (!folders.empty()) {
      const Folder& first = folders[0];
      if (report["dataset"] != first.report["dataset"] || report["count"] != first.report["count"] ||
          ps.labels != first.ps.labels)
        throw RunError(fmt::format("{}: {} evaluated {} points of {}, {} {} points of {}: the runs must share the "
                                   "dataset, the count and the points",
                                   kFlag, dir, report["count"].dump(), report["dataset"].dump(), first.dir,
                                   first.report["count"].dump(), first.report["dataset"].dump()));
    }
    folders.push_back({dir, std::move(report), std::move(ps)});
  }
  return folders;
}

std::vector<SeededModel> match_models(const std::vector<Folder>& folders) {
  std::vector<SeededModel> models;
  for (size_t f = 0; f < folders.size(); ++f) {
    const json& entries = folders[f].report["models"];
    for (size_t i = 0; i < entries.size(); ++i) {
      const json& e = entries[i];
      auto m = std::find_if(models.begin(), models.end(), [&](const SeededModel& s) { return s.name == e["name"]; });
      if (m == models.end()) {
        models.push_back({e["name"], e.value("method", ""), method_label(e), std::vector<int64_t>(folders.size(), -1), {}});
        m = models.end() - 1;
      } else if (m->method != e.value("method", "")) {
        throw RunError(fmt::format("{}: model '{}' is method {} in {} but {} in an earlier folder: one name must mean "
                                   "one method", kFlag, m->name, e.value("method", ""), folders[f].dir, m->method));
      }
      m->index[f] = int64_t(i);
      auto run = std::find_if(m->runs.begin(), m->runs.end(),
                              [&](const std::vector<size_t>& r) { return same_weights(m->entry(folders, r[0]), e); });
      if (run == m->runs.end()) m->runs.push_back({f});
      else run->push_back(f);
    }
  }
  return models;
}

// The Markdown table of the runs, and Tables 1 and 2 as mean ± sd over the runs.
std::string tables_over_runs(const std::vector<Folder>& folders, const std::vector<SeededModel>& models, json& out) {
  std::string runs_md = "| model | method | runs | folders of each run (weights crc32) |\n|---|---|---:|---|\n";
  std::vector<std::vector<BudgetColumn>> folder_columns;  // each folder's own (its black-box source)
  for (const Folder& f : folders) folder_columns.push_back(table1_columns(f.report));
  const std::vector<BudgetColumn>& columns = folder_columns[0];
  std::vector<std::string> t1_header = {"model", "runs"}, t2_header = {"model", "runs"}, attacks;
  for (const BudgetColumn& c : columns) t1_header.push_back(c.title);
  for (const Folder& f : folders)  // every white-box attack with an AUC, in the order first seen
    for (const json& m : f.report["models"])
      for (const json& a : m["attacks"])
        if (a.contains("auc") && a["auc"].is_number() &&
            std::find(attacks.begin(), attacks.end(), a["attack"].get<std::string>()) == attacks.end())
          attacks.push_back(a["attack"]);
  for (const std::string& a : attacks) t2_header.push_back(a);
  std::vector<std::vector<std::string>> t1_rows, t2_rows;
  out["models"] = json::array();
  for (const SeededModel& m : models) {
    std::vector<std::string> run_cells;
    json runs = json::array();
    for (const std::vector<size_t>& run : m.runs) {
      std::vector<std::string> dirs;
      json numbers = json::array();
      for (size_t f : run) dirs.push_back(std::to_string(f + 1)), numbers.push_back(f + 1);
      const std::string crc = m.entry(folders, run[0]).value("weights_crc32", "?");
      run_cells.push_back(fmt::format("{} ({})", fmt::join(dirs, ", "), crc));
      runs.push_back(json{{"folders", numbers}, {"weights_crc32", crc}});
    }
    runs_md += fmt::format("| {} | {} | {} | {} |\n", m.name, m.label, m.runs.size(), fmt::join(run_cells, "; "));
    json entry{{"name", m.name}, {"method", m.method}, {"runs", runs}, {"table1", json::object()}, {"auc", json::object()}};
    std::vector<std::string> t1 = {m.name, std::to_string(m.runs.size())}, t2 = t1;
    for (size_t c = 0; c < columns.size(); ++c) {
      std::vector<double> values;  // per run
      for (const std::vector<size_t>& run : m.runs)
        values.push_back(run_value(run, [&](size_t f) { return budget_value(m.entry(folders, f), folder_columns[f][c]); }));
      const Spread s = spread(values);
      t1.push_back(spread_cell(s, /*as_percent=*/true));
      entry["table1"][columns[c].key] = spread_json(s);
    }
    for (const std::string& attack : attacks) {
      std::vector<double> values;
      for (const std::vector<size_t>& run : m.runs)
        values.push_back(run_value(run, [&](size_t f) {
          for (const json& a : m.entry(folders, f)["attacks"])
            if (a["attack"] == attack && a.contains("auc") && a["auc"].is_number()) return a["auc"].get<double>();
          return double(NAN);
        }));
      const Spread s = spread(values);
      t2.push_back(spread_cell(s, /*as_percent=*/false));
      entry["auc"][attack] = spread_json(s);
    }
    t1_rows.push_back(t1), t2_rows.push_back(t2);
    out["models"].push_back(entry);
  }
  return "\n## Runs\n\nA run is one set of weights (its crc32); a model with the same weights in several folders is one "
         "run there, and its numbers are the mean over those folders.\n\n" +
         runs_md +
         "\n## Table 1 over the runs: accuracy (%), mean ± sd\n\nThe sample sd (n - 1) over the runs; one run shows "
         "its value alone. Budgets and black-box source as in each folder's Table 1.\n\n" +
         md_table(t1_header, t1_rows) +
         "\n## Table 2 over the runs: normalised AUC, mean ± sd\n\n" + md_table(t2_header, t2_rows);
}

// One AFD model against one baseline over the runs: per "attack" (a claim's score set), the
// difference of the runs' mean scores with its interval (eval::difference_over_runs). `clean_rule`:
// claim 2's verdict (holds if the difference is >= 0) at 95%; else the rule over attacks, with
// the intervals Bonferroni-corrected over them.
struct OverRunsClaim {
  std::string id, measure;
  bool lower_is_better = false, clean_rule = false;
};

json judge_over_runs(const OverRunsClaim& claim, const std::vector<Folder>& folders, const SeededModel& a,
                     const SeededModel& b, const std::vector<size_t>& among,
                     const std::vector<std::vector<PairedScores>>& scores,  // per folder of `among`
                     std::string& rows) {
  const std::vector<std::vector<size_t>> ra = runs_among(a, among), rb = runs_among(b, among);
  // The score sets every folder has.
  std::vector<std::string> attacks;
  for (const PairedScores& sc : scores[0]) {
    bool everywhere = true;
    for (const auto& per_folder : scores)
      everywhere = everywhere && std::any_of(per_folder.begin(), per_folder.end(),
                                             [&](const PairedScores& o) { return o.attack == sc.attack; });
    if (everywhere) attacks.push_back(sc.attack);
  }
  if (attacks.empty()) return nullptr;
  const double level = claim.clean_rule ? 0.95 : 1 - 0.05 / double(attacks.size());
  const bool percent_scale = claim.measure == "clean";
  auto value = [&](double v) { return scaled(v, percent_scale); };
  auto signed_value = [&](double v) { return scaled(v, percent_scale, /*sign=*/true); };
  int higher = 0, lower = 0;
  json per_attack = json::array();
  eval::RunsDifference last;
  for (const std::string& attack : attacks) {
    std::map<size_t, double> mean_a, mean_b;  // per folder
    std::vector<double> var_points;
    int64_t n = INT64_MAX;
    for (size_t k = 0; k < among.size(); ++k)
      for (const PairedScores& sc : scores[k])
        if (sc.attack == attack) {
          mean_a[among[k]] = eval::mean(sc.sa), mean_b[among[k]] = eval::mean(sc.sb);
          var_points.push_back(eval::paired_difference(sc.sa, sc.sb).variance);
          n = std::min(n, int64_t(sc.sa.size()));
        }
    std::vector<double> runs_a, runs_b;
    for (const auto& run : ra) runs_a.push_back(run_value(run, [&](size_t f) { return mean_a[f]; }));
    for (const auto& run : rb) runs_b.push_back(run_value(run, [&](size_t f) { return mean_b[f]; }));
    const eval::RunsDifference d = eval::difference_over_runs(runs_a, runs_b, eval::mean(var_points), n, level);
    const std::string outcome = d.ci.lo > 0 ? "higher" : d.ci.hi < 0 ? "lower" : "no significant difference";
    higher += d.ci.lo > 0, lower += d.ci.hi < 0;
    last = d;
    rows += fmt::format("| {} | {} | {} | {} ({}) | {} ({}) | {} ({} to {}) | {:.1f} | {} |\n", a.name, b.name, attack,
                        value(eval::mean(runs_a)), runs_a.size(), value(eval::mean(runs_b)), runs_b.size(),
                        signed_value(d.mean), signed_value(d.ci.lo), signed_value(d.ci.hi), d.df, outcome);
    per_attack.push_back(json{{"attack", attack},
                              {"afd_runs", runs_a},
                              {"baseline_runs", runs_b},
                              {"difference", d.mean},
                              {"ci", {d.ci.lo, d.ci.hi}},
                              {"df", number(d.df)},
                              {"var_runs_afd", d.var_a},
                              {"var_runs_baseline", d.var_b},
                              {"var_points", d.var_points},
                              {"outcome", outcome}});
  }
  const int better = claim.lower_is_better ? lower : higher, worse = claim.lower_is_better ? higher : lower;
  const std::string verdict = claim.clean_rule
                                  ? (last.mean >= 0 ? "holds" : last.ci.hi < 0 ? "does not hold" : "inconclusive")
                                  : verdict_over_attacks(better, worse, int(attacks.size()));
  std::vector<std::string> single;
  for (size_t f : among) single.push_back(folder_verdict(folders[f], claim.id, a.name, b.name));
  const std::string counted = claim.clean_rule ? (last.mean >= 0 ? "difference >= 0" : "difference < 0")
                                               : fmt::format("higher on {}, lower on {} of {}", higher, lower,
                                                             attacks.size());
  rows += fmt::format("| {} | {} | **verdict** | | | {} | | **{}** (single folders: {}) |\n", a.name, b.name, counted,
                      verdict, fmt::join(single, ", "));
  return json{{"claim", claim.id},   {"afd", a.name},          {"baseline", b.name},
              {"level", level},      {"attacks", per_attack},  {"verdict", verdict},
              {"afd_runs", ra.size()}, {"baseline_runs", rb.size()}, {"single_folder_verdicts", single}};
}

std::string claims_over_runs(const std::vector<Folder>& folders, const std::vector<SeededModel>& models, json& out) {
  out["claims"] = json::array();
  out["not_judged"] = json::array();
  struct Spec {
    OverRunsClaim claim;
    std::vector<std::string> against;
    std::string title;
    const PairedClaim* paired;  // nullptr: claim 2 (clean flags)
  };
  std::vector<Spec> specs = {{{"clean_accuracy_not_below_at", "clean", false, true}, {"at"},
                              "2. AFD's clean accuracy is not below AT's", nullptr}};
  for (const PairedClaim& p : paired_claims())
    specs.push_back({{p.id, p.measure, p.lower_is_better, false}, p.against, p.title, &p});
  std::sort(specs.begin(), specs.end(), [](const Spec& x, const Spec& y) { return x.title < y.title; });
  std::string md;
  for (const Spec& spec : specs) {
    std::string rows;
    for (const SeededModel& a : models) {
      if (a.method != "afd") continue;
      for (const std::string& method : spec.against)
        for (const SeededModel& b : models) {
          if (b.method != method) continue;
          std::vector<size_t> among;  // the folders with both
          for (size_t f = 0; f < folders.size(); ++f)
            if (a.index[f] >= 0 && b.index[f] >= 0) among.push_back(f);
          const size_t ka = runs_among(a, among).size(), kb = runs_among(b, among).size();
          if (ka < 2 || kb < 2) {
            out["not_judged"].push_back(json{{"claim", spec.claim.id}, {"afd", a.name}, {"baseline", b.name},
                                             {"afd_runs", ka}, {"baseline_runs", kb}});
            continue;
          }
          std::vector<std::vector<PairedScores>> scores;
          for (size_t f : among) {
            const Folder& folder = folders[f];
            const size_t ia = size_t(a.index[f]), ib = size_t(b.index[f]);
            if (spec.paired) {
              scores.push_back(paired_claim_scores(*spec.paired, folder.report, folder.ps, ia, ib));
            } else {
              PairedScores clean{"clean", clean_scores(folder.ps, ia), clean_scores(folder.ps, ib)};
              scores.push_back({});
              if (clean.sa.size() >= 2 && clean.sa.size() == clean.sb.size()) scores.back().push_back(clean);
            }
          }
          json judged = judge_over_runs(spec.claim, folders, a, b, among, scores, rows);
          if (!judged.is_null()) out["claims"].push_back(judged);
        }
    }
    if (!rows.empty())
      md += fmt::format("\n### {}\n\n| AFD | baseline | {} | AFD (runs) | baseline (runs) | difference (interval) | "
                        "df | outcome |\n|---|---|---|---:|---:|---:|---:|---|\n",
                        spec.title, spec.paired ? "attack" : "score") +
            rows;
  }
  // Claims 3 and 4 have no per-point scores to pool: each folder's verdict.
  std::string rows;
  for (const SeededModel& a : models) {
    if (a.method != "afd") continue;
    for (const auto& [claim, estimator, title] :
         {std::tuple{"lower_dimensional_features", "", "3. lower-dimensional features"},
          std::tuple{"h_divergence_predicts_error_gap", "d_hat", "4. d_hat (Eq. 6) predicts the error gap"},
          std::tuple{"h_divergence_predicts_error_gap", "d_hat_fitted", "4. d_hat (fitted) predicts the error gap"}}) {
      std::vector<std::string> cells;
      for (size_t f = 0; f < folders.size(); ++f)
        cells.push_back(a.index[f] < 0 ? "-" : folder_verdict(folders[f], claim, a.name, "", estimator));
      if (std::all_of(cells.begin(), cells.end(), [](const std::string& c) { return c == "-"; })) continue;
      rows += fmt::format("| {} | {} | {} |\n", a.name, title, fmt::join(cells, " | "));
    }
  }
  if (!rows.empty()) {
    std::string header = "| AFD | claim |", rule = "|---|---|";
    for (size_t f = 0; f < folders.size(); ++f) header += fmt::format(" folder {} |", f + 1), rule += "---|";
    md += "\n### 3 and 4, folder by folder\n\nClaims 3 (PCA components) and 4 (a correlation over the (attack, eps) "
          "pairs) have no per-point scores to pool over the runs; each folder's own verdict.\n\n" +
          header + "\n" + rule + "\n" + rows;
  }
  if (!out["not_judged"].empty()) {
    std::vector<std::string> pairs;
    for (const json& n : out["not_judged"])
      pairs.push_back(fmt::format("{} vs {} ({}: {} and {} runs)", n["afd"].get<std::string>(),
                                  n["baseline"].get<std::string>(), n["claim"].get<std::string>(),
                                  n["afd_runs"].get<size_t>(), n["baseline_runs"].get<size_t>()));
    md += fmt::format("\nNot judged over the runs (fewer than 2 runs a side): {}.\n", fmt::join(pairs, "; "));
  }
  return md;
}

}  // namespace

std::string write_seeds_report(const std::vector<std::string>& dirs, const std::string& out) {
  const std::vector<Folder> folders = read_folders(dirs);
  const std::vector<SeededModel> models = match_models(folders);
  json report{{"dataset", folders[0].report["dataset"]}, {"count", folders[0].report["count"]}, {"folders", dirs}};
  std::string md = fmt::format("# The paper's claims over training seeds\n\n{} report folders on the same {} test "
                               "points of {}:\n\n",
                               dirs.size(), folders[0].report["count"].get<int64_t>(),
                               folders[0].report["dataset"].get<std::string>());
  for (size_t f = 0; f < dirs.size(); ++f) md += fmt::format("{}. {}\n", f + 1, dirs[f]);
  md += tables_over_runs(folders, models, report);
  // Figure 2 with every run: one line per model and run ("AT #2": its second run).
  json runs{{"dataset", report["dataset"]}, {"count", report["count"]}, {"models", json::array()}};
  std::vector<std::string> attacks;
  for (const SeededModel& m : models)
    for (size_t r = 0; r < m.runs.size(); ++r) {
      json entry = m.entry(folders, m.runs[r][0]);
      entry["name"] = m.runs.size() > 1 ? fmt::format("{} #{}", m.name, r + 1) : m.name;
      for (const json& a : entry["attacks"])
        if (std::find(attacks.begin(), attacks.end(), a["attack"].get<std::string>()) == attacks.end())
          attacks.push_back(a["attack"]);
      runs["models"].push_back(entry);
    }
  md += write_accuracy_plots(runs, attacks, out);
  md += "\n## The paper's claims over the runs\n\n"
        "Each comparison needs 2 or more runs of both models. Per attack, the difference is the mean over AFD's runs of "
        "its mean score minus the same for the baseline. Its variance adds the runs' spread (Welch: s_a^2/k_a + "
        "s_b^2/k_b) and the points' (a folder's paired sd^2/n, averaged over the folders: the same points serve every "
        "run, so more runs do not shrink it); the interval takes Student's t at the Welch-Satterthwaite df "
        "(afd/eval/stats.h), Bonferroni-corrected over a comparison's attacks (95% jointly; claim 2: 95%). Verdicts "
        "follow the single report's rules (docs/evaluation.md), next to the verdicts of the single folders. With 2 or "
        "3 runs a side the df is small and the interval wide: that is what a few seeds can tell.\n";
  md += claims_over_runs(folders, models, report);
  write_text((fs::path(out) / "seeds.json").string(), report.dump(2) + "\n");
  write_text((fs::path(out) / "seeds.md").string(), md);
  return md;
}

}  // namespace afd::cli
