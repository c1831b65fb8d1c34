// Forward results of the CPU kernels against naive reference loops, and op-level errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "tests/support/checks.h"
#include "tensor/cpu/cpu_backend.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

using namespace afd;
using afd::testing::expect_close;
using afd::testing::expect_error;

namespace {
Tensor randt(const Shape& s, uint64_t seed, DType dt = DType::f64) {
  Generator g(seed);
  return randn(s, g, dt);
}

// Naive direct convolution, the definition.
Tensor conv_reference(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride, int64_t pad) {
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), K = w.size(0), R = w.size(2), S = w.size(3);
  int64_t P = (H + 2 * pad - R) / stride + 1, Q = (W + 2 * pad - S) / stride + 1;
  std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), out(N * K * P * Q);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          double s = b.defined() ? b.to_vector<double>()[k] : 0.0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t r = 0; r < R; ++r)
              for (int64_t t = 0; t < S; ++t) {
                int64_t h = p * stride - pad + r, ww = q * stride - pad + t;
                if (h >= 0 && h < H && ww >= 0 && ww < W)
                  s += xv[((n * C + c) * H + h) * W + ww] * wv[((k * C + c) * R + r) * S + t];
              }
          out[((n * K + k) * P + p) * Q + q] = s;
        }
  return Tensor::from_vector(out, {N, K, P, Q});
}
}  // namespace

TEST(Ops, ElementwiseValues) {
  Tensor x = Tensor::from_vector<double>({-2, -0.5, 0, 0.5, 2}, {5});
  EXPECT_EQ(ops::relu(x).to_vector<double>(), (std::vector<double>{0, 0, 0, 0.5, 2}));
  EXPECT_EQ(ops::clamp(x, -1, 1).to_vector<double>(), (std::vector<double>{-1, -0.5, 0, 0.5, 1}));
  EXPECT_EQ(ops::sign(x).to_vector<double>(), (std::vector<double>{-1, -1, 0, 1, 1}));
  EXPECT_EQ(ops::unary(UnaryOp::leaky_relu, x, 0.1).to_vector<double>(), (std::vector<double>{-0.2, -0.05, 0, 0.5, 2}));
  std::vector<double> sp = ops::unary(UnaryOp::softplus, x, 1, 20).to_vector<double>();
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(sp[i], std::log1p(std::exp(x.to_vector<double>()[i])), 1e-15);
  // Far above the threshold softplus is the identity; far below it does not underflow to -inf.
  Tensor big = Tensor::from_vector<double>({50, -800}, {2});
  EXPECT_EQ(ops::unary(UnaryOp::softplus, big, 1, 20).at<double>({0}), 50);
  EXPECT_EQ(ops::unary(UnaryOp::softplus, big, 1, 20).at<double>({1}), 0);
  EXPECT_NEAR(ops::sigmoid(x).at<double>({4}), 1 / (1 + std::exp(-2.0)), 1e-15);
  EXPECT_EQ(ops::pow(x, 2).to_vector<double>(), (std::vector<double>{4, 0.25, 0, 0.25, 4}));
  // A NaN must survive relu (as in PyTorch): mapping it to 0 would hide a diverged network.
  Tensor nan = Tensor::from_vector<double>({std::nan(""), -1}, {2});
  EXPECT_TRUE(std::isnan(ops::relu(nan).at<double>({0})));
  EXPECT_TRUE(std::isnan(ops::relu(nan.to(DType::f32)).to(DType::f64).at<double>({0})));
  // ReLU's backward selects: g where x > 0, and 0 elsewhere even for a NaN or Inf g (g * [x > 0]
  // would give NaN there; PyTorch's threshold_backward gives 0).
  Tensor g = Tensor::from_vector<double>({NAN, INFINITY, 3, 4, 5}, {5});
  EXPECT_EQ(ops::binary(BinaryOp::relu_grad, g, x).to_vector<double>(), (std::vector<double>{0, 0, 0, 4, 5}));
  expect_error([&] { ops::binary(BinaryOp::relu_grad, g, Tensor::zeros({3}, DType::f64)); }, "relu_grad: shapes [5] and [3]");
}

TEST(Ops, BroadcastingPatterns) {
  Tensor a = randt({2, 3, 4, 5}, 1);
  std::vector<double> av = a.to_vector<double>();
  for (Shape bs : std::vector<Shape>{{1, 3, 1, 1}, {5}, {4, 1}, {2, 1, 4, 1}, {}, {1, 1, 1, 5}}) {
    Tensor b = randt(bs, 2);
    std::vector<double> bv = b.to_vector<double>();
    Shape full(4 - bs.size(), 1);
    full.insert(full.end(), bs.begin(), bs.end());
    std::vector<double> out = ops::sub(a, b).to_vector<double>();
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t h = 0; h < 4; ++h)
          for (int64_t w = 0; w < 5; ++w) {
            int64_t i = ((n * 3 + c) * 4 + h) * 5 + w;
            int64_t j = (((full[0] > 1 ? n : 0) * full[1] + (full[1] > 1 ? c : 0)) * full[2] + (full[2] > 1 ? h : 0)) * full[3] +
                        (full[3] > 1 ? w : 0);
            ASSERT_EQ(out[i], av[i] - bv[j]) << shape_str(bs);
          }
    // sum_to is the adjoint: summing the broadcast of ones counts the copies.
    Tensor counts = ops::sum_to(Tensor::ones({2, 3, 4, 5}, DType::f64), bs);
    EXPECT_EQ(counts.shape(), bs);
    for (double v : counts.to_vector<double>()) EXPECT_EQ(v, 120.0 / std::max<int64_t>(shape_numel(bs), 1));
  }
  expect_error([&] { ops::add(Tensor::zeros({2, 3}), Tensor::zeros({4})); }, "add: shapes [2, 3] and [4] cannot broadcast");
  expect_error([&] { ops::mul(Tensor::zeros({2}), Tensor::zeros({2}, DType::f64)); },
               "mul: dtypes f32 and f64 differ (shapes [2] and [2])");
}

