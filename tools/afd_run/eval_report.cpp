// afd_run eval's report from eval.json and the per-sample flags: the accuracy tables, Tables 1
// and 2, the plots (Figures 2 and 3), Table A4, the sanity reports, timings and the per-claim
// verdicts; and the merge of several evaluations into one (eval_report.h).
#include "tools/afd_run/eval_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "afd/eval/stats.h"
#include "afd/report/svg_plot.h"
#include "nn/safetensors.h"
#include "tools/afd_run/common.h"

namespace afd::cli {

namespace fs = std::filesystem;
using nlohmann::json;

// The Wilson 95% interval (afd/eval/stats.h) of an accuracy measured on n points, as [lo, hi]
// fractions (null for NaN).
json ci_json(double acc, int64_t n) {
  if (!std::isfinite(acc)) return nullptr;
  const eval::Interval ci = eval::wilson_interval(acc, n);
  return json::array({ci.lo, ci.hi});
}

// ci_json of every accuracy of a curve.
json ci_list(const std::vector<double>& accs, int64_t n) {
  json out = json::array();
  for (double a : accs) out.push_back(ci_json(a, n));
  return out;
}

namespace {

// "plots/PREFIX_ATTACK.svg", the attack's name kept to letters, digits, '-' and '_'.
std::string plot_file(const std::string& prefix, const std::string& attack) {
  std::string file = attack;
  for (char& c : file)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
  return "plots/" + prefix + "_" + file + ".svg";
}

}  // namespace

std::string write_accuracy_plots(const json& eval_json, const std::vector<std::string>& attack_list, const std::string& out) {
  std::string md = "\n## Robust accuracy vs eps\n\n";
  for (const std::string& attack : attack_list) {
    report::LineChart chart;
    chart.y_min = 0;
    chart.y_max = 100;
    chart.y_label = "robust accuracy (%)";
    std::string norm;
    for (const json& model : eval_json["models"])
      for (const json& a : model["attacks"])
        if (a["attack"] == attack) {
          report::Series series{model["name"].get<std::string>(), a["eps"].get<std::vector<double>>(), {}};
          for (const json& v : a["robust_acc"]) series.y.push_back(v.is_number() ? 100 * v.get<double>() : NAN);
          norm = a["config"]["norm"].get<std::string>();
          chart.series.push_back(std::move(series));
        }
    chart.title = fmt::format("{}: robust accuracy vs eps ({}, first {} test points)", attack,
                              eval_json["dataset"].get<std::string>(), eval_json["count"].get<int64_t>());
    chart.x_label = fmt::format("eps ({})", norm);
    const std::string file = plot_file("accuracy_vs_eps", attack);
    report::write_svg((fs::path(out) / file).string(), chart);
    md += fmt::format("![{}: robust accuracy vs eps, one line per model]({})\n\n", attack, file);
  }
  return md;
}

namespace {

// ---- confidence intervals and tables ------------------------------------------------------------

// "97.40 (96.2–98.2)": the accuracy in % and its Wilson 95% interval, for the Markdown tables.
std::string acc_cell(double acc, int64_t n) {
  if (!std::isfinite(acc)) return "-";
  const eval::Interval ci = eval::wilson_interval(acc, n);
  return fmt::format("{} ({:.1f}–{:.1f})", percent(acc), 100 * ci.lo, 100 * ci.hi);
}

}  // namespace

std::string md_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::string md = "|";
  for (const auto& h : header) md += " " + h + " |";
  md += "\n|";
  for (size_t i = 0; i < header.size(); ++i) md += i == 0 ? "---|" : "---:|";
  md += "\n";
  for (const auto& row : rows) {
    md += "|";
    for (const auto& c : row) md += " " + c + " |";
    md += "\n";
  }
  return md;
}

namespace {

// RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string csv_line(const std::vector<std::string>& fields) {
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) line += ',';
    line += csv_field(fields[i]);
  }
  return line + "\n";
}

// Table 1 budgets (specs/afd.md): Linf 0.3 on MNIST, 0.031 on CIFAR, 0.015 on Tiny-ImageNet; L2 1.0
// everywhere; AutoAttack at the PGD eps. A grid eps within kEpsMatch of the budget counts (the CIFAR
// grids hold 8/255 = 0.0314 and 4/255 = 0.0157).
double table1_linf_eps(const std::string& dataset) {
  if (dataset == "mnist" || dataset == "fashion-mnist") return 0.3;
  if (dataset.rfind("cifar", 0) == 0) return 0.031;
  return 0.015;
}
constexpr double kTable1L2Eps = 1.0;
constexpr double kEpsMatch = 1e-3;

// Whether an "attacks" or "black_box" entry counts for `source`: every entry when it is empty,
// else the black-box entries transferred from that source.
bool from_source(const json& entry, const std::string& source) {
  return source.empty() || entry.value("source", "") == source;
}

// The accuracy of `attack` in `norm` at `eps` in a model's "attacks" or "black_box" list (of the
// entries from_source), NaN when that attack, norm or eps was not evaluated.
double accuracy_at(const json& entries, const std::string& attack, const std::string& norm, double eps,
                   const std::string& source = "") {
  for (const json& a : entries)
    if (a["attack"] == attack && a["config"]["norm"] == norm && from_source(a, source))
      for (size_t j = 0; j < a["eps"].size(); ++j)
        if (std::abs(a["eps"][j].get<double>() - eps) <= kEpsMatch && a["robust_acc"][j].is_number())
          return a["robust_acc"][j].get<double>();
  return NAN;
}

// The black-box sources of a report, in the order evaluated.
std::vector<std::string> source_names(const json& report) {
  std::vector<std::string> names;
  for (const json& s : report.value("black_box_sources", json::array())) names.push_back(s["name"]);
  return names;
}

// The source of Table 1's black-box columns: the paper transfers from its naturally trained model,
// so the first NT source, else the first source ("" when there is none).
std::string table1_source(const json& report) {
  for (const json& s : report.value("black_box_sources", json::array()))
    if (s["method"] == "nt") return s["name"];
  const std::vector<std::string> names = source_names(report);
  return names.empty() ? "" : names[0];
}

struct TableFiles {
  std::string md, csv;
};

}  // namespace

double budget_value(const json& model, const BudgetColumn& c) {
  if (c.section.empty()) return model["clean_acc"].get<double>();
  return model.contains(c.section) ? accuracy_at(model[c.section], c.attack, c.norm, c.eps, c.source) : NAN;
}

std::vector<BudgetColumn> table1_columns(const json& report) {
  const double linf = table1_linf_eps(report["dataset"]);
  const std::string source = table1_source(report);
  return {{"clean", "clean", "", "", "", 0, ""},
          {fmt::format("PGD-Linf WB ({})", format_real(linf)), "pgd_linf_wb", "attacks", "pgd-linf", "linf", linf, ""},
          {fmt::format("C&W-L2 WB ({})", format_real(kTable1L2Eps)), "cw_l2_wb", "attacks", "cw-l2", "l2", kTable1L2Eps,
           ""},
          {fmt::format("AA-Linf WB ({})", format_real(linf)), "aa_linf_wb", "attacks", "autoattack", "linf", linf, ""},
          {fmt::format("PGD-Linf BB ({})", format_real(linf)), "pgd_linf_bb", "black_box", "pgd-linf", "linf", linf,
           source},
          {fmt::format("C&W-L2 BB ({})", format_real(kTable1L2Eps)), "cw_l2_bb", "black_box", "cw-l2", "l2",
           kTable1L2Eps, source}};
}

