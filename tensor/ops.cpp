#include "tensor/ops.h"

#include <algorithm>
#include <cmath>
#include <iterator>

namespace afd::ops {

namespace {

void check_defined(const Tensor& t, const char* op) {
  AFD_CHECK(t.defined(), "{}: undefined tensor argument", op);
}

void check_float(const Tensor& t, const char* op) {
  check_defined(t, op);
  AFD_CHECK(is_floating(t.dtype()), "{}: expected an f32 or f64 tensor, got {}", op, t.str());
}

void check_same(const Tensor& a, const Tensor& b, const char* op) {
  check_defined(a, op);
  check_defined(b, op);
  AFD_CHECK(a.dtype() == b.dtype(), "{}: dtypes {} and {} differ (shapes {} and {})", op,
            dtype_name(a.dtype()), dtype_name(b.dtype()), shape_str(a.shape()), shape_str(b.shape()));
  AFD_CHECK(a.device() == b.device(), "{}: devices {} and {} differ", op, a.device().str(),
            b.device().str());
}

// An index, label or statistics tensor must sit where the data is: a backend would otherwise be
// handed a pointer of the other device (a GPU fault, or a host read of device memory).
void check_device(const Tensor& t, Device data, const char* op, const char* what) {
  check_defined(t, op);
  AFD_CHECK(t.device() == data, "{}: {} is on {}, the data on {}", op, what, t.device().str(), data.str());
}

void check_shape(const Tensor& t, const Shape& expected, const char* op, const char* what) {
  AFD_CHECK(t.shape() == expected, "{}: {} has shape {}, expected {}", op, what, shape_str(t.shape()),
            shape_str(expected));
}

// Pads a shape with leading 1s to `rank` (the view a backend sees for broadcasting).
Tensor with_rank(const Tensor& t, size_t rank) {
  if (t.shape().size() == rank) return t;
  Shape s(rank - t.shape().size(), 1);
  s.insert(s.end(), t.shape().begin(), t.shape().end());
  return t.reshape(s);
}

const char* binary_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "maximum", "minimum", "pow",
                                "gt",  "ge",  "lt",  "le",  "eq",      "relu_grad", "add_relu"};
  static_assert(std::size(names) == static_cast<size_t>(BinaryOp::add_relu) + 1, "a name for every BinaryOp");
  return names[static_cast<int>(op)];
}

Backend& be(const Tensor& t) { return backend(t.device()); }

}  // namespace

// ---- elementwise -----------------------------------------------------------------------------
Tensor unary(UnaryOp op, const Tensor& x, double a, double b) {
  check_float(x, "unary");
  Tensor out(x.shape(), x.dtype(), x.device());
  if (x.numel() == 0) return out;
  count_kernel(Kernel::elementwise);
  be(x).unary(op, x, out, a, b);
  return out;
}
Tensor neg(const Tensor& x) { return unary(UnaryOp::neg, x); }
Tensor exp(const Tensor& x) { return unary(UnaryOp::exp, x); }
Tensor log(const Tensor& x) { return unary(UnaryOp::log, x); }
Tensor sqrt(const Tensor& x) { return unary(UnaryOp::sqrt, x); }
Tensor abs(const Tensor& x) { return unary(UnaryOp::abs, x); }
Tensor sign(const Tensor& x) { return unary(UnaryOp::sign, x); }
Tensor relu(const Tensor& x) { return unary(UnaryOp::relu, x); }
Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::sigmoid, x); }
Tensor tanh(const Tensor& x) { return unary(UnaryOp::tanh, x); }
Tensor reciprocal(const Tensor& x) { return unary(UnaryOp::reciprocal, x); }
Tensor pow(const Tensor& x, double p) { return unary(UnaryOp::pow, x, p); }
Tensor clamp(const Tensor& x, double lo, double hi) {
  AFD_CHECK(lo <= hi, "clamp: lower bound {} is above upper bound {}", lo, hi);
  return unary(UnaryOp::clamp, x, lo, hi);
}
Tensor add_scalar(const Tensor& x, double s) { return unary(UnaryOp::affine, x, 1.0, s); }
Tensor mul_scalar(const Tensor& x, double s) { return unary(UnaryOp::affine, x, s, 0.0); }

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    AFD_CHECK(da == db || da == 1 || db == 1, "{}: shapes {} and {} cannot broadcast", op,
              shape_str(a), shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_same(a, b, name);
  check_float(a, name);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out(shape, a.dtype(), a.device());
  if (out.numel() == 0) return out;
  count_kernel(Kernel::elementwise);
  Tensor out_view = out;
  be(a).binary(op, with_rank(a, shape.size()), with_rank(b, shape.size()), out_view);
  return out;
}
Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::div, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::minimum, a, b); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_same(a, b, "where");
  check_float(a, "where");
  check_device(cond, a.device(), "where", "the condition");
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out(shape, a.dtype(), a.device());
  if (out.numel() == 0) return out;
  count_kernel(Kernel::elementwise);
  be(a).where(with_rank(cond, shape.size()), with_rank(a, shape.size()), with_rank(b, shape.size()), out);
  return out;
}

