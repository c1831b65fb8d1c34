#include "autograd/var.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "autograd/ops.h"
#include "tensor/ops.h"

namespace afd {

namespace {
thread_local bool t_grad_mode = true;
std::atomic<uint64_t> g_next_seq{0};
std::array<double, static_cast<size_t>(Op::count_)> g_backward_scale = [] {
  std::array<double, static_cast<size_t>(Op::count_)> a{};
  a.fill(1.0);
  return a;
}();
}  // namespace

bool grad_mode_enabled() { return t_grad_mode; }
GradModeGuard::GradModeGuard(bool enabled) : previous_(t_grad_mode) { t_grad_mode = enabled; }
GradModeGuard::~GradModeGuard() { t_grad_mode = previous_; }

// ---- numerics checks ---------------------------------------------------------------------------
namespace {
std::atomic<bool> g_check_numerics{false};
thread_local const OpInfo* t_backward_of = nullptr;  // the op whose backward is running, if any

bool all_finite(const Tensor& t) {
  if (!t.defined() || !is_floating(t.dtype()) || t.numel() == 0) return true;
  // x * 0 is 0 for every finite x and NaN for NaN and +-Inf: one reduction answers.
  return std::isfinite(ops::sum(ops::mul_scalar(t, 0.0)).item_double());
}

// "3 NaN and 1 Inf among 120 values of shape [4, 30] (the first at flat index 17)".
std::string describe_non_finite(const Tensor& t) {
  std::vector<double> v = t.to(Device::cpu()).to_vector<double>();
  int64_t nan = 0, inf = 0, first = -1;
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isfinite(v[i])) continue;
    (std::isnan(v[i]) ? nan : inf) += 1;
    if (first < 0) first = int64_t(i);
  }
  return fmt::format("{} NaN and {} Inf among {} values of shape {} (the first at flat index {})", nan, inf,
                     v.size(), shape_str(t.shape()), first);
}

void check_forward(Op op, const Tensor& out, const std::vector<Var>& inputs) {
  if (all_finite(out)) return;
  std::string why = "its inputs were finite";
  for (size_t k = 0; k < inputs.size(); ++k)
    if (!all_finite(inputs[k].data())) {
      why = fmt::format("input {} was already non-finite (made outside the checked ops: data, a parameter or a "
                        "constant)", k);
      break;
    }
  const std::string inside = t_backward_of ? fmt::format(" (inside the backward of op '{}')", t_backward_of->name) : "";
  AFD_FAIL("check-numerics: op '{}'{} produced {} in its output; {}", op_info(op).name, inside,
           describe_non_finite(out), why);
}

void check_backward(Op op, size_t input, const Var& grad, const Var& grad_out) {
  if (all_finite(grad.data())) return;
  AFD_FAIL("check-numerics: the backward of op '{}' produced {} in the gradient for its input {}; {}",
           op_info(op).name, describe_non_finite(grad.data()), input,
           all_finite(grad_out.data()) ? "the gradient it received was finite"
                                       : "the gradient it received was already non-finite");
}
}  // namespace

void set_check_numerics(bool on) { g_check_numerics = on; }
bool check_numerics() { return g_check_numerics; }

void set_backward_scale_for_testing(Op op, double factor) {
  g_backward_scale[static_cast<size_t>(op)] = factor;
}

// ---- Var -------------------------------------------------------------------------------------
Var::Var(Tensor data, bool requires_grad) : impl_(std::make_shared<VarImpl>()) {
  AFD_CHECK(data.defined(), "Var: undefined tensor");
  AFD_CHECK(!requires_grad || is_floating(data.dtype()), "Var: a {} tensor cannot require a gradient",
            dtype_name(data.dtype()));
  impl_->data = std::move(data);
  impl_->requires_grad = requires_grad;
}

const Tensor& Var::data() const {
  AFD_CHECK(impl_, "use of an undefined Var");
  return impl_->data;
}

const Tensor& Var::grad() const {
  AFD_CHECK(impl_, "grad() of an undefined Var");
  return impl_->grad;
}

void Var::zero_grad() {
  if (impl_) impl_->grad = Tensor();
}