TEST(Ops, Reductions) {
  Tensor x = Tensor::from_vector<double>({1, 5, 3, 4, 2, 6}, {2, 3});
  EXPECT_EQ(ops::sum(x).item<double>(), 21);
  EXPECT_EQ(ops::sum(x, {0}).to_vector<double>(), (std::vector<double>{5, 7, 9}));
  EXPECT_EQ(ops::sum(x, {1}, true).shape(), (Shape{2, 1}));
  EXPECT_EQ(ops::sum(x, {-1}).to_vector<double>(), (std::vector<double>{9, 12}));
  EXPECT_EQ(ops::mean(x, {0, 1}).item<double>(), 3.5);
  auto [v, i] = ops::max(x, 1);
  EXPECT_EQ(v.to_vector<double>(), (std::vector<double>{5, 6}));
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(ops::argmax(x, 0).to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 1}));
  // Large reductions run in parallel; the result is deterministic and accurate (double accumulation).
  Tensor big = Tensor::full({1 << 20}, 0.1, DType::f32);
  EXPECT_NEAR(ops::sum(big).item<float>(), 0.1 * (1 << 20), 0.5);
  EXPECT_EQ(ops::sum(big).item<float>(), ops::sum(big).item<float>());
  expect_error([&] { ops::sum(x, {2}); }, "sum: dim 2 is out of range for a tensor of rank 2");
}

TEST(Ops, MatmulAllTransposes) {
  Tensor a = randt({4, 3}, 3), b = randt({3, 5}, 4);
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>(), ref(20, 0.0);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 5; ++j)
      for (int k = 0; k < 3; ++k) ref[i * 5 + j] += av[i * 3 + k] * bv[k * 5 + j];
  Tensor expected = Tensor::from_vector(ref, {4, 5});
  Tensor at = Tensor::from_vector(std::vector<double>(12), {3, 4}), bt = Tensor::from_vector(std::vector<double>(15), {5, 3});
  for (int i = 0; i < 4; ++i)
    for (int k = 0; k < 3; ++k) at.data<double>()[k * 4 + i] = av[i * 3 + k];
  for (int k = 0; k < 3; ++k)
    for (int j = 0; j < 5; ++j) bt.data<double>()[j * 3 + k] = bv[k * 5 + j];
  expect_close(ops::matmul(a, b), expected, 1e-14, 1e-14);
  expect_close(ops::matmul(at, b, true, false), expected, 1e-14, 1e-14);
  expect_close(ops::matmul(a, bt, false, true), expected, 1e-14, 1e-14);
  expect_close(ops::matmul(at, bt, true, true), expected, 1e-14, 1e-14);
  // Big enough to split rows across threads.
  Tensor big_a = randt({256, 128}, 5, DType::f32), big_b = randt({128, 64}, 6, DType::f32);
  Tensor split = ops::matmul(big_a, big_b);
  Tensor ref64 = ops::matmul(big_a.to(DType::f64), big_b.to(DType::f64));
  expect_close(split, ref64, 1e-4, 1e-4);
  expect_error([&] { ops::matmul(a, a); }, "matmul: inner sizes differ: [4, 3] and [4, 3]");
}

TEST(Ops, Conv2dMatchesDirectConvolution) {
  struct Case {
    Shape x, w;
    int64_t stride, pad;
    bool bias;
  };
  for (const Case& c : std::vector<Case>{{{2, 3, 7, 6}, {4, 3, 3, 3}, 1, 1, true},
                                        {{2, 3, 7, 6}, {4, 3, 3, 3}, 2, 1, false},
                                        {{1, 2, 5, 5}, {3, 2, 1, 1}, 1, 0, true},   // pointwise path
                                        {{3, 4, 8, 8}, {2, 4, 1, 1}, 2, 0, false},  // strided 1x1 shortcut
                                        {{1, 1, 4, 4}, {1, 1, 5, 5}, 1, 2, true}}) {
    Tensor x = randt(c.x, 10), w = randt(c.w, 11), b = c.bias ? randt({c.w[0]}, 12) : Tensor();
    Tensor y = ops::conv2d(x, w, b, {c.stride, c.pad});
    expect_close(y, conv_reference(x, w, b, c.stride, c.pad), 1e-12, 1e-12);
    // The f32 path agrees with the f64 one to f32 precision.
    Tensor y32 = ops::conv2d(x.to(DType::f32), w.to(DType::f32), c.bias ? b.to(DType::f32) : Tensor(), {c.stride, c.pad});
    expect_close(y32, y, 1e-5, 1e-5);
  }
  // An empty batch: an empty output, and zero filter and bias gradients (without a backend call).
  Tensor x0 = Tensor::zeros({0, 3, 5, 5}), w0 = randt({2, 3, 3, 3}, 13).to(DType::f32);
  EXPECT_EQ(ops::conv2d(x0, w0, Tensor(), {1, 1}).shape(), (Shape{0, 2, 5, 5}));
  auto [dw0, db0] = ops::conv2d_backward_filter(Tensor::zeros({0, 2, 5, 5}), x0, w0.shape(), {1, 1}, true);
  EXPECT_EQ(dw0.to_vector<float>(), std::vector<float>(54, 0.0f));
  EXPECT_EQ(db0.to_vector<float>(), std::vector<float>(2, 0.0f));
  expect_error([&] { ops::conv2d(Tensor::zeros({1, 3, 5, 5}), Tensor::zeros({2, 4, 3, 3}), Tensor(), {}); },
               "conv2d: input has 3 channels but weight [2, 4, 3, 3] expects 4");
  expect_error([&] { ops::conv2d(Tensor::zeros({3, 5, 5}), Tensor::zeros({2, 3, 3, 3}), Tensor(), {}); },
               "expected x [N, C, H, W] and w [K, C, R, S], got [3, 5, 5] and [2, 3, 3, 3]");
}

