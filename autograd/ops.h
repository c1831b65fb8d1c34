// Differentiable operations on Var. Each records one tape node (autograd/op_registry.h) whose
// backward is written right next to its forward in ops.cpp, or is composed of such ops.
//
//   Var x(Tensor::from_vector<double>({1, -2, 3}, {3}), /*requires_grad=*/true);
//   Var loss = sum(relu(x) * 2.0);
//   loss.backward();   // x.grad() = [2, 0, 2]
//
// Shapes follow PyTorch: x [N, C, H, W] for images, logits [N, K], labels i64 [N].
#pragma once
#include <functional>
#include <utility>
#include <vector>

#include "autograd/var.h"
#include "tensor/backend.h"

namespace afd {

// ---- elementwise (binary ops broadcast with NumPy rules) ------------------------------------------
Var add(const Var& a, const Var& b);
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var div(const Var& a, const Var& b);
Var affine(const Var& x, double scale, double shift);  // scale * x + shift
Var add(const Var& x, double s);
Var mul(const Var& x, double s);
Var neg(const Var& x);
Var exp(const Var& x);
Var log(const Var& x);
Var sqrt(const Var& x);
Var pow(const Var& x, double p);
Var abs(const Var& x);
Var clamp(const Var& x, double lo, double hi);
Var maximum(const Var& a, const Var& b);  // ties split the gradient in halves, as PyTorch
Var minimum(const Var& a, const Var& b);
Var where(const Tensor& cond, const Var& a, const Var& b);  // cond != 0 ? a : b
Var relu(const Var& x);
// relu(a + b) in one pass (a residual sum and its ReLU), broadcasting as add.
Var add_relu(const Var& a, const Var& b);
// ReLU's backward: g where x > 0, else 0 (also where g is NaN or Inf, as PyTorch's
// threshold_backward); differentiable in g, x taken as a constant.
Var relu_grad(const Var& g, const Var& x);
Var leaky_relu(const Var& x, double slope = 0.01);
Var sigmoid(const Var& x);
Var tanh(const Var& x);
Var atanh(const Var& x);
Var softplus(const Var& x, double beta = 1, double threshold = 20);

inline Var operator+(const Var& a, const Var& b) { return add(a, b); }
inline Var operator-(const Var& a, const Var& b) { return sub(a, b); }
inline Var operator*(const Var& a, const Var& b) { return mul(a, b); }
inline Var operator/(const Var& a, const Var& b) { return div(a, b); }
inline Var operator-(const Var& a) { return neg(a); }
inline Var operator+(const Var& a, double s) { return add(a, s); }
inline Var operator-(const Var& a, double s) { return add(a, -s); }
inline Var operator*(const Var& a, double s) { return mul(a, s); }
inline Var operator/(const Var& a, double s) { return mul(a, 1.0 / s); }
inline Var operator*(double s, const Var& a) { return mul(a, s); }

// ---- shape -------------------------------------------------------------------------------------
Var reshape(const Var& x, Shape shape);
Var flatten(const Var& x, int64_t start_dim = 1);
Var expand(const Var& x, const Shape& shape);
Var sum_to(const Var& x, const Shape& shape);
Var cat(const std::vector<Var>& parts, int64_t dim = 0);

// ---- reductions --------------------------------------------------------------------------------
Var sum(const Var& x);
Var sum(const Var& x, const std::vector<int64_t>& dims, bool keepdim = false);
Var mean(const Var& x);
Var mean(const Var& x, const std::vector<int64_t>& dims, bool keepdim = false);
// Max over dim: the values (differentiable, the gradient goes to the first maximum) and indices.
std::pair<Var, Tensor> max(const Var& x, int64_t dim, bool keepdim = false);

// ---- linear algebra and layers -------------------------------------------------------------------
Var matmul(const Var& a, const Var& b, bool trans_a = false, bool trans_b = false);
// y = x w^T + bias; x [N, in], w [out, in], bias [out] or undefined.
Var linear(const Var& x, const Var& w, const Var& bias = Var());
// x [N, C, H, W], w [K, C, R, S], bias [K] or undefined. With relu, relu(conv2d(...)) with the
// ReLU in the bias's pass (one launch and one pass over y fewer on a GPU), the same values.
Var conv2d(const Var& x, const Var& w, const Var& bias = Var(), int64_t stride = 1, int64_t padding = 0,
           bool relu = false);
// Batch norm over dim 1 of x [N, C, ...]. Training: batch statistics, and running_mean /
// running_var (plain tensors) are updated in place with momentum (unbiased variance, as PyTorch),
// and num_batches_tracked (i64, 0-d), when given, counts the batch. Eval: the running statistics.
// With relu, relu(batch_norm(...)), in training with the ReLU in batch norm's own pass.
Var batch_norm(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean,
               Tensor running_var, bool training, double momentum = 0.1, double eps = 1e-5,
               Tensor num_batches_tracked = Tensor(), bool relu = false);
// An eval-mode batch norm folded into the convolution before it (nn::conv_bn), one kernel for
// both outputs (ops::bn_fold): with a = gamma / sqrt(running_var + eps),
//   weight = a w  (w [K, ...], scaled per output channel k)     -> nodes on w, gamma
//   shift = beta - a running_mean (+ a conv_bias)               -> nodes on gamma, beta, conv_bias
// conv_bias may be undefined. Returns {weight, shift}: conv(x; weight, shift) = bn(conv(x; w, conv_bias)).
std::pair<Var, Var> bn_fold(const Var& w, const Var& conv_bias, const Var& gamma, const Var& beta,
                            const Tensor& running_mean, const Tensor& running_var, double eps = 1e-5);
Var max_pool2d(const Var& x, int64_t kernel, int64_t stride, int64_t padding = 0);
Var avg_pool2d(const Var& x, int64_t kernel, int64_t stride, int64_t padding = 0);
Var global_avg_pool(const Var& x);  // [N, C, H, W] -> [N, C]
// x / max(||x||_2, eps) along dim.
Var l2_normalize(const Var& x, int64_t dim = 1, double eps = 1e-12);
// Rows of table [V, D] picked by i64 index [N] -> [N, D].
Var embedding(const Var& table, const Tensor& index);
// out[.., i, ..] = x[.., index[.., i, ..], ..] along dim.
Var gather(const Var& x, int64_t dim, const Tensor& index);

// ---- data parallelism: sums over the replicas of a group ----------------------------------------
// An in-place sum over the replicas (processes) of a data-parallel group: every replica calls it at
// the same point with a tensor of the same shape, and afterwards each holds the sum of all of them.
// dist::replica_sum (afd/dist/data_parallel.h) makes one from a Communicator; [](Tensor&) {} is a
// group of one.
using ReplicaSum = std::function<void(Tensor& t)>;
// y = sum over replicas r of x_r. Every replica's loss L_q depends on y, so the gradient of the
// group's loss sum_q L_q with respect to x_r is sum_q dL_q/dy: the backward applies the same sum
// to the incoming gradient (every replica must run its backward through this node too).
Var all_reduce_sum(const Var& x, const ReplicaSum& sum_over_replicas);
// Training-mode batch norm with the statistics of the GLOBAL batch (all replicas' rows), composed
// of differentiable ops (its backward is the exact gradient of the global computation):
//   pass 1  [S1; M] = all_reduce_sum([sum_{n,h,w} x; m])    m = N H W values per channel here
//           mu = S1 / M                                     (per channel c; M over all replicas)
//   pass 2  S2 = all_reduce_sum(sum_{n,h,w} (x - mu)^2),    var = S2 / M (biased)
//   y = (x - mu) / sqrt(var + eps) * gamma + beta
// (two passes rather than S2/M - mu^2, which cancels badly when |mu| >> std). running_mean and
// running_var move as batch_norm's, with the global mean and unbiased variance var M / (M - 1).
// Cost: two all-reduces of C (and 2C) numbers in the forward, two in the backward. With a group of
// one it equals batch_norm(..., training = true).
Var sync_batch_norm(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean, Tensor running_var,
                    const ReplicaSum& sum_over_replicas, double momentum = 0.1, double eps = 1e-5,
                    Tensor num_batches_tracked = Tensor());

// ---- softmax and losses ------------------------------------------------------------------------
enum class Reduction { none, sum, mean };
Var log_softmax(const Var& x, int64_t dim = -1);
Var softmax(const Var& x, int64_t dim = -1);
// -log softmax(logits)[label] per sample, then reduced.
Var cross_entropy(const Var& logits, const Tensor& labels, Reduction reduction = Reduction::mean);
// Its backward as a differentiable op: g [N] (the per-sample losses' gradient) ->
// g[n] (softmax(logits[n]) - onehot(labels[n])) [N, C], in one kernel.
Var cross_entropy_grad(const Var& logits, const Tensor& labels, const Var& g);
// KL(softmax(p_logits) || softmax(q_logits)) per sample (summed over classes), then reduced.
// TRADES' robust term is kl_div(logits_clean, logits_adv, Reduction::mean).
Var kl_div(const Var& p_logits, const Var& q_logits, Reduction reduction = Reduction::mean);

}  // namespace afd
