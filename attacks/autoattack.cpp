#include "attacks/autoattack.h"

#include <fmt/core.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attacks/autoattack_state.h"
#include "attacks/core.h"
#include "nn/safetensors.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::attacks {

namespace fs = std::filesystem;

std::vector<std::pair<std::string, AttackConfig>> autoattack_components(const AutoAttackOptions& o) {
  AttackConfig base;
  base.norm = o.norm;
  base.eps = o.eps;
  base.seed = o.seed;
  base.restarts = 1;
  base.n_target_classes = o.n_target_classes;
  auto component = [&](const std::string& name) {
    AttackConfig c = base;
    if (name.rfind("apgd", 0) == 0) {
      c.steps = o.apgd_steps;
      c.rho = 0.75;
    } else if (name.rfind("fab", 0) == 0) {
      c.steps = o.fab_steps;
    } else if (name == "square") {
      c.n_queries = o.square_queries;
      c.p_init = 0.8;
    }
    return std::make_pair(name, c);
  };
  std::vector<std::pair<std::string, AttackConfig>> out;
  if (o.version == "standard") {
    AFD_CHECK(o.attacks.empty(), "autoattack: an attack list needs version custom (standard runs apgd-ce, apgd-t, "
              "fab-t, square)");
    AFD_CHECK(o.norm != Norm::l1, "autoattack: the standard version is defined here for linf and l2; use version "
              "custom for l1");
    for (const char* name : {"apgd-ce", "apgd-t", "fab-t", "square"}) out.push_back(component(name));
  } else if (o.version == "custom") {
    AFD_CHECK(!o.attacks.empty(), "autoattack: version custom needs a list of attacks");
    for (const std::string& name : o.attacks) out.push_back(component(name));
  } else {
    AFD_FAIL("autoattack: unknown version '{}' (expected standard or custom)", o.version);
  }
  return out;
}

namespace {

// FNV-1a over the bytes of x (as f32) and y: a resumed evaluation must see the same data.
std::string fingerprint(const Tensor& x, const Tensor& y) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const void* data, size_t bytes) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  Tensor xf = x.to(Device::cpu()).to(DType::f32), yc = y.to(Device::cpu());
  mix(xf.raw_data(), xf.nbytes());
  mix(yc.raw_data(), yc.nbytes());
  return fmt::format("{:016x}", h);
}

void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    AFD_CHECK(out.good(), "autoattack: cannot write the state file {}", tmp);
    out << text;
    AFD_CHECK(out.good(), "autoattack: writing the state file {} failed", tmp);
  }
  fs::rename(tmp, path);
}

// One batch file of a state's broken points: index i64 [k] and x_adv [k, ...] with x's row shape,
// written into x_adv's rows (bad indices or shapes are errors, not writes out of bounds).
void load_batch_file(const std::string& path, Tensor& x_adv) {
  SafetensorsFile f = read_safetensors(path);
  const Tensor index = f.get("index"), rows = f.get("x_adv");
  std::vector<int64_t> row_shape = x_adv.shape();
  row_shape[0] = index.dim() == 1 ? index.size(0) : -1;
  AFD_CHECK(index.dtype() == DType::i64 && index.dim() == 1 && rows.shape() == row_shape,
            "autoattack: batch file {}: expected index i64 [k] and x_adv [k, {}], got {} and {}", path,
            fmt::join(x_adv.shape().begin() + 1, x_adv.shape().end(), ", "), index.str(), rows.str());
  const std::vector<int64_t> idx = index.to_vector<int64_t>();
  for (size_t k = 0; k < idx.size(); ++k) {
    AFD_CHECK(idx[k] >= 0 && idx[k] < x_adv.size(0), "autoattack: batch file {}: point index {} outside [0, {})",
              path, idx[k], x_adv.size(0));
    x_adv.select(idx[k]).copy_(rows.select(static_cast<int64_t>(k)).to(x_adv.dtype()).to(x_adv.device()));
  }
}

// A resumed state must agree with the model: a point still robust was classified correctly, and a
// point it says was broken has a stored adversarial that the model misclassifies. So a damaged or
// edited state file cannot lower (or raise) the robust accuracy the evaluation reports.
void check_resumed_state(const AutoAttackState& st, const std::vector<uint8_t>& clean_correct, const Tensor& x_adv,
                         const std::vector<int64_t>& labels, int64_t batch_size,
                         const std::function<std::vector<int64_t>(const Tensor&)>& predict, const std::string& path) {
  std::vector<int64_t> broken;
  for (size_t i = 0; i < st.robust.size(); ++i) {
    AFD_CHECK(!st.robust[i] || clean_correct[i], "autoattack: state file {} says point {} is robust, but the model "
              "misclassifies it (delete the state file to start over)", path, i);
    if (clean_correct[i] && !st.robust[i]) broken.push_back(static_cast<int64_t>(i));
  }
  for (size_t b = 0; b < broken.size(); b += static_cast<size_t>(batch_size)) {
    const std::vector<int64_t> idx(broken.begin() + static_cast<int64_t>(b),
                                   broken.begin() + static_cast<int64_t>(std::min(broken.size(), b + batch_size)));
    const std::vector<int64_t> pred = predict(take_rows(x_adv, idx));
    for (size_t k = 0; k < idx.size(); ++k)
      AFD_CHECK(pred[k] != labels[idx[k]], "autoattack: state file {} says point {} was broken, but its stored "
                "adversarial example is classified correctly (delete the state file to start over)", path, idx[k]);
  }
}

}  // namespace

