// Differentiable ops: each forward computes with tensor/ops.h and records a node whose backward
// sits right below, with the derivative in a one-line comment. Backwards written with Var ops are
// themselves differentiable (double backward); the others use kernels directly (registry flag).
#include "autograd/ops.h"

#include <cmath>
#include <limits>

#include "tensor/ops.h"

namespace afd {

namespace {
using Needs = std::vector<bool>;
using Grads = std::vector<Var>;
Var constant(Tensor t) { return Var(std::move(t)); }
const Tensor& T(const Var& v) { return v.data(); }
}  // namespace

// ---- broadcasting binary ops -------------------------------------------------------------------
Var add(const Var& a, const Var& b) {
  // d/da = 1, d/db = 1 (summed back over broadcast dims)
  return record(Op::add, ops::add(T(a), T(b)), {a, b}, [sa = a.shape(), sb = b.shape()](const Var& g, const Var&, const Needs& n) {
    return Grads{n[0] ? sum_to(g, sa) : Var(), n[1] ? sum_to(g, sb) : Var()};
  });
}

Var sub(const Var& a, const Var& b) {
  // d/da = 1, d/db = -1
  return record(Op::sub, ops::sub(T(a), T(b)), {a, b}, [sa = a.shape(), sb = b.shape()](const Var& g, const Var&, const Needs& n) {
    return Grads{n[0] ? sum_to(g, sa) : Var(), n[1] ? sum_to(neg(g), sb) : Var()};
  });
}

Var mul(const Var& a, const Var& b) {
  // d/da = b, d/db = a
  return record(Op::mul, ops::mul(T(a), T(b)), {a, b}, [a, b](const Var& g, const Var&, const Needs& n) {
    return Grads{n[0] ? sum_to(mul(g, b), a.shape()) : Var(), n[1] ? sum_to(mul(g, a), b.shape()) : Var()};
  });
}

Var div(const Var& a, const Var& b) {
  // d/da = 1/b, d/db = -a/b^2
  return record(Op::div, ops::div(T(a), T(b)), {a, b}, [a, b](const Var& g, const Var&, const Needs& n) {
    return Grads{n[0] ? sum_to(div(g, b), a.shape()) : Var(),
                 n[1] ? sum_to(neg(div(mul(g, a), mul(b, b))), b.shape()) : Var()};
  });
}

namespace {
// maximum (prefer = gt) and minimum (prefer = lt): the gradient goes to the chosen input; ties
// split it in halves, as PyTorch does. w = [a prefer b] + [a == b] / 2; da = g w, db = g (1 - w).
Var select_elementwise(Op op, BinaryOp prefer, const Var& a, const Var& b) {
  Tensor wa = ops::add(ops::binary(prefer, T(a), T(b)), ops::mul_scalar(ops::binary(BinaryOp::eq, T(a), T(b)), 0.5));
  Tensor out = op == Op::maximum ? ops::maximum(T(a), T(b)) : ops::minimum(T(a), T(b));
  return record(op, out, {a, b}, [sa = a.shape(), sb = b.shape(), wa](const Var& g, const Var&, const Needs& n) {
    Var w = constant(wa);
    return Grads{n[0] ? sum_to(mul(g, w), sa) : Var(), n[1] ? sum_to(mul(g, affine(w, -1, 1)), sb) : Var()};
  });
}
}  // namespace

Var maximum(const Var& a, const Var& b) { return select_elementwise(Op::maximum, BinaryOp::gt, a, b); }
Var minimum(const Var& a, const Var& b) { return select_elementwise(Op::minimum, BinaryOp::lt, a, b); }

Var where(const Tensor& cond, const Var& a, const Var& b) {
  // d/da = [cond], d/db = [!cond]
  return record(Op::where, ops::where(cond, T(a), T(b)), {a, b},
                [cond, sa = a.shape(), sb = b.shape()](const Var& g, const Var&, const Needs& n) {
                  Var zero = constant(Tensor::zeros({}, g.dtype(), g.device()));
                  return Grads{n[0] ? sum_to(where(cond, g, zero), sa) : Var(),
                               n[1] ? sum_to(where(cond, zero, g), sb) : Var()};
  });
}

// ---- unary ops ---------------------------------------------------------------------------------
Var affine(const Var& x, double scale, double shift) {
  // d/dx (scale x + shift) = scale
  return record(Op::affine, ops::unary(UnaryOp::affine, T(x), scale, shift), {x},
                [scale](const Var& g, const Var&, const Needs&) { return Grads{affine(g, scale, 0)}; });
}
Var add(const Var& x, double s) { return affine(x, 1, s); }
Var mul(const Var& x, double s) { return affine(x, s, 0); }

Var neg(const Var& x) {
  // d/dx (-x) = -1
  return record(Op::neg, ops::neg(T(x)), {x}, [](const Var& g, const Var&, const Needs&) { return Grads{neg(g)}; });
}

Var exp(const Var& x) {
  // d/dx e^x = e^x (the output)
  return record(Op::exp, ops::exp(T(x)), {x}, [](const Var& g, const Var& out, const Needs&) { return Grads{mul(g, out)}; });
}

Var log(const Var& x) {
  // d/dx log x = 1/x
  return record(Op::log, ops::log(T(x)), {x}, [x](const Var& g, const Var&, const Needs&) { return Grads{div(g, x)}; });
}

Var sqrt(const Var& x) {
  // d/dx sqrt(x) = 1 / (2 sqrt(x))
  return record(Op::sqrt, ops::sqrt(T(x)), {x},
                [](const Var& g, const Var& out, const Needs&) { return Grads{div(g, mul(out, 2.0))}; });
}

Var pow(const Var& x, double p) {
  // d/dx x^p = p x^(p-1)
  return record(Op::pow, ops::pow(T(x), p), {x}, [x, p](const Var& g, const Var&, const Needs&) {
    return Grads{mul(g, mul(pow(x, p - 1), p))};
  });
}

Var abs(const Var& x) {
  // d/dx |x| = sign(x) (0 at 0, as PyTorch)
  return record(Op::abs, ops::abs(T(x)), {x}, [x](const Var& g, const Var&, const Needs&) {
    return Grads{mul(g, constant(ops::sign(T(x))))};
  });
}

Var clamp(const Var& x, double lo, double hi) {
  // d/dx clamp(x, lo, hi) = [lo <= x <= hi]
  return record(Op::clamp, ops::clamp(T(x), lo, hi), {x}, [x, lo, hi](const Var& g, const Var&, const Needs&) {
    return Grads{mul(g, constant(ops::unary(UnaryOp::in_range, T(x), lo, hi)))};
  });
}

Var relu(const Var& x) {
  // d/dx max(x, 0) = [x > 0]
  return record(Op::relu, ops::relu(T(x)), {x}, [x](const Var& g, const Var&, const Needs&) {
    return Grads{relu_grad(g, constant(T(x)))};
  });
}

Var add_relu(const Var& a, const Var& b) {
  // y = relu(a + b): da = db = g [y > 0] (y > 0 exactly where a + b > 0), summed back over
  // broadcast dims
  Tensor y = ops::binary(BinaryOp::add_relu, T(a), T(b));
  auto backward = [sa = a.shape(), sb = b.shape()](const Var& g, const Var& out, const Needs& n) {
    Var masked = relu_grad(g, constant(T(out)));
    return Grads{n[0] ? sum_to(masked, sa) : Var(), n[1] ? sum_to(masked, sb) : Var()};
  };
  return record(Op::add_relu, y, {a, b}, backward);
}

Var relu_grad(const Var& g, const Var& x) {
  // g [x > 0] in one pass (no mask tensor); linear in g: d/dg = [x > 0]; x is a constant (the
  // derivative of the step is 0 almost everywhere).
  return record(Op::relu_grad, ops::binary(BinaryOp::relu_grad, T(g), T(x)), {g}, [x](const Var& gg, const Var&, const Needs&) {
    return Grads{relu_grad(gg, x)};
  });
}

Var leaky_relu(const Var& x, double slope) {
  // d/dx = 1 for x > 0, slope otherwise
  return record(Op::leaky_relu, ops::unary(UnaryOp::leaky_relu, T(x), slope), {x},
                [x, slope](const Var& g, const Var&, const Needs&) {
                  return Grads{mul(g, constant(ops::unary(UnaryOp::leaky_slope, T(x), slope)))};
                });
}

Var sigmoid(const Var& x) {
  // d/dx s(x) = s (1 - s)
  return record(Op::sigmoid, ops::sigmoid(T(x)), {x}, [](const Var& g, const Var& out, const Needs&) {
    return Grads{mul(g, mul(out, affine(out, -1, 1)))};
  });
}

Var tanh(const Var& x) {
  // d/dx tanh x = 1 - tanh^2 x
  return record(Op::tanh, ops::tanh(T(x)), {x}, [](const Var& g, const Var& out, const Needs&) {
    return Grads{mul(g, affine(mul(out, out), -1, 1))};
  });
}

Var atanh(const Var& x) {
  // d/dx atanh x = 1 / (1 - x^2)
  return record(Op::atanh, ops::unary(UnaryOp::atanh, T(x)), {x}, [x](const Var& g, const Var&, const Needs&) {
    return Grads{div(g, affine(mul(x, x), -1, 1))};
  });
}

Var softplus(const Var& x, double beta, double threshold) {
  // d/dx log(1 + e^(beta x)) / beta = sigmoid(beta x); 1 where beta x > threshold (linear there)
  return record(Op::softplus, ops::unary(UnaryOp::softplus, T(x), beta, threshold), {x},
                [x, beta, threshold](const Var& g, const Var&, const Needs&) {
                  Tensor linear = ops::unary(UnaryOp::gt_scalar, ops::mul_scalar(T(x), beta), threshold);
                  Var one = constant(Tensor::ones({}, g.dtype(), g.device()));
                  return Grads{mul(g, where(linear, one, sigmoid(mul(x, beta))))};
                });
}

// ---- shape -------------------------------------------------------------------------------------
Var reshape(const Var& x, Shape shape) {
  // a view: the gradient is reshaped back
  Shape in = x.shape();
  return record(Op::reshape, T(x).reshape(std::move(shape)), {x},
                [in](const Var& g, const Var&, const Needs&) { return Grads{reshape(g, in)}; });
}

Var flatten(const Var& x, int64_t start_dim) { return reshape(x, T(x).flatten(start_dim).shape()); }

Var expand(const Var& x, const Shape& shape) {
  // broadcast: the gradient is summed back
  if (x.shape() == shape) return x;
  Shape in = x.shape();
  return record(Op::expand, ops::expand(T(x), shape), {x},
                [in](const Var& g, const Var&, const Needs&) { return Grads{sum_to(g, in)}; });
}

Var sum_to(const Var& x, const Shape& shape) {
  // the adjoint of broadcasting: the gradient is broadcast back
  if (x.shape() == shape) return x;
  Shape in = x.shape();
  return record(Op::sum_to, ops::sum_to(T(x), shape), {x},
                [in](const Var& g, const Var&, const Needs&) { return Grads{expand(g, in)}; });
}

Var cat(const std::vector<Var>& parts, int64_t dim) {
  // each part receives its slab of the gradient
  std::vector<Tensor> tensors;
  for (const Var& p : parts) tensors.push_back(T(p));
  Tensor out = afd::cat(tensors, dim);
  int d = normalize_dim(dim, out.dim(), "cat");
  std::vector<int64_t> sizes;
  for (const Var& p : parts) sizes.push_back(p.size(d));
  return record(Op::cat, out, parts, [d, sizes](const Var& g, const Var&, const Needs& n) {
    Grads grads(sizes.size());
    int64_t start = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (n[i]) grads[i] = constant(ops::narrow(T(g), d, start, sizes[i]));
      start += sizes[i];
    }
    return grads;
  });
}

