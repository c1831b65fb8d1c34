// SGD and Adam: the update rules of torch.optim (1.13). Adam is written with tensor ops
// (tensor/ops.h) and written back into each parameter's storage with copy_; SGD is one fused
// in-place pass per parameter (ops::sgd_step_, the same bits as those ops), so every holder of the
// Var sees the new values.
#include "nn/optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include <fmt/ranges.h>

#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd {

namespace {

// p.data() is a handle to the parameter's storage: copy_ through a copy of the handle writes the
// parameter in place.
void assign(const Var& param, const Tensor& value) {
  Tensor target = param.data();
  target.copy_(value);
}

// "state.<i>.<slot>" -> (i, slot); false if the name does not have that form.
bool parse_state_name(const std::string& name, size_t& index, std::string& slot) {
  const std::string prefix = "state.";
  if (name.rfind(prefix, 0) != 0) return false;
  size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size() || dot + 1 == name.size()) return false;
  std::string digits = name.substr(prefix.size(), dot - prefix.size());
  if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) return false;
  index = static_cast<size_t>(std::stoul(digits));
  slot = name.substr(dot + 1);
  return true;
}

}  // namespace

// ---- Optimizer ---------------------------------------------------------------------------------

Optimizer::Optimizer(std::vector<Var> params, double lr, const char* who) : params_(std::move(params)), lr_(lr) {
  AFD_CHECK(lr >= 0, "{}: invalid learning rate lr = {} (must be >= 0)", who, lr);
  std::set<const VarImpl*> seen;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Var& p = params_[i];
    AFD_CHECK(p.defined(), "{}: parameter {} is undefined", who, i);
    AFD_CHECK(p.is_leaf(), "{}: parameter {} is not a leaf (an optimizer updates leaves only)", who, i);
    AFD_CHECK(is_floating(p.dtype()), "{}: parameter {} has dtype {} (expected f32 or f64)", who, i,
              dtype_name(p.dtype()));
    AFD_CHECK(seen.insert(p.impl().get()).second, "{}: parameter {} appears twice in the parameter list", who,
              i);
  }
}

void Optimizer::zero_grad() {
  for (Var& p : params_) p.zero_grad();
}

void Optimizer::set_lr(double lr) {
  AFD_CHECK(lr >= 0, "{}: invalid learning rate lr = {} (must be >= 0)", name(), lr);
  lr_ = lr;
}

NamedTensors Optimizer::state() const {
  NamedTensors out;
  out.emplace_back("param_groups.0.lr", Tensor::scalar(lr_, DType::f64));
  for (size_t i = 0; i < params_.size(); ++i) {
    for (auto& [slot, value] : param_state(i)) {
      if (value.defined()) out.emplace_back("state." + std::to_string(i) + "." + slot, value.clone());
    }
  }
  return out;
}