namespace {

// One row per model, one column per BudgetColumn. Markdown cells "acc (lo–hi)" in %; CSV columns
// acc, ci_lo, ci_hi in % with 2 decimals, empty where not evaluated.
TableFiles budget_table(const json& report, const std::vector<BudgetColumn>& columns) {
  const int64_t n = report["count"];
  std::vector<std::string> header = {"model"}, csv_header = {"model", "n"};
  for (const BudgetColumn& c : columns) {
    header.push_back(c.title);
    for (const char* suffix : {"", "_ci_lo", "_ci_hi"}) csv_header.push_back(c.key + suffix);
  }
  TableFiles t;
  t.csv = csv_line(csv_header);
  std::vector<std::vector<std::string>> rows;
  for (const json& model : report["models"]) {
    std::vector<std::string> row = {model["name"]}, fields = {model["name"], std::to_string(n)};
    for (const BudgetColumn& c : columns) {
      const double acc = budget_value(model, c);
      row.push_back(acc_cell(acc, n));
      if (std::isfinite(acc)) {
        const eval::Interval ci = eval::wilson_interval(acc, n);
        for (double v : {acc, ci.lo, ci.hi}) fields.push_back(fmt::format("{:.2f}", 100 * v));
      } else {
        fields.insert(fields.end(), 3, "");
      }
    }
    rows.push_back(row);
    t.csv += csv_line(fields);
  }
  t.md = md_table(header, rows);
  return t;
}

// Table 1 of the paper from eval.json: clean and robust accuracy at the headline budgets, white-box
// and black-box (from table1_source), one row per model.
TableFiles table1(const json& report) {
  const std::string dataset = report["dataset"];
  const std::string source = table1_source(report);
  TableFiles t = budget_table(report, table1_columns(report));
  t.md = fmt::format(
             "\n## Table 1: accuracy (%) at the paper's budgets\n\n"
             "Wilson 95% intervals in brackets (n = {} points). Budgets (specs/afd.md): Linf eps {} on {}, L2 eps {}; "
             "a grid eps within {} of the budget counts. WB = white-box (attacked on the model itself), BB = "
             "black-box (crafted on {}, evaluated on the model). '-': not evaluated (add the attack to --attacks or "
             "--bb-attacks, with the budget in its eps grid). Also in table1.csv.\n\n",
             report["count"].get<int64_t>(), format_real(table1_linf_eps(dataset)), dataset, format_real(kTable1L2Eps),
             format_real(kEpsMatch), source.empty() ? "a --source-checkpoint" : "the source " + source) +
         t.md;
  return t;
}

// Table A3 of the paper: black-box accuracy at Table 1's budgets for every source (the paper adds
// transfer from AT and TRADES to Table 1's from NT). Empty with fewer than two sources (Table 1
// holds the one).
TableFiles table_a3(const json& report) {
  const std::vector<std::string> sources = source_names(report);
  if (sources.size() < 2) return {};
  const double linf = table1_linf_eps(report["dataset"]);
  std::vector<BudgetColumn> columns;
  for (const std::string& s : sources) {
    columns.push_back({fmt::format("PGD-Linf from {} ({})", s, format_real(linf)), "pgd_linf_from_" + s, "black_box",
                       "pgd-linf", "linf", linf, s});
    columns.push_back({fmt::format("C&W-L2 from {} ({})", s, format_real(kTable1L2Eps)), "cw_l2_from_" + s,
                       "black_box", "cw-l2", "l2", kTable1L2Eps, s});
  }
  TableFiles t = budget_table(report, columns);
  t.md = fmt::format("\n## Table A3: black-box accuracy (%) by source\n\n"
                     "Adversarials crafted on each source model at Table 1's budgets, evaluated on each model (a "
                     "source evaluated on its own adversarials shows its white-box accuracy). Wilson 95% intervals in brackets (n = {} "
                     "points). Also in table_a3.csv.\n\n",
                     report["count"].get<int64_t>()) +
         t.md;
  return t;
}

// A number of an eval.json entry, NaN where absent or null (an AUC of a model with no clean-correct
// point is null; parts evaluated before the fitted H-divergence estimate existed have no
// "d_hat_fitted").
double entry_number(const json& entry, const char* key) {
  return entry.contains(key) && entry[key].is_number() ? entry[key].get<double>() : NAN;
}

// A table cell with 3 decimals, "-" for NaN.
std::string cell3(double v) { return std::isfinite(v) ? fmt::format("{:.3f}", v) : "-"; }

// Table 2 of the paper: the normalised AUC of every white-box attack with two or more eps (see
// curve_auc: trapezoid of accuracy (fraction) over the grid, divided by eps_max - eps_min, so a
// model robust at every eps scores 1). 3 decimals; '-' / empty where undefined.
TableFiles table2(const json& report, const std::vector<std::string>& attack_list) {
  std::vector<std::string> header = {"model"}, csv_header = {"model"};
  for (const std::string& a : attack_list) {
    header.push_back(a);
    csv_header.push_back(a);
  }
  TableFiles t;
  t.csv = csv_line(csv_header);
  std::vector<std::vector<std::string>> rows;
  for (const json& model : report["models"]) {
    std::vector<std::string> row = {model["name"]}, fields = {model["name"]};
    for (const std::string& name : attack_list) {
      double auc = NAN;
      for (const json& a : model["attacks"])
        if (a["attack"] == name) auc = entry_number(a, "auc");
      row.push_back(cell3(auc));
      fields.push_back(std::isfinite(auc) ? cell3(auc) : "");  // CSV: an empty field
    }
    rows.push_back(row);
    t.csv += csv_line(fields);
  }
  t.md =
      "\n## Table 2: normalised AUC of robust accuracy vs eps\n\n"
      "AUC = (trapezoid area under accuracy(eps), accuracy as a fraction, over the attack's eps grid) / "
      "(eps_max - eps_min): 1 for a model that keeps every point at every eps. Grids with one eps have no AUC ('-'). "
      "Also in table2.csv.\n\n";
  t.md += md_table(header, rows);
  return t;
}

// Pearson correlation of two samples (NaN with fewer than 2 points or no spread).
double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = a.size();
  if (n < 2) return NAN;
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; ++i) ma += a[i] / double(n), mb += b[i] / double(n);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : NAN;
}