TEST(Ops, BatchNormTrainAndApply) {
  Tensor x = randt({4, 3, 2, 5}, 20), gamma = randt({3}, 21), beta = randt({3}, 22);
  auto [y, stats] = ops::batch_norm_train(x, gamma, beta, 1e-5);
  std::vector<double> xv = x.to_vector<double>(), yv = y.to_vector<double>();
  for (int64_t c = 0; c < 3; ++c) {
    double s = 0, ss = 0;
    for (int64_t n = 0; n < 4; ++n)
      for (int64_t m = 0; m < 10; ++m) s += xv[(n * 3 + c) * 10 + m];
    double mu = s / 40;
    for (int64_t n = 0; n < 4; ++n)
      for (int64_t m = 0; m < 10; ++m) ss += std::pow(xv[(n * 3 + c) * 10 + m] - mu, 2);
    double var = ss / 40;
    EXPECT_NEAR(stats.mean.at<double>({c}), mu, 1e-14);
    EXPECT_NEAR(stats.var.at<double>({c}), var, 1e-14);
    EXPECT_NEAR(stats.invstd.at<double>({c}), 1 / std::sqrt(var + 1e-5), 1e-12);
    for (int64_t n = 0; n < 4; ++n)
      for (int64_t m = 0; m < 10; ++m) {
        int64_t i = (n * 3 + c) * 10 + m;
        EXPECT_NEAR(yv[i], (xv[i] - mu) / std::sqrt(var + 1e-5) * gamma.at<double>({c}) + beta.at<double>({c}), 1e-12);
      }
  }
  // Apply with the batch statistics reproduces the train-mode output.
  expect_close(ops::batch_norm_apply(x, gamma, beta, stats.mean, stats.invstd), y, 1e-12, 1e-12);
  expect_error([&] { ops::batch_norm_train(x, Tensor::ones({4}, DType::f64), beta, 1e-5); },
               "batch_norm: gamma has shape [4], expected [3]");
  expect_error([&] { ops::batch_norm_train(Tensor::zeros({1, 3}, DType::f64), gamma, beta, 1e-5); },
               "more than one value per channel");
}

TEST(Ops, Pooling) {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4,  //
                                          5, 6, 7, 8,  //
                                          9, 10, 11, 12,  //
                                          13, 14, 15, 16},
                                         {1, 1, 4, 4});
  auto [m, idx] = ops::max_pool2d(x, {2, 2, 0});
  EXPECT_EQ(m.to_vector<double>(), (std::vector<double>{6, 8, 14, 16}));
  EXPECT_EQ(idx.to_vector<int64_t>(), (std::vector<int64_t>{5, 7, 13, 15}));
  EXPECT_EQ(ops::avg_pool2d(x, {2, 2, 0}).to_vector<double>(), (std::vector<double>{3.5, 5.5, 11.5, 13.5}));
  // Padding: -inf for max, zeros counted in the divisor for average (count_include_pad).
  auto [mp, ip] = ops::max_pool2d(x, {3, 2, 1});
  EXPECT_EQ(mp.to_vector<double>(), (std::vector<double>{6, 8, 14, 16}));
  EXPECT_NEAR(ops::avg_pool2d(x, {3, 2, 1}).at<double>({0, 0, 0, 0}), (1 + 2 + 5 + 6) / 9.0, 1e-15);
  Tensor back = ops::max_pool2d_backward(Tensor::ones({1, 1, 2, 2}, DType::f64), idx, x.shape());
  EXPECT_EQ(ops::sum(back).item<double>(), 4);
  EXPECT_EQ(back.at<double>({0, 0, 1, 1}), 1);
  expect_error([&] { ops::max_pool2d(Tensor::zeros({1, 1, 2, 2}), {3, 1, 0}); }, "kernel 3 larger than padded input");
}

