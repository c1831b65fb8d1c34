// afd_run eval (checkpoints x attacks x eps grids -> eval.json and the per-sample flags, from which
// eval_report.cpp writes eval.md, the tables and plots; --merge joins earlier evaluations) and afd_run
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
#include "afd/eval/stats.h"
#include "afd/report/image_grid.h"
#include "afd/report/svg_plot.h"
#include "attacks/autoattack.h"
#include "attacks/core.h"
#include "attacks/evaluate.h"
#include "attacks/sanity.h"
#include "nn/checkpoint.h"
#include "nn/models/discriminator.h"
#include "nn/safetensors.h"
#include "tensor/error.h"
#include "tensor/ops.h"
#include "tools/afd_run/common.h"
#include "tools/afd_run/eval_report.h"
#include "tools/afd_run/seeds_report.h"

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

// Every name of `list` (the value of `flag`) is a registered attack, and none is listed twice.
// --out of eval and attack: writable, and not a training run's folder (its resolved.flags would be
// replaced, and --resume would then fail). The reports of an earlier evaluation there are removed
// (clear_report_files) once the new one is sure to start.
void prepare_report_dir(const std::string& out) {
  prepare_out_dir(out, "--out");
  if (holds_training_run(out))
    throw RunError(fmt::format("--out {}: holds a training run (checkpoint, metrics.jsonl or final.json); give the "
                               "evaluation a folder of its own, e.g. {}/eval",
                               out, out));
}

void check_attack_list(const std::vector<std::string>& list, const char* flag) {
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string& a = list[i];
    if (!known_attack(a)) throw UsageError(fmt::format("{}: unknown attack '{}' (known: {})", flag, a, known_attacks()));
    if (std::find(list.begin(), list.begin() + int64_t(i), a) != list.begin() + int64_t(i))
      throw UsageError(fmt::format("{}: '{}' is listed twice", flag, a));
  }
}

