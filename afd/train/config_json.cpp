// TrainConfig's names (method, adv-keep-failed) and its JSON form, stored in every checkpoint. A
// checkpoint may come from anywhere: config_from_json reads only known keys of the right types
// (fuzzed: fuzz/fuzz_train_config.cpp); TrainConfig::validate then checks the values.
#include <nlohmann/json.hpp>

#include "afd/train/config.h"
#include "tensor/error.h"
#include "tensor/strict_json.h"

namespace afd::train {

using nlohmann::json;

const char* method_name(Method method) {
  switch (method) {
    case Method::nt: return "nt";
    case Method::at: return "at";
    case Method::trades: return "trades";
    case Method::afd: return "afd";
    case Method::norm: return "norm";
  }
  return "?";
}

Method parse_method(const std::string& name) {
  for (Method m : {Method::nt, Method::at, Method::trades, Method::afd, Method::norm})
    if (name == method_name(m)) return m;
  AFD_FAIL("unknown training method '{}' (expected nt, at, trades, afd or norm)", name);
}

const char* keep_failed_name(KeepFailed rule) { return rule == KeepFailed::clean ? "clean" : "last"; }

KeepFailed parse_keep_failed(const std::string& name) {
  if (name == "clean") return KeepFailed::clean;
  if (name == "last") return KeepFailed::last;
  AFD_FAIL("unknown adv-keep-failed rule '{}' (expected clean or last)", name);
}

// ---- JSON ------------------------------------------------------------------------------------

namespace {

json attack_to_json(const attacks::AttackConfig& a) {
  return json{{"norm", attacks::norm_name(a.norm)},
              {"eps", a.eps},
              {"steps", a.steps},
              {"step_size", a.step_size},
              {"relative_step", a.relative_step},
              {"random_start", a.random_start},
              {"restarts", a.restarts},
              {"targeted", a.targeted},
              {"loss", attacks::loss_name(a.loss)},
              {"decay", a.decay},
              {"sparsity", a.sparsity},
              {"quantile", a.quantile},
              {"rho", a.rho},
              {"return_last_iterate", a.return_last_iterate},
              {"n_target_classes", a.n_target_classes},
              {"candidates", a.candidates},
              {"overshoot", a.overshoot},
              {"gamma", a.gamma},
              {"init_norm", a.init_norm},
              {"binary_steps", a.binary_steps},
              {"initial_const", a.initial_const},
              {"confidence", a.confidence},
              {"abort_early", a.abort_early},
              {"fab_eta", a.fab_eta},
              {"fab_alpha_max", a.fab_alpha_max},
              {"fab_beta", a.fab_beta},
              {"n_queries", a.n_queries},
              {"p_init", a.p_init}};
}

// Reads `key` of `j` into `out` when present, with the key named in a type error.
template <class T>
void read(const json& j, const char* where, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end()) return;
  AFD_CHECK(strict_json_get(*it, out), "config JSON: '{}{}' has the wrong type or is out of range ({})", where, key,
            it->dump().substr(0, 80));
}

void check_keys(const json& j, const char* where, const std::vector<const char*>& known) {
  AFD_CHECK(j.is_object(), "config JSON: '{}' must be an object, got {}", where, j.dump());
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok |= it.key() == k;
    AFD_CHECK(ok, "config JSON: unknown key '{}{}'", where, it.key());
  }
}

attacks::AttackConfig attack_from_json(const json& j) {
  check_keys(j, "attack_config.",
             {"norm", "eps", "steps", "step_size", "relative_step", "random_start", "restarts", "targeted", "loss",
              "decay", "sparsity", "quantile", "rho", "return_last_iterate", "n_target_classes", "candidates",
              "overshoot", "gamma", "init_norm", "binary_steps", "initial_const", "confidence", "abort_early",
              "fab_eta", "fab_alpha_max", "fab_beta", "n_queries", "p_init"});
  attacks::AttackConfig a;
  const char* w = "attack_config.";
  std::string norm = attacks::norm_name(a.norm), loss = attacks::loss_name(a.loss);
  read(j, w, "norm", norm);
  read(j, w, "loss", loss);
  a.norm = attacks::parse_norm(norm);
  a.loss = attacks::parse_loss(loss);
  read(j, w, "eps", a.eps);
  read(j, w, "steps", a.steps);
  read(j, w, "step_size", a.step_size);
  read(j, w, "relative_step", a.relative_step);
  read(j, w, "random_start", a.random_start);
  read(j, w, "restarts", a.restarts);
  read(j, w, "targeted", a.targeted);
  read(j, w, "decay", a.decay);
  read(j, w, "sparsity", a.sparsity);
  read(j, w, "quantile", a.quantile);
  read(j, w, "rho", a.rho);
  read(j, w, "return_last_iterate", a.return_last_iterate);
  read(j, w, "n_target_classes", a.n_target_classes);
  read(j, w, "candidates", a.candidates);
  read(j, w, "overshoot", a.overshoot);
  read(j, w, "gamma", a.gamma);
  read(j, w, "init_norm", a.init_norm);
  read(j, w, "binary_steps", a.binary_steps);
  read(j, w, "initial_const", a.initial_const);
  read(j, w, "confidence", a.confidence);
  read(j, w, "abort_early", a.abort_early);
  read(j, w, "fab_eta", a.fab_eta);
  read(j, w, "fab_alpha_max", a.fab_alpha_max);
  read(j, w, "fab_beta", a.fab_beta);
  read(j, w, "n_queries", a.n_queries);
  read(j, w, "p_init", a.p_init);
  return a;
}

}  // namespace