// ---- reductions --------------------------------------------------------------------------------
Var sum(const Var& x) { return sum_to(x, Shape{}); }

Var sum(const Var& x, const std::vector<int64_t>& dims, bool keepdim) {
  Shape keep = x.shape();
  std::vector<bool> reduced(size_t(x.dim()), false);
  for (int64_t d : dims) {
    const int nd = normalize_dim(d, x.dim(), "sum");
    AFD_CHECK(!reduced[size_t(nd)], "sum: dim {} given twice", d);
    keep[nd] = 1;
    reduced[size_t(nd)] = true;
  }
  Var s = sum_to(x, keep);
  if (keepdim) return s;
  Shape squeezed;  // keep without the reduced dims (a view of s: no second reduction)
  for (size_t i = 0; i < keep.size(); ++i)
    if (!reduced[i]) squeezed.push_back(keep[i]);
  return reshape(s, squeezed);
}

Var mean(const Var& x) {
  AFD_CHECK(x.numel() > 0, "mean of an empty tensor {}", shape_str(x.shape()));
  return mul(sum(x), 1.0 / static_cast<double>(x.numel()));
}

Var mean(const Var& x, const std::vector<int64_t>& dims, bool keepdim) {
  Var s = sum(x, dims, keepdim);
  AFD_CHECK(s.numel() > 0 && x.numel() > 0, "mean of an empty tensor {}", shape_str(x.shape()));
  return mul(s, static_cast<double>(s.numel()) / static_cast<double>(x.numel()));
}