void Optimizer::load_state(const NamedTensors& state) {
  const std::vector<std::string> known = slots();
  bool have_lr = false;
  std::set<std::string> names;
  std::map<size_t, size_t> slots_per_param;
  // Validate every entry before touching the current state: a bad file leaves the optimizer as it was.
  for (const auto& [entry_name, value] : state) {
    AFD_CHECK(names.insert(entry_name).second, "{}.load_state: '{}' appears twice", name(), entry_name);
    AFD_CHECK(value.defined(), "{}.load_state: '{}' is an undefined tensor", name(), entry_name);
    if (entry_name == "param_groups.0.lr") {
      AFD_CHECK(value.numel() == 1, "{}.load_state: '{}' has shape {}, expected one element", name(),
                entry_name, shape_str(value.shape()));
      AFD_CHECK(value.item_double() >= 0, "{}.load_state: invalid learning rate {} in '{}'", name(),
                value.item_double(), entry_name);
      have_lr = true;
      continue;
    }
    size_t i = 0;
    std::string slot;
    AFD_CHECK(parse_state_name(entry_name, i, slot),
              "{}.load_state: unexpected entry '{}' (expected 'param_groups.0.lr' or 'state.<index>.<slot>')",
              name(), entry_name);
    AFD_CHECK(i < params_.size(), "{}.load_state: '{}' names parameter {}, but the optimizer has {}", name(),
              entry_name, i, params_.size());
    AFD_CHECK(std::find(known.begin(), known.end(), slot) != known.end(),
              "{}.load_state: '{}' has an unknown slot '{}'", name(), entry_name, slot);
    ++slots_per_param[i];
    if (slot == "step") {
      AFD_CHECK(value.numel() == 1 && value.item_double() >= 1 && value.item_double() == std::floor(value.item_double()),
                "{}.load_state: '{}' must be one positive integer, got shape {}", name(), entry_name,
                shape_str(value.shape()));
    } else {
      const Tensor& p = params_[i].data();
      AFD_CHECK(value.shape() == p.shape(), "{}.load_state: '{}' has shape {}, parameter {} has shape {}", name(),
                entry_name, shape_str(value.shape()), i, shape_str(p.shape()));
      AFD_CHECK(value.dtype() == p.dtype(), "{}.load_state: '{}' has dtype {}, parameter {} has dtype {}", name(),
                entry_name, dtype_name(value.dtype()), i, dtype_name(p.dtype()));
    }
  }
  AFD_CHECK(have_lr, "{}.load_state: 'param_groups.0.lr' is missing", name());
  for (const auto& [i, count] : slots_per_param) {
    AFD_CHECK(count == known.size(), "{}.load_state: parameter {} has {} of its {} state slots (expected all of {})",
              name(), i, count, known.size(), fmt::join(known, ", "));
  }

  clear_state();
  for (const auto& [entry_name, value] : state) {
    if (entry_name == "param_groups.0.lr") {
      lr_ = value.item_double();
      continue;
    }
    size_t i = 0;
    std::string slot;
    parse_state_name(entry_name, i, slot);
    set_param_state(i, slot, value.to(params_[i].device()).clone());
  }
}

// ---- SGD ---------------------------------------------------------------------------------------

SGD::SGD(std::vector<Var> params, const SGDOptions& options)
    : Optimizer(std::move(params), options.lr, "SGD"), options_(options) {
  AFD_CHECK(options.momentum >= 0, "SGD: invalid momentum = {} (must be >= 0)", options.momentum);
  AFD_CHECK(options.weight_decay >= 0, "SGD: invalid weight_decay = {} (must be >= 0)", options.weight_decay);
  AFD_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
            "SGD: nesterov = true requires momentum > 0 and dampening = 0 (got momentum = {}, dampening = {})",
            options.momentum, options.dampening);
  momentum_buffer_.resize(params_.size());
}

// d = g + wd p; buf = m buf + (1 - dampening) d (the first step: buf = d, undamped);
// d = nesterov ? d + m buf : buf; p = p - lr d. One fused pass (ops::sgd_step_), rounded as the
// separate ops would be, over every parameter that shares a device, a dtype and whether its
// momentum buffer is new: on a GPU one launch per 32 parameters.
void SGD::step() {
  NoGradGuard no_grad;
  std::map<std::tuple<std::string, DType, bool>, std::vector<SgdTensors>> groups;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Var& p = params_[i];
    if (!p.grad().defined()) continue;
    Tensor& buf = momentum_buffer_[i];
    const bool first = options_.momentum != 0 && !buf.defined();
    if (first) buf = Tensor(p.shape(), p.dtype(), p.device());
    // handles to the parameter's and the buffer's storage: updated in place
    groups[{p.device().str(), p.dtype(), first}].push_back({p.data(), p.grad(), buf});
  }
  for (const auto& [key, tensors] : groups)
    ops::sgd_step_(tensors, {lr_, options_.weight_decay, options_.momentum, options_.dampening, options_.nesterov,
                             std::get<2>(key)});
}