// Figure 3 from eval.json's "h_divergence" entries: d_hat vs eps and error gap vs eps (one line per
// model and attack) and d_hat (Eq. 6 and fitted) against the error gap (one scatter series per
// model and attack), in OUT/plots; returns eval.md's section (a table and the plots). Empty when
// no model has D.
std::string write_h_divergence(const json& report, const std::string& out) {
  const bool many = report["models"].size() > 1;
  report::LineChart dhat, gap, scatter, scatter_fitted;
  dhat.title = "estimated H-divergence vs eps (Eq. 6)";
  dhat.y_label = "d_hat = 2 |alpha - 1|";
  dhat.y_min = 0, dhat.y_max = 2;
  gap.title = "adversarial minus clean error vs eps";
  gap.y_label = "error gap (percentage points)";
  scatter.title = "d_hat (Eq. 6) vs error gap, across attacks and eps";
  scatter_fitted.title = "d_hat (fitted threshold) vs error gap, across attacks and eps";
  scatter.x_label = "d_hat (Eq. 6)";
  scatter_fitted.x_label = "d_hat (fitted threshold)";
  scatter.y_label = scatter_fitted.y_label = "error gap (percentage points)";
  scatter.lines = scatter_fitted.lines = false;
  dhat.x_label = gap.x_label = "eps (each attack's norm)";
  std::string rows, corr;
  for (const json& model : report["models"]) {
    if (!model.contains("h_divergence")) continue;
    std::vector<std::string> order;  // attacks in the order evaluated
    for (const json& h : model["h_divergence"])
      if (std::find(order.begin(), order.end(), h["attack"]) == order.end()) order.push_back(h["attack"]);
    std::vector<double> all_d, all_gap, all_f, all_f_gap;
    for (const std::string& attack : order) {
      const std::string name = many ? model["name"].get<std::string>() + " / " + attack : attack;
      report::Series sd{name, {}, {}}, sg{name, {}, {}}, ss{name, {}, {}}, sf{name, {}, {}};
      for (const json& h : model["h_divergence"]) {
        if (h["attack"] != attack) continue;
        const double eps = h["eps"], d = entry_number(h, "d_hat"), f = entry_number(h, "d_hat_fitted");
        const double g = 100 * h["error_gap"].get<double>();
        sd.x.push_back(eps), sd.y.push_back(d);
        sg.x.push_back(eps), sg.y.push_back(g);
        ss.x.push_back(d), ss.y.push_back(g);
        sf.x.push_back(f), sf.y.push_back(g);
        if (std::isfinite(d)) all_d.push_back(d), all_gap.push_back(g);
        if (std::isfinite(f)) all_f.push_back(f), all_f_gap.push_back(g);
        rows += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {:.2f} |\n", model["name"].get<std::string>(), attack,
                            format_real(eps), cell3(entry_number(h, "alpha")), cell3(d),
                            cell3(entry_number(h, "alpha_fitted")), cell3(f), g);
      }
      dhat.series.push_back(sd), gap.series.push_back(sg), scatter.series.push_back(ss);
      scatter_fitted.series.push_back(sf);
    }
    const double r = pearson(all_d, all_gap), rf = pearson(all_f, all_f_gap);
    corr += fmt::format("- {}: Pearson r(d_hat, error gap) = {} over {} (attack, eps) points; with the fitted "
                        "threshold {} over {}\n",
                        model["name"].get<std::string>(), cell3(r), all_d.size(), cell3(rf), all_f.size());
  }
  if (rows.empty()) return "";
  // One eps grid may span Linf and L2 budgets; the plots share the x axis all the same.
  report::write_svg((fs::path(out) / "plots/h_divergence_vs_eps.svg").string(), dhat);
  report::write_svg((fs::path(out) / "plots/error_gap_vs_eps.svg").string(), gap);
  scatter.x_min = scatter_fitted.x_min = 0, scatter.x_max = scatter_fitted.x_max = 2;
  report::write_svg((fs::path(out) / "plots/d_hat_vs_error_gap.svg").string(), scatter);
  report::write_svg((fs::path(out) / "plots/d_hat_fitted_vs_error_gap.svg").string(), scatter_fitted);
  return "\n## H-divergence estimate and error gap (Figure 3)\n\n"
         "From the AFD discriminator D of each checkpoint on the points the attack was run on (clean-correct ones). "
         "Eq. 6: alpha = P_clean[D > 0] + P_adv[D < 0], d_hat = 2 |alpha - 1| (0: D cannot tell adversarial features "
         "from clean ones). Fitted: the threshold 0 replaced by the one (and the orientation) that fits best on the "
         "other half of the points (2-fold cross-fitting; a Wasserstein critic's offset is arbitrary). Error gap = "
         "adversarial error - clean error = clean accuracy - robust accuracy, over all points, in percentage points."
         "\n\n| model | attack | eps | alpha | d_hat | alpha (fitted) | d_hat (fitted) | error gap |\n"
         "|---|---|---:|---:|---:|---:|---:|---:|\n" +
         rows + "\n" + corr +
         "\n![d_hat vs eps](plots/h_divergence_vs_eps.svg)\n\n![error gap vs eps](plots/error_gap_vs_eps.svg)\n\n"
         "![d_hat vs error gap](plots/d_hat_vs_error_gap.svg)\n\n"
         "![fitted d_hat vs error gap](plots/d_hat_fitted_vs_error_gap.svg)\n";
}

// ---- the accuracy tables ------------------------------------------------------------------------

// The attacks of a report's `section` ("attacks": white-box, "black_box"; the entries from_source),
// in the order first evaluated.
std::vector<std::string> attack_order(const json& report, const char* section, const std::string& source = "") {
  std::vector<std::string> order;
  for (const json& model : report["models"])
    if (model.contains(section))
      for (const json& a : model[section])
        if (from_source(a, source) && std::find(order.begin(), order.end(), a["attack"].get<std::string>()) == order.end())
          order.push_back(a["attack"]);
  return order;
}

// A model's entry for `attack` in `section` (from_source), or nullptr.
const json* find_attack(const json& model, const char* section, const std::string& attack,
                        const std::string& source = "") {
  if (!model.contains(section)) return nullptr;
  for (const json& a : model[section])
    if (a["attack"] == attack && from_source(a, source)) return &a;
  return nullptr;
}

// One table per attack, one row per model: (clean,) the accuracy at every eps > 0 of any model's
// grid for that attack (and the AUC where a grid has two or more eps); "-" where a model lacks the
// attack or the eps. Black-box tables take the entries of one `source`.
std::string accuracy_tables(const json& report, const char* section, bool with_clean, bool with_auc,
                            const std::string& source = "") {
  const int64_t n = report["count"];
  std::string md;
  for (const std::string& attack : attack_order(report, section, source)) {
    std::vector<double> grid;
    bool has_auc = false;
    std::string norm;
    for (const json& model : report["models"])
      if (const json* a = find_attack(model, section, attack, source)) {
        for (const json& e : (*a)["eps"])
          if (e.get<double>() > 0 && std::find(grid.begin(), grid.end(), e.get<double>()) == grid.end())
            grid.push_back(e);
        has_auc = has_auc || (*a)["eps"].size() >= 2;
        norm = (*a)["config"]["norm"];
      }
    std::sort(grid.begin(), grid.end());
    std::vector<std::string> header = {"model"};
    if (with_clean) header.push_back("clean");
    for (double e : grid) header.push_back("eps " + format_real(e));
    if (with_auc && has_auc) header.push_back("AUC");
    std::vector<std::vector<std::string>> rows;
    for (const json& model : report["models"]) {
      const json* a = find_attack(model, section, attack, source);
      if (!a) continue;
      std::vector<std::string> row = {model["name"]};
      if (with_clean) row.push_back(acc_cell(model["clean_acc"].get<double>(), n));
      for (double e : grid) {
        std::string cell = "-";
        for (size_t j = 0; j < (*a)["eps"].size(); ++j)
          if ((*a)["eps"][j].get<double>() == e && (*a)["robust_acc"][j].is_number())
            cell = acc_cell((*a)["robust_acc"][j].get<double>(), n);
        row.push_back(cell);
      }
      if (with_auc && has_auc)
        row.push_back(cell3(entry_number(*a, "auc")));
      rows.push_back(row);
    }
    md += fmt::format("\n### {} ({})\n\n", attack, norm) + md_table(header, rows);
  }
  return md;
}

