// afd_run eval (checkpoints x attacks x eps grids -> eval.json, eval.md, plots/*.svg) and afd_run
// attack (one attack on N test points -> attack.json, optionally x_adv.safetensors and
// adversarial.png).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>

#include "afd/eval/representation.h"
#include "afd/report/image_grid.h"
#include "afd/report/svg_plot.h"
#include "attacks/autoattack.h"
#include "attacks/core.h"
#include "attacks/evaluate.h"
#include "attacks/sanity.h"
#include "nn/safetensors.h"
#include "tensor/error.h"
#include "tensor/ops.h"
#include "tools/afd_run/common.h"

namespace afd::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

bool known_attack(const std::string& name) {
  for (const auto& info : attacks::attack_registry())
    if (info.name == name) return true;
  return false;
}

std::string known_attacks() {
  std::string s;
  for (const auto& info : attacks::attack_registry()) s += fmt::format("{}{}", s.empty() ? "" : ", ", info.name);
  return s;
}

// The attack's config: the paper's evaluation preset for (attack, dataset), then every --attack-*
// flag given explicitly, then the seed.
attacks::AttackConfig attack_config(const FlagSet& set, const Options& opt, const std::string& attack,
                                    const std::string& dataset) {
  attacks::AttackConfig c = eval_preset(attack, dataset).config;
  for (const Flag* f : set.flags())
    if (f->set_attack && opt.given(f->name)) f->set_attack(c, opt.get(f->name));
  c.seed = uint64_t(opt.get_int("seed"));
  try {
    c.validate(attack.c_str());
  } catch (const Error& e) {
    throw UsageError(clean_message(e.what()));
  }
  return c;
}

json attack_config_json(const attacks::AttackConfig& c) {
  return json{{"norm", attacks::norm_name(c.norm)}, {"eps", c.eps},        {"steps", c.steps},
              {"step_size", c.step_size},           {"relative_step", c.relative_step},
              {"random_start", c.random_start},     {"restarts", c.restarts}, {"loss", attacks::loss_name(c.loss)},
              {"targeted", c.targeted},             {"seed", c.seed}};
}

// Options resolved for eval/attack: the help page's defaults are the paper's setting of the first
// attack on the dataset given (mnist when none).
Options resolve_model_command(const FlagSet& set, const std::vector<Assignment>& given, const std::string& first_attack,
                              const std::string& dataset) {
  std::map<std::string, std::string> defaults;
  const attacks::AttackConfig preset = eval_preset(first_attack, dataset.empty() ? "mnist" : dataset).config;
  for (const Flag* f : set.flags())
    if (f->get_attack) defaults[f->name] = f->get_attack(preset);
  return Options(set, defaults, given);
}

std::string last_value(const std::vector<Assignment>& given, const std::string& name, const std::string& fallback) {
  std::string v = fallback;
  for (const Assignment& a : given)
    if (a.name == name) v = a.value;
  return v;
}

// The test split of the checkpoint's dataset (or --dataset), from --data-dir (or data/<dataset>).
data::Dataset test_split(const Options& opt, const std::string& checkpoint_dataset) {
  std::string dataset = opt.get("dataset").empty() ? checkpoint_dataset : opt.get("dataset");
  if (dataset.empty()) dataset = "mnist";
  const std::string dir = opt.get("data-dir").empty() ? default_data_dir(dataset) : opt.get("data-dir");
  return load_split(dataset, dir, data::Split::test);
}

// The dataset named in a checkpoint's config without loading the model (to find the test split).
std::string checkpoint_dataset(const std::string& checkpoint) {
  fs::path p(checkpoint);
  if (fs::is_directory(p)) p /= "model.safetensors";
  if (!fs::exists(p)) return "";
  try {
    auto meta = read_safetensors(p.string()).metadata;
    if (meta.count("config")) return train::config_from_json(meta.at("config")).dataset;
  } catch (const std::exception&) {
  }
  return "";
}

// Figure 2 of the paper from eval.json's numbers: for each attack, robust accuracy (%) vs eps with
// one line per model, written to OUT/plots/accuracy_vs_eps_ATTACK.svg. Returns eval.md's section
// that embeds them.
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
    std::string file = attack;
    for (char& c : file)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
    file = "plots/accuracy_vs_eps_" + file + ".svg";
    report::write_svg((fs::path(out) / file).string(), chart);
    md += fmt::format("![{}: robust accuracy vs eps, one line per model]({})\n\n", attack, file);
  }
  return md;
}

}  // namespace