NamedTensors SGD::param_state(size_t i) const { return {{"momentum_buffer", momentum_buffer_[i]}}; }

void SGD::set_param_state(size_t i, const std::string& slot, const Tensor& value) {
  AFD_CHECK(slot == "momentum_buffer", "SGD: unknown state slot '{}'", slot);
  momentum_buffer_[i] = value;
}

void SGD::clear_state() { momentum_buffer_.assign(params_.size(), Tensor()); }

// ---- Adam --------------------------------------------------------------------------------------

Adam::Adam(std::vector<Var> params, const AdamOptions& options)
    : Optimizer(std::move(params), options.lr, "Adam"), options_(options) {
  AFD_CHECK(options.eps >= 0, "Adam: invalid eps = {} (must be >= 0)", options.eps);
  AFD_CHECK(options.beta1 >= 0 && options.beta1 < 1, "Adam: invalid beta1 = {} (must be in [0, 1))",
            options.beta1);
  AFD_CHECK(options.beta2 >= 0 && options.beta2 < 1, "Adam: invalid beta2 = {} (must be in [0, 1))",
            options.beta2);
  AFD_CHECK(options.weight_decay >= 0, "Adam: invalid weight_decay = {} (must be >= 0)", options.weight_decay);
  clear_state();
}

void Adam::step() {
  NoGradGuard no_grad;
  const double beta1 = options_.beta1, beta2 = options_.beta2;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Var& p = params_[i];
    if (!p.grad().defined()) continue;
    if (step_[i] == 0) {
      exp_avg_[i] = Tensor::zeros(p.shape(), p.dtype(), p.device());
      exp_avg_sq_[i] = Tensor::zeros(p.shape(), p.dtype(), p.device());
    }
    const int64_t t = ++step_[i];
    Tensor g = p.grad();
    if (options_.weight_decay != 0) g = ops::add(g, ops::mul_scalar(p.data(), options_.weight_decay));

    Tensor& m = exp_avg_[i];
    Tensor& v = exp_avg_sq_[i];
    m.copy_(ops::add(ops::mul_scalar(m, beta1), ops::mul_scalar(g, 1 - beta1)));           // m = b1 m + (1-b1) g
    v.copy_(ops::add(ops::mul_scalar(v, beta2), ops::mul_scalar(ops::mul(g, g), 1 - beta2)));  // v = b2 v + (1-b2) g^2

    const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(t));
    const double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(t));
    const double step_size = lr_ / bias_correction1;
    // denom = sqrt(v) / sqrt(bias_correction2) + eps
    Tensor denom = ops::add_scalar(ops::mul_scalar(ops::sqrt(v), 1 / std::sqrt(bias_correction2)), options_.eps);
    assign(p, ops::sub(p.data(), ops::mul_scalar(ops::div(m, denom), step_size)));
  }
}

NamedTensors Adam::param_state(size_t i) const {
  if (step_[i] == 0) return {};
  return {{"step", Tensor::scalar(static_cast<double>(step_[i]), DType::f64)},
          {"exp_avg", exp_avg_[i]},
          {"exp_avg_sq", exp_avg_sq_[i]}};
}

void Adam::set_param_state(size_t i, const std::string& slot, const Tensor& value) {
  if (slot == "step") {
    step_[i] = static_cast<int64_t>(value.item_double());
  } else if (slot == "exp_avg") {
    exp_avg_[i] = value;
  } else if (slot == "exp_avg_sq") {
    exp_avg_sq_[i] = value;
  } else {
    AFD_FAIL("Adam: unknown state slot '{}'", slot);
  }
}

void Adam::clear_state() {
  step_.assign(params_.size(), 0);
  exp_avg_.assign(params_.size(), Tensor());
  exp_avg_sq_.assign(params_.size(), Tensor());
}

}  // namespace afd