std::pair<Var, Tensor> max(const Var& x, int64_t dim, bool keepdim) {
  // d max / dx = 1 at the (first) arg max, 0 elsewhere
  int d = normalize_dim(dim, x.dim(), "max");
  auto [values, indices] = ops::max(T(x), d, true);
  Shape in = x.shape(), kept = values.shape(), out_shape = values.shape();
  if (!keepdim) out_shape.erase(out_shape.begin() + d);
  Var v = record(Op::max_dim, values.reshape(out_shape), {x}, [in, kept, d, indices](const Var& g, const Var&, const Needs&) {
    return Grads{constant(ops::scatter_add(in, d, indices, T(g).reshape(kept)))};
  });
  return {v, keepdim ? indices : indices.reshape(out_shape)};
}

// ---- linear algebra ----------------------------------------------------------------------------
Var matmul(const Var& a, const Var& b, bool ta, bool tb) {
  // C = op(A) op(B): dA and dB are again products with G (written for each transpose case)
  return record(Op::matmul, ops::matmul(T(a), T(b), ta, tb), {a, b}, [a, b, ta, tb](const Var& g, const Var&, const Needs& n) {
    Var da, db;
    if (!ta && !tb) {  // C = A B:      dA = G B^T,   dB = A^T G
      if (n[0]) da = matmul(g, b, false, true);
      if (n[1]) db = matmul(a, g, true, false);
    } else if (!ta && tb) {  // C = A B^T:  dA = G B,   dB = G^T A
      if (n[0]) da = matmul(g, b, false, false);
      if (n[1]) db = matmul(g, a, true, false);
    } else if (ta && !tb) {  // C = A^T B:  dA = B G^T, dB = A G
      if (n[0]) da = matmul(b, g, false, true);
      if (n[1]) db = matmul(a, g, false, false);
    } else {  // C = A^T B^T:   dA = B^T G^T, dB = G^T A^T
      if (n[0]) da = matmul(b, g, true, true);
      if (n[1]) db = matmul(g, a, true, true);
    }
    return Grads{da, db};
  });
}