TEST(Ops, SoftmaxAndCrossEntropy) {
  Tensor z = Tensor::from_vector<double>({1, 2, 3, 1000, 1000, -1000}, {2, 3});
  std::vector<double> p = ops::softmax(z, 1).to_vector<double>();
  double e = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(p[0], std::exp(1.0) / e, 1e-15);
  EXPECT_NEAR(p[3], 0.5, 1e-15);  // stable for large logits
  EXPECT_EQ(p[5], 0.0);
  std::vector<double> lp = ops::log_softmax(z, 1).to_vector<double>();
  EXPECT_NEAR(lp[2], 3 - std::log(e), 1e-14);
  EXPECT_NEAR(lp[4], -std::log(2.0), 1e-14);
  // softmax over dim 0 of the transpose equals softmax over dim 1.
  Tensor zt = Tensor::from_vector<double>({1, 1000, 2, 1000, 3, -1000}, {3, 2});
  EXPECT_NEAR(ops::softmax(zt, 0).at<double>({0, 0}), p[0], 1e-15);
  Tensor labels = Tensor::from_vector<int64_t>({2, 0}, {2});
  std::vector<double> ce = ops::cross_entropy(z, labels).to_vector<double>();
  EXPECT_NEAR(ce[0], -lp[2], 1e-14);
  EXPECT_NEAR(ce[1], -lp[3], 1e-12);
  expect_error([&] { ops::cross_entropy(z, Tensor::from_vector<int64_t>({3, 0}, {2})); },
               "cross_entropy (label): index 3 at position 0 is out of range [0, 3)");
  expect_error([&] { ops::cross_entropy(z, Tensor::from_vector<double>({1, 0}, {2})); }, "labels must be i64");
  EXPECT_EQ(ops::one_hot(labels, 3, DType::f32).to_vector<float>(), (std::vector<float>{0, 0, 1, 1, 0, 0}));
}

// The fused cross-entropy gradient against the separate ops autograd used before (softmax, the
// one-hot row subtracted, times g per row): the same bits, f32 and f64, large and equal logits,
// g of 0, -0 and mixed signs; and its argument checks.
TEST(Ops, CrossEntropyBackwardEqualsTheSeparateOpsBitForBit) {
  Generator gen(12);
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor z = ops::mul_scalar(randn({9, 7}, gen, DType::f64), 4.0);
    z.data<double>()[7] = z.data<double>()[8] = 90;  // row 1: two large equal logits
    Tensor g = randn({9}, gen, DType::f64);
    g.data<double>()[2] = 0, g.data<double>()[3] = -0.0;
    z = z.to(dt), g = g.to(dt);
    const Tensor labels = Tensor::from_vector<int64_t>({0, 1, 6, 3, 2, 5, 4, 1, 0}, {9});
    const Tensor want = ops::mul(ops::sub(ops::softmax(z, 1), ops::one_hot(labels, 7, dt)), g.reshape({9, 1}));
    const Tensor got = ops::cross_entropy_backward(z, labels, g);
    EXPECT_EQ(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()), 0) << dtype_name(dt);
  }
  const Tensor z = Tensor::zeros({2, 3}), labels = Tensor::from_vector<int64_t>({2, 0}, {2});
  expect_error([&] { ops::cross_entropy_backward(z, labels, Tensor::zeros({3})); },
               "cross_entropy_backward: the gradient of the per-sample losses has shape [3], expected [2]");
  expect_error([&] { ops::cross_entropy_backward(z, Tensor::from_vector<int64_t>({2, 3}, {2}), Tensor::zeros({2})); },
               "cross_entropy (label): index 3 at position 1 is out of range [0, 3)");
}

// expand broadcasts into a larger shape in one launch, every bit kept (-0, NaN, infinities).
TEST(Ops, ExpandIsOnePassAndKeepsEveryBit) {
  const Tensor x = Tensor::from_vector<double>({-0.0, NAN, -INFINITY}, {3, 1});
  const int64_t before = kernel_calls(Kernel::elementwise);
  const Tensor y = ops::expand(x, {2, 3, 2});
  EXPECT_EQ(kernel_calls(Kernel::elementwise), before + 1);
  ASSERT_EQ(y.shape(), (Shape{2, 3, 2}));
  for (int64_t i = 0; i < y.numel(); ++i) {
    const double want = x.data<double>()[(i / 2) % 3], got = y.data<double>()[i];
    EXPECT_EQ(std::memcmp(&got, &want, sizeof got), 0) << "element " << i;
  }
  EXPECT_EQ(ops::expand(x, {3, 1}).raw_data(), x.raw_data());  // the same shape: x itself
  expect_error([&] { ops::expand(x, {2, 2}); }, "expand");
}

TEST(Ops, Indexing) {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor rows = ops::index_select(x, Tensor::from_vector<int64_t>({2, 0, 2}, {3}));
  EXPECT_EQ(rows.to_vector<double>(), (std::vector<double>{5, 6, 1, 2, 5, 6}));
  Tensor added = ops::index_add({3, 2}, Tensor::from_vector<int64_t>({2, 0, 2}, {3}), rows);
  EXPECT_EQ(added.to_vector<double>(), (std::vector<double>{1, 2, 0, 0, 10, 12}));
  Tensor idx = Tensor::from_vector<int64_t>({1, 0, 0}, {3, 1});
  EXPECT_EQ(ops::gather(x, 1, idx).to_vector<double>(), (std::vector<double>{2, 3, 5}));
  EXPECT_EQ(ops::scatter_add({3, 2}, 1, idx, Tensor::ones({3, 1}, DType::f64)).to_vector<double>(),
            (std::vector<double>{0, 1, 1, 0, 1, 0}));
  EXPECT_EQ(ops::narrow(x, 1, 1, 1).to_vector<double>(), (std::vector<double>{2, 4, 6}));
  expect_error([&] { ops::index_select(x, Tensor::from_vector<int64_t>({3}, {1})); },
               "index_select: index 3 at position 0 is out of range [0, 3)");
}

namespace {
double dot(const Tensor& a, const Tensor& b) { return ops::sum(ops::mul(a, b)).item<double>(); }
}  // namespace