// ---- shape -----------------------------------------------------------------------------------
Tensor expand(const Tensor& x, const Shape& shape) {
  check_float(x, "expand");
  AFD_CHECK(broadcast_shapes(x.shape(), shape, "expand") == shape, "expand: {} cannot expand to {}",
            shape_str(x.shape()), shape_str(shape));
  if (x.shape() == shape) return x;
  // One broadcasting pass: maximum(x, x) is x bit for bit (-0 and NaN included), written into
  // the larger shape (adding a zero tensor would take a second launch to make the zeros).
  Tensor out(shape, x.dtype(), x.device());
  if (out.numel() == 0) return out;
  count_kernel(Kernel::elementwise);
  const Tensor xr = with_rank(x, shape.size());
  be(x).binary(BinaryOp::maximum, xr, xr, out);
  return out;
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  check_float(x, "sum_to");
  if (x.shape() == shape) return x;
  AFD_CHECK(broadcast_shapes(shape, x.shape(), "sum_to") == x.shape(),
            "sum_to: {} is not a broadcast of {}", shape_str(x.shape()), shape_str(shape));
  Shape keep(x.shape().size() - shape.size(), 1);  // leading dims summed away, kept as 1s
  keep.insert(keep.end(), shape.begin(), shape.end());
  Tensor out(keep, x.dtype(), x.device());
  if (out.numel() > 0) {
    count_kernel(Kernel::reduce);
    be(x).sum_to(x, out);
  }
  return out.reshape(shape);
}

// ---- reductions ------------------------------------------------------------------------------
Tensor sum(const Tensor& x) { return sum_to(x, Shape{}); }

Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  check_float(x, "sum");
  Shape keep = x.shape();
  std::vector<bool> reduced(x.dim(), false);
  for (int64_t d : dims) {
    int nd = normalize_dim(d, x.dim(), "sum");
    AFD_CHECK(!reduced[nd], "sum: dim {} given twice", d);
    reduced[nd] = true;
    keep[nd] = 1;
  }
  Tensor out = sum_to(x, keep);
  if (keepdim) return out;
  Shape squeezed;
  for (int64_t i = 0; i < x.dim(); ++i)
    if (!reduced[i]) squeezed.push_back(x.size(i));
  return out.reshape(squeezed);
}

Tensor mean(const Tensor& x) {
  AFD_CHECK(x.numel() > 0, "mean of an empty tensor {}", shape_str(x.shape()));
  return mul_scalar(sum(x), 1.0 / static_cast<double>(x.numel()));
}

Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  Tensor s = sum(x, dims, keepdim);
  AFD_CHECK(s.numel() > 0 && x.numel() > 0, "mean of an empty tensor {}", shape_str(x.shape()));
  return mul_scalar(s, static_cast<double>(s.numel()) / static_cast<double>(x.numel()));
}

std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) {
  check_float(x, "max");
  int d = normalize_dim(dim, x.dim(), "max");
  AFD_CHECK(x.size(d) > 0, "max: dim {} of shape {} is empty", dim, shape_str(x.shape()));
  Shape out_shape = x.shape();
  out_shape.erase(out_shape.begin() + d);
  Tensor values(out_shape, x.dtype(), x.device());
  Tensor indices(out_shape, DType::i64, x.device());
  if (values.numel() > 0) {
    count_kernel(Kernel::reduce);
    be(x).max_dim(x, d, values, indices);
  }
  if (keepdim) {
    out_shape.insert(out_shape.begin() + d, 1);
    return {values.reshape(out_shape), indices.reshape(out_shape)};
  }
  return {values, indices};
}

Tensor argmax(const Tensor& x, int64_t dim) { return max(x, dim).second; }