Var linear(const Var& x, const Var& w, const Var& bias) {
  AFD_CHECK(x.dim() == 2 && w.dim() == 2, "linear: expected x [N, in] and w [out, in], got {} and {}",
            shape_str(x.shape()), shape_str(w.shape()));
  Var y = matmul(x, w, false, true);
  return bias.defined() ? add(y, bias) : y;
}

// ---- convolution -------------------------------------------------------------------------------
Var conv2d(const Var& x, const Var& w, const Var& bias, int64_t stride, int64_t padding, bool relu) {
  // dx = conv_transpose(dy, w), dw = sum_n dy (x) x_n, dbias = sum dy; each only when needed.
  // With the fused ReLU, dy = g [y > 0] first (y > 0 exactly where conv + bias > 0).
  Conv2dParams p{stride, padding, relu};
  Tensor y = ops::conv2d(T(x), T(w), bias.defined() ? T(bias) : Tensor(), p);
  std::vector<Var> inputs{x, w};
  if (bias.defined()) inputs.push_back(bias);
  return record(Op::conv2d, y, inputs, [x, w, p](const Var& g_out, const Var& out, const Needs& n) {
    const Tensor g = p.relu ? ops::binary(BinaryOp::relu_grad, T(g_out), T(out)) : T(g_out);
    Grads grads(n.size());
    if (n[0]) grads[0] = constant(ops::conv2d_backward_data(g, T(w), x.shape(), p));
    bool want_bias = n.size() > 2 && n[2];
    if (n[1]) {
      auto [dw, db] = ops::conv2d_backward_filter(g, T(x), w.shape(), p, want_bias);
      grads[1] = constant(dw);
      if (want_bias) grads[2] = constant(db);
    } else if (want_bias) {
      grads[2] = constant(ops::sum(g, {0, 2, 3}));
    }
    return grads;
  });
}

