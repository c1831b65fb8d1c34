// The float64 gradient-check cases shared by tests/autograd/test_gradcheck.cpp (the CPU suite) and
// tests/autograd/test_gradcheck_cuda.cpp (the same cases with the inputs on a GPU). One Case per
// (op, inputs) pair; `op` names the registry entry (autograd/op_registry.h) or composed function.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

namespace afd::testing {

// Uniform values in [lo, hi).
inline Tensor uniform(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  Generator g(seed);
  return rand(s, g, DType::f64, Device::cpu(), lo, hi);
}
// Values at least `margin` away from 0 (for kinked ops: relu, abs, ...).
inline Tensor away_from_zero(const Shape& s, uint64_t seed, double margin = 0.1) {
  Tensor u = uniform(s, seed);
  double* p = u.data<double>();
  for (int64_t i = 0; i < u.numel(); ++i) p[i] = (p[i] >= 0 ? 1 : -1) * (margin + std::fabs(p[i]));
  return u;
}
// Distinct values with gaps of 0.1 in random order (for max, max pooling).
inline Tensor distinct(const Shape& s, uint64_t seed) {
  Generator g(seed);
  Tensor perm = randperm(shape_numel(s), g).to(DType::f64);
  return ops::add_scalar(ops::mul_scalar(perm, 0.1), -0.05 * shape_numel(s)).reshape(s);
}
inline Tensor labels(std::vector<int64_t> v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}); }

struct Case {
  std::string op;  // registry or composed name the case covers
  VarFunction f;
  std::vector<Tensor> inputs;
};

using In = const std::vector<Var>&;