// ---- linear algebra --------------------------------------------------------------------------
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  check_same(a, b, "matmul");
  check_float(a, "matmul");
  AFD_CHECK(a.dim() == 2 && b.dim() == 2, "matmul: expected 2-D operands, got {} and {}",
            shape_str(a.shape()), shape_str(b.shape()));
  int64_t m = trans_a ? a.size(1) : a.size(0), k = trans_a ? a.size(0) : a.size(1);
  int64_t kb = trans_b ? b.size(1) : b.size(0), n = trans_b ? b.size(0) : b.size(1);
  AFD_CHECK(k == kb, "matmul: inner sizes differ: {}{} and {}{}", shape_str(a.shape()),
            trans_a ? "^T" : "", shape_str(b.shape()), trans_b ? "^T" : "");
  Tensor c({m, n}, a.dtype(), a.device());
  if (c.numel() == 0) return c;
  if (k == 0) {
    c.fill_(0);
    return c;
  }
  count_kernel(Kernel::gemm);
  be(a).gemm(trans_a, trans_b, 1.0, a, b, 0.0, c);
  return c;
}

// ---- convolution -----------------------------------------------------------------------------
Shape conv2d_output_shape(const Shape& x, const Shape& w, const Conv2dParams& p) {
  AFD_CHECK(x.size() == 4 && w.size() == 4, "conv2d: expected x [N, C, H, W] and w [K, C, R, S], got {} and {}",
            shape_str(x), shape_str(w));
  AFD_CHECK(x[1] == w[1], "conv2d: input has {} channels but weight {} expects {}", x[1], shape_str(w), w[1]);
  AFD_CHECK(p.stride >= 1 && p.padding >= 0, "conv2d: stride {} must be >= 1 and padding {} >= 0",
            p.stride, p.padding);
  int64_t hp = x[2] + 2 * p.padding - w[2], wp = x[3] + 2 * p.padding - w[3];
  AFD_CHECK(hp >= 0 && wp >= 0, "conv2d: kernel {}x{} larger than padded input {}x{}", w[2], w[3],
            x[2] + 2 * p.padding, x[3] + 2 * p.padding);
  return {x[0], w[0], hp / p.stride + 1, wp / p.stride + 1};
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p) {
  check_same(x, w, "conv2d");
  check_float(x, "conv2d");
  Shape y_shape = conv2d_output_shape(x.shape(), w.shape(), p);
  if (bias.defined()) {
    check_same(x, bias, "conv2d");
    check_shape(bias, {w.size(0)}, "conv2d", "bias");
  }
  Tensor y(y_shape, x.dtype(), x.device());
  if (y.numel() == 0) return y;
  count_kernel(Kernel::conv2d_forward);
  be(x).conv2d_forward(x, w, bias, p, y);
  return y;
}

Tensor conv2d_backward_data(const Tensor& dy, const Tensor& w, const Shape& x_shape,
                            const Conv2dParams& p) {
  check_same(dy, w, "conv2d_backward_data");
  check_shape(dy, conv2d_output_shape(x_shape, w.shape(), p), "conv2d_backward_data", "dy");
  Tensor dx(x_shape, dy.dtype(), dy.device());
  if (dx.numel() == 0) return dx;
  count_kernel(Kernel::conv2d_backward_data);
  be(dy).conv2d_backward_data(dy, w, p, dx);
  return dx;
}

std::pair<Tensor, Tensor> conv2d_backward_filter(const Tensor& dy, const Tensor& x,
                                                 const Shape& w_shape, const Conv2dParams& p,
                                                 bool want_bias) {
  check_same(dy, x, "conv2d_backward_filter");
  check_shape(dy, conv2d_output_shape(x.shape(), w_shape, p), "conv2d_backward_filter", "dy");
  if (dy.numel() == 0) {  // an empty batch: no backend call (cuDNN takes no empty descriptors)
    return {Tensor::zeros(w_shape, dy.dtype(), dy.device()),
            want_bias ? Tensor::zeros({w_shape[0]}, dy.dtype(), dy.device()) : Tensor()};
  }
  Tensor dw(w_shape, dy.dtype(), dy.device());
  Tensor dbias = want_bias ? Tensor({w_shape[0]}, dy.dtype(), dy.device()) : Tensor();
  count_kernel(Kernel::conv2d_backward_filter);
  be(dy).conv2d_backward_filter(dy, x, p, dw, dbias);
  return {dw, dbias};
}