AutoAttackReport run_autoattack(nn::UnaryModule& model, const Tensor& x, const Tensor& y,
                                const AutoAttackOptions& options) {
  AFD_CHECK(options.batch_size >= 1, "autoattack: batch size must be >= 1, got {}", options.batch_size);
  AFD_CHECK(std::isfinite(options.eps) && options.eps >= 0, "autoattack: eps must be finite and >= 0, got {}",
            options.eps);
  AFD_CHECK(x.defined() && x.dim() >= 2 && y.defined() && y.dtype() == DType::i64 && y.dim() == 1 &&
                y.size(0) == x.size(0),
            "autoattack: expected x [N, ...] and labels i64 [N], got {} and {}", x.str(), y.str());
  const auto components = autoattack_components(options);
  for (const auto& [name, cfg] : components) make_attack(name, cfg);  // unknown names fail before any work
  const int64_t n = x.size(0);
  EvalModeGuard eval_mode(model);
  std::vector<int64_t> labels = y.to(Device::cpu()).to_vector<int64_t>();
  auto predict = [&](const Tensor& rows) {
    return ops::argmax(logits_of(model, rows), 1).to(Device::cpu()).to_vector<int64_t>();
  };

  AutoAttackReport rep;
  rep.count = n;
  for (const auto& c : components) rep.attacks.push_back(c.first);
  rep.x_adv = x.clone();

  // Clean accuracy, in batches.
  std::vector<uint8_t> clean_correct(static_cast<size_t>(n), 0);
  for (int64_t b = 0; b < n; b += options.batch_size) {
    std::vector<int64_t> pred = predict(x.slice(b, std::min(n, b + options.batch_size)));
    for (size_t j = 0; j < pred.size(); ++j) clean_correct[b + j] = pred[j] == labels[b + j];
  }
  int64_t clean = 0;
  for (uint8_t r : clean_correct) clean += r;
  rep.clean_accuracy = n ? static_cast<double>(clean) / static_cast<double>(n) : 0;

  // Resume from the state file (attacks/autoattack_state.h), refusing one made by another evaluation.
  const nlohmann::json header = autoattack_state_header(norm_name(options.norm), options.eps, options.seed,
                                                        options.batch_size, rep.attacks, n, fingerprint(x, y));
  const std::string side_dir = options.state_path.empty() ? "" : options.state_path + ".d";
  AutoAttackState st;
  st.robust = clean_correct;
  if (!options.state_path.empty() && fs::exists(options.state_path)) {
    std::ifstream in(options.state_path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    AFD_CHECK(in.good() || in.eof(), "autoattack: cannot read the state file {}", options.state_path);
    st = parse_autoattack_state(text, header, options.state_path);
    for (const std::string& file : st.batch_files) load_batch_file(side_dir + "/" + file, rep.x_adv);
    check_resumed_state(st, clean_correct, rep.x_adv, labels, options.batch_size, predict, options.state_path);
    if (options.verbose)
      fmt::print(stderr, "autoattack: resuming from {} ({} of {} attacks done)\n", options.state_path, st.completed,
                 components.size());
  }
  auto save_state = [&] {
    if (!options.state_path.empty()) write_text_atomic(options.state_path, autoattack_state_json(header, st));
  };
  auto robust_fraction = [&] {
    int64_t c = 0;
    for (uint8_t r : st.robust) c += r;
    return n ? static_cast<double>(c) / static_cast<double>(n) : 0;
  };
  if (options.verbose)
    fmt::print(stderr, "autoattack {} {} eps {:g}: clean accuracy {:.2f}% ({} points)\n", options.version,
               norm_name(options.norm), options.eps, 100 * rep.clean_accuracy, n);

  for (size_t a = st.completed; a < components.size(); ++a) {
    const auto& [name, cfg] = components[a];
    std::unique_ptr<Attack> atk = make_attack(name, cfg);
    if (st.batches_done == 0) {  // a fresh attack: it attacks the points robust now
      st.current_points.clear();
      for (int64_t i = 0; i < n; ++i)
        if (st.robust[i]) st.current_points.push_back(i);
    }
    const auto start = std::chrono::steady_clock::now();
    const double seconds_before = st.seconds.size() > a ? st.seconds[a] : 0.0;
    const size_t total = st.current_points.size(), bs = static_cast<size_t>(options.batch_size);
    for (size_t b = st.batches_done * bs; b < total; b += bs) {
      std::vector<int64_t> idx(st.current_points.begin() + static_cast<int64_t>(b),
                               st.current_points.begin() + static_cast<int64_t>(std::min(total, b + bs)));
      std::vector<int64_t> yb;
      for (int64_t i : idx) yb.push_back(labels[i]);
      Tensor xb = take_rows(x, idx);  // always the original images
      Tensor adv = atk->perturb(model, xb, Tensor::from_vector<int64_t>(yb, {static_cast<int64_t>(yb.size())})
                                                .to(y.device())).x_adv;
      std::vector<int64_t> pred = predict(adv);  // the model's own verdict decides
      std::vector<int64_t> broken;
      for (size_t j = 0; j < idx.size(); ++j) {
        if (pred[j] == yb[j]) continue;
        st.robust[idx[j]] = 0;
        rep.x_adv.select(idx[j]).copy_(adv.select(static_cast<int64_t>(j)));
        broken.push_back(static_cast<int64_t>(j));
      }
      ++st.batches_done;
      if (!options.state_path.empty()) {
        if (!broken.empty()) {
          fs::create_directories(side_dir);
          std::vector<int64_t> rows_idx;
          for (int64_t j : broken) rows_idx.push_back(idx[j]);
          std::string file = fmt::format("{}_{}.safetensors", a, st.batches_done - 1);
          write_safetensors(side_dir + "/" + file,
                            {{"index", Tensor::from_vector<int64_t>(rows_idx, {static_cast<int64_t>(rows_idx.size())})},
                             {"x_adv", take_rows(adv, broken).to(Device::cpu())}});
          st.batch_files.push_back(file);
        }
        if (st.seconds.size() <= a) st.seconds.resize(a + 1, 0.0);
        st.seconds[a] = seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        save_state();
      }
      if (options.verbose)
        fmt::print(stderr, "{}  {}: {}/{} attacked, robust {:.2f}%{}", options.progress_lines ? "" : "\r", name,
                   std::min(total, b + bs), total, 100 * robust_fraction(), options.progress_lines ? "\n" : "");
      if (options.should_stop && options.should_stop()) {
        if (options.verbose)
          fmt::print(stderr, "{}autoattack: stopped; resume from {}\n", options.progress_lines ? "" : "\n",
                     options.state_path);
        rep.complete = false;
        rep.robust = st.robust;
        rep.robust_accuracy = st.robust_accuracy;
        return rep;
      }
    }
    if (st.seconds.size() <= a) st.seconds.resize(a + 1, 0.0);
    st.seconds[a] = seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    st.robust_accuracy.push_back(robust_fraction());
    st.completed = a + 1;
    st.batches_done = 0;
    st.current_points.clear();
    save_state();
    if (options.verbose)
      fmt::print(stderr, "{}  {:<8} robust accuracy {:6.2f}% after it ({:.1f} s){:{}}\n",
                 options.progress_lines ? "" : "\r", name, 100 * st.robust_accuracy.back(), st.seconds[a], "",
                 options.progress_lines ? 0 : 20);
  }
  rep.robust = st.robust;
  rep.robust_accuracy = st.robust_accuracy;
  rep.seconds = st.seconds;

  // Self-check over every point: the budget, NaNs and the box.
  std::vector<double> norms = row_norms(ops::sub(rep.x_adv, x), options.norm).to(Device::cpu()).to_vector<double>();
  std::vector<double> values = host_rows(rep.x_adv);
  rep.min_value = values.empty() ? 0 : INFINITY;
  rep.max_value = values.empty() ? 0 : -INFINITY;
  for (double v : values) {
    if (std::isnan(v)) {
      ++rep.nan_count;
      continue;
    }
    rep.min_value = std::min(rep.min_value, v);
    rep.max_value = std::max(rep.max_value, v);
  }
  for (double v : norms) rep.max_norm = std::isnan(v) ? v : std::max(rep.max_norm, v);
  if (options.verbose)
    fmt::print(stderr, "autoattack self-check: max {} perturbation {:.6g} (eps {:g}), {} NaN, x_adv in [{:g}, {:g}]; "
               "robust accuracy {:.2f}%\n", norm_name(options.norm), rep.max_norm, options.eps, rep.nan_count,
               rep.min_value, rep.max_value, 100 * rep.final_robust_accuracy());
  AFD_CHECK(rep.nan_count == 0 && !(rep.max_norm > options.eps * (1 + 1e-6) + 1e-6) && rep.min_value >= 0 &&
                rep.max_value <= 1,
            "autoattack self-check FAILED: max {} perturbation {} (eps {}), {} NaN, x_adv in [{}, {}]",
            norm_name(options.norm), rep.max_norm, options.eps, rep.nan_count, rep.min_value, rep.max_value);
  return rep;
}

AutoAttack::AutoAttack(AttackConfig config) : Attack(config) {}

Tensor AutoAttack::run(const Problem& p, Generator&) {
  for (double e : p.eps)
    AFD_CHECK(e == config_.eps, "autoattack: per-sample eps is not supported (got {} and {})", e, config_.eps);
  AutoAttackOptions o;
  o.norm = config_.norm;
  o.eps = config_.eps;
  o.seed = config_.seed;
  o.verbose = false;
  return run_autoattack(*p.model, p.x, p.y, o).x_adv;
}

}  // namespace afd::attacks
