#include "nn/layers.h"

#include <cmath>

#include "nn/init.h"
#include "tensor/ops.h"

namespace afd::nn {

// ---- Linear ------------------------------------------------------------------------------------

Linear::Linear(int64_t in_features, int64_t out_features, Generator& gen, bool with_bias)
    : in_features(in_features), out_features(out_features) {
  AFD_CHECK(in_features > 0 && out_features > 0, "Linear: sizes must be positive, got {} -> {}", in_features,
            out_features);
  weight = register_parameter("weight", init::kaiming_uniform({out_features, in_features}, std::sqrt(5.0), gen));
  if (with_bias) bias = register_parameter("bias", init::bias_uniform(out_features, in_features, gen));
}

Var Linear::forward(const Var& x) {
  AFD_CHECK(x.dim() == 2 && x.size(1) == in_features, "Linear: expected x [N, {}], got {}", in_features,
            shape_str(x.shape()));
  return linear(x, weight, bias);
}

// ---- Conv2d ------------------------------------------------------------------------------------

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding,
               bool with_bias, Generator& gen)
    : in_channels(in_channels), out_channels(out_channels), kernel(kernel), stride(stride), padding(padding) {
  AFD_CHECK(in_channels > 0 && out_channels > 0 && kernel > 0 && stride > 0 && padding >= 0,
            "Conv2d: bad configuration in {} out {} kernel {} stride {} padding {}", in_channels, out_channels,
            kernel, stride, padding);
  weight = register_parameter("weight",
                              init::kaiming_uniform({out_channels, in_channels, kernel, kernel}, std::sqrt(5.0), gen));
  if (with_bias) bias = register_parameter("bias", init::bias_uniform(out_channels, in_channels * kernel * kernel, gen));
}

Var Conv2d::forward(const Var& x) { return forward_with(x, weight, bias); }

Var Conv2d::forward_with(const Var& x, const Var& w, const Var& b, bool relu) const {
  AFD_CHECK(x.dim() == 4 && x.size(1) == in_channels, "Conv2d: expected x [N, {}, H, W], got {}", in_channels,
            shape_str(x.shape()));
  return conv2d(x, w, b, stride, padding, relu);
}

Var conv_bn(const Conv2d& conv, BatchNorm2d& bn, const Var& x, bool relu) {
  AFD_CHECK(bn.num_features == conv.out_channels, "conv_bn: BatchNorm2d of {} channels after a Conv2d of {}",
            bn.num_features, conv.out_channels);
  if (bn.is_training()) return bn.forward(conv.forward_with(x, conv.weight, conv.bias), relu);
  // a w and a b + beta - a mean, a = gamma / sqrt(running_var + eps): one kernel (autograd's bn_fold)
  auto [w, shift] = bn_fold(conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean.data(), bn.running_var.data(),
                            bn.eps);
  return conv.forward_with(x, w, shift, relu);
}

// ---- BatchNorm ---------------------------------------------------------------------------------

BatchNorm::BatchNorm(int64_t num_features, double momentum, double eps, int64_t min_dim, int64_t max_dim,
                     const char* name)
    : num_features(num_features), momentum(momentum), eps(eps), min_dim_(min_dim), max_dim_(max_dim), name_(name) {
  AFD_CHECK(num_features > 0, "{}: num_features must be positive, got {}", name, num_features);
  weight = register_parameter("weight", Tensor::ones({num_features}));
  bias = register_parameter("bias", Tensor::zeros({num_features}));
  running_mean = register_buffer("running_mean", Tensor::zeros({num_features}));
  running_var = register_buffer("running_var", Tensor::ones({num_features}));
  num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}, DType::i64));
}

Var BatchNorm::forward(const Var& x, bool relu) {
  AFD_CHECK(x.dim() >= min_dim_ && x.dim() <= max_dim_ && x.size(1) == num_features,
            "{}: expected x with {} channels in dim 1 and {} to {} dims, got {}", name_, num_features, min_dim_,
            max_dim_, shape_str(x.shape()));
  // Training also counts the batch in num_batches_tracked, on the tensor's device (no host sync).
  if (is_training() && sum_over_replicas) {
    Var y = sync_batch_norm(x, weight, bias, running_mean.data(), running_var.data(), sum_over_replicas, momentum, eps,
                            num_batches_tracked.data());
    return relu ? afd::relu(y) : y;
  }
  return batch_norm(x, weight, bias, running_mean.data(), running_var.data(), is_training(), momentum, eps,
                    num_batches_tracked.data(), relu);
}

// ---- Dropout -----------------------------------------------------------------------------------

Dropout::Dropout(double p, Generator gen) : p(p), gen(gen) {
  AFD_CHECK(p >= 0 && p <= 1, "Dropout: p must be in [0, 1], got {}", p);
}

Var Dropout::forward(const Var& x) {
  if (!is_training() || p == 0) return x;
  if (p == 1) return mul(x, 0.0);
  // y = x * m / (1 - p), m ~ Bernoulli(1 - p): the expectation of y is x.
  Tensor keep = bernoulli(x.shape(), 1 - p, gen, x.dtype(), x.device());
  return mul(x, Var(ops::mul_scalar(keep, 1.0 / (1.0 - p))));
}

// ---- pooling, embedding, input normalisation ---------------------------------------------------

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t output_size) {
  AFD_CHECK(output_size == 1, "AdaptiveAvgPool2d: only output size 1 is supported, got {}", output_size);
}

Var AdaptiveAvgPool2d::forward(const Var& x) {
  Var pooled = global_avg_pool(x);  // [N, C]
  return reshape(pooled, {x.size(0), x.size(1), 1, 1});
}

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator& gen)
    : num_embeddings(num_embeddings), embedding_dim(embedding_dim) {
  weight = register_parameter("weight", init::normal({num_embeddings, embedding_dim}, 0.0, 1.0, gen));
}

Var Embedding::forward(const Tensor& index) {
  AFD_CHECK(index.dtype() == DType::i64 && index.dim() == 1, "Embedding: expected i64 indices [N], got {}",
            index.str());
  return embedding(weight, index);
}

Normalize::Normalize(const std::vector<double>& mean_values, const std::vector<double>& std_values) {
  AFD_CHECK(!mean_values.empty() && mean_values.size() == std_values.size(),
            "Normalize: mean has {} values and std {}", mean_values.size(), std_values.size());
  int64_t c = static_cast<int64_t>(mean_values.size());
  std::vector<float> m, inv;
  for (size_t i = 0; i < mean_values.size(); ++i) {
    AFD_CHECK(std_values[i] > 0, "Normalize: std[{}] must be positive, got {}", i, std_values[i]);
    m.push_back(static_cast<float>(mean_values[i]));
    inv.push_back(static_cast<float>(1.0 / std_values[i]));
  }
  mean = register_buffer("mean", Tensor::from_vector<float>(m, {1, c, 1, 1}), /*persistent=*/false);
  inv_std = register_buffer("inv_std", Tensor::from_vector<float>(inv, {1, c, 1, 1}), /*persistent=*/false);
}

Var Normalize::forward(const Var& x) {
  AFD_CHECK(x.dim() == 4 && x.size(1) == mean.size(1), "Normalize: expected x [N, {}, H, W], got {}",
            mean.size(1), shape_str(x.shape()));
  return mul(sub(x, Var(mean.data().to(x.dtype()))), Var(inv_std.data().to(x.dtype())));
}

}  // namespace afd::nn