// ---- batch norm ------------------------------------------------------------------------------
namespace {
void check_batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, const char* op) {
  check_float(x, op);
  AFD_CHECK(x.dim() >= 2, "{}: expected x [N, C, ...], got {}", op, shape_str(x.shape()));
  AFD_CHECK(x.numel() > 0, "{}: empty input {}", op, shape_str(x.shape()));
  check_same(x, gamma, op);
  check_same(x, beta, op);
  check_shape(gamma, {x.size(1)}, op, "gamma");
  check_shape(beta, {x.size(1)}, op, "beta");
}
}  // namespace

std::pair<Tensor, BatchNormStats> batch_norm_train(const Tensor& x, const Tensor& gamma,
                                                   const Tensor& beta, double eps, bool relu) {
  check_batch_norm(x, gamma, beta, "batch_norm");
  AFD_CHECK(x.numel() / x.size(1) > 1, "batch_norm: training needs more than one value per channel, got input {}",
            shape_str(x.shape()));
  Tensor y(x.shape(), x.dtype(), x.device());
  Shape c{x.size(1)};
  BatchNormStats stats{Tensor(c, x.dtype(), x.device()), Tensor(c, x.dtype(), x.device()),
                       Tensor(c, x.dtype(), x.device())};
  count_kernel(Kernel::batch_norm_forward);
  be(x).batch_norm_train(x, gamma, beta, eps, relu, y, stats.mean, stats.var, stats.invstd);
  return {y, stats};
}

Tensor batch_norm_apply(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                        const Tensor& mean, const Tensor& invstd) {
  check_batch_norm(x, gamma, beta, "batch_norm");
  check_device(mean, x.device(), "batch_norm", "mean");
  check_device(invstd, x.device(), "batch_norm", "invstd");
  check_shape(mean, {x.size(1)}, "batch_norm", "mean");
  check_shape(invstd, {x.size(1)}, "batch_norm", "invstd");
  Tensor y(x.shape(), x.dtype(), x.device());
  count_kernel(Kernel::batch_norm_forward);
  be(x).batch_norm_apply(x, gamma, beta, mean, invstd, y);
  return y;
}

BnFold bn_fold(const Tensor& w, const Tensor& conv_bias, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
               const Tensor& var, double eps) {
  const char* op = "bn_fold";
  check_float(w, op);
  AFD_CHECK(w.dim() >= 1 && w.numel() > 0, "{}: expected convolution weights [K, ...], got {}", op,
            shape_str(w.shape()));
  const Shape k{w.size(0)};
  for (auto [t, what] : {std::pair{&gamma, "gamma"}, std::pair{&beta, "beta"}, std::pair{&mean, "the running mean"},
                         std::pair{&var, "the running variance"}, std::pair{&conv_bias, "the convolution bias"}}) {
    if (!t->defined()) {
      AFD_CHECK(t == &conv_bias, "{}: {} is missing", op, what);
      continue;
    }
    check_same(w, *t, op);
    check_shape(*t, k, op, what);
  }
  BnFold r{Tensor(w.shape(), w.dtype(), w.device()), Tensor(k, w.dtype(), w.device()),
           Tensor(k, w.dtype(), w.device())};
  count_kernel(Kernel::elementwise);
  be(w).bn_fold(w, conv_bias, gamma, beta, mean, var, eps, r.weight, r.shift, r.invstd);
  return r;
}

BatchNormGrads batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                   const BatchNormStats& stats, bool want_dx, bool want_dgamma,
                                   bool want_dbeta) {
  check_same(dy, x, "batch_norm_backward");
  check_shape(dy, x.shape(), "batch_norm_backward", "dy");
  check_device(gamma, x.device(), "batch_norm_backward", "gamma");
  check_device(stats.mean, x.device(), "batch_norm_backward", "mean");
  check_device(stats.invstd, x.device(), "batch_norm_backward", "invstd");
  BatchNormGrads g;
  Shape c{x.size(1)};
  if (want_dx) g.dx = Tensor(x.shape(), x.dtype(), x.device());
  if (want_dgamma) g.dgamma = Tensor(c, x.dtype(), x.device());
  if (want_dbeta) g.dbeta = Tensor(c, x.dtype(), x.device());
  count_kernel(Kernel::batch_norm_backward);
  be(x).batch_norm_backward(dy, x, gamma, stats.mean, stats.invstd, g.dx, g.dgamma, g.dbeta);
  return g;
}