// Shapes large enough for the parallel loops and the fast paths (per-thread scratch, the 2x2
// max-pool kernel, vectorised batch-norm sums), checked against definitions.
TEST(Ops, LargeShapesTakeTheParallelAndFastPaths) {
  // Convolution: forward against the direct loop; both backwards by the adjoint identities
  // <conv(x, w), dy> = <x, backward_data(dy, w)> = <w, backward_filter(dy, x)>.
  for (Conv2dParams p : {Conv2dParams{1, 1}, Conv2dParams{2, 1}, Conv2dParams{1, 0}}) {
    Tensor x = randt({16, 3, 12, 12}, 70), w = randt({8, 3, 3, 3}, 71), b = randt({8}, 72);
    Tensor y = ops::conv2d(x, w, b, p);
    expect_close(y, conv_reference(x, w, b, p.stride, p.padding), 1e-12, 1e-12);
    Tensor dy = randt(y.shape(), 73);
    Tensor y_nobias = ops::conv2d(x, w, Tensor(), p);
    double lhs = dot(y_nobias, dy);
    EXPECT_NEAR(dot(x, ops::conv2d_backward_data(dy, w, x.shape(), p)), lhs, 1e-9 * std::fabs(lhs));
    auto [dw, db] = ops::conv2d_backward_filter(dy, x, w.shape(), p, true);
    EXPECT_NEAR(dot(w, dw), lhs, 1e-9 * std::fabs(lhs));
    expect_close(db, ops::sum(dy, {0, 2, 3}), 1e-12, 1e-12);
  }
  // Max pooling 2x2: against the definition, with a NaN in one plane (NaN wins its window).
  Tensor x = randt({8, 8, 24, 24}, 74);
  x.data<double>()[3 * 24 * 24 + 5 * 24 + 7] = NAN;  // plane 3, row 5, column 7
  auto [m, idx] = ops::max_pool2d(x, {2, 2, 0});
  std::vector<double> xv = x.to_vector<double>(), mv = m.to_vector<double>();
  std::vector<int64_t> iv = idx.to_vector<int64_t>();
  for (int64_t plane = 0; plane < 64; ++plane)
    for (int64_t i = 0; i < 12; ++i)
      for (int64_t j = 0; j < 12; ++j) {
        int64_t best = -1;
        for (int64_t r = 0; r < 2; ++r)
          for (int64_t s = 0; s < 2; ++s) {
            int64_t at = (2 * i + r) * 24 + 2 * j + s;
            double v = xv[plane * 576 + at];
            if (best < 0 || v > xv[plane * 576 + best] || (std::isnan(v) && !std::isnan(xv[plane * 576 + best]))) best = at;
          }
        int64_t o = (plane * 12 + i) * 12 + j;
        ASSERT_EQ(iv[o], best) << "plane " << plane << " window " << i << "," << j;
        double want = xv[plane * 576 + best];
        ASSERT_TRUE(mv[o] == want || (std::isnan(mv[o]) && std::isnan(want)));
      }
  EXPECT_TRUE(std::isnan(m.at<double>({0, 3, 2, 3})));
  // Batch norm over 36,992 values: against two-pass double sums.
  Tensor bx = randt({16, 8, 17, 17}, 75);
  auto [by, stats] = ops::batch_norm_train(bx, Tensor::ones({8}, DType::f64), Tensor::zeros({8}, DType::f64), 1e-5);
  std::vector<double> bv = bx.to_vector<double>();
  for (int64_t c = 0; c < 8; ++c) {
    double s = 0, ss = 0;
    for (int64_t n = 0; n < 16; ++n)
      for (int64_t k = 0; k < 289; ++k) s += bv[(n * 8 + c) * 289 + k];
    double mu = s / (16 * 289);
    for (int64_t n = 0; n < 16; ++n)
      for (int64_t k = 0; k < 289; ++k) ss += std::pow(bv[(n * 8 + c) * 289 + k] - mu, 2);
    EXPECT_NEAR(stats.mean.at<double>({c}), mu, 1e-14);
    EXPECT_NEAR(stats.var.at<double>({c}), ss / (16 * 289), 1e-13);
  }
  // Batch-norm backward: the batch-normalised output is invariant to shifting x, so dx sums to 0
  // per channel, and dbeta is the plain sum of dy.
  Tensor dy = randt(bx.shape(), 76);
  auto g = ops::batch_norm_backward(dy, bx, Tensor::ones({8}, DType::f64), stats, true, true, true);
  for (double v : ops::sum(g.dx, {0, 2, 3}).to_vector<double>()) EXPECT_NEAR(v, 0, 1e-9);
  expect_close(g.dbeta, ops::sum(dy, {0, 2, 3}), 1e-12, 1e-12);
}