// Figure A4 from eval.json's "sensitivity" entries: for each attack, the mean relative feature shift
// vs eps, one line per model, in OUT/plots/feature_shift_vs_eps_ATTACK.svg; returns eval.md's
// section (a table per attack, and the plots). Empty when no model has the entries.
std::string write_sensitivity(const json& report, const std::vector<std::string>& attack_list, const std::string& out) {
  std::string md, scale_note;
  for (const std::string& attack : attack_list) {
    report::LineChart chart;
    chart.y_min = 0;
    chart.y_label = "mean ||F(x') - F(x)|| / ||F(x)||";
    chart.x_label = "eps";
    for (const json& model : report["models"])
      if (const json* a = find_attack(model, "attacks", attack))
        chart.x_label = fmt::format("eps ({})", (*a)["config"]["norm"].get<std::string>());
    chart.title = fmt::format("{}: feature shift vs eps ({}, first {} test points)", attack,
                              report["dataset"].get<std::string>(), report["count"].get<int64_t>());
    std::vector<double> grid;  // the eps of every model's entries, ascending
    for (const json& model : report["models"])
      for (const json& e : model.value("sensitivity", json::array()))
        if (e["attack"] == attack && std::find(grid.begin(), grid.end(), e["eps"].get<double>()) == grid.end())
          grid.push_back(e["eps"]);
    if (grid.empty()) continue;
    std::sort(grid.begin(), grid.end());
    std::vector<std::string> header = {"model"};
    for (double e : grid) header.push_back("eps " + format_real(e));
    std::vector<std::vector<std::string>> rows;
    for (const json& model : report["models"]) {
      const std::string name = model["name"];
      report::Series series{name, {}, {}};
      std::vector<std::string> row(grid.size() + 1, "-");
      row[0] = name;
      for (const json& e : model.value("sensitivity", json::array())) {
        if (e["attack"] != attack) continue;
        const double eps = e["eps"], rel = entry_number(e, "relative_shift"), abs = entry_number(e, "shift");
        series.x.push_back(eps), series.y.push_back(rel);
        row[size_t(std::find(grid.begin(), grid.end(), eps) - grid.begin()) + 1] = cell3(rel);
        if (std::isfinite(rel) && std::isfinite(abs) && std::abs(rel - abs) > 1e-6 * std::max(1.0, abs) &&
            scale_note.find(name + ",") == std::string::npos)
          scale_note += name + ",";
      }
      if (series.x.empty()) continue;
      chart.series.push_back(std::move(series));
      rows.push_back(row);
    }
    const std::string file = plot_file("feature_shift_vs_eps", attack);
    report::write_svg((fs::path(out) / file).string(), chart);
    md += fmt::format("\n### {}\n\n", attack) + md_table(header, rows) +
          fmt::format("\n![{}: feature shift vs eps, one line per model]({})\n", attack, file);
  }
  if (md.empty()) return "";
  std::string note;
  if (!scale_note.empty()) {
    scale_note.pop_back();
    note = fmt::format(" The features of {} are not L2-normalised: there the absolute shift S_e (eval.json) "
                       "differs.", scale_note);
  }
  return "\n## Feature sensitivity (Figure A4)\n\n"
         "How far each attack moves the features z = F(x): the mean over the points it ran on (the clean-correct ones) "
         "of ||F(x') - F(x)||_2 / ||F(x)||_2, per eps. For L2-normalised features (the paper's ResNets) this is the "
         "paper's S_e = mean ||F(x) - F(x')|| (Sec. 4.6); desensitised features move little." + note + "\n" + md;
}

// Table A4, the sanity reports and the timings, from each model's entries.
std::string representation_section(const json& report) {
  std::string md;
  for (const json& model : report["models"])
    if (model.contains("representation")) {
      const json& r = model["representation"];
      md += fmt::format("| {} | {} | {} | {} |\n", model["name"].get<std::string>(), r["features"].get<int64_t>(),
                        r["nonzero"].get<int64_t>(), r["pca_99"].get<int64_t>());
    }
  if (md.empty()) return "";
  return "\nRepresentation (Table A4 of the paper; z = F(x) on the clean points):\n\n| model | feature dims | "
         "non-zero dims | PCA components for 99% variance |\n|---|---:|---:|---:|\n" + md;
}

std::string sanity_section(const json& report) {
  std::string md;
  for (const json& model : report["models"]) {
    if (!model.contains("sanity")) continue;
    const json& s = model["sanity"];
    md += fmt::format("\nSanity report for {} ({} eps {}, first {} points{}):\n\n", model["name"].get<std::string>(),
                      s["norm"].get<std::string>(), format_real(s["eps"].get<double>()), s["points"].get<int64_t>(),
                      s["all_ok"].get<bool>() ? ", all passed" : ", SOME FAILED");
    for (const json& item : s["items"])
      md += fmt::format("- [{}] {}: {}\n", item["ok"].get<bool>() ? "ok" : "!!", item["check"].get<std::string>(),
                        item["detail"].get<std::string>());
  }
  return md;
}

std::string timing_section(const json& report) {
  std::string md;
  for (const json& model : report["models"]) {
    double wall = 0, cpu = 0;
    for (const json& a : model["attacks"]) {
      const double w = a.value("seconds", 0.0), c = a.value("cpu_seconds", 0.0);
      md += fmt::format("| {} | {} | {} | {} |\n", model["name"].get<std::string>(), a["attack"].get<std::string>(),
                        duration(w), duration(c));
      wall += w, cpu += c;
    }
    if (model["attacks"].size() > 1)
      md += fmt::format("| {} | **all white-box attacks** | **{}** | **{}** |\n", model["name"].get<std::string>(),
                        duration(wall), duration(cpu));
  }
  for (const json& source : report.value("black_box_sources", json::array()))
    for (const json& a : source["attacks"])
      md += fmt::format("| {} (black-box source) | {} | {} | - |\n", source["name"].get<std::string>(),
                        a["attack"].get<std::string>(), duration(a["seconds"].get<double>()));
  if (md.empty()) return "";
  std::string where;  // afd's version, the device and threads (of the first part, when merged)
  if (report.contains("version")) {
    const int64_t threads = report.value("threads", int64_t{0});
    const std::string device = report.value("device", "?");
    where = fmt::format(" afd {} on {}, {}{}{}.", report["version"].get<std::string>(), device,
                        threads > 0 ? fmt::format("{} thread(s)", threads) : "all cores",
                        device == "cpu" && report.contains("blas") ? ", " + report["blas"].get<std::string>() : "",
                        report.contains("merged_from")
                            ? fmt::format("; merged from {} parts", report["merged_from"].size())
                            : "");
  }
  return fmt::format("\n## Timing\n\nWall and CPU time of each attack over its whole eps grid on {} points (CPU time "
                     "counts the compute where a busy machine stretches wall time).{}\n\n| model | attack | wall | CPU |\n"
                     "|---|---|---:|---:|\n",
                     report["count"].get<int64_t>(), where) + md;
}

// ---- the paper's claims -------------------------------------------------------------------------

}  // namespace

std::string method_label(const json& model) {
  std::string m = model.value("method", "");
  for (char& c : m) c = char(std::toupper(static_cast<unsigned char>(c)));
  if (m == "AFD" && model.contains("gan")) {
    std::string g = model["gan"];
    for (char& c : g) c = char(std::toupper(static_cast<unsigned char>(c)));
    m += "-" + g;
  }
  return m;
}

const Tensor* find_tensor(const PerSample& ps, const std::string& name) {
  for (const auto& [n, t] : ps.tensors)
    if (n == name) return &t;
  return nullptr;
}

std::vector<double> clean_scores(const PerSample& ps, size_t m) {
  const Tensor* t = find_tensor(ps, fmt::format("m{}.clean", m));
  if (!t) return {};
  std::vector<double> s;
  for (uint8_t f : t->to_vector<uint8_t>()) s.push_back(f);
  return s;
}