// ---- batch norm --------------------------------------------------------------------------------
Var batch_norm(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean,
               Tensor running_var, bool training, double momentum, double eps, Tensor num_batches_tracked,
               bool relu) {
  AFD_CHECK(x.dim() >= 2, "batch_norm: expected x [N, C, ...], got {}", shape_str(x.shape()));
  Shape c{x.size(1)};
  AFD_CHECK(running_mean.shape() == c && running_var.shape() == c,
            "batch_norm: running statistics {} and {} do not match {} channels", shape_str(running_mean.shape()),
            shape_str(running_var.shape()), x.size(1));
  if (training) {
    auto [y, stats] = ops::batch_norm_train(T(x), T(gamma), T(beta), eps, relu);
    // Running statistics: r = (1 - m) r + m s, with the unbiased variance as PyTorch does
    // (var count / (count - 1)); one fused pass, and the batch counted.
    double count = static_cast<double>(x.numel() / x.size(1));
    ops::update_running_stats_(running_mean, running_var, num_batches_tracked, stats.mean, stats.var, momentum,
                               momentum * count / (count - 1));
    // the fused batch-statistics backward (tensor/cpu/norm_pool.cpp gives the formula); with the
    // fused ReLU the incoming gradient is first masked by [y > 0]
    auto backward = [x, gamma, stats, relu](const Var& g_out, const Var& out, const Needs& n) {
      const Tensor g = relu ? ops::binary(BinaryOp::relu_grad, T(g_out), T(out)) : T(g_out);
      auto r = ops::batch_norm_backward(g, T(x), T(gamma), stats, n[0], n[1], n[2]);
      return Grads{n[0] ? constant(r.dx) : Var(), n[1] ? constant(r.dgamma) : Var(), n[2] ? constant(r.dbeta) : Var()};
    };
    return record(Op::batch_norm, y, {x, gamma, beta}, backward);
  }
  if (relu) return afd::relu(batch_norm(x, gamma, beta, running_mean, running_var, false, momentum, eps));
  // Eval: y = (x - mean) invstd gamma + beta is affine in x: dx = g gamma invstd,
  // dgamma = sum g xhat, dbeta = sum g (sums over every dim but 1).
  Tensor invstd = ops::reciprocal(ops::sqrt(ops::add_scalar(running_var, eps)));
  Tensor y = ops::batch_norm_apply(T(x), T(gamma), T(beta), running_mean, invstd);
  return record(Op::batch_norm_eval, y, {x, gamma, beta},
                [x, gamma, running_mean, invstd](const Var& g, const Var&, const Needs& n) {
                  Shape bshape(x.dim(), 1);
                  bshape[1] = x.size(1);
                  Var inv = constant(invstd.reshape(bshape));
                  Grads grads(3);
                  if (n[0]) grads[0] = mul(g, mul(reshape(gamma, bshape), inv));
                  if (n[1]) {
                    Var xhat = mul(sub(x, constant(running_mean.reshape(bshape))), inv);
                    grads[1] = reshape(sum_to(mul(g, xhat), bshape), {x.size(1)});
                  }
                  if (n[2]) grads[2] = reshape(sum_to(g, bshape), {x.size(1)});
                  return grads;
                });
}