// ---- pooling ---------------------------------------------------------------------------------
namespace {
Shape pool_output_shape(const Shape& x, const Pool2dParams& p, const char* op) {
  AFD_CHECK(x.size() == 4, "{}: expected x [N, C, H, W], got {}", op, shape_str(x));
  AFD_CHECK(p.kernel >= 1 && p.stride >= 1 && p.padding >= 0 && 2 * p.padding <= p.kernel,
            "{}: kernel {} stride {} padding {} invalid (padding at most half the kernel)", op,
            p.kernel, p.stride, p.padding);
  int64_t h = (x[2] + 2 * p.padding - p.kernel), w = (x[3] + 2 * p.padding - p.kernel);
  AFD_CHECK(h >= 0 && w >= 0, "{}: kernel {} larger than padded input {}", op, p.kernel, shape_str(x));
  return {x[0], x[1], h / p.stride + 1, w / p.stride + 1};
}
}  // namespace

std::pair<Tensor, Tensor> max_pool2d(const Tensor& x, const Pool2dParams& p) {
  check_float(x, "max_pool2d");
  Shape s = pool_output_shape(x.shape(), p, "max_pool2d");
  Tensor y(s, x.dtype(), x.device()), idx(s, DType::i64, x.device());
  if (y.numel() == 0) return {y, idx};
  count_kernel(Kernel::pool_forward);
  be(x).max_pool2d_forward(x, p, y, idx);
  return {y, idx};
}

Tensor max_pool2d_backward(const Tensor& dy, const Tensor& indices, const Shape& x_shape) {
  check_float(dy, "max_pool2d_backward");
  check_device(indices, dy.device(), "max_pool2d_backward", "indices");
  check_shape(indices, dy.shape(), "max_pool2d_backward", "indices");
  Tensor dx(x_shape, dy.dtype(), dy.device());
  count_kernel(Kernel::pool_backward);
  be(dy).max_pool2d_backward(dy, indices, dx);
  return dx;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p) {
  check_float(x, "avg_pool2d");
  Tensor y(pool_output_shape(x.shape(), p, "avg_pool2d"), x.dtype(), x.device());
  if (y.numel() == 0) return y;
  count_kernel(Kernel::pool_forward);
  be(x).avg_pool2d_forward(x, p, y);
  return y;
}

Tensor avg_pool2d_backward(const Tensor& dy, const Shape& x_shape, const Pool2dParams& p) {
  check_float(dy, "avg_pool2d_backward");
  check_shape(dy, pool_output_shape(x_shape, p, "avg_pool2d_backward"), "avg_pool2d_backward", "dy");
  Tensor dx(x_shape, dy.dtype(), dy.device());
  count_kernel(Kernel::pool_backward);
  be(dy).avg_pool2d_backward(dy, p, dx);
  return dx;
}

// ---- softmax and losses ----------------------------------------------------------------------
namespace {
Tensor softmax_impl(const Tensor& x, int64_t dim, bool log, const char* op) {
  check_float(x, op);
  int d = normalize_dim(dim, x.dim(), op);
  Tensor out(x.shape(), x.dtype(), x.device());
  if (x.numel() == 0) return out;
  count_kernel(Kernel::softmax);
  be(x).softmax(x, d, log, out);
  return out;
}

void check_labels(const Tensor& logits, const Tensor& labels, const char* op) {
  check_float(logits, op);
  AFD_CHECK(logits.dim() == 2, "{}: expected logits [N, C], got {}", op, shape_str(logits.shape()));
  check_device(labels, logits.device(), op, "labels");
  AFD_CHECK(labels.dtype() == DType::i64, "{}: labels must be i64, got {}", op, labels.str());
  check_shape(labels, {logits.size(0)}, op, "labels");
}
}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false, "softmax"); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true, "log_softmax"); }

Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  check_labels(logits, labels, "cross_entropy");
  Tensor loss({logits.size(0)}, logits.dtype(), logits.device());
  if (loss.numel() == 0) return loss;
  AFD_CHECK(logits.size(1) > 0, "cross_entropy: logits {} have no classes", shape_str(logits.shape()));
  count_kernel(Kernel::cross_entropy);
  be(logits).cross_entropy(logits, labels, loss);
  return loss;
}