namespace {

// Per point (column) of the [E, N] per-sample tensor `name`: curve_auc (Table 2's rule) of its
// values over the tensor's eps grid, NaN where one of them is. Empty where the tensor is missing
// or its grid has fewer than 2 eps (no area).
std::vector<double> point_areas(const PerSample& ps, const std::string& name) {
  const Tensor* t = find_tensor(ps, name);
  if (!t || !ps.eps.contains(name)) return {};
  const std::vector<double> eps = ps.eps[name].get<std::vector<double>>();
  const int64_t e = t->size(0), n = t->size(1);
  if (int64_t(eps.size()) != e || e < 2) return {};
  const std::vector<double> v = t->to(DType::f64).to_vector<double>();  // [E, N]
  std::vector<double> s, column(size_t(e), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < e; ++j) column[size_t(j)] = v[size_t(j * n + i)];
    s.push_back(curve_auc(eps, column));
  }
  return s;
}

// Per point: the area under its robust flags, so that their mean over the points is the model's
// AUC. Empty where the attack was not evaluated or its grid has no AUC.
std::vector<double> auc_scores(const PerSample& ps, size_t m, const std::string& attack, const std::string& source = "") {
  std::vector<double> s = point_areas(ps, source.empty() ? fmt::format("m{}.wb.{}.robust", m, attack)
                                                         : fmt::format("m{}.bb.{}.{}.robust", m, source, attack));
  if (std::any_of(s.begin(), s.end(), [](double v) { return std::isnan(v); })) return {};
  return s;
}

// Per point: the area under its relative feature shift (the mean shift over the eps range; eps 0
// has none), NaN for a point the attack did not run on. Empty where the attack has no shift
// tensor (parts evaluated before it existed) or a one-eps grid.
std::vector<double> shift_scores(const PerSample& ps, size_t m, const std::string& attack) {
  return point_areas(ps, fmt::format("m{}.wb.{}.shift", m, attack));
}

std::string signed_pp(double fraction) { return fmt::format("{:+.2f}", 100 * fraction); }

// Whether models a and b were evaluated over one eps grid for the per-sample tensors
// "m<a>.<what>" and "m<b>.<what>": areas over different grids (merged parts run with different
// --eps) are not comparable, so a claim leaves such an attack out.
bool same_eps_grid(const PerSample& ps, size_t a, size_t b, const std::string& what) {
  const std::string na = fmt::format("m{}.{}", a, what), nb = fmt::format("m{}.{}", b, what);
  return ps.eps.contains(na) && ps.eps.contains(nb) && ps.eps[na] == ps.eps[nb];
}

}  // namespace

std::string verdict_over_attacks(int better, int worse, int attacks) {
  return worse == 0 && 2 * better >= attacks ? "holds" : worse > better ? "does not hold" : "inconclusive";
}

namespace {

// AFD model against one baseline over several attacks (claims 1, 5, 6 and 7): per attack the paired
// difference of the points' scores, its interval Bonferroni-corrected over the attacks (95%
// jointly), counted as AFD better where significantly higher (lower, with lower_is_better).
// Verdict: holds if better on at least half of the attacks and worse on none, does not hold if worse
// on more than better, otherwise inconclusive. Appends the Markdown rows; returns the claim's JSON.
json judge_over_attacks(const std::vector<PairedScores>& scores, const std::string& measure, bool lower_is_better,
                        const std::string& afd_name, const std::string& baseline_name, std::string& rows) {
  const double z = eval::normal_quantile(1 - 0.05 / (2.0 * double(scores.size())));
  int higher = 0, lower = 0;
  json per_attack = json::array();
  for (const auto& [attack, sa, sb] : scores) {
    const eval::Difference d = eval::paired_difference(sa, sb, z);
    const std::string outcome = d.ci.lo > 0 ? "higher" : d.ci.hi < 0 ? "lower" : "no significant difference";
    higher += d.ci.lo > 0, lower += d.ci.hi < 0;
    double mean_a = 0, mean_b = 0;
    for (size_t i = 0; i < sa.size(); ++i) mean_a += sa[i] / double(sa.size()), mean_b += sb[i] / double(sb.size());
    rows += fmt::format("| {} | {} | {} | {:.3f} | {:.3f} | {:+.3f} ({:+.3f} to {:+.3f}) | {} |\n", afd_name,
                        baseline_name, attack, mean_a, mean_b, d.mean, d.ci.lo, d.ci.hi, outcome);
    per_attack.push_back(json{{"attack", attack}, {"afd_" + measure, mean_a}, {"baseline_" + measure, mean_b},
                              {"difference", d.mean}, {"ci", {d.ci.lo, d.ci.hi}}, {"outcome", outcome}});
  }
  const int better = lower_is_better ? lower : higher, worse = lower_is_better ? higher : lower;
  const std::string verdict = verdict_over_attacks(better, worse, int(scores.size()));
  const int k = int(scores.size());
  rows += fmt::format("| {} | {} | **verdict** | | | higher on {}, lower on {} of {} | **{}** |\n", afd_name,
                      baseline_name, higher, lower, k, verdict);
  return json{{"z", z}, {"attacks", per_attack}, {"verdict", verdict}};
}

}  // namespace

bool same_weights(const json& a, const json& b) {
  return a.contains("weights_crc32") && b.contains("weights_crc32") ? a["weights_crc32"] == b["weights_crc32"]
                                                                      : a["checkpoint"] == b["checkpoint"];
}

const std::vector<PairedClaim>& paired_claims() {
  static const std::vector<PairedClaim> claims = {
      {PairedClaim::unseen_auc, "auc_unseen_attacks", "auc", false, {"at", "trades"},
       "1. AFD's AUC on unseen attacks is at least AT's and TRADES' (Table 2)"},
      {PairedClaim::feature_shift, "less_sensitive_features", "shift", true, {"at", "trades"},
       "5. AFD's features move less under attack than AT's and TRADES' (Figure A4)"},
      {PairedClaim::norm_baseline_auc, "auc_above_norm_baseline", "auc", false, {"norm"},
       "6. AFD generalises further than the norm baseline (Sec. 4.6, Figure A5)"},
      {PairedClaim::transfer_auc, "auc_transfer_from_robust_models", "auc", false, {"at", "trades"},
       "7. AFD resists transfer from the robust models better than AT and TRADES (Table A3)"}};
  return claims;
}

const PairedClaim& paired_claim(PairedClaim::Kind kind) {
  for (const PairedClaim& c : paired_claims())
    if (c.kind == kind) return c;
  throw std::logic_error("paired_claim: unknown kind");
}

std::vector<PairedScores> paired_claim_scores(const PairedClaim& claim, const json& report, const PerSample& ps,
                                              size_t a, size_t b) {
  const json& models = report["models"];
  std::vector<PairedScores> pairs;
  switch (claim.kind) {
    case PairedClaim::unseen_auc:          // every white-box attack with an AUC but the seen ones
    case PairedClaim::norm_baseline_auc: {  // every one
      std::vector<std::string> skip;
      if (claim.kind == PairedClaim::unseen_auc) skip = {"pgd-linf", models[a].value("train_attack", "")};
      for (const std::string& attack : attack_order(report, "attacks")) {
        if (std::find(skip.begin(), skip.end(), attack) != skip.end()) continue;
        PairedScores sc{attack, auc_scores(ps, a, attack), auc_scores(ps, b, attack)};
        if (!sc.sa.empty() && !sc.sb.empty() && same_eps_grid(ps, a, b, "wb." + attack + ".robust"))
          pairs.push_back(std::move(sc));
      }
      break;
    }
    case PairedClaim::feature_shift:
      for (const std::string& attack : attack_order(report, "attacks")) {
        const std::vector<double> sa = shift_scores(ps, a, attack), sb = shift_scores(ps, b, attack);
        if (sa.empty() || sa.size() != sb.size() || !same_eps_grid(ps, a, b, "wb." + attack + ".shift")) continue;
        PairedScores sc{attack, {}, {}};  // the points both models classify correctly (the attack ran on them)
        for (size_t i = 0; i < sa.size(); ++i)
          if (std::isfinite(sa[i]) && std::isfinite(sb[i])) sc.sa.push_back(sa[i]), sc.sb.push_back(sb[i]);
        if (sc.sa.size() >= 2) pairs.push_back(std::move(sc));
      }
      break;
    case PairedClaim::transfer_auc:  // the adversarials of the AT and TRADES sources but b's own
      for (const json& src : report.value("black_box_sources", json::array())) {
        const std::string method = src.value("method", ""), source = src["name"];
        if ((method != "at" && method != "trades") || source == models[b]["name"] || same_weights(src, models[b]))
          continue;
        for (const json& entry : src["attacks"]) {
          const std::string attack = entry["attack"];
          PairedScores sc{attack + " from " + source, auc_scores(ps, a, attack, source),
                          auc_scores(ps, b, attack, source)};
          if (!sc.sa.empty() && !sc.sb.empty() && same_eps_grid(ps, a, b, "bb." + source + "." + attack + ".robust"))
            pairs.push_back(std::move(sc));
        }
      }
      break;
  }
  return pairs;
}