// Inputs are made on the CPU (the caller moves them); the constants the functions capture (masks,
// indices, labels, running statistics) live on `device`, where the inputs will be.
inline std::vector<Case> all_cases(Device device = Device::cpu()) {
  std::vector<Case> c;
  Tensor a23 = uniform({2, 3}, 1), b23 = uniform({2, 3}, 2), b3 = uniform({3}, 3), b21 = uniform({2, 1}, 4);
  // Elementwise binary ops, same shape and broadcast (bias per feature, per row).
  c.push_back({"add", [](In v) { return add(v[0], v[1]); }, {a23, b3}});
  c.push_back({"add", [](In v) { return add(v[0], v[1]); }, {a23, b21}});
  c.push_back({"sub", [](In v) { return sub(v[0], v[1]); }, {a23, b23}});
  c.push_back({"sub", [](In v) { return sub(v[0], v[1]); }, {b21, a23}});
  c.push_back({"mul", [](In v) { return mul(v[0], v[1]); }, {a23, b3}});
  c.push_back({"div", [](In v) { return div(v[0], v[1]); }, {a23, uniform({2, 3}, 5, 0.5, 2)}});
  c.push_back({"div", [](In v) { return div(v[0], v[1]); }, {a23, uniform({3}, 6, 0.5, 2)}});
  c.push_back({"affine", [](In v) { return affine(v[0], -1.5, 0.25); }, {a23}});
  c.push_back({"neg", [](In v) { return neg(v[0]); }, {a23}});
  c.push_back({"exp", [](In v) { return exp(v[0]); }, {a23}});
  c.push_back({"log", [](In v) { return log(v[0]); }, {uniform({2, 3}, 7, 0.5, 2)}});
  c.push_back({"sqrt", [](In v) { return sqrt(v[0]); }, {uniform({2, 3}, 8, 0.5, 2)}});
  c.push_back({"pow", [](In v) { return pow(v[0], 3.0); }, {a23}});
  c.push_back({"pow", [](In v) { return pow(v[0], 2.5); }, {uniform({2, 3}, 9, 0.5, 2)}});
  c.push_back({"abs", [](In v) { return abs(v[0]); }, {away_from_zero({2, 3}, 10)}});
  // clamp away from its bounds: values in [-1, -0.55] u [-0.45, 0.45] u [0.55, 1].
  Tensor cl = uniform({3, 4}, 11);
  for (int64_t i = 0; i < cl.numel(); ++i) {
    double& x = cl.data<double>()[i];
    if (std::fabs(std::fabs(x) - 0.5) < 0.05) x = x > 0 ? x + 0.1 : x - 0.1;
  }
  c.push_back({"clamp", [](In v) { return clamp(v[0], -0.5, 0.5); }, {cl}});
  Tensor gap = ops::add(a23, away_from_zero({2, 3}, 12));  // a23 - gap never ties
  c.push_back({"maximum", [](In v) { return maximum(v[0], v[1]); }, {a23, gap}});
  c.push_back({"maximum", [](In v) { return maximum(v[0], v[1]); }, {gap, a23}});
  c.push_back({"minimum", [](In v) { return minimum(v[0], v[1]); }, {a23, gap}});
  c.push_back({"minimum", [](In v) { return minimum(v[0], v[1]); }, {gap, b3}});
  Tensor cond = Tensor::from_vector<uint8_t>({1, 0, 1, 0, 0, 1}, {2, 3}, device);
  c.push_back({"where", [cond](In v) { return where(cond, v[0], v[1]); }, {a23, b3}});
  c.push_back({"relu", [](In v) { return relu(v[0]); }, {away_from_zero({2, 3}, 13)}});
  Tensor relu_input = away_from_zero({2, 3}, 15).to(device);
  c.push_back({"relu_grad", [relu_input](In v) { return relu_grad(v[0], Var(relu_input)); }, {a23}});
  // relu(a + b), b broadcast over the rows: |a| >= 0.2 and |b| < 0.1 keep every sum off the kink.
  c.push_back({"add_relu", [](In v) { return add_relu(v[0], v[1]); },
               {away_from_zero({2, 3}, 61, 0.2), uniform({3}, 62, -0.1, 0.1)}});
  c.push_back({"leaky_relu", [](In v) { return leaky_relu(v[0], 0.2); }, {away_from_zero({2, 3}, 14)}});
  c.push_back({"sigmoid", [](In v) { return sigmoid(v[0]); }, {a23}});
  c.push_back({"tanh", [](In v) { return tanh(v[0]); }, {a23}});
  c.push_back({"atanh", [](In v) { return atanh(v[0]); }, {uniform({2, 3}, 15, -0.8, 0.8)}});
  // softplus with beta 2, threshold 3: inputs on both sides of the switch at x = 1.5.
  c.push_back({"softplus", [](In v) { return softplus(v[0], 2.0, 3.0); },
               {Tensor::from_vector<double>({-3, -0.7, 0.1, 1.2, 1.8, 2.5}, {2, 3})}});
  c.push_back({"softplus", [](In v) { return softplus(v[0]); }, {uniform({2, 3}, 16, -4, 4)}});
  // Shape ops.
  c.push_back({"reshape", [](In v) { return reshape(v[0] * v[0], {3, 2}); }, {a23}});
  c.push_back({"expand", [](In v) { return expand(v[0], {2, 4, 3}); }, {b21.reshape({2, 1, 1})}});
  c.push_back({"sum_to", [](In v) { return sum_to(v[0] * v[0], {3, 1}); }, {uniform({2, 3, 4}, 17)}});
  c.push_back({"cat", [](In v) { return cat({v[0], v[1] * 2.0, v[2]}, 1); }, {a23, b21, b23}});
  c.push_back({"cat", [](In v) { return cat({v[0], v[1]}, 0); }, {a23, b23}});
  // Reductions.
  c.push_back({"sum", [](In v) { return sum(v[0] * v[0]); }, {uniform({2, 3, 4}, 18)}});
  c.push_back({"sum", [](In v) { return sum(v[0] * v[0], {0, 2}); }, {uniform({2, 3, 4}, 19)}});
  c.push_back({"mean", [](In v) { return mean(v[0] * v[0], {1}, true); }, {uniform({2, 3, 4}, 20)}});
  c.push_back({"mean", [](In v) { return mean(exp(v[0])); }, {a23}});
  c.push_back({"max_dim", [](In v) { return max(v[0], 1).first; }, {distinct({3, 4}, 21)}});
  c.push_back({"max_dim", [](In v) { return max(v[0], 0, true).first; }, {distinct({3, 4}, 22)}});
  // Linear algebra.
  Tensor m34 = uniform({3, 4}, 23), m45 = uniform({4, 5}, 24), m43 = uniform({4, 3}, 25), m54 = uniform({5, 4}, 26);
  c.push_back({"matmul", [](In v) { return matmul(v[0], v[1]); }, {m34, m45}});
  c.push_back({"matmul", [](In v) { return matmul(v[0], v[1], true, false); }, {m43, m45}});
  c.push_back({"matmul", [](In v) { return matmul(v[0], v[1], false, true); }, {m34, m54}});
  c.push_back({"matmul", [](In v) { return matmul(v[0], v[1], true, true); }, {m43, m54}});
  c.push_back({"linear", [](In v) { return linear(v[0], v[1], v[2]); }, {m43, uniform({2, 3}, 27), uniform({2}, 28)}});
  // Convolution: stride, padding, bias; and the 1x1 shortcut path.
  c.push_back({"conv2d", [](In v) { return conv2d(v[0], v[1], v[2], 2, 1); },
               {uniform({2, 2, 5, 4}, 29), uniform({3, 2, 3, 3}, 30), uniform({3}, 31)}});
  c.push_back({"conv2d", [](In v) { return conv2d(v[0], v[1], Var(), 1, 0); },
               {uniform({2, 3, 3, 3}, 32), uniform({2, 3, 1, 1}, 33)}});
  // With the fused ReLU (about half the outputs cut; none lies within the step of the kink).
  c.push_back({"conv2d", [](In v) { return conv2d(v[0], v[1], v[2], 2, 1, /*relu=*/true); },
               {uniform({2, 2, 5, 4}, 29), uniform({3, 2, 3, 3}, 30), uniform({3}, 31)}});
  c.push_back({"conv2d", [](In v) { return conv2d(v[0], v[1], Var(), 1, 0, /*relu=*/true); },
               {uniform({2, 3, 3, 3}, 32), uniform({2, 3, 1, 1}, 33)}});
  // Batch norm: train mode (batch statistics) and eval mode (running statistics).
  Tensor bx = uniform({3, 2, 2, 2}, 34), gamma = uniform({2}, 35, 0.5, 1.5), beta = uniform({2}, 36);
  c.push_back({"batch_norm",
               [](In v) {
                 Device d = v[0].device();
                 Tensor rm = Tensor::zeros({2}, DType::f64, d), rv = Tensor::ones({2}, DType::f64, d);
                 return batch_norm(v[0], v[1], v[2], rm, rv, true);
               },
               {bx, gamma, beta}});
  c.push_back({"batch_norm",  // with the fused ReLU
               [](In v) {
                 Device d = v[0].device();
                 Tensor rm = Tensor::zeros({2}, DType::f64, d), rv = Tensor::ones({2}, DType::f64, d);
                 return batch_norm(v[0], v[1], v[2], rm, rv, true, 0.1, 1e-5, Tensor(), /*relu=*/true);
               },
               {bx, gamma, beta}});
  c.push_back({"batch_norm",  // 2-D input (BatchNorm1d)
               [](In v) {
                 Device d = v[0].device();
                 Tensor rm = Tensor::zeros({3}, DType::f64, d), rv = Tensor::ones({3}, DType::f64, d);
                 return batch_norm(v[0], v[1], v[2], rm, rv, true);
               },
               {uniform({4, 3}, 37), uniform({3}, 38), uniform({3}, 39)}});
  Tensor run_mean = uniform({2}, 40).to(device), run_var = uniform({2}, 41, 0.5, 2).to(device);
  c.push_back({"batch_norm_eval",
               [run_mean, run_var](In v) { return batch_norm(v[0], v[1], v[2], run_mean, run_var, false); },
               {bx, gamma, beta}});
  // The eval batch norm folded into a convolution's weights [2, 3, 2, 2] and bias (nn::conv_bn).
  Tensor fold_w = uniform({2, 3, 2, 2}, 42), conv_b = uniform({2}, 43);
  c.push_back({"bn_fold_weight",
               [run_mean, run_var](In v) { return bn_fold(v[0], Var(), v[1], v[2], run_mean, run_var).first; },
               {fold_w, gamma, beta}});
  c.push_back({"bn_fold_shift",
               [run_mean, run_var](In v) { return bn_fold(v[0], v[3], v[1], v[2], run_mean, run_var).second; },
               {fold_w, gamma, beta, conv_b}});
  c.push_back({"bn_fold_shift",  // a convolution without bias
               [run_mean, run_var](In v) { return bn_fold(v[0], Var(), v[1], v[2], run_mean, run_var).second; },
               {fold_w, gamma, beta}});
  // Sums over replicas: a group of one (the identity), and a stand-in sum that triples (y = 3x,
  // whose backward must triple g). Synchronised batch norm over a group of one is batch norm.
  ReplicaSum alone = [](Tensor&) {};
  ReplicaSum triple = [](Tensor& t) { t.copy_(ops::mul_scalar(t, 3.0)); };
  c.push_back({"all_reduce_sum", [alone](In v) { return all_reduce_sum(v[0], alone); }, {a23}});
  c.push_back({"all_reduce_sum", [triple](In v) { return all_reduce_sum(v[0], triple); }, {a23}});
  c.push_back({"sync_batch_norm",
               [alone](In v) {
                 Device d = v[0].device();
                 Tensor rm = Tensor::zeros({2}, DType::f64, d), rv = Tensor::ones({2}, DType::f64, d);
                 return sync_batch_norm(v[0], v[1], v[2], rm, rv, alone);
               },
               {bx, gamma, beta}});
  c.push_back({"sync_batch_norm",  // 2-D input (BatchNorm1d)
               [alone](In v) {
                 Device d = v[0].device();
                 Tensor rm = Tensor::zeros({3}, DType::f64, d), rv = Tensor::ones({3}, DType::f64, d);
                 return sync_batch_norm(v[0], v[1], v[2], rm, rv, alone);
               },
               {uniform({4, 3}, 37), uniform({3}, 38), uniform({3}, 39)}});
  // Pooling.
  c.push_back({"max_pool2d", [](In v) { return max_pool2d(v[0], 2, 2); }, {distinct({2, 2, 4, 4}, 42)}});
  c.push_back({"max_pool2d", [](In v) { return max_pool2d(v[0], 3, 2, 1); }, {distinct({1, 2, 5, 5}, 43)}});
  c.push_back({"avg_pool2d", [](In v) { return avg_pool2d(v[0], 2, 2); }, {uniform({2, 2, 4, 4}, 44)}});
  c.push_back({"avg_pool2d", [](In v) { return avg_pool2d(v[0], 3, 2, 1); }, {uniform({1, 2, 5, 5}, 45)}});
  c.push_back({"global_avg_pool", [](In v) { return global_avg_pool(v[0]); }, {uniform({2, 3, 2, 2}, 46)}});
  c.push_back({"flatten", [](In v) { return flatten(v[0] * v[0]); }, {uniform({2, 3, 2}, 47)}});
  // Normalisation, indexing.
  c.push_back({"l2_normalize", [](In v) { return l2_normalize(v[0], 1); }, {uniform({3, 4}, 48)}});
  c.push_back({"l2_normalize", [](In v) { return l2_normalize(v[0], 0); }, {uniform({3, 4}, 49)}});
  Tensor idx = labels({4, 0, 4, 2}).to(device);  // row 4 twice: its gradient accumulates
  c.push_back({"index_select", [idx](In v) { return embedding(v[0], idx); }, {uniform({5, 3}, 50)}});
  Tensor gidx = Tensor::from_vector<int64_t>({1, 1, 0, 3, 2, 2}, {3, 2}, device);
  c.push_back({"gather", [gidx](In v) { return gather(v[0], 1, gidx); }, {uniform({3, 4}, 51)}});
  // Softmax and losses.
  c.push_back({"log_softmax", [](In v) { return log_softmax(v[0], 1); }, {uniform({3, 4}, 52, -3, 3)}});
  c.push_back({"log_softmax", [](In v) { return log_softmax(v[0], 0); }, {uniform({3, 4}, 53, -3, 3)}});
  c.push_back({"softmax", [](In v) { return softmax(v[0], 1); }, {uniform({3, 4}, 54, -3, 3)}});
  c.push_back({"softmax", [](In v) { return softmax(v[0], 0); }, {uniform({3, 4}, 55, -3, 3)}});
  Tensor y = labels({2, 0, 3}).to(device);
  c.push_back({"cross_entropy", [y](In v) { return cross_entropy(v[0], y, Reduction::none); }, {uniform({3, 4}, 56, -3, 3)}});
  c.push_back({"cross_entropy", [y](In v) { return cross_entropy(v[0], y, Reduction::mean); }, {uniform({3, 4}, 57, -3, 3)}});
  c.push_back({"cross_entropy", [y](In v) { return cross_entropy(v[0], y, Reduction::sum); }, {uniform({3, 4}, 58, -3, 3)}});
  c.push_back({"cross_entropy_grad", [y](In v) { return cross_entropy_grad(v[0], y, v[1]); },
               {uniform({3, 4}, 59, -3, 3), uniform({3}, 60)}});
  c.push_back({"kl_div", [](In v) { return kl_div(v[0], v[1], Reduction::none); },
               {uniform({3, 4}, 59, -2, 2), uniform({3, 4}, 60, -2, 2)}});
  c.push_back({"kl_div", [](In v) { return kl_div(v[0], v[1], Reduction::mean); },
               {uniform({3, 4}, 61, -2, 2), uniform({3, 4}, 62, -2, 2)}});
  return c;
}

// Whether a case's op is a registry op marked double-differentiable (composed functions are not).
inline bool has_double_backward(const std::string& op) {
  if (std::find(kComposedOps.begin(), kComposedOps.end(), op) != kComposedOps.end()) return false;
  for (const OpInfo& info : kOpInfo)
    if (info.name == op) return info.double_backward;
  return false;
}

}  // namespace afd::testing