Tensor cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& g) {
  check_labels(logits, labels, "cross_entropy_backward");
  check_same(logits, g, "cross_entropy_backward");
  check_shape(g, {logits.size(0)}, "cross_entropy_backward", "the gradient of the per-sample losses");
  Tensor dlogits(logits.shape(), logits.dtype(), logits.device());
  if (dlogits.numel() == 0) return dlogits;
  count_kernel(Kernel::cross_entropy);
  be(logits).cross_entropy_backward(logits, labels, g, dlogits);
  return dlogits;
}

Tensor one_hot(const Tensor& labels, int64_t classes, DType dtype) {
  AFD_CHECK(labels.dtype() == DType::i64 && labels.dim() == 1, "one_hot: expected i64 labels [N], got {}",
            labels.str());
  return scatter_add({labels.size(0), classes}, 1, labels.reshape({-1, 1}),
                     Tensor::ones({labels.size(0), 1}, dtype, labels.device()));
}

void update_running_stats_(Tensor& running_mean, Tensor& running_var, Tensor& count, const Tensor& mean,
                           const Tensor& var, double momentum, double var_scale) {
  const char* op = "update_running_stats";
  check_float(running_mean, op);
  check_same(running_mean, running_var, op);
  check_same(running_mean, mean, op);
  check_same(running_mean, var, op);
  AFD_CHECK(running_mean.dim() == 1, "{}: expected running statistics [C], got {}", op, shape_str(running_mean.shape()));
  check_shape(running_var, running_mean.shape(), op, "running_var");
  check_shape(mean, running_mean.shape(), op, "the batch mean");
  check_shape(var, running_mean.shape(), op, "the batch variance");
  if (count.defined()) {
    check_device(count, running_mean.device(), op, "the batch counter");
    AFD_CHECK(count.dtype() == DType::i64 && count.numel() == 1, "{}: the batch counter must be one i64, got {}", op,
              count.str());
  }
  count_kernel(Kernel::elementwise);
  be(running_mean).update_running_stats(running_mean, running_var, count, mean, var, momentum, var_scale);
}

// ---- optimizer update ------------------------------------------------------------------------
void sgd_step_(const std::vector<SgdTensors>& tensors, const SgdStep& s) {
  std::vector<SgdTensors> work;  // the non-empty ones
  for (const SgdTensors& t : tensors) {
    check_float(t.param, "sgd_step");
    check_same(t.param, t.grad, "sgd_step");
    check_shape(t.grad, t.param.shape(), "sgd_step", "the gradient");
    if (s.momentum != 0) {
      check_same(t.param, t.momentum_buffer, "sgd_step");
      check_shape(t.momentum_buffer, t.param.shape(), "sgd_step", "the momentum buffer");
    }
    if (!work.empty()) check_same(work[0].param, t.param, "sgd_step (two of the parameters)");
    if (t.param.numel() > 0) work.push_back(t);
  }
  if (work.empty()) return;
  for (size_t i = 0; i < work.size(); i += kSgdTensorsPerLaunch) count_kernel(Kernel::elementwise);
  be(work[0].param).sgd_step(work, s);
}

void sgd_step_(Tensor& param, const Tensor& grad, Tensor& momentum_buffer, const SgdStep& s) {
  sgd_step_({SgdTensors{param, grad, momentum_buffer}}, s);
}

// ---- attack step -----------------------------------------------------------------------------
Tensor linf_sign_step(const Tensor& x0, const Tensor& x, const Tensor& g, const Tensor& steps) {
  const char* op = "linf_sign_step";
  check_float(x, op);
  AFD_CHECK(x.dim() >= 1, "{}: expected images [N, ...], got a scalar", op);
  for (auto [t, what] : {std::pair{&x0, "x0"}, std::pair{&g, "the gradient"}}) {
    check_same(x, *t, op);
    check_shape(*t, x.shape(), op, what);
  }
  check_same(x, steps, op);
  check_shape(steps, {2, x.size(0)}, op, "steps (alpha; eps)");
  Tensor out(x.shape(), x.dtype(), x.device());
  if (out.numel() == 0) return out;
  count_kernel(Kernel::elementwise);
  be(x).linf_sign_step(x0, x, g, steps, out);
  return out;
}