namespace {

// The Markdown table of judge_over_attacks' rows, whose score is `measure` ("AUC", "shift").
std::string paired_table(const std::string& measure, const std::string& rows) {
  return fmt::format("| AFD | baseline | attack | {0} AFD | {0} baseline | difference (interval) | outcome |\n"
                     "|---|---|---|---:|---:|---:|---|\n",
                     measure) +
         rows;
}

}  // namespace

// The verdicts (the rules are in the Markdown text below and in docs/evaluation.md).
std::string claims_section(json& report, const PerSample& ps) {
  const json& models = report["models"];
  // The paper's baselines are NT, AT and TRADES; the norm baseline of its Sec. 4.6 has a claim of
  // its own (6).
  std::vector<size_t> afd, at, paper_baselines, baselines;
  for (size_t i = 0; i < models.size(); ++i) {
    const std::string m = models[i].value("method", "");
    (m == "afd" ? afd : baselines).push_back(i);
    if (m == "at") at.push_back(i);
    if (m == "nt" || m == "at" || m == "trades") paper_baselines.push_back(i);
  }
  report["claims"] = json::array();
  if (afd.empty() || baselines.empty()) return "";
  auto name = [&](size_t i) {  // "AFD-WGAN", or "run3 (AFD-WGAN)" where the name does not say the method
    const std::string n = models[i]["name"], label = method_label(models[i]);
    return n == label ? n : fmt::format("{} ({})", n, label);
  };
  std::string md =
      "\n## The paper's claims, judged on these numbers\n\n"
      "Models evaluated on the same points are compared point by point: a difference is the mean over the points of "
      "(AFD's score - the baseline's score) with its normal interval (afd/eval/stats.h). A verdict holds only for "
      "these models, points and attacks; with one training seed it says nothing about seed-to-seed spread "
      "(afd_run eval --over-seeds judges the claims over several seeds' reports).\n";

  // Claims 1, 5, 6 and 7: each AFD model against each baseline of the claim's methods, over the
  // attacks paired_claim_scores gives; returns the Markdown rows.
  auto judge_each_pair = [&](PairedClaim::Kind kind) {
    const PairedClaim& claim = paired_claim(kind);
    std::string rows;
    for (size_t a : afd)
      for (const std::string& method : claim.against)
        for (size_t b = 0; b < models.size(); ++b) {
          if (models[b].value("method", "") != method) continue;
          const std::vector<PairedScores> scores = paired_claim_scores(claim, report, ps, a, b);
          if (scores.empty()) continue;
          json entry{{"claim", claim.id}, {"afd", models[a]["name"]}, {"baseline", models[b]["name"]}};
          entry.update(judge_over_attacks(scores, claim.measure, claim.lower_is_better, name(a), name(b), rows));
          report["claims"].push_back(entry);
        }
    return rows;
  };

  // 1. AUC on unseen attacks (Table 2).
  std::string rows = judge_each_pair(PairedClaim::unseen_auc);
  if (!rows.empty())
    md += "\n### " + paired_claim(PairedClaim::unseen_auc).title + "\n\n"
          "Unseen: every white-box attack with an AUC except PGD-Linf and the model's training attack (all robust models "
          "here trained on Linf PGD-type attacks). Per point, the score is the normalised area under its robust-flag "
          "curve (its mean is the AUC). Intervals are Bonferroni-corrected over the attacks of a comparison (95% "
          "jointly). Verdict: **holds** if AFD is significantly higher on at least half of the attacks and lower on "
          "none; **does not hold** if it is significantly lower on more attacks than higher; otherwise "
          "**inconclusive**.\n\n" + paired_table("AUC", rows);

  // 2. Clean accuracy not below AT's.
  rows.clear();
  for (size_t a : afd)
    for (size_t b : at) {
      const std::vector<double> ca = clean_scores(ps, a), cb = clean_scores(ps, b);
      if (ca.size() < 2 || ca.size() != cb.size()) continue;
      const eval::Difference d = eval::paired_difference(ca, cb);
      const std::string verdict = d.mean >= 0 ? "holds" : d.ci.hi < 0 ? "does not hold" : "inconclusive";
      rows += fmt::format("| {} | {} | {} | {} | {} ({} to {}) | **{}** |\n", name(a), name(b),
                          percent(models[a]["clean_acc"].get<double>()), percent(models[b]["clean_acc"].get<double>()),
                          signed_pp(d.mean), signed_pp(d.ci.lo), signed_pp(d.ci.hi), verdict);
      report["claims"].push_back(json{{"claim", "clean_accuracy_not_below_at"}, {"afd", models[a]["name"]},
                                      {"baseline", models[b]["name"]}, {"difference", d.mean}, {"ci", {d.ci.lo, d.ci.hi}},
                                      {"verdict", verdict}});
    }
  if (!rows.empty())
    md += "\n### 2. AFD's clean accuracy is not below AT's\n\n"
          "Verdict: **holds** if AFD's clean accuracy is at least AT's; **does not hold** if it is significantly lower "
          "(95% interval of the paired difference below 0); otherwise **inconclusive**.\n\n"
          "| AFD | AT | clean AFD % | clean AT % | difference, pp (95% interval) | verdict |\n|---|---|---:|---:|---:|---|\n" +
          rows;

  // 3. Lower-dimensional features (Table A4).
  rows.clear();
  for (size_t a : afd) {
    if (!models[a].contains("representation")) continue;
    const int64_t pa = models[a]["representation"]["pca_99"];
    int below = 0, above = 0, compared = 0;
    std::string against;
    for (size_t b : paper_baselines) {
      if (!models[b].contains("representation")) continue;
      const int64_t pb = models[b]["representation"]["pca_99"];
      ++compared, below += pa < pb, above += pa > pb;
      against += fmt::format("{}{} {}", against.empty() ? "" : ", ", method_label(models[b]), pb);
    }
    if (compared == 0) continue;
    const std::string verdict = below == compared ? "holds" : above > 0 ? "does not hold" : "inconclusive";
    rows += fmt::format("| {} | {} | {} | **{}** |\n", name(a), pa, against, verdict);
    report["claims"].push_back(json{{"claim", "lower_dimensional_features"}, {"afd", models[a]["name"]}, {"pca_99", pa},
                                    {"verdict", verdict}});
  }
  if (!rows.empty())
    md += "\n### 3. AFD's features are lower-dimensional (Table A4)\n\n"
          "PCA components for 99% of the feature variance on the clean points, against NT, AT and TRADES. Verdict: "
          "**holds** if AFD needs fewer than every baseline; **does not hold** if it needs more than any; **inconclusive** on ties. Counts have no "
          "interval here.\n\n| AFD | AFD components | baselines' components | verdict |\n|---|---:|---|---|\n" + rows;

  // 4. d_hat predicts the error gap (Figure 3), for each estimator.
  rows.clear();
  for (size_t a : afd) {
    if (!models[a].contains("h_divergence")) continue;
    for (const auto& [key, estimator] : {std::pair{"d_hat", "Eq. 6"}, std::pair{"d_hat_fitted", "fitted threshold"}}) {
      std::vector<double> d, g;
      for (const json& h : models[a]["h_divergence"])
        if (std::isfinite(entry_number(h, key))) d.push_back(entry_number(h, key)), g.push_back(h["error_gap"]);
      if (d.empty()) continue;
      const double r = pearson(d, g);
      json entry{{"claim", "h_divergence_predicts_error_gap"}, {"afd", models[a]["name"]}, {"estimator", key},
                 {"pairs", d.size()}, {"r", number(r)}};
      std::string verdict = "inconclusive", cell = "- (no spread or fewer than 4 pairs)";
      if (d.size() >= 4 && std::isfinite(r)) {
        const eval::Interval ci = eval::pearson_interval(r, int64_t(d.size()));
        verdict = ci.lo > 0 ? "holds" : ci.hi < 0 ? "does not hold" : "inconclusive";
        cell = fmt::format("{:.3f} ({:.3f} to {:.3f})", r, ci.lo, ci.hi);
        entry["ci"] = {ci.lo, ci.hi};
      }
      entry["verdict"] = verdict;
      rows += fmt::format("| {} | {} | {} | {} | **{}** |\n", name(a), estimator, d.size(), cell, verdict);
      report["claims"].push_back(entry);
    }
  }
  if (!rows.empty())
    md += "\n### 4. The estimated H-divergence predicts the error gap across attacks (Figure 3)\n\n"
          "Pearson r between d_hat and the error gap over the (attack, eps) pairs, with its Fisher 95% interval; the "
          "pairs share their test points, so the interval is optimistic. Judged for Eq. 6's d_hat and for the fitted "
          "one (Figure 3's section). Verdict: **holds** if the interval lies above 0, **does not hold** if below, "
          "otherwise **inconclusive** (also when r is undefined: fewer than 4 pairs, or no spread in d_hat or the "
          "gap).\n\n"
          "| AFD | d_hat | (attack, eps) pairs | r (95% interval) | verdict |\n|---|---|---:|---:|---|\n" + rows;

  // 5. Less sensitive features (Figure A4).
  rows = judge_each_pair(PairedClaim::feature_shift);
  if (!rows.empty())
    md += "\n### " + paired_claim(PairedClaim::feature_shift).title + "\n\n"
          "Per point, the score is the mean of its relative feature shift ||F(x') - F(x)|| / ||F(x)|| over the "
          "attack's eps range (the trapezoid rule of Table 2; eps 0 moves nothing), on the points both models "
          "classify correctly, every white-box attack with two or more eps. Intervals are Bonferroni-corrected over "
          "the attacks of a comparison. Verdict: **holds** if AFD's shift is significantly lower on at least half of "
          "the attacks and higher on none; **does not hold** if it is significantly higher on more attacks than lower; "
          "otherwise **inconclusive**.\n\n" + paired_table("shift", rows);

  // 6. A discriminator desensitises better than a norm penalty (Sec. 4.6, Figure A5).
  rows = judge_each_pair(PairedClaim::norm_baseline_auc);
  if (!rows.empty())
    md += "\n### " + paired_claim(PairedClaim::norm_baseline_auc).title + "\n\n"
          "The norm baseline trains with a loss term ||F(x') - F(x)|| in place of the discriminator; the paper found "
          "it robust only to about 80% and weak against stronger and unseen attacks. Per point, the score is the "
          "normalised area under its robust-flag curve, over every white-box attack with an AUC (PGD-Linf included: "
          "its grid reaches past the training eps). Bonferroni-corrected intervals and verdicts as in claim 1.\n\n" +
          paired_table("AUC", rows);

  // 7. Transfer from the robust models (Table A3): AFD against each robust baseline, over the
  // adversarials crafted on the other robust models (a model is not judged on its own).
  rows = judge_each_pair(PairedClaim::transfer_auc);
  if (!rows.empty())
    md += "\n### " + paired_claim(PairedClaim::transfer_auc).title + "\n\n"
          "Adversarials crafted on each AT or TRADES source, evaluated on AFD and on the other robust "
          "baseline (never on the source itself). Per point, the score is the normalised area under its "
          "black-box robust-flag curve over the attack's grid. Bonferroni-corrected intervals and verdicts as "
          "in claim 1.\n\n" + paired_table("AUC", rows);
  return md;
}