namespace {
struct ConvCase {
  Shape x, w;
  Conv2dParams p;
};

// One convolution case against the definition: the forward, and every image's forward and data
// gradient equal to the ones it gets alone (a batch of one), the filter gradient equal to the sum
// of the per-image ones, the bias gradient equal to the sum of dy; and f32 close to f64.
void check_convolution_case(const ConvCase& c) {
  SCOPED_TRACE("x " + shape_str(c.x) + ", w " + shape_str(c.w) + ", stride " + std::to_string(c.p.stride) +
               ", pad " + std::to_string(c.p.padding));
  Tensor x = randt(c.x, 80), w = randt(c.w, 81), b = randt({c.w[0]}, 82);
  Tensor y = ops::conv2d(x, w, b, c.p);
  expect_close(y, conv_reference(x, w, b, c.p.stride, c.p.padding), 1e-12, 1e-12);
  Tensor dy = randt(y.shape(), 83);
  Tensor dx = ops::conv2d_backward_data(dy, w, x.shape(), c.p);
  auto [dw, db] = ops::conv2d_backward_filter(dy, x, w.shape(), c.p, true);
  // The adjoint identities <conv(x, w), dy> = <x, dx> = <w, dw> tie both gradients to the forward.
  double lhs = dot(ops::conv2d(x, w, Tensor(), c.p), dy);
  EXPECT_NEAR(dot(x, dx), lhs, 1e-10 * (1 + std::fabs(lhs)));
  EXPECT_NEAR(dot(w, dw), lhs, 1e-10 * (1 + std::fabs(lhs)));
  Tensor dw_sum = Tensor::zeros(w.shape(), DType::f64);
  for (int64_t n = 0; n < x.size(0); ++n) {
    Tensor xn = x.slice(n, n + 1), dyn = dy.slice(n, n + 1);
    SCOPED_TRACE("image " + std::to_string(n));
    expect_close(ops::conv2d(xn, w, b, c.p), y.slice(n, n + 1), 1e-12, 1e-12);
    expect_close(ops::conv2d_backward_data(dyn, w, xn.shape(), c.p), dx.slice(n, n + 1), 1e-12, 1e-12);
    dw_sum = ops::add(dw_sum, ops::conv2d_backward_filter(dyn, xn, w.shape(), c.p, false).first);
  }
  expect_close(dw, dw_sum, 1e-12, 1e-12);
  expect_close(db, ops::sum(dy, {0, 2, 3}), 1e-12, 1e-12);
  // f32 takes the same path (sgemm instead of dgemm).
  Tensor x32 = x.to(DType::f32), w32 = w.to(DType::f32), dy32 = dy.to(DType::f32);
  expect_close(ops::conv2d(x32, w32, b.to(DType::f32), c.p).to(DType::f64), y, 1e-4, 1e-4);
  expect_close(ops::conv2d_backward_data(dy32, w32, x.shape(), c.p).to(DType::f64), dx, 1e-4, 1e-4);
  expect_close(ops::conv2d_backward_filter(dy32, x32, w.shape(), c.p, false).first.to(DType::f64), dw, 1e-4, 1e-4);
}
}  // namespace

// Small output maps put several images side by side in one gemm (tensor/cpu/conv.cpp: groups of
// up to 32 images for 2x2 maps, a last group that is partial), and rows of Q = 1, 2, 4, 7 or 14
// take unrolled im2col and col2im loops.
TEST(Ops, ConvolutionOfSmallMapsGroupsImages) {
  for (const ConvCase& c : std::vector<ConvCase>{{{37, 6, 2, 2}, {5, 6, 1, 1}, {1, 0}},    // 2x2 maps, groups 32 + 5
                                                 {{45, 3, 6, 6}, {4, 3, 3, 3}, {2, 0}},    // strided 6x6 -> 2x2
                                                 {{20, 4, 3, 3}, {3, 4, 1, 1}, {1, 0}},    // pointwise 3x3, groups of 14
                                                 {{9, 2, 2, 2}, {3, 2, 1, 1}, {2, 0}},     // 2x2 -> 1x1, one group
                                                 // the unrolled runs of im2col and col2im (Q = 4, 7, 14)
                                                 {{4, 2, 8, 8}, {3, 2, 3, 3}, {2, 1}},     // 8x8 -> 4x4, groups of 8
                                                 {{5, 3, 7, 7}, {4, 3, 3, 3}, {1, 1}},     // 7x7, groups of 2
                                                 {{5, 2, 14, 14}, {3, 2, 3, 3}, {2, 1}},   // 14x14 -> 7x7
                                                 {{3, 1, 14, 14}, {2, 1, 3, 3}, {1, 1}}}) {  // 14x14, one image a gemm
    ASSERT_FALSE(cpu::conv2d_uses_dense_map(c.x, c.w, c.p)) << shape_str(c.x);
    check_convolution_case(c);
  }
}

// Maps of at most 2 R*S input and R*S output pixels run as one dense matrix M [K*P*Q, C*H*W] over
// the whole batch (tensor/cpu/conv.cpp), in row blocks of 32 images (a partial last block here).
TEST(Ops, ConvolutionOfTinyMapsIsOneDenseMatrix) {
  for (const ConvCase& c : std::vector<ConvCase>{{{37, 6, 2, 2}, {5, 6, 3, 3}, {1, 1}},    // 2x2 maps, blocks 32 + 5
                                                 {{45, 3, 4, 4}, {4, 3, 3, 3}, {2, 1}},    // strided 4x4 -> 2x2
                                                 {{70, 5, 2, 2}, {7, 5, 3, 3}, {2, 1}},    // 2x2 -> 1x1, 3 blocks
                                                 {{9, 2, 1, 1}, {3, 2, 3, 3}, {1, 1}},     // 1x1 maps: the centre tap only
                                                 {{6, 3, 2, 3}, {4, 3, 3, 3}, {1, 1}},     // a 2x3 map
                                                 {{8, 3, 3, 3}, {2, 3, 3, 3}, {1, 0}},     // no padding: 3x3 -> 1x1
                                                 {{5, 4, 1, 1}, {3, 4, 1, 1}, {1, 0}}}) {  // pointwise on 1x1 maps
    ASSERT_TRUE(cpu::conv2d_uses_dense_map(c.x, c.w, c.p)) << shape_str(c.x);
    check_convolution_case(c);
  }
  // The MNIST ResNet18's stages (batch 128): 2x2 and 1x1 maps are dense, 4x4 and 7x7 maps are not.
  EXPECT_TRUE(cpu::conv2d_uses_dense_map({128, 48, 2, 2}, {48, 48, 3, 3}, {1, 1}));
  EXPECT_TRUE(cpu::conv2d_uses_dense_map({128, 64, 1, 1}, {64, 64, 3, 3}, {1, 1}));
  EXPECT_TRUE(cpu::conv2d_uses_dense_map({128, 32, 4, 4}, {48, 32, 3, 3}, {2, 1}));
  EXPECT_FALSE(cpu::conv2d_uses_dense_map({128, 32, 4, 4}, {32, 32, 3, 3}, {1, 1}));
  EXPECT_FALSE(cpu::conv2d_uses_dense_map({128, 16, 7, 7}, {16, 16, 3, 3}, {1, 1}));
  // A matrix of more than 4M entries (600 channels on 2x2 maps: 2400 x 2400) stays on im2col.
  EXPECT_FALSE(cpu::conv2d_uses_dense_map({1, 600, 2, 2}, {600, 600, 3, 3}, {1, 1}));
}