// ---- indexing --------------------------------------------------------------------------------
namespace {
void check_index_along(const Shape& data, Device device, int d, const Tensor& index, const char* op) {
  check_device(index, device, op, "index");
  AFD_CHECK(index.dtype() == DType::i64, "{}: index must be i64, got {}", op, index.str());
  AFD_CHECK(index.dim() == static_cast<int64_t>(data.size()), "{}: index {} and data {} differ in rank",
            op, shape_str(index.shape()), shape_str(data));
  for (int i = 0; i < index.dim(); ++i)
    AFD_CHECK(i == d || index.size(i) == data[i], "{}: index {} and data {} differ outside dim {}", op,
              shape_str(index.shape()), shape_str(data), d);
}
}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_float(x, "gather");
  int d = normalize_dim(dim, x.dim(), "gather");
  check_index_along(x.shape(), x.device(), d, index, "gather");
  Tensor out(index.shape(), x.dtype(), x.device());
  if (out.numel() == 0) return out;
  count_kernel(Kernel::index);
  be(x).gather(x, d, index, out);
  return out;
}

Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  check_float(src, "scatter_add");
  int d = normalize_dim(dim, static_cast<int64_t>(shape.size()), "scatter_add");
  check_index_along(shape, src.device(), d, index, "scatter_add");
  check_shape(src, index.shape(), "scatter_add", "src");
  Tensor out = Tensor::zeros(shape, src.dtype(), src.device());
  if (src.numel() == 0) return out;
  count_kernel(Kernel::index);
  be(src).scatter_add(out, d, index, src);
  return out;
}

Tensor index_select(const Tensor& table, const Tensor& index) {
  check_float(table, "index_select");
  AFD_CHECK(table.dim() >= 1, "index_select: table {} has no rows", shape_str(table.shape()));
  check_device(index, table.device(), "index_select", "index");
  AFD_CHECK(index.dtype() == DType::i64 && index.dim() == 1, "index_select: expected i64 index [N], got {}",
            index.str());
  Shape s = table.shape();
  s[0] = index.size(0);
  Tensor out(s, table.dtype(), table.device());
  if (out.numel() == 0) return out;
  count_kernel(Kernel::index);
  be(table).index_select(table, index, out);
  return out;
}

Tensor index_add(const Shape& shape, const Tensor& index, const Tensor& src) {
  check_float(src, "index_add");
  check_device(index, src.device(), "index_add", "index");
  AFD_CHECK(index.dtype() == DType::i64 && index.dim() == 1, "index_add: expected i64 index [N], got {}",
            index.str());
  Shape expect = shape;
  AFD_CHECK(!expect.empty(), "index_add: target shape is 0-d");
  expect[0] = index.size(0);
  check_shape(src, expect, "index_add", "src");
  Tensor out = Tensor::zeros(shape, src.dtype(), src.device());
  if (src.numel() == 0) return out;
  count_kernel(Kernel::index);
  be(src).index_add(out, index, src);
  return out;
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  check_defined(x, "narrow");
  int d = normalize_dim(dim, x.dim(), "narrow");
  AFD_CHECK(start >= 0 && length >= 0 && start + length <= x.size(d),
            "narrow: [{}, {}) out of range for dim {} of {}", start, start + length, d, shape_str(x.shape()));
  Shape s = x.shape();
  s[d] = length;
  Tensor out(s, x.dtype(), x.device());
  if (out.numel() == 0) return out;
  count_kernel(Kernel::copy);
  be(x).copy_slab(x, start, out, 0, d, length);
  return out;
}

// ---- comparisons -----------------------------------------------------------------------------
CloseReport allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  AFD_CHECK(a.shape() == b.shape(), "allclose: shapes {} and {} differ", shape_str(a.shape()),
            shape_str(b.shape()));
  std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  CloseReport r;
  double worst_excess = -1;
  for (size_t i = 0; i < va.size(); ++i) {
    double diff = std::fabs(va[i] - vb[i]);
    double excess = diff - (atol + rtol * std::fabs(vb[i]));
    bool bad = !(excess <= 0);  // NaN counts as a failure
    r.max_abs_diff = std::max(r.max_abs_diff, std::isnan(diff) ? INFINITY : diff);
    if (bad) r.ok = false;
    if (std::isnan(excess) || excess > worst_excess) {
      worst_excess = std::isnan(excess) ? INFINITY : excess;
      r.worst_index = static_cast<int64_t>(i);
      r.worst_a = va[i];
      r.worst_b = vb[i];
    }
  }
  return r;
}

}  // namespace afd::ops