std::pair<Var, Var> bn_fold(const Var& w, const Var& conv_bias, const Var& gamma, const Var& beta,
                            const Tensor& running_mean, const Tensor& running_var, double eps) {
  ops::BnFold f = ops::bn_fold(T(w), conv_bias.defined() ? T(conv_bias) : Tensor(), T(gamma), T(beta), running_mean,
                               running_var, eps);
  Var inv = constant(f.invstd);  // 1 / sqrt(running_var + eps) [K]
  Shape per_k(size_t(w.dim()), 1);  // [K, 1, 1, 1]: a per-channel value broadcast over w
  per_k[0] = w.size(0);
  // weight = a w: dw = g a; dgamma = invstd sum_{c,r,s} g w
  Var weight = record(Op::bn_fold_weight, f.weight, {w, gamma}, [w, gamma, inv, per_k](const Var& g, const Var&,
                                                                                        const Needs& n) {
    Grads grads(2);
    if (n[0]) grads[0] = mul(g, reshape(mul(gamma, inv), per_k));
    if (n[1]) grads[1] = mul(reshape(sum_to(mul(g, w), per_k), {w.size(0)}), inv);
    return grads;
  });
  // shift = beta + a (b - mean): dgamma = g invstd (b - mean); dbeta = g; db = g a
  std::vector<Var> inputs{gamma, beta};
  if (conv_bias.defined()) inputs.push_back(conv_bias);
  auto shift_backward = [conv_bias, gamma, running_mean, inv](const Var& g, const Var&, const Needs& n) {
    Var mean = constant(running_mean);
    Grads grads(n.size());
    if (n[0]) grads[0] = mul(mul(g, conv_bias.defined() ? sub(conv_bias, mean) : neg(mean)), inv);
    if (n[1]) grads[1] = g;
    if (n.size() > 2 && n[2]) grads[2] = mul(g, mul(gamma, inv));
    return grads;
  };
  return {weight, record(Op::bn_fold_shift, f.shift, inputs, shift_backward)};
}

// ---- data parallelism ------------------------------------------------------------------------
Var all_reduce_sum(const Var& x, const ReplicaSum& sum_over_replicas) {
  // y = sum_r x_r; dL/dx_r = sum_q dL_q/dy (the same sum of the replicas' incoming gradients)
  Tensor y = T(x).clone();
  sum_over_replicas(y);
  return record(Op::all_reduce_sum, y, {x}, [sum_over_replicas](const Var& g, const Var&, const Needs&) {
    return Grads{all_reduce_sum(g, sum_over_replicas)};
  });
}