namespace {

json read_json_file(const std::string& path, const std::string& flag) {
  std::ifstream f(path);
  if (!f) throw RunError(fmt::format("{}: cannot read {} ({})", flag, path, std::strerror(errno)));
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    throw RunError(fmt::format("{}: {} is not valid JSON: {}", flag, path, e.what()));
  }
}

}  // namespace

std::string write_eval_report(json& report, const PerSample& ps, const std::string& out) {
  const std::vector<std::string> attack_list = attack_order(report, "attacks");
  const int64_t count = report["count"];
  std::string md = fmt::format("{} test split, first {} points; accuracy in %, Wilson 95% interval in brackets.\n\n",
                               report["dataset"].get<std::string>(), count);
  md += "## Robust accuracy per attack and eps\n" + accuracy_tables(report, "attacks", /*with_clean=*/true, /*with_auc=*/true);
  const TableFiles t1 = table1(report), t2 = table2(report, attack_list);
  write_text((fs::path(out) / "table1.csv").string(), t1.csv);
  write_text((fs::path(out) / "table2.csv").string(), t2.csv);
  md += t1.md + t2.md;
  if (const TableFiles a3 = table_a3(report); !a3.md.empty()) {
    write_text((fs::path(out) / "table_a3.csv").string(), a3.csv);
    md += a3.md;
  }
  for (const std::string& source : source_names(report))
    md += fmt::format("\n## Black-box (transfer from {})\n\nAdversarials crafted on the source model, evaluated on "
                      "each model; accuracy in %, Wilson 95% interval in brackets.\n\n",
                      source) +
          accuracy_tables(report, "black_box", /*with_clean=*/false, /*with_auc=*/false, source);
  md += "\n";
  md += representation_section(report);
  md += sanity_section(report);
  md += claims_section(report, ps);
  md += timing_section(report);
  if (!attack_list.empty()) md += write_accuracy_plots(report, attack_list, out);
  md += write_sensitivity(report, attack_list, out);
  md += write_h_divergence(report, out);
  write_text((fs::path(out) / "eval.json").string(), report.dump(2) + "\n");
  json names = json::array();
  for (const json& model : report["models"]) names.push_back(model["name"]);
  write_safetensors((fs::path(out) / "per_sample.safetensors").string(), ps.tensors,
                    {{"models", names.dump()}, {"eps", ps.eps.dump()}, {"labels", json(ps.labels).dump()},
                     {"layout",
                      "m<i>.clean u8 [1, N]: model i correct on x; m<i>.wb.<attack>.robust u8 [E, N]: correct on x "
                      "and on the white-box x_adv at eps[j] (row j; eps 0 = clean); m<i>.wb.<attack>.norms f64 [N]: "
                      "minimal-norm attacks' norm of the adversarial found (0 clean mistake, inf none found); "
                      "m<i>.wb.<attack>.shift f64 [E, N]: ||F(x') - F(x)|| / ||F(x)|| at eps[j] (NaN where the attack did "
                      "not run); "
                      "m<i>.bb.<source>.<attack>.robust u8 [E, N]: the same for the x_adv crafted on a black-box source "
                      "model"}});
  write_text((fs::path(out) / "eval.md").string(), md);
  return md;
}