// The direct AVX-512 kernels (tensor/cpu/conv_direct.cpp), forced on. The f32 forward against the
// definition in f64 for strides 1 to 3, kernels from 1x1 to 5x5, non-square kernels and maps, and
// channel counts that fill no tile exactly (so the padded filters and junk positions are thrown
// away); the data gradient (stride 1, square kernels) against the f64 im2col result, and through
// the adjoint identity <conv(x, w), dy> = <x, dx>, both bit for bit the same on 1 and 2 threads;
// the filter gradient (3x3 kernels, any stride) against f64 im2col, on 1 and 2 threads.
TEST(Ops, DirectConvolutionMatchesTheDefinition) {
  if (!cpu::conv2d_direct_supported()) GTEST_SKIP() << "this CPU has no AVX-512F: the direct kernels cannot run";
  struct Restore {
    int threads = num_threads();
    ~Restore() {
      cpu::set_conv_algorithm(cpu::ConvAlgorithm::automatic);
      set_num_threads(threads);
    }
  } restore;
  for (const ConvCase& c : std::vector<ConvCase>{{{3, 5, 7, 7}, {11, 5, 3, 3}, {1, 1}},     // 11 filters
                                                 {{2, 16, 14, 14}, {16, 16, 3, 3}, {2, 1}},  // stride 2: 4 phases
                                                 {{2, 2, 11, 11}, {3, 2, 3, 3}, {3, 1}},     // stride 3: 9 phases
                                                 {{2, 3, 9, 6}, {4, 3, 3, 3}, {1, 0}},       // non-square, no padding
                                                 {{2, 4, 10, 10}, {3, 4, 5, 5}, {1, 2}},     // 5x5
                                                 {{2, 3, 6, 5}, {4, 3, 3, 1}, {1, 1}},       // a 3x1 kernel
                                                 {{3, 6, 8, 8}, {7, 6, 1, 1}, {1, 0}},       // pointwise
                                                 {{2, 6, 9, 9}, {5, 6, 1, 1}, {2, 0}},       // 1x1 stride 2, odd map
                                                 {{2, 8, 3, 3}, {9, 8, 3, 3}, {1, 1}},       // a 3x3 map
                                                 {{1, 2, 40, 40}, {2, 2, 3, 3}, {1, 1}},     // 2 filters, 100 vectors
                                                 {{2, 1, 5, 5}, {24, 1, 3, 3}, {1, 1}},      // 24 filters, 1 channel
                                                 {{5, 16, 40, 40}, {16, 16, 3, 3}, {1, 1}}}) {  // images in 3 groups
    SCOPED_TRACE("x " + shape_str(c.x) + ", w " + shape_str(c.w) + ", stride " + std::to_string(c.p.stride) +
                 ", pad " + std::to_string(c.p.padding));
    Tensor x = randt(c.x, 90), w = randt(c.w, 91), b = randt({c.w[0]}, 92);
    Tensor x32 = x.to(DType::f32), w32 = w.to(DType::f32), b32 = b.to(DType::f32);
    cpu::set_conv_algorithm(cpu::ConvAlgorithm::direct);
    ASSERT_TRUE(cpu::conv2d_uses_direct(c.x, c.w, c.p, cpu::ConvPass::forward));
    bool filter = c.w[2] == 3 && c.w[3] == 3;
    ASSERT_EQ(cpu::conv2d_uses_direct(c.x, c.w, c.p, cpu::ConvPass::backward_filter), filter);
    bool data = c.p.stride == 1 && c.w[2] == c.w[3];
    ASSERT_EQ(cpu::conv2d_uses_direct(c.x, c.w, c.p, cpu::ConvPass::backward_data), data);
    set_num_threads(1);
    Tensor y1 = ops::conv2d(x32, w32, b32, c.p);
    expect_close(y1.to(DType::f64), conv_reference(x, w, b, c.p.stride, c.p.padding), 1e-4, 1e-4);
    Tensor dy = randt(y1.shape(), 93), dy32 = dy.to(DType::f32);
    Tensor dx1 = ops::conv2d_backward_data(dy32, w32, c.x, c.p);
    auto [dw1, db1] = ops::conv2d_backward_filter(dy32, x32, c.w, c.p, true);
    set_num_threads(2);
    EXPECT_EQ(ops::conv2d(x32, w32, b32, c.p).to_vector<float>(), y1.to_vector<float>());
    EXPECT_EQ(ops::conv2d_backward_data(dy32, w32, c.x, c.p).to_vector<float>(), dx1.to_vector<float>());
    // The filter gradient's per-thread sums depend on the thread count, not on the run.
    auto [dw2, db2] = ops::conv2d_backward_filter(dy32, x32, c.w, c.p, true);
    EXPECT_EQ(ops::conv2d_backward_filter(dy32, x32, c.w, c.p, true).first.to_vector<float>(), dw2.to_vector<float>());
    expect_close(dw2.to(DType::f64), dw1.to(DType::f64), 1e-4, std::max(1e-4, 2e-7 * double(dy.numel() / c.w[0])));
    // dw sums N P Q products in f32 per entry: the rounding grows with the count (about 8e-4 at
    // 8000 terms of N(0, 1) values); an indexing error would be off by whole products.
    auto [dw, db] = ops::conv2d_backward_filter(dy, x, c.w, c.p, true);
    expect_close(dw1.to(DType::f64), dw, 1e-4, std::max(1e-4, 2e-7 * double(dy.numel() / c.w[0])));
    expect_close(db1.to(DType::f64), db, 1e-4, 1e-4);
    // f64 never takes the direct kernels: it is the im2col reference here.
    Tensor dx = ops::conv2d_backward_data(dy, w, c.x, c.p);
    expect_close(dx1.to(DType::f64), dx, 1e-4, 1e-4);
    double lhs = dot(ops::conv2d(x32, w32, Tensor(), c.p).to(DType::f64), dy);
    EXPECT_NEAR(dot(x, dx1.to(DType::f64)), lhs, 1e-4 * (1 + std::fabs(lhs)));
  }
  // automatic: the MNIST ResNet18's 7x7 stage and the CIFAR ResNet18's 32x32 and 16x16 ones go
  // direct; one input channel, stride 2, 256 channels and 4x4 maps stay on im2col, 2x2 on dense
  // (forward and data gradient).
  cpu::set_conv_algorithm(cpu::ConvAlgorithm::automatic);
  using cpu::ConvPass;
  EXPECT_TRUE(cpu::conv2d_uses_direct({128, 16, 7, 7}, {16, 16, 3, 3}, {1, 1}, ConvPass::forward));
  EXPECT_TRUE(cpu::conv2d_uses_direct({128, 16, 7, 7}, {16, 16, 3, 3}, {1, 1}, ConvPass::backward_data));
  EXPECT_FALSE(cpu::conv2d_uses_direct({128, 32, 4, 4}, {32, 32, 3, 3}, {1, 1}, ConvPass::forward));
  EXPECT_FALSE(cpu::conv2d_uses_direct({32, 256, 8, 8}, {256, 256, 3, 3}, {1, 1}, ConvPass::forward));
  EXPECT_TRUE(cpu::conv2d_uses_direct({32, 128, 16, 16}, {128, 128, 3, 3}, {1, 1}, ConvPass::forward));
  EXPECT_FALSE(cpu::conv2d_uses_direct({128, 1, 28, 28}, {16, 1, 3, 3}, {2, 1}, ConvPass::forward));
  EXPECT_FALSE(cpu::conv2d_uses_direct({128, 16, 14, 14}, {16, 16, 3, 3}, {2, 1}, ConvPass::forward));
  EXPECT_FALSE(cpu::conv2d_uses_direct({128, 48, 2, 2}, {48, 48, 3, 3}, {1, 1}, ConvPass::forward));
  // The filter gradient: any map size and stride with 16 to 128 channels; not one input channel,
  // not 256 channels.
  EXPECT_TRUE(cpu::conv2d_uses_direct({128, 16, 7, 7}, {16, 16, 3, 3}, {1, 1}, ConvPass::backward_filter));
  EXPECT_TRUE(cpu::conv2d_uses_direct({128, 16, 14, 14}, {32, 16, 3, 3}, {2, 1}, ConvPass::backward_filter));
  EXPECT_TRUE(cpu::conv2d_uses_direct({128, 32, 4, 4}, {32, 32, 3, 3}, {1, 1}, ConvPass::backward_filter));
  EXPECT_FALSE(cpu::conv2d_uses_direct({128, 1, 28, 28}, {32, 1, 3, 3}, {1, 0}, ConvPass::backward_filter));
  EXPECT_FALSE(cpu::conv2d_uses_direct({32, 256, 8, 8}, {256, 256, 3, 3}, {1, 1}, ConvPass::backward_filter));
  EXPECT_FALSE(cpu::conv2d_uses_direct({32, 64, 32, 32}, {128, 64, 1, 1}, {2, 0}, ConvPass::backward_filter));
  // The SmallCNN's valid (pad 0) convolutions: all forwards go direct, but the data gradient of
  // 12x12 -> 10x10 would compute 1.44x im2col's taps and stays there; 26x26 -> 24x24 (1.17x) not.
  EXPECT_TRUE(cpu::conv2d_uses_direct({128, 32, 12, 12}, {64, 32, 3, 3}, {1, 0}, ConvPass::forward));
  EXPECT_FALSE(cpu::conv2d_uses_direct({128, 32, 12, 12}, {64, 32, 3, 3}, {1, 0}, ConvPass::backward_data));
  EXPECT_TRUE(cpu::conv2d_uses_direct({128, 32, 26, 26}, {32, 32, 3, 3}, {1, 0}, ConvPass::backward_data));
  // im2col forced: neither direct nor dense.
  cpu::set_conv_algorithm(cpu::ConvAlgorithm::im2col);
  EXPECT_FALSE(cpu::conv2d_uses_direct({128, 16, 7, 7}, {16, 16, 3, 3}, {1, 1}, ConvPass::forward));
}