// ---- eval ------------------------------------------------------------------------------------

int eval_command(const std::vector<std::string>& args, Io io) {
  FlagSet set(flag_table(), kEval);
  bool help = false;
  const std::vector<Assignment> given = set.parse_args(args, &help);
  const std::vector<std::string> attack_list = parse_text_list(last_value(given, "attacks", "pgd-linf"));
  const std::string first = attack_list.empty() ? "pgd-linf" : attack_list[0];
  const Options opt = resolve_model_command(set, given, first, last_value(given, "dataset", ""));
  if (help) {
    io.out << help_text(kEval, opt.values());
    return 0;
  }
  const std::vector<std::string> checkpoints = opt.get_list("checkpoint");
  if (checkpoints.empty()) throw UsageError("--checkpoint: name at least one checkpoint folder (e.g. runs/x/checkpoint)");
  if (attack_list.empty()) throw UsageError("--attacks: name at least one attack");
  for (const auto& a : attack_list)
    if (!known_attack(a)) throw UsageError(fmt::format("--attacks: unknown attack '{}' (known: {})", a, known_attacks()));
  std::vector<std::string> names = opt.get_list("names");
  if (!names.empty() && names.size() != checkpoints.size())
    throw UsageError(fmt::format("--names: {} names for {} checkpoints", names.size(), checkpoints.size()));
  const Device device = setup_device(opt);
  const std::string out = opt.get("out");
  prepare_out_dir(out, "--out");

  const std::string dataset_of_first = checkpoint_dataset(checkpoints[0]);
  const data::Dataset test = test_split(opt, dataset_of_first);
  const std::string dataset = opt.get("dataset").empty() ? (dataset_of_first.empty() ? "mnist" : dataset_of_first)
                                                         : opt.get("dataset");
  const int64_t count = opt.get_int("count") > 0 ? std::min(opt.get_int("count"), test.size()) : test.size();
  auto [x, y] = as_tensors(test, count, device);
  write_text((fs::path(out) / "resolved.flags").string(),
             opt.resolved_flagfile("# afd_run eval, fully resolved; rerun: afd_run eval --flagfile " + out +
                                   "/resolved.flags\n"));

  json report{{"dataset", dataset}, {"count", count}, {"models", json::array()}};
  attacks::EvalOptions eo;
  eo.batch_size = opt.get_int("eval-batch-size");
  eo.progress = opt.get("progress") != "none";
  std::vector<std::string> header = {"model", "clean"};
  std::vector<std::vector<std::string>> table;
  std::string sanity_md;  // one section per model
  std::string representation_md;  // one row per model
  for (size_t m = 0; m < checkpoints.size(); ++m) {
    LoadedModel lm = load_model(checkpoints[m], opt.get("model"), opt.get_int("width"), test, device);
    if (!names.empty()) lm.name = names[m];
    json mj{{"name", lm.name}, {"checkpoint", lm.path}, {"model", lm.config.model}, {"method", train::method_name(lm.config.method)},
            {"attacks", json::array()}};
    std::vector<std::string> row = {lm.name};
    double clean = NAN;
    // The threat model the sanity report checks: the first attack's norm at its largest eps.
    attacks::SanityOptions sanity;
    sanity.max_points = opt.get_int("sanity-points");
    sanity.batch_size = opt.get_int("eval-batch-size");
    sanity.seed = uint64_t(opt.get_int("seed"));
    sanity.eps = 0;
    std::optional<attacks::AutoAttackReport> last_autoattack;  // with its threat model, for the Square check
    attacks::Norm aa_norm = attacks::Norm::linf;
    double aa_eps = 0;
    for (const std::string& attack : attack_list) {
      const attacks::AttackConfig cfg = attack_config(set, opt, attack, dataset);
      std::vector<double> grid = opt.get("eps").empty() ? eval_preset(attack, dataset).eps : opt.get_real_list("eps");
      if (grid.empty()) throw UsageError("--eps: the grid is empty");
      const auto start = clock_type::now();
      const double cpu_start = cpu_seconds();
      // eps 0 is the clean accuracy: fixed-eps attacks are not run for it.
      std::vector<double> attacked;
      for (double e : grid)
        if (e > 0) attacked.push_back(e);
      io.err << fmt::format("afd_run eval: {} / {} on {} points, eps {}\n", lm.name, attack, count, format_real_list(grid));
      std::vector<double> acc;
      json components = json::array();
      if (attack == "autoattack") {
        // The ensemble itself (attacks/autoattack.h), so that each component's cumulative robust
        // accuracy and time are reported: standard version (apgd-ce, apgd-t, fab-t, square).
        attacks::EvalOptions quiet = eo;
        quiet.progress = false;
        clean = attacks::robust_accuracy(*lm.model, attack, cfg, x, y, {}, quiet).clean_accuracy;
        for (double e : grid) {
          if (e == 0) {
            acc.push_back(clean);
            continue;
          }
          attacks::AutoAttackOptions ao;
          ao.norm = cfg.norm;
          ao.eps = e;
          ao.seed = cfg.seed;
          ao.batch_size = opt.get_int("eval-batch-size");
          ao.verbose = opt.get("progress") != "none";
          attacks::AutoAttackReport rep = attacks::run_autoattack(*lm.model, x, y, ao);
          acc.push_back(rep.final_robust_accuracy());
          for (size_t c = 0; c < rep.attacks.size(); ++c)
            components.push_back(json{{"eps", e}, {"attack", rep.attacks[c]}, {"robust_acc", rep.robust_accuracy[c]},
                                      {"seconds", rep.seconds[c]}});
          last_autoattack = std::move(rep);
          aa_norm = cfg.norm;
          aa_eps = e;
        }
      } else {
        const attacks::RobustnessCurve curve = attacks::robust_accuracy(*lm.model, attack, cfg, x, y, attacked, eo);
        size_t k = 0;
        for (double e : grid) acc.push_back(e > 0 ? curve.robust_accuracy[k++] : curve.clean_accuracy);
        clean = curve.clean_accuracy;
      }
      if (attack == attack_list.front()) {
        sanity.norm = cfg.norm;
        sanity.eps = *std::max_element(grid.begin(), grid.end());
      }
      const double auc = curve_auc(grid, acc);
      const double secs = seconds_since(start);
      mj["attacks"].push_back(json{{"attack", attack}, {"config", attack_config_json(cfg)}, {"eps", grid},
                                   {"robust_acc", acc},  {"auc", number(auc)},            {"seconds", secs},
                                   {"cpu_seconds", cpu_seconds() - cpu_start}});
      if (!components.empty()) mj["attacks"].back()["components"] = components;
      for (size_t j = 0; j < grid.size(); ++j) {
        if (grid[j] == 0) continue;
        if (m == 0) header.push_back(fmt::format("{} {}", attack, format_real(grid[j])));
        row.push_back(percent(acc[j]));
      }
      if (grid.size() >= 2) {
        if (m == 0) header.push_back(attack + " AUC");
        row.push_back(std::isnan(auc) ? "-" : fmt::format("{:.3f}", auc));
      }
      io.err << fmt::format("afd_run eval: {} / {}: clean {}%, {} ({})\n", lm.name, attack, percent(clean),
                            [&] {
                              std::string s;
                              for (size_t j = 0; j < grid.size(); ++j)
                                s += fmt::format("{}eps {} {}%", j ? ", " : "", format_real(grid[j]), percent(acc[j]));
                              return s;
                            }(),
                            duration(secs));
    }
    if (sanity.max_points > 0 && sanity.eps > 0) {
      // Sanity report (attacks/sanity.h): failed items warn, they do not fail the evaluation.
      const auto start = clock_type::now();
      if (last_autoattack && aa_eps == sanity.eps && aa_norm == sanity.norm)
        sanity.autoattack = &*last_autoattack;
      const attacks::SanityReport rep = attacks::sanity_report(*lm.model, x, y, sanity);
      json items = json::array();
      for (const attacks::SanityItem& item : rep.items)
        items.push_back(json{{"check", item.name}, {"ok", item.ok}, {"detail", item.detail}});
      mj["sanity"] = json{{"points", std::min(sanity.max_points, count)}, {"norm", attacks::norm_name(sanity.norm)},
                          {"eps", sanity.eps}, {"all_ok", rep.all_ok()}, {"items", items},
                          {"seconds", seconds_since(start)}};
      sanity_md += fmt::format("\nSanity report for {} ({} eps {}, first {} points{}):\n\n", lm.name,
                               attacks::norm_name(sanity.norm), format_real(sanity.eps),
                               std::min(sanity.max_points, count), rep.all_ok() ? ", all passed" : ", SOME FAILED");
      for (const attacks::SanityItem& item : rep.items)
        sanity_md += fmt::format("- [{}] {}: {}\n", item.ok ? "ok" : "!!", item.name, item.detail);
      io.err << fmt::format("afd_run eval: sanity report for {} ({}):\n{}", lm.name, duration(seconds_since(start)),
                            rep.str());
      if (!rep.all_ok())
        io.err << fmt::format("afd_run eval: warning: {} failed a sanity check: its robust accuracy may be "
                              "overestimated (see eval.md)\n", lm.name);
    }
    mj["clean_acc"] = clean;
    row.insert(row.begin() + 1, percent(clean));
    // Representation dimensionality (the paper's Table A4) on the evaluated points.
    const eval::Dimensionality dim = eval::dimensionality(eval::features_of(*lm.model, x, eo.batch_size));
    mj["representation"] = json{{"features", dim.features}, {"nonzero", dim.nonzero}, {"pca_99", dim.pca_99}};
    representation_md += fmt::format("| {} | {} | {} | {} |\n", lm.name, dim.features, dim.nonzero, dim.pca_99);
    report["models"].push_back(mj);
    table.push_back(row);
  }
  write_text((fs::path(out) / "eval.json").string(), report.dump(2) + "\n");
  std::string md = fmt::format("{} test split, first {} points; accuracy in %.\n\n|", dataset, count);
  for (const auto& h : header) md += " " + h + " |";
  md += "\n|";
  for (size_t i = 0; i < header.size(); ++i) md += i == 0 ? "---|" : "---:|";
  md += "\n";
  for (const auto& row : table) {
    md += "|";
    for (const auto& c : row) md += " " + c + " |";
    md += "\n";
  }
  md += "\nRepresentation (Table A4 of the paper; z = F(x) on the clean points):\n\n| model | feature dims | non-zero "
        "dims | PCA components for 99% variance |\n|---|---:|---:|---:|\n" + representation_md;
  md += sanity_md;
  md += write_accuracy_plots(report, attack_list, out);
  write_text((fs::path(out) / "eval.md").string(), md);
  io.out << md;
  return 0;
}

