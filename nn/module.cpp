#include "nn/module.h"

#include <set>
#include <typeinfo>

#include "nn/layers.h"
#include "tensor/error.h"

namespace afd::nn {

namespace {
std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}
}  // namespace

// ---- registration ------------------------------------------------------------------------------

void Module::check_new_name(const std::string& name) const {
  AFD_CHECK(!name.empty() && name.find('.') == std::string::npos,
            "Module: invalid name '{}' (non-empty, no dots)", name);
  bool taken = false;
  for (const auto& [n, p] : params_) taken |= n == name;
  for (const Buffer& b : buffers_) taken |= b.name == name;
  for (const auto& [n, c] : children_) taken |= n == name;
  AFD_CHECK(!taken, "Module: name '{}' is registered twice", name);
}

Var Module::register_parameter(const std::string& name, Tensor value) {
  check_new_name(name);
  AFD_CHECK(value.defined(), "Module: parameter '{}' is undefined", name);
  Var v(std::move(value), /*requires_grad=*/true);
  params_.emplace_back(name, v);
  return v;
}

Var Module::register_buffer(const std::string& name, Tensor value, bool persistent) {
  check_new_name(name);
  AFD_CHECK(value.defined(), "Module: buffer '{}' is undefined", name);
  Var v(std::move(value), /*requires_grad=*/false);
  buffers_.push_back({name, v, persistent});
  return v;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check_new_name(name);
  AFD_CHECK(child != nullptr, "Module: child '{}' is null", name);
  children_.emplace_back(name, std::move(child));
}

// ---- traversal (own entries, then children, as PyTorch) ------------------------------------------

void Module::collect_parameters(const std::string& prefix, NamedVars& out) const {
  for (const auto& [name, p] : params_) out.emplace_back(join(prefix, name), p);
  for (const auto& [name, child] : children_) child->collect_parameters(join(prefix, name), out);
}

void Module::collect_buffers(const std::string& prefix, NamedTensors& out) const {
  for (const Buffer& b : buffers_) out.emplace_back(join(prefix, b.name), b.value.data());
  for (const auto& [name, child] : children_) child->collect_buffers(join(prefix, name), out);
}

void Module::collect_state(const std::string& prefix, NamedTensors& out) const {
  for (const auto& [name, p] : params_) out.emplace_back(join(prefix, name), p.data());
  for (const Buffer& b : buffers_)
    if (b.persistent) out.emplace_back(join(prefix, b.name), b.value.data());
  for (const auto& [name, child] : children_) child->collect_state(join(prefix, name), out);
}

void Module::collect_all(const std::string& prefix, NamedVars& out) const {
  for (const auto& [name, p] : params_) out.emplace_back(join(prefix, name), p);
  for (const Buffer& b : buffers_) out.emplace_back(join(prefix, b.name), b.value);
  for (const auto& [name, child] : children_) child->collect_all(join(prefix, name), out);
}

NamedVars Module::named_parameters() const {
  NamedVars out;
  collect_parameters("", out);
  return out;
}

std::vector<Var> Module::parameters() const {
  std::vector<Var> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect_buffers("", out);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (auto& [name, p] : named_parameters()) n += p.numel();
  return n;
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  collect_state("", out);
  return out;
}

// ---- loading -----------------------------------------------------------------------------------

void Module::load_state_dict(const NamedTensors& entries, bool strict) {
  NamedTensors own = state_dict();
  std::map<std::string, const Tensor*> given;
  std::vector<std::string> problems;
  for (const auto& [name, t] : entries) {
    if (!given.emplace(name, &t).second) problems.push_back(fmt::format("'{}' appears twice", name));
  }
  std::set<std::string> own_names;
  for (const auto& [name, t] : own) {
    own_names.insert(name);
    auto it = given.find(name);
    if (it == given.end()) {
      if (strict) problems.push_back(fmt::format("missing '{}' (expected {} {})", name, dtype_name(t.dtype()),
                                                 shape_str(t.shape())));
      continue;
    }
    const Tensor& src = *it->second;
    if (!src.defined() || src.shape() != t.shape() || src.dtype() != t.dtype())
      problems.push_back(fmt::format("'{}': expected {} {}, got {}", name, dtype_name(t.dtype()),
                                     shape_str(t.shape()),
                                     src.defined() ? fmt::format("{} {}", dtype_name(src.dtype()), shape_str(src.shape()))
                                                   : std::string("an undefined tensor")));
  }
  if (strict)
    for (const auto& [name, t] : entries)
      if (!own_names.count(name)) problems.push_back(fmt::format("unexpected '{}'", name));

  if (!problems.empty()) {
    std::string all;
    for (const std::string& p : problems) all += "\n  " + p;
    AFD_FAIL("load_state_dict: {} problem(s), nothing loaded:{}", problems.size(), all);
  }
  for (const auto& [name, t] : own) {
    auto it = given.find(name);
    if (it != given.end()) {
      Tensor dst = t;  // shares storage with the parameter or buffer
      dst.copy_(*it->second);
    }
  }
}

// ---- modes -------------------------------------------------------------------------------------

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::set_requires_grad(bool on) {
  for (auto& [name, p] : named_parameters()) p.set_requires_grad(on);
}

void Module::zero_grad() {
  for (auto& [name, p] : named_parameters()) p.zero_grad();
}

void Module::to(Device device) {
  NamedVars all;
  collect_all("", all);
  for (auto& [name, v] : all) v.impl()->data = v.data().to(device);
}

void Module::to(DType dtype) {
  AFD_CHECK(dtype == DType::f32 || dtype == DType::f64, "Module::to: expected f32 or f64, got {}", dtype_name(dtype));
  NamedVars all;
  collect_all("", all);
  for (auto& [name, v] : all) {
    DType have = v.data().dtype();
    if (have == DType::f32 || have == DType::f64) v.impl()->data = v.data().to(dtype);
  }
}

// ---- Sequential and Classifier -----------------------------------------------------------------

Sequential::Sequential(std::vector<std::shared_ptr<UnaryModule>> layers) {
  for (auto& layer : layers) add(std::move(layer));
}

Var Sequential::forward(const Var& x) {
  Var h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    // A Conv2d directly followed by a ReLU (exactly those types) runs as one convolution with the
    // ReLU in its bias pass: the same values and gradients, one launch and one pass fewer on a GPU.
    UnaryModule& layer = *layers_[i];
    if (typeid(layer) == typeid(Conv2d) && i + 1 < layers_.size() && typeid(*layers_[i + 1]) == typeid(ReLU)) {
      const auto& conv = static_cast<const Conv2d&>(layer);
      h = conv.forward_with(h, conv.weight, conv.bias, /*relu=*/true);
      ++i;
      continue;
    }
    h = layer.forward(h);
  }
  return h;
}

std::vector<Var> Classifier::encoder_parameters() const {
  std::vector<Var> out;
  const std::string head = head_name() + ".";
  for (auto& [name, p] : named_parameters())
    if (name.rfind(head, 0) != 0) out.push_back(p);
  return out;
}

}  // namespace afd::nn
