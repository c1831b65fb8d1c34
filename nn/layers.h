// The layers: thin modules over the differentiable ops of autograd/ops.h, with PyTorch's parameter
// names, shapes and default initialisation (nn/init.h), so that a torch state_dict loads as is.
//
//   Generator gen(0);
//   auto net = std::make_shared<nn::Sequential>();
//   net->add(std::make_shared<nn::Conv2d>(3, 16, /*kernel=*/3, /*stride=*/1, /*padding=*/1, /*bias=*/false, gen));
//   net->add(std::make_shared<nn::BatchNorm2d>(16));
//   net->add(std::make_shared<nn::ReLU>());
//   Var y = net->forward(x);   // x [N, 3, H, W] -> y [N, 16, H, W]
//
// Shapes: images [N, C, H, W], vectors [N, F]. Every layer checks its input and names both shapes.
#pragma once
#include <vector>

#include "autograd/ops.h"
#include "nn/module.h"
#include "tensor/rng.h"

namespace afd::nn {

// y = x W^T + b; x [N, in] -> [N, out]. weight [out, in] kaiming-uniform(a = sqrt 5), bias [out]
// uniform(+-1/sqrt(in)).
class Linear : public UnaryModule {
 public:
  Linear(int64_t in_features, int64_t out_features, Generator& gen, bool bias = true);
  Var forward(const Var& x) override;
  Var weight, bias;  // bias undefined when built without one
  int64_t in_features, out_features;
};

// x [N, in, H, W] -> [N, out, H', W'], square kernel, stride and padding. weight [out, in, k, k]
// kaiming-uniform(a = sqrt 5), bias [out] uniform(+-1/sqrt(in k k)).
class Conv2d : public UnaryModule {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding, bool bias,
         Generator& gen);
  Var forward(const Var& x) override;
  // This layer's convolution of x with other weights of its shape (conv_bn's folded ones),
  // optionally followed by a ReLU fused into the convolution.
  Var forward_with(const Var& x, const Var& w, const Var& b, bool relu = false) const;
  Var weight, bias;
  int64_t in_channels, out_channels, kernel, stride, padding;
};

// Batch normalisation over dim 1 (momentum 0.1, eps 1e-5 as PyTorch). Parameters weight (gamma, 1)
// and bias (beta, 0); buffers running_mean (0), running_var (1) and num_batches_tracked (i64, 0-d),
// which every train-mode forward updates in place. Eval mode uses the running statistics.
// Data parallel: with sum_over_replicas set (dist::enable_sync_batch_norm does it), a train-mode
// forward uses the statistics of the whole global batch (sync_batch_norm in autograd/ops.h);
// empty (the default), each replica normalises with its own rows' statistics.
class BatchNorm : public UnaryModule {
 public:
  Var forward(const Var& x) override { return forward(x, false); }
  // With relu: relu(forward(x)), the ReLU in batch norm's own pass in training.
  Var forward(const Var& x, bool relu);
  Var weight, bias, running_mean, running_var, num_batches_tracked;
  int64_t num_features;
  double momentum, eps;
  ReplicaSum sum_over_replicas;

 protected:
  BatchNorm(int64_t num_features, double momentum, double eps, int64_t min_dim, int64_t max_dim, const char* name);

 private:
  int64_t min_dim_, max_dim_;
  const char* name_;
};
class BatchNorm1d : public BatchNorm {  // x [N, C] or [N, C, L]
 public:
  explicit BatchNorm1d(int64_t num_features, double momentum = 0.1, double eps = 1e-5)
      : BatchNorm(num_features, momentum, eps, 2, 3, "BatchNorm1d") {}
};
class BatchNorm2d : public BatchNorm {  // x [N, C, H, W]
 public:
  explicit BatchNorm2d(int64_t num_features, double momentum = 0.1, double eps = 1e-5)
      : BatchNorm(num_features, momentum, eps, 4, 4, "BatchNorm2d") {}
};