void Var::set_requires_grad(bool on) {
  AFD_CHECK(is_leaf(), "set_requires_grad: only leaves (not results of ops) can change requires_grad");
  AFD_CHECK(!on || is_floating(impl_->data.dtype()), "set_requires_grad: a {} tensor cannot require a gradient",
            dtype_name(impl_->data.dtype()));
  impl_->requires_grad = on;
}

Var Var::detach() const { return Var(data(), false); }

Var record(Op op, Tensor data, const std::vector<Var>& inputs, BackwardFn backward) {
  if (g_check_numerics) check_forward(op, data, inputs);
  Var out(std::move(data));
  if (!t_grad_mode) return out;
  bool any = false;
  for (const Var& v : inputs) any |= v.requires_grad();
  if (!any) return out;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->seq = g_next_seq.fetch_add(1);
  for (const Var& v : inputs) node->inputs.push_back(v.impl());
  node->output = out.impl();
  node->backward = std::move(backward);
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = std::move(node);
  return out;
}

// ---- the engine ------------------------------------------------------------------------------
namespace {

using GradMap = std::unordered_map<const VarImpl*, Var>;

// Runs the tape backwards from `roots` (seeded with `seeds`). An input of a node "leads" to a
// target when it is a target or its own node has an input that leads to one; a node's backward
// runs only when some input leads, and computes gradients only for those inputs.
GradMap run_backward(const std::vector<Var>& roots, const std::vector<Var>& seeds,
                     const std::function<bool(const VarImpl*)>& is_target, bool retain_graph,
                     bool create_graph) {
  // 1. Every node reachable from the roots.
  std::vector<Node*> nodes;
  std::unordered_set<Node*> seen;
  std::vector<Node*> stack;
  for (const Var& r : roots)
    if (r.impl()->grad_fn) stack.push_back(r.impl()->grad_fn.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (!seen.insert(n).second) continue;
    AFD_CHECK(!n->released,
              "backward: the tape through op '{}' was already freed by an earlier backward/grad; "
              "pass retain_graph = true to the first call to differentiate twice",
              op_info(n->op).name);
    nodes.push_back(n);
    for (const auto& in : n->inputs)
      if (in->grad_fn) stack.push_back(in->grad_fn.get());
  }
  std::sort(nodes.begin(), nodes.end(), [](Node* a, Node* b) { return a->seq < b->seq; });

  // 2. Which nodes lead to a target (inputs have smaller sequence numbers than their consumers).
  std::unordered_map<Node*, bool> leads;
  auto input_leads = [&](const std::shared_ptr<VarImpl>& in) {
    if (is_target(in.get())) return true;
    return in->grad_fn && leads[in->grad_fn.get()];
  };
  for (Node* n : nodes) {
    bool any = false;
    for (const auto& in : n->inputs) any |= input_leads(in);
    leads[n] = any;
  }

  // 3. Replay the tape backwards.
  GradMap grads;
  for (size_t i = 0; i < roots.size(); ++i) {
    auto [it, fresh] = grads.emplace(roots[i].impl().get(), seeds[i]);
    if (!fresh) it->second = add(it->second, seeds[i]);
  }
  GradModeGuard mode(create_graph);
  {
    for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
      Node* n = *it;
      auto out = n->output.lock();
      auto g = out ? grads.find(out.get()) : grads.end();
      if (g != grads.end() && leads[n]) {
        AFD_CHECK(!create_graph || op_info(n->op).double_backward,
                  "grad(create_graph = true): op '{}' has no differentiable backward (double backward "
                  "is supported for the ops marked so in autograd/op_registry.h)",
                  op_info(n->op).name);
        std::vector<bool> needs(n->inputs.size());
        for (size_t k = 0; k < n->inputs.size(); ++k) needs[k] = input_leads(n->inputs[k]);
        // The output Var shares the node's output impl, so backward can use it (and its history).
        Var grad_out = g->second;
        t_backward_of = &op_info(n->op);
        std::vector<Var> in_grads;
        try {
          in_grads = n->backward(grad_out, Var::from_impl(out), needs);
        } catch (...) {
          t_backward_of = nullptr;
          throw;
        }
        t_backward_of = nullptr;
        AFD_CHECK(in_grads.size() == n->inputs.size(), "op '{}' backward returned {} gradients for {} inputs",
                  op_info(n->op).name, in_grads.size(), n->inputs.size());
        double scale = g_backward_scale[static_cast<size_t>(n->op)];
        for (size_t k = 0; k < n->inputs.size(); ++k) {
          if (!needs[k] || !in_grads[k].defined()) continue;
          Var gk = scale == 1.0 ? in_grads[k] : mul(in_grads[k], scale);
          if (g_check_numerics) check_backward(n->op, k, gk, grad_out);
          AFD_CHECK(gk.shape() == n->inputs[k]->data.shape(),
                    "op '{}' backward returned a gradient of shape {} for input {} of shape {}",
                    op_info(n->op).name, shape_str(gk.shape()), k, shape_str(n->inputs[k]->data.shape()));
          auto [slot, fresh] = grads.emplace(n->inputs[k].get(), gk);
          if (!fresh) slot->second = add(slot->second, gk);
        }
        // By key: the emplace calls above may have rehashed the map and invalidated `g`.
        if (!is_target(out.get())) grads.erase(out.get());
      }
      if (!retain_graph) {
        n->backward = nullptr;  // frees the tensors saved for backward
        n->released = true;
      }
    }
  }
  return grads;
}