Var sync_batch_norm(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean, Tensor running_var,
                    const ReplicaSum& sum_over_replicas, double momentum, double eps, Tensor num_batches_tracked) {
  AFD_CHECK(x.dim() >= 2, "sync_batch_norm: expected x [N, C, ...], got {}", shape_str(x.shape()));
  const int64_t C = x.size(1);
  AFD_CHECK(running_mean.shape() == Shape{C} && running_var.shape() == Shape{C},
            "sync_batch_norm: running statistics {} and {} do not match {} channels", shape_str(running_mean.shape()),
            shape_str(running_var.shape()), C);
  std::vector<int64_t> dims{0};  // every dim but the channels
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  Shape bshape(size_t(x.dim()), 1);  // [1, C, 1, 1]: broadcasts a per-channel value over x
  bshape[1] = C;
  const double m = double(x.numel() / C);

  // Pass 1: one all-reduce of [2, C] = [sum x; m] gives S1 and M on every replica. Row 0 is taken
  // back out by a mask (a differentiable sum); M is a constant.
  Var local1 = cat({reshape(sum(x, dims), {1, C}), constant(Tensor::full({1, C}, m, x.dtype(), x.device()))}, 0);
  Var global1 = all_reduce_sum(local1, sum_over_replicas);
  Tensor row0 = Tensor::from_vector<double>({1, 0}, {2, 1}).to(x.dtype()).to(x.device());
  Var s1 = sum(mul(global1, constant(row0)), {0});                            // [C]
  const Tensor count = ops::narrow(T(global1), 0, 1, 1).reshape({C});         // M, [C]
  Var mu = div(s1, constant(count));                                          // [C]
  // Pass 2: the centred sum of squares (no cancellation when |mu| >> std).
  Var centred = sub(x, reshape(mu, bshape));
  Var s2 = all_reduce_sum(sum(mul(centred, centred), dims), sum_over_replicas);  // [C]
  Var var = div(s2, constant(count));                                         // biased, [C]
  Var invstd = pow(add(var, eps), -0.5);
  Var y = add(mul(centred, reshape(mul(invstd, gamma), bshape)), reshape(beta, bshape));

  // Running statistics as batch_norm: r = (1 - m) r + m s, the variance unbiased: var M / (M - 1).
  const Tensor unbiased = ops::div(ops::mul(T(var), count), ops::add_scalar(count, -1.0));
  ops::update_running_stats_(running_mean, running_var, num_batches_tracked, T(mu), unbiased, momentum, momentum);
  return y;
}

// ---- pooling -----------------------------------------------------------------------------------
Var max_pool2d(const Var& x, int64_t kernel, int64_t stride, int64_t padding) {
  // the gradient goes to the position of each window's maximum
  auto [y, indices] = ops::max_pool2d(T(x), {kernel, stride, padding});
  Shape in = x.shape();
  return record(Op::max_pool2d, y, {x}, [in, indices](const Var& g, const Var&, const Needs&) {
    return Grads{constant(ops::max_pool2d_backward(T(g), indices, in))};
  });
}

Var avg_pool2d(const Var& x, int64_t kernel, int64_t stride, int64_t padding) {
  // each input in a window receives g / kernel^2
  Pool2dParams p{kernel, stride, padding};
  Shape in = x.shape();
  return record(Op::avg_pool2d, ops::avg_pool2d(T(x), p), {x}, [in, p](const Var& g, const Var&, const Needs&) {
    return Grads{constant(ops::avg_pool2d_backward(T(g), in, p))};
  });
}

Var global_avg_pool(const Var& x) {
  AFD_CHECK(x.dim() == 4, "global_avg_pool: expected x [N, C, H, W], got {}", shape_str(x.shape()));
  return mean(x, {2, 3});
}

Var l2_normalize(const Var& x, int64_t dim, double eps) {
  // x / max(||x||, eps), written as x / sqrt(max(sum x^2, eps^2)) so that an all-zero row gets a
  // zero (not NaN) gradient through the norm.
  Var sq = sum(mul(x, x), {dim}, true);
  return div(x, sqrt(clamp(sq, eps * eps, std::numeric_limits<double>::infinity())));
}

Var embedding(const Var& table, const Tensor& index) {
  // rows picked by index; the gradient is added back into those rows
  Shape in = table.shape();
  return record(Op::index_select, ops::index_select(T(table), index), {table},
                [in, index](const Var& g, const Var&, const Needs&) {
                  return Grads{constant(ops::index_add(in, index, T(g)))};
                });
}