// bn(conv(x)), with an eval-mode batch norm folded into the convolution. In eval mode bn is an
// affine map per channel, v -> a v + c with a = gamma / sqrt(running_var + eps) and
// c = beta - a running_mean, so bn(conv(x; w, b)) = conv(x; a w, a b + c): one pass over the
// output instead of two, and one less in the backward (what attacks and evaluation run). The fold
// is one kernel (autograd's bn_fold) with its own backward, so gradients still reach w, b, gamma
// and beta. In train mode (batch statistics, running averages updated) the two layers run as they
// are. With relu, relu(bn(conv(x))): in eval mode the ReLU joins the convolution's bias pass.
Var conv_bn(const Conv2d& conv, BatchNorm2d& bn, const Var& x, bool relu = false);

class ReLU : public UnaryModule {
 public:
  Var forward(const Var& x) override { return relu(x); }
};

class LeakyReLU : public UnaryModule {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope(negative_slope) {}
  Var forward(const Var& x) override { return leaky_relu(x, negative_slope); }
  double negative_slope;
};

// Train mode: zeroes each element with probability p and scales the rest by 1 / (1 - p); the mask is
// drawn from the module's own Generator (seed it from the run's seed). Eval mode: identity.
class Dropout : public UnaryModule {
 public:
  Dropout(double p, Generator gen);
  Var forward(const Var& x) override;
  double p;
  Generator gen;
};

// kernel x kernel windows; stride defaults to the kernel (0 = same as kernel), as PyTorch.
class MaxPool2d : public UnaryModule {
 public:
  explicit MaxPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0)
      : kernel(kernel), stride(stride > 0 ? stride : kernel), padding(padding) {}
  Var forward(const Var& x) override { return max_pool2d(x, kernel, stride, padding); }
  int64_t kernel, stride, padding;
};

class AvgPool2d : public UnaryModule {
 public:
  explicit AvgPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0)
      : kernel(kernel), stride(stride > 0 ? stride : kernel), padding(padding) {}
  Var forward(const Var& x) override { return avg_pool2d(x, kernel, stride, padding); }
  int64_t kernel, stride, padding;
};

// AdaptiveAvgPool2d(1): the mean over H, W; [N, C, H, W] -> [N, C, 1, 1] as PyTorch.
class AdaptiveAvgPool2d : public UnaryModule {
 public:
  explicit AdaptiveAvgPool2d(int64_t output_size = 1);
  Var forward(const Var& x) override;
};

class Flatten : public UnaryModule {
 public:
  explicit Flatten(int64_t start_dim = 1) : start_dim(start_dim) {}
  Var forward(const Var& x) override { return flatten(x, start_dim); }
  int64_t start_dim;
};

// x / max(||x||_2, eps) along dim: the paper's activation normalisation of the features.
class L2Normalize : public UnaryModule {
 public:
  explicit L2Normalize(int64_t dim = 1, double eps = 1e-12) : dim(dim), eps(eps) {}
  Var forward(const Var& x) override { return l2_normalize(x, dim, eps); }
  int64_t dim;
  double eps;
};

// Rows of weight [num_embeddings, dim] (N(0, 1) init, as PyTorch) picked by i64 indices [N].
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator& gen);
  Var forward(const Tensor& index);
  Var weight;
  int64_t num_embeddings, embedding_dim;
};

// (x - mean[c]) / std[c] over the channels of x [N, C, H, W]: for models trained on normalised
// inputs, so that attacks still work on [0, 1] images. mean and std are non-persistent buffers (not
// in the state_dict, as in RobustBench's models).
class Normalize : public UnaryModule {
 public:
  Normalize(const std::vector<double>& mean, const std::vector<double>& std);
  Var forward(const Var& x) override;
  Var mean, inv_std;  // [1, C, 1, 1]
};

}  // namespace afd::nn