Var seed_for(const Var& out, const Tensor& seed, const char* api) {
  if (!seed.defined()) {
    AFD_CHECK(out.numel() == 1,
              "{}: output of shape {} is not a scalar; pass a seed gradient of that shape", api,
              shape_str(out.shape()));
    return Var(Tensor::ones(out.shape(), out.dtype(), out.device()));
  }
  AFD_CHECK(seed.shape() == out.shape() && seed.dtype() == out.dtype() && seed.device() == out.device(),
            "{}: seed {} does not match output {}", api, seed.str(), out.data().str());
  return Var(seed);
}

}  // namespace

void Var::backward(const Tensor& seed, bool retain_graph) const {
  AFD_CHECK(impl_, "backward of an undefined Var");
  AFD_CHECK(requires_grad(), "backward: this value does not require a gradient (no input requires one, "
            "or it was computed under NoGradGuard)");
  auto is_target = [](const VarImpl* v) { return v->requires_grad && !v->grad_fn; };
  GradMap grads = run_backward({*this}, {seed_for(*this, seed, "backward")}, is_target, retain_graph, false);
  for (auto& [impl, g] : grads) {
    if (!is_target(impl)) continue;
    auto* leaf = const_cast<VarImpl*>(impl);
    leaf->grad = leaf->grad.defined() ? ops::add(leaf->grad, g.data()) : g.data();
  }
}

std::vector<Var> grad(const std::vector<Var>& outputs, const std::vector<Var>& inputs,
                      const std::vector<Tensor>& seeds, bool retain_graph, bool create_graph) {
  AFD_CHECK(seeds.empty() || seeds.size() == outputs.size(), "grad: {} seeds for {} outputs", seeds.size(),
            outputs.size());
  std::unordered_set<const VarImpl*> targets;
  for (const Var& v : inputs) {
    AFD_CHECK(v.defined() && v.requires_grad(), "grad: an input does not require a gradient");
    targets.insert(v.impl().get());
  }
  std::vector<Var> roots, root_seeds;
  for (size_t i = 0; i < outputs.size(); ++i) {
    AFD_CHECK(outputs[i].defined(), "grad: undefined output {}", i);
    if (!outputs[i].requires_grad()) continue;  // a constant output contributes nothing
    roots.push_back(outputs[i]);
    root_seeds.push_back(seed_for(outputs[i], seeds.empty() ? Tensor() : seeds[i], "grad"));
  }
  auto is_target = [&](const VarImpl* v) { return targets.count(v) > 0; };
  GradMap grads = run_backward(roots, root_seeds, is_target, retain_graph, create_graph);
  std::vector<Var> result;
  for (const Var& v : inputs) {
    auto it = grads.find(v.impl().get());
    result.push_back(it == grads.end() ? Var() : it->second);
  }
  return result;
}

}  // namespace afd