// The attack's config: the paper's evaluation preset for (attack, dataset), then every --attack-*
// flag given explicitly, then the seed.
attacks::AttackConfig attack_config(const FlagSet& set, const Options& opt, const std::string& attack,
                                    const std::string& dataset) {
  const attacks::AttackConfig preset = eval_preset(attack, dataset).config;
  attacks::AttackConfig c = preset;
  for (const Flag* f : set.flags())
    if (f->set_attack && opt.given(f->name)) f->set_attack(c, opt.get(f->name));
  // An attack whose name fixes the norm (fgsm, pgd-l2, ddn, ...) ignores --attack-norm: the config
  // the reports print is the one the attack runs with.
  if (known_attack(attack)) c.norm = attacks::make_attack(attack, c)->config().norm;
  // --attack-norm moves an attack that takes its norm from the config (apgd-ce, fab-t, square, ...)
  // to another threat model: without --attack-eps, to that norm's budget (an L2 run at the Linf
  // eps 0.3 meant nothing).
  if (c.norm != preset.norm && !opt.given("attack-eps")) c.eps = table1_eps(c.norm, dataset);
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

// ---- per-sample flags and transfer ---------------------------------------------------------------

// Per point: 1 where the model classifies x[i] as labels[i] (eval mode, no tape, batch by batch).
std::vector<uint8_t> correct_flags(nn::UnaryModule& model, const Tensor& x, const std::vector<int64_t>& labels,
                                   int64_t batch) {
  attacks::EvalModeGuard eval_mode(model);
  std::vector<uint8_t> ok;
  for (int64_t b = 0; b < x.size(0); b += batch) {
    const int64_t e = std::min(b + batch, x.size(0));
    const std::vector<int64_t> pred =
        ops::argmax(attacks::logits_of(model, x.slice(b, e)), 1).to(Device::cpu()).to_vector<int64_t>();
    for (size_t i = 0; i < pred.size(); ++i) ok.push_back(pred[i] == labels[size_t(b) + i]);
  }
  return ok;
}

// [E, N] from E rows of N values (per_sample.safetensors): u8 flags, f64 numbers.
template <class T>
Tensor row_matrix(const std::vector<std::vector<T>>& rows) {
  std::vector<T> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return Tensor::from_vector<T>(flat, {int64_t(rows.size()), rows.empty() ? 0 : int64_t(rows[0].size())});
}
Tensor flag_matrix(const std::vector<std::vector<uint8_t>>& rows) { return row_matrix(rows); }
Tensor value_matrix(const std::vector<std::vector<double>>& rows) { return row_matrix(rows); }

double mean_of(const std::vector<uint8_t>& flags) {
  double sum = 0;
  for (uint8_t f : flags) sum += f;
  return flags.empty() ? 0 : sum / double(flags.size());
}

// One black-box attack crafted on the source model: x_adv over all N points at each eps of its grid.
// The source's own white-box evaluation (attacks/evaluate.h) makes them; points the source already
// misclassifies are not attacked and transfer unperturbed (they are adversarial for the source at
// eps 0). eps 0 is x itself.
struct TransferSet {
  std::string attack;
  attacks::AttackConfig config;
  std::vector<double> eps;
  std::vector<Tensor> x_adv;              // per eps: [N, C, H, W] on x's device
  std::vector<double> source_robust_acc;  // the source's own (white-box) accuracy, per eps
  double seconds = 0;
};

TransferSet craft_transfer(nn::UnaryModule& source, const std::string& attack, const attacks::AttackConfig& cfg,
                           const std::vector<double>& grid, const Tensor& x, const Tensor& y, attacks::EvalOptions eo) {
  const auto start = clock_type::now();
  TransferSet t{attack, cfg, grid, {}, {}, 0};
  std::vector<double> attacked;  // grid entries > 0, and where each sits in the grid
  std::vector<size_t> slot;
  for (size_t j = 0; j < grid.size(); ++j) {
    t.x_adv.push_back(x.clone());
    if (grid[j] > 0) {
      attacked.push_back(grid[j]);
      slot.push_back(j);
    }
  }
  // Each batch of evaluated points is copied, row by row, into the x_adv of its eps.
  eo.on_adversarial = [&](size_t k, const std::vector<int64_t>& rows, const Tensor& x_eval) {
    Tensor& dst = t.x_adv[slot[k]];
    for (size_t j = 0; j < rows.size(); ++j) dst.slice(rows[j], rows[j] + 1).copy_(x_eval.slice(int64_t(j), int64_t(j) + 1));
  };
  const attacks::RobustnessCurve curve = attacks::robust_accuracy(source, attack, cfg, x, y, attacked, eo);
  size_t k = 0;
  for (double e : grid) t.source_robust_acc.push_back(e > 0 ? curve.robust_accuracy[k++] : curve.clean_accuracy);
  t.seconds = seconds_since(start);
  return t;
}

// ---- H-divergence (Figure 3) ------------------------------------------------------------------------

// AFD checkpoints hold D next to the classifier: discriminator.safetensors in the checkpoint folder
// (afd/train/trainer.h). nullptr where there is none (NT, AT, TRADES, or a bare model file).
std::shared_ptr<nn::SNPDFC3> load_discriminator(const LoadedModel& lm, int64_t classes, Device device) {
  const fs::path p = fs::path(lm.path).parent_path() / "discriminator.safetensors";
  if (fs::path(lm.path).filename() != "model.safetensors" || !fs::exists(p)) return nullptr;
  // The trainer writes model.safetensors, then discriminator.safetensors: a run killed between the
  // two leaves D of an earlier step next to the classifier, which D's numbers would silently mix.
  std::map<std::string, std::string> meta;
  try {
    meta = read_safetensors(p.string()).metadata;  // small: a few linear layers
  } catch (const Error& e) {
    throw RunError(fmt::format("{}: {}", p.string(), clean_message(e.what())));
  }
  const std::string position = training_position(meta);
  if (position != lm.position) {
    fmt::print(stderr,
               "warning: {} is of {}, the classifier of {} (a run stopped while writing its checkpoint?): D's "
               "H-divergence numbers are left out; afd_run train --resume rewrites both\n",
               p.string(), position.empty() ? "no recorded step" : position,
               lm.position.empty() ? "no recorded step" : lm.position);
    return nullptr;
  }
  Generator gen(0);
  auto disc = std::make_shared<nn::SNPDFC3>(lm.model->feature_dim(), classes, gen);
  if (lm.config.dtype != DType::f32) disc->to(lm.config.dtype);  // made in f32, as the classifier
  try {
    nn::load_state_dict_file(*disc, p.string(), /*strict=*/true);
  } catch (const Error& e) {
    throw RunError(fmt::format("{}: does not fit the discriminator of a {}-feature, {}-class model: {}", p.string(),
                               lm.model->feature_dim(), classes, clean_message(e.what())));
  }
  if (!device.is_cpu()) disc->to(device);
  disc->eval();
  return disc;
}

// One white-box attack at one eps, batch by batch of its adversarials: the features of the clean
// and adversarial points, their shift (Figure A4) and, with D (AFD checkpoints), D's outputs on
// both (Figure 3). The points are the clean-correct ones, which the attack ran on.
struct FeatureAnalysis {
  std::vector<Tensor> d_clean, d_adv;   // D's outputs, [batch] each
  std::vector<double> shift, relative;  // per point of the evaluation; NaN where the attack did not run

  explicit FeatureAnalysis(int64_t count) : shift(size_t(count), NAN), relative(size_t(count), NAN) {}

  // x, x_adv, y: the points `rows` of the evaluation, clean and adversarial.
  void add(nn::Classifier& model, nn::SNPDFC3* disc, const Tensor& x, const Tensor& x_adv, const Tensor& y,
           const std::vector<int64_t>& rows, int64_t batch_size) {
    const Tensor z = eval::features_of(model, x, batch_size), z_adv = eval::features_of(model, x_adv, batch_size);
    if (disc) {
      const eval::DOutputs d = eval::discriminator_outputs(*disc, z, z_adv, y);
      d_clean.push_back(d.clean), d_adv.push_back(d.adv);
    }
    const eval::FeatureShift s = eval::feature_shift(z, z_adv);
    for (size_t j = 0; j < rows.size(); ++j) shift[size_t(rows[j])] = s.shift[j], relative[size_t(rows[j])] = s.relative[j];
  }

  // Eq. 6 (threshold 0) and the fitted estimate over all of D's outputs.
  json h_divergence_json(const std::string& attack, double eps, double error_gap) const {
    eval::HDivergence h, fitted;
    h.alpha = h.d_hat = h.clean_right = h.adv_right = fitted.alpha = fitted.d_hat = NAN;
    if (!d_clean.empty()) {
      const Tensor c = cat(d_clean, 0), a = cat(d_adv, 0);
      h = eval::h_divergence(c, a);  // alpha = P_clean[D > 0] + P_adv[D < 0], d_hat = 2 |alpha - 1|
      fitted = eval::h_divergence_fitted(c, a);
    }
    return json{{"attack", attack},
                {"eps", eps},
                {"alpha", number(h.alpha)},
                {"d_hat", number(h.d_hat)},
                {"clean_right", number(h.clean_right)},
                {"adv_right", number(h.adv_right)},
                {"alpha_fitted", number(fitted.alpha)},
                {"d_hat_fitted", number(fitted.d_hat)},
                {"points", h.count},
                {"error_gap", error_gap}};
  }

  // S_e = the mean shift, and the mean relative shift, over the points the attack ran on.
  json sensitivity_json(const std::string& attack, double eps) const {
    double sum = 0, sum_relative = 0;
    int64_t points = 0, scaled = 0;
    for (size_t i = 0; i < shift.size(); ++i) {
      if (std::isnan(shift[i])) continue;
      sum += shift[i], ++points;
      if (!std::isnan(relative[i])) sum_relative += relative[i], ++scaled;
    }
    return json{{"attack", attack},
                {"eps", eps},
                {"shift", number(points ? sum / double(points) : NAN)},
                {"relative_shift", number(scaled ? sum_relative / double(scaled) : NAN)},
                {"points", points}};
  }
};

}  // namespace