// ---- attack ----------------------------------------------------------------------------------

int attack_command(const std::vector<std::string>& args, Io io) {
  FlagSet set(flag_table(), kAttack);
  bool help = false;
  const std::vector<Assignment> given = set.parse_args(args, &help);
  const std::string attack = last_value(given, "attack", "pgd-linf");
  const Options opt = resolve_model_command(set, given, attack, last_value(given, "dataset", ""));
  if (help) {
    io.out << help_text(kAttack, opt.values());
    return 0;
  }
  const std::string checkpoint = opt.get("checkpoint");
  if (checkpoint.empty()) throw UsageError("--checkpoint: name a checkpoint folder (e.g. runs/x/checkpoint)");
  const Device device = setup_device(opt);
  const std::string out = opt.get("out");
  prepare_out_dir(out, "--out");
  const std::string ck_dataset = checkpoint_dataset(checkpoint);
  const data::Dataset test = test_split(opt, ck_dataset);
  const std::string dataset = opt.get("dataset").empty() ? (ck_dataset.empty() ? "mnist" : ck_dataset) : opt.get("dataset");
  const attacks::AttackConfig cfg = attack_config(set, opt, attack, dataset);
  LoadedModel lm = load_model(checkpoint, opt.get("model"), opt.get_int("width"), test, device);
  const int64_t count = opt.get_int("count") > 0 ? std::min(opt.get_int("count"), test.size()) : test.size();
  const int64_t n_images = opt.get_int("save-images");
  if (n_images > count)
    throw UsageError(fmt::format("--save-images {}: more than the {} points attacked ({})", n_images, count,
                                 opt.get_int("count") > 0 ? fmt::format("--count {}, test split of {}", opt.get_int("count"), test.size())
                                                          : "the whole test split"));
  auto [x, y] = as_tensors(test, count, device);
  write_text((fs::path(out) / "resolved.flags").string(),
             opt.resolved_flagfile("# afd_run attack, fully resolved; rerun: afd_run attack --flagfile " + out +
                                   "/resolved.flags\n"));

  std::unique_ptr<attacks::Attack> atk = attacks::make_attack(attack, cfg);
  const int64_t classes = test.classes;
  const int64_t batch = opt.get_int("eval-batch-size");
  ProgressLine progress(io, opt.get("progress"), 1);
  const bool save = opt.get_bool("save-adv");
  Tensor all_adv, all_success, all_norms;  // filled batch by batch with --save-adv
  if (save) {
    all_adv = Tensor(x.shape(), x.dtype(), Device::cpu());
    all_success = Tensor({count}, DType::u8);
    all_norms = Tensor({count}, DType::f64);
  }
  std::vector<report::AdversarialExample> pictures;  // the first --save-images points
  int64_t clean_correct = 0, robust = 0, fooled = 0;
  std::vector<double> fooled_norms;
  const auto start = clock_type::now();
  const double cpu_start = cpu_seconds();
  for (int64_t b = 0; b < count; b += batch) {
    const int64_t e = std::min(b + batch, count);
    Tensor xb = x.slice(b, e), yb = y.slice(b, e);
    Tensor target;
    const bool own_targets = attack == "apgd-t" || attack == "fab-t";
    if (cfg.targeted && !own_targets) {
      std::vector<int64_t> t = yb.to(Device::cpu()).to_vector<int64_t>();
      for (int64_t& v : t) v = (v + 1) % classes;
      target = Tensor::from_vector<int64_t>(t, {int64_t(t.size())}).to(device);
    }
    attacks::AttackResult r = atk->perturb(*lm.model, xb, yb, target);
    Tensor x_eval = r.x_adv;
    if (atk->minimal_norm())  // robust accuracy at eps: the found point clipped into the eps-ball
      x_eval = attacks::project_ball(xb, r.x_adv, std::vector<double>(size_t(e - b), cfg.eps), cfg.norm);
    std::vector<int64_t> labels = yb.to(Device::cpu()).to_vector<int64_t>();
    std::vector<int64_t> pred = ops::argmax(attacks::logits_of(*lm.model, xb), 1).to(Device::cpu()).to_vector<int64_t>();
    std::vector<int64_t> pred_adv =
        ops::argmax(attacks::logits_of(*lm.model, x_eval), 1).to(Device::cpu()).to_vector<int64_t>();
    std::vector<uint8_t> success = r.success.to_vector<uint8_t>();
    std::vector<double> norms = r.norms.to_vector<double>();
    for (size_t i = 0; i < labels.size(); ++i) {
      const bool correct = pred[i] == labels[i];
      clean_correct += correct;
      robust += correct && pred_adv[i] == labels[i];
      if (correct && success[i]) {
        ++fooled;
        fooled_norms.push_back(norms[i]);
      }
    }
    for (int64_t i = b; i < std::min(e, n_images); ++i) {
      auto values = [](const Tensor& t, int64_t row) {
        return t.slice(row, row + 1).to(Device::cpu()).to(DType::f32).to_vector<float>();  // [C, H, W]
      };
      pictures.push_back({values(x, i), values(x_eval, i - b), labels[size_t(i - b)], pred[size_t(i - b)],
                          pred_adv[size_t(i - b)]});
    }
    if (save) {
      all_adv.slice(b, e).copy_(r.x_adv.to(Device::cpu()));
      all_success.slice(b, e).copy_(r.success);
      all_norms.slice(b, e).copy_(r.norms);
    }
    const double secs = seconds_since(start);
    progress.update(fmt::format("afd_run attack: {} {}/{} points | {:.1f} points/s | robust {}% so far", attack, e, count,
                                double(e) / std::max(secs, 1e-9), percent(double(robust) / double(e))),
                    e == count);
  }
  progress.finish();
  const double secs = seconds_since(start);
  std::sort(fooled_norms.begin(), fooled_norms.end());
  auto q = [&](double p) {
    return fooled_norms.empty() ? NAN : fooled_norms[size_t(std::llround(p * double(fooled_norms.size() - 1)))];
  };
  double mean_norm = 0;
  for (double v : fooled_norms) mean_norm += v;
  mean_norm = fooled_norms.empty() ? NAN : mean_norm / double(fooled_norms.size());
  json j{{"checkpoint", lm.path},
         {"attack", attack},
         {"minimal_norm", atk->minimal_norm()},
         {"config", attack_config_json(cfg)},
         {"dataset", dataset},
         {"count", count},
         {"clean_acc", double(clean_correct) / double(count)},
         {"robust_acc", double(robust) / double(count)},
         {"success_rate", clean_correct ? number(double(fooled) / double(clean_correct)) : json(nullptr)},
         {"success_norms",
          {{"norm", attacks::norm_name(cfg.norm)}, {"count", fooled_norms.size()}, {"mean", number(mean_norm)},
           {"median", number(q(0.5))}, {"min", number(q(0))}, {"max", number(q(1))}}},
         {"seconds", secs},
         {"cpu_seconds", cpu_seconds() - cpu_start}};
  if (save) {
    const std::string path = (fs::path(out) / "x_adv.safetensors").string();
    write_safetensors(path, {{"x_adv", all_adv}, {"labels", y.to(Device::cpu())}, {"success", all_success}, {"norms", all_norms}},
                      {{"attack", attack}, {"config", attack_config_json(cfg).dump()}, {"checkpoint", lm.path}});
    j["x_adv"] = path;
  }
  if (n_images > 0) {
    // The picture (afd/report/image_grid.h): of the point evaluated, i.e. for minimal-norm attacks the
    // found point clipped into the eps-ball.
    const report::GridLayout layout{x.shape()[1], x.shape()[2], x.shape()[3], opt.get_int("image-scale")};
    const report::AdversarialGrid grid = report::adversarial_grid(pictures, layout);
    const std::string path = (fs::path(out) / "adversarial.png").string();
    report::write_png(path, grid.image);
    json amplification = json::array(), labels = json::array(), pred = json::array(), pred_adv = json::array();
    for (size_t i = 0; i < pictures.size(); ++i) {
      const double m = grid.max_abs_delta[i];
      amplification.push_back(m > 0 ? json(1 / (2 * m)) : json(nullptr));
      labels.push_back(pictures[i].label);
      pred.push_back(pictures[i].pred_clean);
      pred_adv.push_back(pictures[i].pred_adv);
    }
    j["images"] = json{{"path", path},
                       {"points", n_images},
                       {"scale", layout.scale},
                       {"columns", {"clean", "perturbation", "adversarial"}},
                       {"perturbation_display",
                        "0.5 + delta / (2 max|delta|), delta = x_adv - x, max over the image's pixels and channels "
                        "(grey = unchanged); amplification = 1 / (2 max|delta|)"},
                       {"max_abs_delta", grid.max_abs_delta},
                       {"amplification", amplification},
                       {"labels", labels},
                       {"pred_clean", pred},
                       {"pred_adv", pred_adv}};
  }
  write_text((fs::path(out) / "attack.json").string(), j.dump(2) + "\n");
  io.out << fmt::format(
      "{} on {} ({} {} points): clean {}%, robust at eps {} {}%, success {}% of the clean-correct; {} norms of the "
      "successes: median {}, mean {}, max {}; {} ({:.1f} points/s)\n",
      attack, lm.name, dataset, count, percent(double(clean_correct) / double(count)), format_real(cfg.eps),
      percent(double(robust) / double(count)), clean_correct ? percent(double(fooled) / double(clean_correct)) : "-",
      attacks::norm_name(cfg.norm), fmt::format("{:.4g}", q(0.5)), fmt::format("{:.4g}", mean_norm),
      fmt::format("{:.4g}", q(1)), duration(secs), double(count) / std::max(secs, 1e-9));
  if (n_images > 0) io.out << fmt::format("{} points drawn to {}\n", n_images, j["images"]["path"].get<std::string>());
  return 0;
}

}  // namespace afd::cli
