// Module: the building block of networks, as in PyTorch.
//
// A module owns named parameters (Vars that require a gradient), named buffers (plain tensors such
// as BatchNorm's running statistics) and named child modules. Names compose with dots exactly as
// PyTorch's state_dict writes them, so checkpoints move between afd and PyTorch unchanged:
//
//   auto model = std::make_shared<nn::ResNet18>(nn::ResNetConfig::cifar(10), gen);
//   for (auto& [name, p] : model->named_parameters()) ...   // "conv1.weight", "bn1.weight", ...
//   model->eval();                                          // BatchNorm uses running statistics
//   Var logits = model->forward(x);                         // x [N, 3, 32, 32] in [0, 1]
//
// Order (the same as torch.nn.Module.state_dict): a module's own parameters in registration order,
// then its own persistent buffers, then each child's entries, recursively, in registration order.
//
// A subclass registers everything in its constructor:
//
//   struct Affine : UnaryModule {
//     Var weight;
//     explicit Affine(int64_t n) { weight = register_parameter("weight", Tensor::ones({n})); }
//     Var forward(const Var& x) override { return x * weight; }
//   };
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"
#include "tensor/tensor.h"

namespace afd::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using NamedVars = std::vector<std::pair<std::string, Var>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // ---- parameters and buffers (recursive, PyTorch names) ----
  NamedVars named_parameters() const;
  std::vector<Var> parameters() const;
  // Every buffer, persistent or not (a non-persistent buffer is not saved in the state_dict).
  NamedTensors named_buffers() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }
  int64_t parameter_count() const;  // number of scalar parameters

  // Parameters and persistent buffers, in PyTorch's order. The tensors share storage with the
  // module: write into them with copy_ to change the module.
  NamedTensors state_dict() const;
  // Copies `entries` into the parameters and buffers. strict: every name of state_dict() must be
  // present with the same shape and dtype, and no other name may appear; all problems are listed in
  // one error. Not strict: unknown and missing names are ignored (shape/dtype must still match).
  void load_state_dict(const NamedTensors& entries, bool strict = true);

  // ---- modes ----
  void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Freezes (false) or unfreezes every parameter of this module and its children.
  void set_requires_grad(bool on);
  void zero_grad();  // drops every parameter's accumulated gradient
  // Moves every parameter and buffer to `device` (Vars keep their identity: optimizers holding
  // them see the moved tensors).
  void to(Device device);
  // Converts every floating parameter and buffer to `dtype` (f32 or f64), as torch's .double();
  // integer buffers (num_batches_tracked) keep theirs.
  void to(DType dtype);

 protected:
  // Registers a leaf Var that requires a gradient and returns it (the module keeps a handle).
  Var register_parameter(const std::string& name, Tensor value);
  // Registers a buffer and returns a handle to it; its data() shares storage with the state_dict.
  Var register_buffer(const std::string& name, Tensor value, bool persistent = true);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    add_child(name, child);
    return child;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void check_new_name(const std::string& name) const;
  void collect_state(const std::string& prefix, NamedTensors& out) const;
  void collect_parameters(const std::string& prefix, NamedVars& out) const;
  void collect_buffers(const std::string& prefix, NamedTensors& out) const;
  // Every parameter and buffer Var with its full name (state entries plus non-persistent buffers).
  void collect_all(const std::string& prefix, NamedVars& out) const;

  struct Buffer {
    std::string name;
    Var value;  // requires_grad false; a Var so that to() can move it while layers hold handles
    bool persistent;
  };
  NamedVars params_;
  std::vector<Buffer> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// A module with one input and one output: what Sequential chains.
class UnaryModule : public Module {
 public:
  virtual Var forward(const Var& x) = 0;
  Var operator()(const Var& x) { return forward(x); }
};

// Children applied in order. Unnamed children are called "0", "1", ... as torch.nn.Sequential.
class Sequential : public UnaryModule {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<UnaryModule>> layers);
  template <class M>
  std::shared_ptr<M> add(std::shared_ptr<M> layer) {
    return add(std::to_string(layers_.size()), std::move(layer));
  }
  template <class M>
  std::shared_ptr<M> add(const std::string& name, std::shared_ptr<M> layer) {
    layers_.push_back(layer);
    return register_module(name, std::move(layer));
  }
  size_t size() const { return layers_.size(); }
  bool empty() const { return layers_.empty(); }
  // The layers in order; a Conv2d directly followed by a ReLU runs as one convolution with the
  // ReLU fused (conv2d's relu), which gives the same values.
  Var forward(const Var& x) override;

 private:
  std::vector<std::shared_ptr<UnaryModule>> layers_;
};

// A classifier split as the paper does: an encoder F (x -> features z, L2-normalised where the model
// says so) and a head C (z -> logits). forward(x) = classify(features(x)).
class Classifier : public UnaryModule {
 public:
  virtual Var features(const Var& x) = 0;  // z [N, feature_dim()]
  virtual Var classify(const Var& z) = 0;  // logits [N, K]
  virtual int64_t feature_dim() const = 0;
  // The name of the child module that is the head C ("linear" for the ResNets).
  virtual std::string head_name() const = 0;
  // Parameters of F only (every parameter outside the head): what AFD's F-step optimizer updates.
  std::vector<Var> encoder_parameters() const;
  Var forward(const Var& x) override { return classify(features(x)); }
  struct Output {
    Var logits, features;
  };
  Output forward_with_features(const Var& x) {
    Var z = features(x);
    return {classify(z), z};
  }
};

}  // namespace afd::nn