// ---- eval ------------------------------------------------------------------------------------

int eval_command(const std::vector<std::string>& args, Io io) {
  FlagSet set(flag_table(), kEval);
  bool help = false;
  const std::vector<Assignment> given = set.parse_args(args, &help);
  std::vector<std::string> attack_list = parse_text_list(last_value(given, "attacks", "pgd-linf"));
  if (attack_list == std::vector<std::string>{"none"}) attack_list.clear();  // black-box only
  const std::string first = attack_list.empty() ? "pgd-linf" : attack_list[0];
  const Options opt = resolve_model_command(set, given, first, last_value(given, "dataset", ""));
  if (help) {
    io.out << help_text(kEval, opt.values());
    return 0;
  }
  const std::vector<std::string> checkpoints = opt.get_list("checkpoint");
  if (!opt.get("over-seeds").empty()) {
    // Report only, over the reports of several training seeds (seeds_report.h).
    if (!checkpoints.empty() || !opt.get("merge").empty())
      throw UsageError("--over-seeds: reads earlier reports and evaluates nothing; drop --checkpoint and --merge");
    const std::string out = opt.get("out");
    prepare_report_dir(out);
    io.out << write_seeds_report(opt.get_list("over-seeds"), out);
    return 0;
  }
  if (!opt.get("merge").empty()) {
    // Report only: the parts were evaluated earlier (eval_report.h).
    if (!checkpoints.empty())
      throw UsageError("--merge: merges earlier evaluations and evaluates nothing; drop --checkpoint");
    const std::string out = opt.get("out");
    prepare_report_dir(out);
    auto [report, per_sample] = merge_eval_parts(opt.get_list("merge"));
    clear_report_files(out);
    write_text((fs::path(out) / "resolved.flags").string(),
               opt.resolved_flagfile("# afd_run eval --merge, fully resolved; rerun: afd_run eval --flagfile " + out +
                                     "/resolved.flags\n"));
    io.out << write_eval_report(report, per_sample, out);
    return 0;
  }
  if (checkpoints.empty()) throw UsageError("--checkpoint: name at least one checkpoint folder (e.g. runs/x/checkpoint)");
  if (attack_list.empty() && opt.get_list("source-checkpoint").empty())
    throw UsageError("--attacks: name at least one attack ('none' only with --source-checkpoint: black-box only)");
  check_attack_list(attack_list, "--attacks");
  // Names label the rows of eval.md's tables and the plots' legends: a '|' would split a table
  // cell, a control character a line.
  for (const char* flag : {"names", "source-names"})
    for (const std::string& name : opt.get_list(flag))
      if (name.find('|') != std::string::npos ||
          std::any_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
        throw UsageError(fmt::format("--{}: '{}' holds a '|' or a control character, which would break the report's "
                                     "tables; choose another name",
                                     flag, name));
  std::vector<std::string> names = opt.get_list("names");
  if (!names.empty() && names.size() != checkpoints.size())
    throw UsageError(fmt::format("--names: {} names for {} checkpoints", names.size(), checkpoints.size()));
  // One name, one model: the tables, plots and claims are keyed by name (runs/a/seed-0/checkpoint
  // and runs/b/seed-0/checkpoint are both "seed-0" by default).
  for (size_t m = 0; m < checkpoints.size(); ++m)
    for (size_t k = 0; k < m; ++k) {
      const std::string a = names.empty() ? default_model_name(checkpoints[k]) : names[k];
      const std::string b = names.empty() ? default_model_name(checkpoints[m]) : names[m];
      if (a == b)
        throw UsageError(fmt::format("--checkpoint: {} and {} are both named '{}'; name them apart with --names",
                                     checkpoints[k], checkpoints[m], a));
    }
  const Device device = setup_device(opt);
  const std::string out = opt.get("out");
  prepare_report_dir(out);
  for (const std::string& c : checkpoints) checkpoint_model_file(c, "--checkpoint");  // all there before any work
  for (const std::string& c : opt.get_list("source-checkpoint")) checkpoint_model_file(c, "--source-checkpoint");

  const std::string dataset_of_first = checkpoint_dataset(checkpoints[0]);
  const data::Dataset test = test_split(opt, dataset_of_first);
  clear_report_files(out);
  const std::string dataset = opt.get("dataset").empty() ? (dataset_of_first.empty() ? "mnist" : dataset_of_first)
                                                         : opt.get("dataset");
  const int64_t count = opt.get_int("count") > 0 ? std::min(opt.get_int("count"), test.size()) : test.size();
  auto [x, y] = as_tensors(test, count, device);
  write_text((fs::path(out) / "resolved.flags").string(),
             opt.resolved_flagfile("# afd_run eval, fully resolved; rerun: afd_run eval --flagfile " + out +
                                   "/resolved.flags\n"));

  json report{{"dataset", dataset},   {"count", count},        {"models", json::array()},
              {"version", AFD_VERSION}, {"device", device.str()}, {"threads", opt.get_int("threads")},
              {"blas", cpu_blas_info()}};
  attacks::EvalOptions eo;
  eo.batch_size = opt.get_int("eval-batch-size");
  eo.progress = opt.get("progress") != "none";
  PerSample ps;  // per_sample.safetensors
  ps.labels = y.to(Device::cpu()).to_vector<int64_t>();
  const std::vector<int64_t>& labels = ps.labels;
  auto eps_grid = [&](const std::string& attack) {
    std::vector<double> grid = opt.get("eps").empty() ? eval_preset(attack, dataset).eps : opt.get_real_list("eps");
    if (grid.empty()) throw UsageError("--eps: the grid is empty");
    return grid;
  };

  // Black-box: adversarials crafted once on each source model (the paper's Table 1: NT; Table A3:
  // AT and TRADES), evaluated below on every model. Every source's x_adv stays in memory until then:
  // sources x attacks x eps x [N, C, H, W].
  struct Source {
    std::string name;
    std::vector<TransferSet> transfer;
  };
  std::vector<Source> sources;
  const std::vector<std::string> source_checkpoints = opt.get_list("source-checkpoint");
  const std::vector<std::string> source_names = opt.get_list("source-names");
  if (!source_names.empty() && source_names.size() != source_checkpoints.size())
    throw UsageError(fmt::format("--source-names: {} names for {} source checkpoints", source_names.size(),
                                 source_checkpoints.size()));
  if (!source_checkpoints.empty()) {
    const std::vector<std::string> bb_list = parse_text_list(opt.get("bb-attacks"));
    if (bb_list.empty()) throw UsageError("--bb-attacks: name at least one attack for --source-checkpoint");
    check_attack_list(bb_list, "--bb-attacks");
    for (const std::string& a : bb_list)
      if (a == "autoattack") throw UsageError("--bb-attacks: autoattack is white-box only here");
    std::vector<LoadedModel> loaded;  // all first, so that a clash of names stops the run before any attack
    for (size_t s = 0; s < source_checkpoints.size(); ++s) {
      loaded.push_back(load_model(source_checkpoints[s], "", -1, test, device));
      if (!source_names.empty()) loaded.back().name = source_names[s];
      for (size_t r = 0; r < s; ++r)
        if (loaded[r].name == loaded[s].name)
          throw UsageError(fmt::format("--source-checkpoint: two sources are named '{}'; name them apart with "
                                       "--source-names", loaded[s].name));
    }
    report["black_box_sources"] = json::array();
    for (const LoadedModel& source : loaded) {
      json sj{{"name", source.name}, {"checkpoint", source.path}, {"weights_crc32", source.crc32}, {"model", source.config.model},
              {"method", train::method_name(source.config.method)}, {"attacks", json::array()}};
      sources.push_back(Source{source.name, {}});
      for (const std::string& attack : bb_list) {
        const attacks::AttackConfig cfg = attack_config(set, opt, attack, dataset);
        io.err << fmt::format("afd_run eval: black-box source {} / {} on {} points\n", source.name, attack, count);
        const TransferSet& t =
            sources.back().transfer.emplace_back(
                craft_transfer(*source.model, attack, cfg, eps_grid(attack), x.to(source.config.dtype), y, eo));
        sj["attacks"].push_back(json{{"attack", attack}, {"config", attack_config_json(cfg)}, {"eps", t.eps},
                                     {"source_robust_acc", t.source_robust_acc}, {"seconds", t.seconds}});
      }
      report["black_box_sources"].push_back(sj);
    }
  }
  for (size_t m = 0; m < checkpoints.size(); ++m) {
    LoadedModel lm = load_model(checkpoints[m], opt.get("model"), opt.get_int("width"), test, device);
    if (!names.empty()) lm.name = names[m];
    json mj{{"name", lm.name},
            {"checkpoint", lm.path},
            {"weights_crc32", lm.crc32},
            {"model", lm.config.model},
            {"method", train::method_name(lm.config.method)},
            {"attacks", json::array()}};
    if (lm.config.method == train::Method::afd) mj["gan"] = gan_loss_name(lm.config.gan_loss);
    if (lm.config.method == train::Method::at || lm.config.method == train::Method::afd)
      mj["train_attack"] = lm.config.attack;  // not "unseen" in the claims (eval_report.cpp)
    const std::string key = fmt::format("m{}", m);  // per_sample.safetensors names
    // The points in the model's dtype: the data is f32, a float64 run's weights f64 (to() returns x
    // itself when they agree).
    const Tensor xm = x.to(lm.config.dtype);
    const std::vector<uint8_t> clean_ok = correct_flags(*lm.model, xm, labels, eo.batch_size);
    double clean = mean_of(clean_ok);
    std::vector<int64_t> clean_rows;  // the points attacks run on
    for (size_t i = 0; i < clean_ok.size(); ++i)
      if (clean_ok[i]) clean_rows.push_back(int64_t(i));
    const std::shared_ptr<nn::SNPDFC3> disc = load_discriminator(lm, test.classes, device);
    if (disc) mj["h_divergence"] = json::array();
    mj["sensitivity"] = json::array();
    ps.tensors.emplace_back(key + ".clean", flag_matrix({clean_ok}));
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
      const std::vector<double> grid = eps_grid(attack);
      const auto start = clock_type::now();
      const double cpu_start = cpu_seconds();
      // eps 0 is the clean accuracy: fixed-eps attacks are not run for it.
      std::vector<double> attacked;
      for (double e : grid)
        if (e > 0) attacked.push_back(e);
      io.err << fmt::format("afd_run eval: {} / {} on {} points, eps {}\n", lm.name, attack, count, format_real_list(grid));
      std::vector<double> acc;
      std::vector<std::vector<uint8_t>> robust;  // per eps, per point (eps 0: the clean flags)
      std::vector<double> norms;                 // minimal-norm attacks: per point
      json components = json::array();
      std::vector<FeatureAnalysis> analyses;     // per eps > 0, in grid order
      if (attack == "autoattack") {
        // The ensemble itself (attacks/autoattack.h), so that each component's cumulative robust
        // accuracy and time are reported: standard version (apgd-ce, apgd-t, fab-t, square).
        attacks::EvalOptions quiet = eo;
        quiet.progress = false;
        clean = attacks::robust_accuracy(*lm.model, attack, cfg, xm, y, {}, quiet).clean_accuracy;
        for (double e : grid) {
          if (e == 0) {
            acc.push_back(clean);
            robust.push_back(clean_ok);
            continue;
          }
          attacks::AutoAttackOptions ao;
          ao.norm = cfg.norm;
          ao.eps = e;
          ao.seed = cfg.seed;
          ao.batch_size = opt.get_int("eval-batch-size");
          ao.verbose = opt.get("progress") != "none";
          // "lines", or "auto" off a terminal (as ProgressLine decides): a line per batch, no \r.
          ao.progress_lines = opt.get("progress") == "lines" || (opt.get("progress") == "auto" && !io.tty);
          // Hours on a large test set: the state after every batch goes to a file of this model's
          // weights and this setting, so that the same command run again after a Ctrl-C or a crash
          // resumes there (attacks/autoattack_state.h); removed once eval.json is written.
          const fs::path state_dir = fs::path(out) / "autoattack-state";
          fs::create_directories(state_dir);
          ao.state_path = (state_dir / fmt::format("{}-{}-eps{}-seed{}-n{}-b{}.json", lm.crc32, attacks::norm_name(cfg.norm),
                                                   format_real(e), cfg.seed, count, ao.batch_size))
                              .string();
          attacks::AutoAttackReport rep = attacks::run_autoattack(*lm.model, xm, y, ao);
          acc.push_back(rep.final_robust_accuracy());
          robust.push_back(rep.robust);
          analyses.emplace_back(count);  // an entry for every eps: null numbers without clean-right points
          if (!clean_rows.empty())
            analyses.back().add(*lm.model, disc.get(), attacks::take_rows(xm, clean_rows),
                                attacks::take_rows(rep.x_adv, clean_rows), attacks::take_rows(y, clean_rows), clean_rows,
                                eo.batch_size);
          for (size_t c = 0; c < rep.attacks.size(); ++c)
            components.push_back(json{{"eps", e}, {"attack", rep.attacks[c]}, {"robust_acc", rep.robust_accuracy[c]},
                                      {"seconds", rep.seconds[c]}});
          last_autoattack = std::move(rep);
          aa_norm = cfg.norm;
          aa_eps = e;
        }
      } else {
        // Each batch of adversarials as the evaluation makes them, per eps.
        analyses.assign(attacked.size(), FeatureAnalysis(count));
        attacks::EvalOptions eo_attack = eo;
        eo_attack.on_adversarial = [&](size_t k, const std::vector<int64_t>& rows, const Tensor& x_eval) {
          analyses[k].add(*lm.model, disc.get(), attacks::take_rows(xm, rows), x_eval, attacks::take_rows(y, rows), rows,
                          eo.batch_size);
        };
        const attacks::RobustnessCurve curve =
            attacks::robust_accuracy(*lm.model, attack, cfg, xm, y, attacked, eo_attack);
        size_t k = 0;
        for (double e : grid) {
          robust.push_back(e > 0 ? curve.robust[k] : clean_ok);
          acc.push_back(e > 0 ? curve.robust_accuracy[k++] : curve.clean_accuracy);
        }
        clean = curve.clean_accuracy;
        norms = curve.norms;
      }
      // Figures 3 and A4: per eps > 0, D's view (AFD checkpoints) and the feature shift; per point,
      // the relative shift (row j for eps j; eps 0: no shift on the clean-correct points).
      std::vector<std::vector<double>> shift_rows;
      for (size_t j = 0, k = 0; j < grid.size(); ++j) {
        if (grid[j] == 0) {
          std::vector<double> none(size_t(count), NAN);
          for (int64_t i : clean_rows) none[size_t(i)] = 0;
          shift_rows.push_back(std::move(none));
          continue;
        }
        const FeatureAnalysis& f = analyses[k++];
        if (disc) mj["h_divergence"].push_back(f.h_divergence_json(attack, grid[j], clean - acc[j]));
        mj["sensitivity"].push_back(f.sensitivity_json(attack, grid[j]));
        shift_rows.push_back(f.relative);
      }
      if (attack == attack_list.front()) {
        sanity.norm = cfg.norm;
        sanity.eps = *std::max_element(grid.begin(), grid.end());
      }
      const double auc = curve_auc(grid, acc);
      const double secs = seconds_since(start);
      mj["attacks"].push_back(json{{"attack", attack}, {"config", attack_config_json(cfg)}, {"eps", grid},
                                   {"robust_acc", acc},  {"robust_acc_ci", ci_list(acc, count)},       {"auc", number(auc)},
                                   {"seconds", secs},    {"cpu_seconds", cpu_seconds() - cpu_start}});
      const std::string name = key + ".wb." + attack;
      ps.tensors.emplace_back(name + ".robust", flag_matrix(robust));
      ps.eps[name + ".robust"] = grid;
      if (!norms.empty())
        ps.tensors.emplace_back(name + ".norms", Tensor::from_vector<double>(norms, {int64_t(norms.size())}));
      ps.tensors.emplace_back(name + ".shift", value_matrix(shift_rows));
      ps.eps[name + ".shift"] = grid;
      if (!components.empty()) mj["attacks"].back()["components"] = components;
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
      const attacks::SanityReport rep = attacks::sanity_report(*lm.model, xm, y, sanity);
      json items = json::array();
      for (const attacks::SanityItem& item : rep.items)
        items.push_back(json{{"check", item.name}, {"ok", item.ok}, {"detail", item.detail}});
      mj["sanity"] = json{{"points", std::min(sanity.max_points, count)}, {"norm", attacks::norm_name(sanity.norm)},
                          {"eps", sanity.eps}, {"all_ok", rep.all_ok()}, {"items", items},
                          {"seconds", seconds_since(start)}};
      io.err << fmt::format("afd_run eval: sanity report for {} ({}):\n{}", lm.name, duration(seconds_since(start)),
                            rep.str());
      if (!rep.all_ok())
        io.err << fmt::format("afd_run eval: warning: {} failed a sanity check: its robust accuracy may be "
                              "overestimated (see eval.md)\n", lm.name);
    }
    mj["clean_acc"] = clean;
    mj["clean_acc_ci"] = ci_json(clean, count);
    // Black-box: each source's adversarials at each eps; robust = correct on x and on x_adv.
    if (!sources.empty()) mj["black_box"] = json::array();
    for (const Source& source : sources)
      for (const TransferSet& t : source.transfer) {
        std::vector<double> acc;
        std::vector<std::vector<uint8_t>> robust;
        for (const Tensor& x_adv : t.x_adv) {
          std::vector<uint8_t> ok = correct_flags(*lm.model, x_adv.to(lm.config.dtype), labels, eo.batch_size);
          for (size_t i = 0; i < ok.size(); ++i) ok[i] = ok[i] && clean_ok[i];
          acc.push_back(mean_of(ok));
          robust.push_back(std::move(ok));
        }
        mj["black_box"].push_back(json{{"attack", t.attack}, {"source", source.name},
                                       {"config", attack_config_json(t.config)}, {"eps", t.eps}, {"robust_acc", acc}, {"robust_acc_ci", ci_list(acc, count)},
                                       {"auc", number(curve_auc(t.eps, acc))}});
        const std::string name = key + ".bb." + source.name + "." + t.attack + ".robust";
        ps.tensors.emplace_back(name, flag_matrix(robust));
        ps.eps[name] = t.eps;
      }
    // Representation dimensionality (the paper's Table A4) on the evaluated points.
    const eval::Dimensionality dim = eval::dimensionality(eval::features_of(*lm.model, xm, eo.batch_size));
    mj["representation"] = json{{"features", dim.features}, {"nonzero", dim.nonzero}, {"pca_99", dim.pca_99}};
    report["models"].push_back(mj);
  }
  io.out << write_eval_report(report, ps, out);
  // The evaluation is in eval.json: AutoAttack's resumable states are no longer needed.
  std::error_code ec;
  fs::remove_all(fs::path(out) / "autoattack-state", ec);
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
  prepare_report_dir(out);
  checkpoint_model_file(checkpoint, "--checkpoint");  // before the data, whose name it holds
  const std::string ck_dataset = checkpoint_dataset(checkpoint);
  const data::Dataset test = test_split(opt, ck_dataset);
  clear_report_files(out);
  const std::string dataset = opt.get("dataset").empty() ? (ck_dataset.empty() ? "mnist" : ck_dataset) : opt.get("dataset");
  const attacks::AttackConfig cfg = attack_config(set, opt, attack, dataset);
  LoadedModel lm = load_model(checkpoint, opt.get("model"), opt.get_int("width"), test, device);
  const int64_t count = opt.get_int("count") > 0 ? std::min(opt.get_int("count"), test.size()) : test.size();
  const int64_t n_images = opt.get_int("save-images");
  if (n_images > count)
    throw UsageError(fmt::format("--save-images {}: more than the {} points attacked ({})", n_images, count,
                                 opt.get_int("count") > 0 ? fmt::format("--count {}, test split of {}", opt.get_int("count"), test.size())
                                                          : "the whole test split"));
  auto [x_data, y] = as_tensors(test, count, device);
  const Tensor x = x_data.to(lm.config.dtype);  // in the model's dtype (a float64 run's weights are f64)
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
         // Minimal-norm attacks search without a budget: their successes and norms are of the points
         // found, while robust_acc (and the picture) clip those points into the eps-ball.
         {"success_within", atk->minimal_norm() ? "any norm (minimal-norm attack)" : "eps"},
         {"success_norms",
          {{"norm", attacks::norm_name(cfg.norm)}, {"count", fooled_norms.size()}, {"mean", number(mean_norm)},
           {"median", number(q(0.5))}, {"min", number(q(0))}, {"max", number(q(1))}}},
         {"seconds", secs},
         {"cpu_seconds", cpu_seconds() - cpu_start}};
  if (save) {
    const std::string path = (fs::path(out) / "x_adv.safetensors").string();
    std::map<std::string, std::string> meta{{"attack", attack}, {"config", attack_config_json(cfg).dump()}, {"checkpoint", lm.path}};
    if (atk->minimal_norm())
      meta["x_adv"] = "the points found by the minimal-norm attack, not clipped to eps (robust_acc evaluates "
                      "x + clip_eps(x_adv - x)); success and norms are theirs";
    write_safetensors(path, {{"x_adv", all_adv}, {"labels", y.to(Device::cpu())}, {"success", all_success}, {"norms", all_norms}},
                      meta);
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
  auto norm_text = [](double v) { return std::isfinite(v) ? fmt::format("{:.4g}", v) : std::string("-"); };  // - : no success
  io.out << fmt::format(
      "{} on {} ({} {} points): clean {}%, robust at eps {} {}%, success {}% of the clean-correct{}; {} norms of the "
      "successes: median {}, mean {}, max {}; {} ({:.1f} points/s)\n",
      attack, lm.name, dataset, count, percent(double(clean_correct) / double(count)), format_real(cfg.eps),
      percent(double(robust) / double(count)), clean_correct ? percent(double(fooled) / double(clean_correct)) : "-",
      atk->minimal_norm() ? " at any norm (minimal-norm attack; robust accuracy clips to eps)" : "",
      attacks::norm_name(cfg.norm), norm_text(q(0.5)), norm_text(mean_norm), norm_text(q(1)), duration(secs),
      double(count) / std::max(secs, 1e-9));
  if (n_images > 0) io.out << fmt::format("{} points drawn to {}\n", n_images, j["images"]["path"].get<std::string>());
  return 0;
}

}  // namespace afd::cli