std::pair<json, PerSample> merge_eval_parts(const std::vector<std::string>& dirs, const std::string& flag) {
  if (dirs.empty()) throw UsageError(fmt::format("{}: name at least one folder of an earlier afd_run eval", flag));
  json merged;
  PerSample ps;
  std::map<std::string, std::string> origin;  // "model\nsection\nattack" -> the folder it came from
  for (const std::string& dir : dirs) {
    const std::string json_path = (fs::path(dir) / "eval.json").string();
    const std::string flags_path = (fs::path(dir) / "per_sample.safetensors").string();
    const json part = read_json_file(json_path, flag);
    SafetensorsFile file;
    try {
      file = read_safetensors(flags_path);
    } catch (const Error& e) {
      throw RunError(fmt::format("{}: {}", flag, clean_message(e.what())));
    }
    std::vector<int64_t> labels;
    json part_eps;
    try {
      if (!part.contains("dataset") || !part.contains("count") || !part.contains("models"))
        throw RunError(fmt::format("{}: {} lacks 'dataset', 'count' or 'models': not an afd_run eval report", flag,
                                   json_path));
      labels = json::parse(file.metadata.at("labels")).get<std::vector<int64_t>>();
      part_eps = json::parse(file.metadata.at("eps"));
    } catch (const std::out_of_range&) {
      throw RunError(fmt::format("{}: {} lacks the 'labels' or 'eps' metadata of afd_run eval", flag, flags_path));
    } catch (const json::exception& e) {
      throw RunError(fmt::format("{}: {}: bad metadata: {}", flag, flags_path, e.what()));
    }
    if (merged.is_null()) {
      merged = json{{"dataset", part["dataset"]}, {"count", part["count"]}, {"models", json::array()}};
      for (const char* key : {"version", "device", "threads", "blas"})
        if (part.contains(key)) merged[key] = part[key];
      ps.labels = labels;
    } else if (part["dataset"] != merged["dataset"] || part["count"] != merged["count"] || labels != ps.labels) {
      throw RunError(fmt::format("{}: {} evaluated {} points of {}, {} {} points of {}: parts must share the "
                                 "dataset, the count and the points", flag, dir, part["count"].dump(), part["dataset"].dump(),
                                 dirs[0], merged["count"].dump(), merged["dataset"].dump()));
    }
    // Models by name; each attack of a model from one part only.
    std::vector<size_t> index;  // the part's model i is merged model index[i]
    for (const json& pm : part["models"]) {
      size_t j = 0;
      while (j < merged["models"].size() && merged["models"][j]["name"] != pm["name"]) ++j;
      const std::string mname = pm["name"];
      if (j == merged["models"].size()) {
        json fresh = pm;
        for (const char* section : {"attacks", "black_box", "h_divergence", "sensitivity"}) fresh.erase(section);
        fresh["attacks"] = json::array();
        merged["models"].push_back(fresh);
      } else {
        json& mm = merged["models"][j];
        // The same weights and the same clean accuracy.
        if (!same_weights(mm, pm) || mm["clean_acc"] != pm["clean_acc"])
          throw RunError(fmt::format("{}: model '{}' is {} (clean {}) in {} but {} (clean {}) in an earlier part: "
                                     "one name must mean one model", flag, mname, pm["checkpoint"].dump(),
                                     pm["clean_acc"].dump(), dir, mm["checkpoint"].dump(), mm["clean_acc"].dump()));
        for (const char* key : {"representation", "sanity"})
          if (!mm.contains(key) && pm.contains(key)) mm[key] = pm[key];
      }
      json& mm = merged["models"][j];
      for (const char* section : {"attacks", "black_box"}) {
        if (!pm.contains(section)) continue;
        if (!mm.contains(section)) mm[section] = json::array();
        for (const json& a : pm[section]) {
          const std::string source = a.value("source", ""),
                            key = mname + "\n" + section + "\n" + a["attack"].get<std::string>() + "\n" + source;
          if (origin.count(key))
            throw RunError(fmt::format("{}: {} attack '{}' of model '{}' is in both {} and {}", flag,
                                       source.empty() ? "white-box" : "black-box (from " + source + ")",
                                       a["attack"].get<std::string>(), mname, origin[key], dir));
          origin[key] = dir;
          mm[section].push_back(a);
        }
      }
      for (const char* section : {"h_divergence", "sensitivity"}) {  // per (attack, eps): its attack's part
        if (!pm.contains(section)) continue;
        if (!mm.contains(section)) mm[section] = json::array();
        for (const json& h : pm[section]) mm[section].push_back(h);
      }
      index.push_back(j);
    }
    // Black-box sources by name: one name, one set of weights; each attack of a source from any part
    // (a part evaluating more models transfers the same adversarials).
    json part_sources = part.value("black_box_sources", json::array());
    if (part.contains("black_box_source")) part_sources.push_back(part["black_box_source"]);  // one source: older eval.json
    for (const json& src : part_sources) {
      if (!merged.contains("black_box_sources")) merged["black_box_sources"] = json::array();
      json& sources = merged["black_box_sources"];
      auto have = std::find_if(sources.begin(), sources.end(), [&](const json& h) { return h["name"] == src["name"]; });
      if (have == sources.end()) {
        sources.push_back(src);
      } else if (!same_weights(*have, src)) {
        throw RunError(fmt::format("{}: black-box source '{}' is {} in {} but {} in an earlier part: one name "
                                   "must mean one source", flag, src["name"].get<std::string>(), src["checkpoint"].dump(),
                                   dir, (*have)["checkpoint"].dump()));
      } else {
        for (const json& a : src["attacks"])
          if (std::none_of((*have)["attacks"].begin(), (*have)["attacks"].end(),
                           [&](const json& h) { return h["attack"] == a["attack"]; }))
            (*have)["attacks"].push_back(a);
      }
    }
    // Per-sample tensors, renamed to the merged model index.
    for (auto& [tname, tensor] : file.tensors) {
      size_t dot = tname.find('.');
      size_t i = 0;
      if (tname.size() < 3 || tname[0] != 'm' || dot == std::string::npos ||
          std::sscanf(tname.substr(1, dot - 1).c_str(), "%zu", &i) != 1 || i >= index.size())
        throw RunError(fmt::format("{}: {}: tensor '{}' does not name one of its {} models", flag, flags_path, tname,
                                   index.size()));
      const std::string rest = tname.substr(dot), renamed = fmt::format("m{}{}", index[i], rest);
      if (const Tensor* have = find_tensor(ps, renamed)) {
        if (rest == ".clean" && have->to_vector<uint8_t>() == tensor.to_vector<uint8_t>()) continue;
        throw RunError(fmt::format("{}: {}: '{}' {} an earlier part's", flag, flags_path, tname,
                                   rest == ".clean" ? "differs from" : "repeats"));
      }
      if (part_eps.contains(tname)) ps.eps[renamed] = part_eps[tname];
      ps.tensors.emplace_back(renamed, tensor);
    }
  }
  merged["merged_from"] = dirs;
  return {merged, ps};
}

}  // namespace afd::cli
