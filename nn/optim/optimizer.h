// Optimizers: SGD and Adam with exactly torch.optim's update rules (PyTorch 1.13).
//
// An optimizer holds a list of parameters (Vars whose data() tensors it updates IN PLACE, so every
// module and every other optimizer holding the same Var sees the new values) and its own state
// (momentum buffers, Adam moments). Two optimizers over overlapping parameter sets keep separate
// state: AFD steps F with two SGD optimizers per batch, each with its own momentum buffers.
//
//   SGD opt(model_params, {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});
//   opt.zero_grad();
//   Var loss = cross_entropy(logits, labels);
//   loss.backward();
//   opt.step();                      // p -= lr * (momentum buffer of grad + wd * p)
//
// Rules shared by every optimizer (as torch does):
//   - A parameter without a gradient (undefined grad(): it took no part in the loss, or it was
//     frozen) is skipped: its state is left untouched.
//   - zero_grad() drops the gradients (torch's set_to_none = true), so a parameter that receives no
//     gradient in a step is skipped rather than decayed with a zero gradient.
//   - The update runs under NoGradGuard with tensor ops: it is never recorded on the tape.
//   - One learning rate per optimizer (one torch "param group"); LR schedules (lr_scheduler.h)
//     call set_lr().
//
// State export for checkpoints: state() returns named tensors, with torch's state_dict names:
//   "param_groups.0.lr"              f64 scalar [] (the current learning rate)
//   "state.<i>.momentum_buffer"      SGD, i = the parameter's index in the optimizer's list
//   "state.<i>.step", "state.<i>.exp_avg", "state.<i>.exp_avg_sq"     Adam (step is f64 [])
// Only parameters that have state appear, as in torch. load_state() takes the same list, checks
// names, shapes and dtypes against the parameters (every slot of a parameter or none), and only
// then replaces the whole state: a rejected list leaves the optimizer as it was.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"
#include "tensor/tensor.h"

namespace afd {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient.
  virtual void step() = 0;
  // Drops the gradient of every parameter in this optimizer's list.
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr);  // lr >= 0, else an error naming the value

  const std::vector<Var>& params() const { return params_; }

  NamedTensors state() const;
  void load_state(const NamedTensors& state);

  virtual const char* name() const = 0;  // "SGD", "Adam" (for errors)

 protected:
  Optimizer(std::vector<Var> params, double lr, const char* who);
  // The per-parameter state, as named slots ("momentum_buffer", ...); undefined where none yet.
  virtual NamedTensors param_state(size_t i) const = 0;
  virtual void set_param_state(size_t i, const std::string& slot, const Tensor& value) = 0;
  virtual void clear_state() = 0;
  virtual std::vector<std::string> slots() const = 0;

  std::vector<Var> params_;
  double lr_;
};

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;  // L2: weight_decay * p is added to the gradient
  bool nesterov = false;    // needs momentum > 0 and dampening == 0
};

// torch.optim.SGD, for each parameter p with gradient g:
//   g = g + weight_decay * p
//   if momentum != 0:
//     buf = g                                     on the first step (no dampening on it)
//     buf = momentum * buf + (1 - dampening) * g  afterwards
//     g = nesterov ? g + momentum * buf : buf
//   p = p - lr * g
class SGD : public Optimizer {
 public:
  SGD(std::vector<Var> params, const SGDOptions& options);
  void step() override;
  const char* name() const override { return "SGD"; }
  const SGDOptions& options() const { return options_; }

 protected:
  NamedTensors param_state(size_t i) const override;
  void set_param_state(size_t i, const std::string& slot, const Tensor& value) override;
  void clear_state() override;
  std::vector<std::string> slots() const override { return {"momentum_buffer"}; }

 private:
  SGDOptions options_;
  std::vector<Tensor> momentum_buffer_;  // one per parameter, undefined until its first step
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;  // L2 added to the gradient (Adam, not AdamW)
};

// torch.optim.Adam (amsgrad off), for each parameter p with gradient g, t = its step count + 1:
//   g = g + weight_decay * p
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g
//   denom = sqrt(v) / sqrt(1 - beta2^t) + eps
//   p = p - (lr / (1 - beta1^t)) * m / denom
class Adam : public Optimizer {
 public:
  Adam(std::vector<Var> params, const AdamOptions& options);
  void step() override;
  const char* name() const override { return "Adam"; }
  const AdamOptions& options() const { return options_; }

 protected:
  NamedTensors param_state(size_t i) const override;
  void set_param_state(size_t i, const std::string& slot, const Tensor& value) override;
  void clear_state() override;
  std::vector<std::string> slots() const override { return {"step", "exp_avg", "exp_avg_sq"}; }

 private:
  AdamOptions options_;
  std::vector<int64_t> step_;   // per parameter; 0 = no state yet
  std::vector<Tensor> exp_avg_;     // m
  std::vector<Tensor> exp_avg_sq_;  // v
};

}  // namespace afd
