#include "attacks/autoattack.h"

#include <fmt/core.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

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

std::string flags_string(const std::vector<uint8_t>& f) {
  std::string s(f.size(), '0');
  for (size_t i = 0; i < f.size(); ++i) s[i] = f[i] ? '1' : '0';
  return s;
}

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

// The evaluation's progress, as saved in the state file.
struct State {
  std::vector<uint8_t> robust;
  size_t completed = 0;                 // attacks finished
  std::vector<int64_t> current_points;  // the points the current attack attacks
  size_t batches_done = 0;              // of the current attack
  std::vector<std::string> batch_files; // adversarial rows found so far, one file per batch
  std::vector<double> robust_accuracy, seconds;
};

void write_json_atomic(const std::string& path, const nlohmann::json& j) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    AFD_CHECK(out.good(), "autoattack: cannot write the state file {}", tmp);
    out << j.dump(1) << "\n";
    AFD_CHECK(out.good(), "autoattack: writing the state file {} failed", tmp);
  }
  fs::rename(tmp, path);
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
  auto take = [&](const Tensor& t, const std::vector<int64_t>& idx) {
    Tensor index = Tensor::from_vector<int64_t>(idx, {static_cast<int64_t>(idx.size())});
    return ops::index_select(t, index.to(t.device()));
  };

  AutoAttackReport rep;
  rep.count = n;
  for (const auto& c : components) rep.attacks.push_back(c.first);
  rep.x_adv = x.clone();

  // Clean accuracy, in batches.
  State st;
  st.robust.assign(static_cast<size_t>(n), 0);
  for (int64_t b = 0; b < n; b += options.batch_size) {
    std::vector<int64_t> pred = predict(x.slice(b, std::min(n, b + options.batch_size)));
    for (size_t j = 0; j < pred.size(); ++j) st.robust[b + j] = pred[j] == labels[b + j];
  }
  int64_t clean = 0;
  for (uint8_t r : st.robust) clean += r;
  rep.clean_accuracy = n ? static_cast<double>(clean) / static_cast<double>(n) : 0;

  // Resume from the state file, refusing one made by another evaluation.
  const std::string fp = fingerprint(x, y);
  nlohmann::json header = {{"format", "afd-autoattack-state/1"}, {"norm", norm_name(options.norm)},
                           {"eps", options.eps}, {"seed", options.seed}, {"attacks", rep.attacks},
                           {"count", n}, {"data", fp}};
  const std::string side_dir = options.state_path.empty() ? "" : options.state_path + ".d";
  if (!options.state_path.empty() && fs::exists(options.state_path)) {
    std::ifstream in(options.state_path);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      AFD_FAIL("autoattack: state file {} is not valid JSON: {}", options.state_path, e.what());
    }
    for (const auto& [key, value] : header.items())
      AFD_CHECK(j.contains(key) && j[key] == value, "autoattack: state file {} belongs to another evaluation: {} is "
                "{} there, {} here (delete it to start over)", options.state_path, key,
                j.contains(key) ? j[key].dump() : "missing", value.dump());
    std::string flags = j.at("robust");
    AFD_CHECK(static_cast<int64_t>(flags.size()) == n, "autoattack: state file {}: {} robust flags for {} points",
              options.state_path, flags.size(), n);
    for (int64_t i = 0; i < n; ++i) st.robust[i] = flags[i] == '1';
    st.completed = j.at("completed");
    st.current_points = j.at("current_points").get<std::vector<int64_t>>();
    st.batches_done = j.at("batches_done");
    st.batch_files = j.at("batch_files").get<std::vector<std::string>>();
    st.robust_accuracy = j.at("robust_accuracy").get<std::vector<double>>();
    st.seconds = j.at("seconds").get<std::vector<double>>();
    for (const std::string& file : st.batch_files) {
      SafetensorsFile f = read_safetensors(side_dir + "/" + file);
      std::vector<int64_t> idx = f.get("index").to_vector<int64_t>();
      Tensor rows = f.get("x_adv");
      for (size_t k = 0; k < idx.size(); ++k) rep.x_adv.select(idx[k]).copy_(rows.select(static_cast<int64_t>(k)));
    }
    if (options.verbose)
      fmt::print(stderr, "autoattack: resuming from {} ({} of {} attacks done)\n", options.state_path, st.completed,
                 components.size());
  }
  auto save_state = [&] {
    if (options.state_path.empty()) return;
    nlohmann::json j = header;
    j["robust"] = flags_string(st.robust);
    j["completed"] = st.completed;
    j["current_points"] = st.current_points;
    j["batches_done"] = st.batches_done;
    j["batch_files"] = st.batch_files;
    j["robust_accuracy"] = st.robust_accuracy;
    j["seconds"] = st.seconds;
    write_json_atomic(options.state_path, j);
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
      Tensor xb = take(x, idx);  // always the original images
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
                             {"x_adv", take(adv, broken).to(Device::cpu())}});
          st.batch_files.push_back(file);
        }
        if (st.seconds.size() <= a) st.seconds.resize(a + 1, 0.0);
        st.seconds[a] = seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        save_state();
      }
      if (options.verbose)
        fmt::print(stderr, "\r  {}: {}/{} attacked, robust {:.2f}%", name, std::min(total, b + bs), total,
                   100 * robust_fraction());
      if (options.should_stop && options.should_stop()) {
        if (options.verbose) fmt::print(stderr, "\nautoattack: stopped; resume from {}\n", options.state_path);
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
      fmt::print(stderr, "\r  {:<8} robust accuracy {:6.2f}% after it ({:.1f} s){:20}\n", name,
                 100 * st.robust_accuracy.back(), st.seconds[a], "");
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
