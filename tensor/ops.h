// Tensor operations (no gradients): shape and dtype checks, output allocation, then one backend
// kernel. autograd/ builds differentiable ops on top of these; attacks and tests may use them
// directly for work that needs no gradient.
//
// Every check names the op and both shapes, for example
//   "add: shapes [2, 3] and [4] cannot broadcast".
#pragma once
#include <utility>
#include <vector>

#include "tensor/backend.h"
#include "tensor/tensor.h"

namespace afd::ops {

// ---- elementwise -----------------------------------------------------------------------------
Tensor unary(UnaryOp op, const Tensor& x, double a = 0, double b = 0);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor reciprocal(const Tensor& x);
Tensor pow(const Tensor& x, double p);
Tensor clamp(const Tensor& x, double lo, double hi);
Tensor add_scalar(const Tensor& x, double s);
Tensor mul_scalar(const Tensor& x, double s);

// Broadcasting binary ops (NumPy rules; the result has the larger rank).
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---- shape -----------------------------------------------------------------------------------
Tensor expand(const Tensor& x, const Shape& shape);  // materialised broadcast
// Sums x down to `shape` (the inverse of broadcasting: leading dims summed away, size-1 dims kept).
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- reductions ------------------------------------------------------------------------------
Tensor sum(const Tensor& x);  // all elements, shape []
Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim = false);
// Max over dim: values and i64 indices (first maximum wins).
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim);

// ---- linear algebra --------------------------------------------------------------------------
// op(a) op(b) with op = transpose when the flag is set; a, b 2-D.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

// ---- convolution, normalisation, pooling -------------------------------------------------------
Shape conv2d_output_shape(const Shape& x, const Shape& w, const Conv2dParams& p);
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p);
Tensor conv2d_backward_data(const Tensor& dy, const Tensor& w, const Shape& x_shape,
                            const Conv2dParams& p);
// Returns dw and (when want_bias) dbias.
std::pair<Tensor, Tensor> conv2d_backward_filter(const Tensor& dy, const Tensor& x,
                                                 const Shape& w_shape, const Conv2dParams& p,
                                                 bool want_bias);

struct BatchNormStats {
  Tensor mean, var, invstd;  // [C]: batch mean, biased variance, 1 / sqrt(var + eps)
};
// Train mode: y (relu(y) with relu, in the same pass) and the batch statistics.
std::pair<Tensor, BatchNormStats> batch_norm_train(const Tensor& x, const Tensor& gamma,
                                                   const Tensor& beta, double eps, bool relu = false);
Tensor batch_norm_apply(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                        const Tensor& mean, const Tensor& invstd);
// An eval-mode batch norm folded into the convolution before it, in one pass (nn::conv_bn):
//   invstd = 1 / sqrt(var + eps), a = gamma invstd        [K]
//   weight[k, ...] = a[k] w[k, ...]                       (w [K, ...]: the convolution's weights)
//   shift = beta - a mean (+ a conv_bias)                 [K] (+ a conv_bias only when it is defined)
// so that bn(conv(x; w, conv_bias)) = conv(x; weight, shift). Each step is rounded in w's dtype as
// the separate ops (add_scalar, sqrt, reciprocal, mul, sub, add) round it, so the results are
// theirs bit for bit, in one launch where those ops took seven on a GPU. gamma, beta, mean, var
// (and conv_bias) [K], one float dtype and device with w.
struct BnFold {
  Tensor weight, shift, invstd;
};
BnFold bn_fold(const Tensor& w, const Tensor& conv_bias, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
               const Tensor& var, double eps);
struct BatchNormGrads {
  Tensor dx, dgamma, dbeta;
};
BatchNormGrads batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                   const BatchNormStats& stats, bool want_dx, bool want_dgamma,
                                   bool want_dbeta);

std::pair<Tensor, Tensor> max_pool2d(const Tensor& x, const Pool2dParams& p);  // y, indices
Tensor max_pool2d_backward(const Tensor& dy, const Tensor& indices, const Shape& x_shape);
Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p);
Tensor avg_pool2d_backward(const Tensor& dy, const Shape& x_shape, const Pool2dParams& p);

// ---- softmax and losses ----------------------------------------------------------------------
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);  // per sample [N]
// Its gradient in one pass: dlogits[n, c] = g[n] (softmax(logits[n])[c] - [c == labels[n]]) for the
// per-sample gradient g [N], rounded as softmax, sub of the one-hot row and mul round each step.
Tensor cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& g);
Tensor one_hot(const Tensor& labels, int64_t classes, DType dtype);  // [N, classes]

// Batch norm's running statistics after a training batch, in place and in one pass (where the
// separate ops took nine launches on a GPU):
//   running_mean = (1 - momentum) running_mean + momentum mean
//   running_var  = (1 - momentum) running_var + var_scale var
//   count += 1                                  (num_batches_tracked; i64, 0-d; skipped if undefined)
// rounded as mul_scalar and add round each step, so the results are those ops' bit for bit.
// running_mean, running_var, mean, var: [C], one float dtype and device; count on that device.
void update_running_stats_(Tensor& running_mean, Tensor& running_var, Tensor& count, const Tensor& mean,
                           const Tensor& var, double momentum, double var_scale);

// ---- optimizer update ------------------------------------------------------------------------
// One SGD step of one parameter, in place, as torch.optim.SGD (1.13) computes it, in one pass
// over the elements (where the separate ops took nine on a GPU, each a launch):
//   d = g + weight_decay p
//   buf = first ? d : momentum buf + (1 - dampening) d         (momentum != 0 only)
//   d = nesterov ? d + momentum buf : buf                      (momentum != 0 only)
//   p = p - lr d
// Every product and sum is rounded in the parameter's dtype as the separate ops (mul_scalar, add,
// sub) round it, so the result is theirs bit for bit, on either device. param, grad and
// momentum_buffer (undefined when momentum is 0; written whole when first) share shape, dtype and
// device.
void sgd_step_(Tensor& param, const Tensor& grad, Tensor& momentum_buffer, const SgdStep& s);
// The same step for many parameters of one dtype and device at once: on a GPU one launch per
// kSgdTensorsPerLaunch parameters instead of one each (a ResNet18 has 62), the same bits.
void sgd_step_(const std::vector<SgdTensors>& tensors, const SgdStep& s);

// ---- attack step -----------------------------------------------------------------------------
// One projected sign step of Linf PGD for every row i of x [N, ...], in one pass:
//   out = clamp(x0 + clamp((x + alpha_i sign(g)) - x0, -eps_i, eps_i), 0, 1)
// with steps [2, N] = (alpha; eps). Rounded and compared as the separate ops (sign, mul, add, sub,
// neg, maximum, minimum, add, clamp) do it, so the result is theirs bit for bit, in one launch
// where they took nine. x0, x, g share x's shape; all share a dtype and device.
Tensor linf_sign_step(const Tensor& x0, const Tensor& x, const Tensor& g, const Tensor& steps);

// ---- indexing --------------------------------------------------------------------------------
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);
Tensor index_select(const Tensor& table, const Tensor& index);  // rows of table
Tensor index_add(const Shape& shape, const Tensor& index, const Tensor& src);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);  // a copy

// ---- comparisons for tests -------------------------------------------------------------------
// Largest |a - b| and whether |a - b| <= atol + rtol |b| holds elementwise; same shapes.
struct CloseReport {
  bool ok = true;
  double max_abs_diff = 0;
  int64_t worst_index = -1;
  double worst_a = 0, worst_b = 0;
};
CloseReport allclose(const Tensor& a, const Tensor& b, double rtol, double atol);

}  // namespace afd::ops