Var gather(const Var& x, int64_t dim, const Tensor& index) {
  // the adjoint of gather is scatter-add
  int d = normalize_dim(dim, x.dim(), "gather");
  Shape in = x.shape();
  return record(Op::gather, ops::gather(T(x), d, index), {x}, [in, d, index](const Var& g, const Var&, const Needs&) {
    return Grads{constant(ops::scatter_add(in, d, index, T(g)))};
  });
}

// ---- softmax and losses ------------------------------------------------------------------------
Var log_softmax(const Var& x, int64_t dim) {
  // y = x - logsumexp(x): dx = g - softmax(x) sum(g)
  int d = normalize_dim(dim, x.dim(), "log_softmax");
  return record(Op::log_softmax, ops::log_softmax(T(x), d), {x}, [d](const Var& g, const Var& out, const Needs&) {
    return Grads{sub(g, mul(exp(out), sum(g, {d}, true)))};
  });
}

Var softmax(const Var& x, int64_t dim) {
  // y = softmax(x): dx = y (g - sum(g y))
  int d = normalize_dim(dim, x.dim(), "softmax");
  return record(Op::softmax, ops::softmax(T(x), d), {x}, [d](const Var& g, const Var& out, const Needs&) {
    return Grads{mul(out, sub(g, sum(mul(g, out), {d}, true)))};
  });
}

namespace {
Var reduce(const Var& per_sample, Reduction r) {
  switch (r) {
    case Reduction::none: return per_sample;
    case Reduction::sum: return sum(per_sample);
    case Reduction::mean: return mean(per_sample);
  }
  AFD_FAIL("unknown reduction {}", static_cast<int>(r));
}
}  // namespace

Var cross_entropy(const Var& logits, const Tensor& labels, Reduction reduction) {
  // loss_n = logsumexp(z_n) - z_n[y_n]: dz_n = g_n (softmax(z_n) - onehot(y_n))
  Tensor per = ops::cross_entropy(T(logits), labels);
  Var loss = record(Op::cross_entropy, per, {logits}, [logits, labels](const Var& g, const Var&, const Needs&) {
    return Grads{cross_entropy_grad(logits, labels, g)};
  });
  return reduce(loss, reduction);
}

Var cross_entropy_grad(const Var& logits, const Tensor& labels, const Var& g) {
  // dz_nc = g_n (s_nc - t_nc), s = softmax(z), t = onehot(y): one kernel forward. Its own
  // derivatives (double backward): d/dg_n = sum_c gg_nc (s_nc - t_nc) and
  // d/dz_nj = g_n s_nj (gg_nj - sum_c gg_nc s_nc), the softmax Jacobian applied to g_n gg_n.
  Tensor dz = ops::cross_entropy_backward(T(logits), labels, T(g));
  auto backward = [logits, labels, g](const Var& gg, const Var&, const Needs& n) {
    Var s = softmax(logits, 1);
    Grads grads(2);
    if (n[0]) grads[0] = mul(mul(s, sub(gg, sum(mul(gg, s), {1}, true))), reshape(g, {logits.size(0), 1}));
    if (n[1]) {
      Var target = constant(ops::one_hot(labels, logits.size(1), logits.dtype()));
      grads[1] = sum(mul(gg, sub(s, target)), {1});
    }
    return grads;
  };
  return record(Op::cross_entropy_grad, dz, {logits, g}, backward);
}

Var kl_div(const Var& p_logits, const Var& q_logits, Reduction reduction) {
  // KL(p || q) = sum_c p_c (log p_c - log q_c), p = softmax(p_logits), q = softmax(q_logits)
  AFD_CHECK(p_logits.shape() == q_logits.shape() && p_logits.dim() == 2,
            "kl_div: expected two [N, K] logits of one shape, got {} and {}", shape_str(p_logits.shape()),
            shape_str(q_logits.shape()));
  Var log_p = log_softmax(p_logits, 1);
  Var per = sum(mul(exp(log_p), sub(log_p, log_softmax(q_logits, 1))), {1});
  return reduce(per, reduction);
}

}  // namespace afd
