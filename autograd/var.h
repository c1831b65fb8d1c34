// Var and the tape.
//
// A Var is a Tensor plus what autograd needs: requires_grad, the accumulated grad of a leaf, and
// for a value computed by a differentiable op, the tape Node that made it. Each Node stores its
// inputs and a backward closure written next to the op's forward (autograd/ops.cpp):
//
//   Var y = relu(x);         // records Node{op = relu, inputs = {x}, backward = g * (x > 0)}
//   Var loss = sum(y);
//   loss.backward();         // walks the tape from loss back to the leaves; x.grad() = (x > 0)
//
// Nodes are numbered in creation order, so walking them from the highest number down visits every
// consumer before its producers (the tape, replayed backwards). Only the nodes reachable from the
// output and leading to a requested input run, and each op's backward is told which of its inputs
// need a gradient, so work nobody asked for is skipped (grad(loss, {x}) never computes conv
// weight gradients).
//
// Rules: the tape of an output is freed by backward()/grad() unless retain_graph is set; tensors
// saved for backward must not be modified in place in between.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/op_registry.h"
#include "tensor/tensor.h"

namespace afd {

struct Node;
class Var;

struct VarImpl {
  Tensor data;
  Tensor grad;  // accumulated by backward() on leaves that require a gradient
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;  // null for leaves
};

class Var {
 public:
  Var() = default;
  explicit Var(Tensor data, bool requires_grad = false);

  bool defined() const { return impl_ != nullptr; }
  const Tensor& data() const;
  const Tensor& grad() const;  // undefined until a backward() reaches this leaf
  void zero_grad();            // drops the accumulated gradient
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  void set_requires_grad(bool on);  // leaves only
  bool is_leaf() const { return impl_ && !impl_->grad_fn; }
  Var detach() const;  // same data, no history
  const Node* grad_fn() const { return impl_ ? impl_->grad_fn.get() : nullptr; }

  const Shape& shape() const { return data().shape(); }
  int64_t dim() const { return data().dim(); }
  int64_t size(int64_t d) const { return data().size(d); }
  int64_t numel() const { return data().numel(); }
  DType dtype() const { return data().dtype(); }
  Device device() const { return data().device(); }
  double item() const { return data().item_double(); }

  // Accumulates d(this)/d(leaf) into every leaf that requires a gradient. A non-scalar output
  // needs a seed gradient of its shape.
  void backward(const Tensor& seed = Tensor(), bool retain_graph = false) const;

  const std::shared_ptr<VarImpl>& impl() const { return impl_; }
  static Var from_impl(std::shared_ptr<VarImpl> impl) {
    Var v;
    v.impl_ = std::move(impl);
    return v;
  }

 private:
  std::shared_ptr<VarImpl> impl_;
};

// Gradients of sum(outputs[i] * seeds[i]) with respect to `inputs` only, returned in input order
// (an undefined Var where an input does not influence the outputs). No leaf's .grad is touched.
// With create_graph the returned gradients are themselves on the tape (double backward).
std::vector<Var> grad(const std::vector<Var>& outputs, const std::vector<Var>& inputs,
                      const std::vector<Tensor>& seeds = {}, bool retain_graph = false,
                      bool create_graph = false);

// ---- grad mode -------------------------------------------------------------------------------
bool grad_mode_enabled();
// While alive, ops record (enabled) or record nothing (disabled); restores the previous mode.
class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled);
  ~GradModeGuard();
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};
// For evaluation and parameter updates: nothing is recorded while it lives.
class NoGradGuard : public GradModeGuard {
 public:
  NoGradGuard() : GradModeGuard(false) {}
};

// ---- numerics checks (a debug mode) ------------------------------------------------------------
// While on, every op's output and every gradient its backward makes are checked for NaN and Inf;
// the first non-finite value throws afd::Error naming the op (and whether its inputs, or the
// gradient it received, were finite already), so a NaN is traced to where it was made. Costs a
// reduction and a device-to-host read per op: off by default (afd_run --check-numerics).
void set_check_numerics(bool on);
bool check_numerics();

// ---- the tape --------------------------------------------------------------------------------
// backward(grad_out, out, needs) returns one gradient per input (undefined where needs[i] is
// false); `out` is the node's output, for ops whose derivative is written in terms of it.
using BackwardFn =
    std::function<std::vector<Var>(const Var& grad_out, const Var& out, const std::vector<bool>& needs)>;

struct Node {
  Op op;
  uint64_t seq;  // creation order
  std::vector<std::shared_ptr<VarImpl>> inputs;
  std::weak_ptr<VarImpl> output;  // weak: the output owns its node
  BackwardFn backward;            // emptied when the tape is freed
  bool released = false;
};

// Makes the output Var of an op. When grad mode is on and some input requires a gradient, a Node
// with `backward` is recorded; otherwise `data` is returned as a constant.
Var record(Op op, Tensor data, const std::vector<Var>& inputs, BackwardFn backward);

// Test hook: multiplies every gradient that `op`'s backward returns by `factor` (1 = off). The
// gradient-check suite uses it to prove each op's check can fail.
void set_backward_scale_for_testing(Op op, double factor);

}  // namespace afd