std::string config_to_json(const TrainConfig& c) {
  json j{{"method", method_name(c.method)},
         {"dataset", c.dataset},
         {"model", c.model},
         {"width", c.width},
         {"dtype", dtype_name(c.dtype)},
         {"device", c.device.str()},
         {"epochs", c.epochs},
         {"batch_size", c.batch_size},
         {"drop_last", c.drop_last},
         {"sync_bn", c.sync_bn},
         {"lr", c.lr},
         {"lr_d", c.lr_d},
         {"lr_f", c.lr_f},
         {"momentum", c.momentum},
         {"weight_decay", c.weight_decay},
         {"milestones", c.milestones},
         {"gamma", c.gamma},
         {"gan_loss", gan_loss_name(c.gan_loss)},
         {"gp_lambda", c.gp_lambda},
         {"trades_beta", c.trades_beta},
         {"norm_lambda", c.norm_lambda},
         {"trades_attack",
          {{"eps", c.trades_attack.eps},
           {"steps", c.trades_attack.steps},
           {"step_size", c.trades_attack.step_size},
           {"init_std", c.trades_attack.init_std}}},
         {"attack", c.attack},
         {"attack_config", attack_to_json(c.attack_config)},
         {"keep_failed", keep_failed_name(c.keep_failed)},
         {"crop_padding", c.crop_padding},
         {"flip", c.flip},
         {"prefetch", c.prefetch},
         {"eval_batch_size", c.eval_batch_size},
         {"seed", c.seed},
         {"checkpoint_every", c.checkpoint_every},
         {"out_dir", c.out_dir}};
  return j.dump();
}

TrainConfig config_from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    AFD_FAIL("config JSON: not valid JSON ({})", e.what());
  }
  check_keys(j, "", {"method", "dataset", "model", "width", "dtype", "device", "epochs", "batch_size", "drop_last",
                     "sync_bn", "lr", "lr_d", "lr_f", "momentum", "weight_decay", "milestones", "gamma", "gan_loss",
                     "gp_lambda", "trades_beta", "norm_lambda", "trades_attack", "attack", "attack_config",
                     "keep_failed", "crop_padding", "flip", "prefetch", "eval_batch_size", "seed",
                     "checkpoint_every", "out_dir"});
  TrainConfig c;
  std::string method = method_name(c.method), dtype = dtype_name(c.dtype), device = c.device.str(),
              gan = gan_loss_name(c.gan_loss), keep = keep_failed_name(c.keep_failed);
  read(j, "", "method", method);
  read(j, "", "dtype", dtype);
  read(j, "", "device", device);
  read(j, "", "gan_loss", gan);
  read(j, "", "keep_failed", keep);
  c.method = parse_method(method);
  AFD_CHECK(dtype == "f32" || dtype == "f64", "config JSON: 'dtype' must be f32 or f64, got '{}'", dtype);
  c.dtype = dtype == "f64" ? DType::f64 : DType::f32;
  c.device = Device::parse(device);
  c.gan_loss = parse_gan_loss(gan);
  c.keep_failed = parse_keep_failed(keep);
  read(j, "", "dataset", c.dataset);
  read(j, "", "model", c.model);
  read(j, "", "width", c.width);
  read(j, "", "epochs", c.epochs);
  read(j, "", "batch_size", c.batch_size);
  read(j, "", "drop_last", c.drop_last);
  read(j, "", "sync_bn", c.sync_bn);
  read(j, "", "lr", c.lr);
  read(j, "", "lr_d", c.lr_d);
  read(j, "", "lr_f", c.lr_f);
  read(j, "", "momentum", c.momentum);
  read(j, "", "weight_decay", c.weight_decay);
  read(j, "", "milestones", c.milestones);
  read(j, "", "gamma", c.gamma);
  read(j, "", "gp_lambda", c.gp_lambda);
  read(j, "", "trades_beta", c.trades_beta);
  read(j, "", "norm_lambda", c.norm_lambda);
  if (j.contains("trades_attack")) {
    const json& t = j["trades_attack"];
    check_keys(t, "trades_attack.", {"eps", "steps", "step_size", "init_std"});
    read(t, "trades_attack.", "eps", c.trades_attack.eps);
    read(t, "trades_attack.", "steps", c.trades_attack.steps);
    read(t, "trades_attack.", "step_size", c.trades_attack.step_size);
    read(t, "trades_attack.", "init_std", c.trades_attack.init_std);
  }
  read(j, "", "attack", c.attack);
  if (j.contains("attack_config")) c.attack_config = attack_from_json(j["attack_config"]);
  read(j, "", "crop_padding", c.crop_padding);
  read(j, "", "flip", c.flip);
  read(j, "", "prefetch", c.prefetch);
  read(j, "", "eval_batch_size", c.eval_batch_size);
  read(j, "", "seed", c.seed);
  read(j, "", "checkpoint_every", c.checkpoint_every);
  read(j, "", "out_dir", c.out_dir);
  return c;
}

}  // namespace afd::train
