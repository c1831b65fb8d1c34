// The tape: accumulation, fan-out, input-only gradients, skipped work, freed tapes, grad mode and
// double backward.
#include <gtest/gtest.h>

#include "tests/support/checks.h"
#include "autograd/ops.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

using namespace afd;
using afd::testing::expect_error;

namespace {
Var leaf(std::vector<double> v, Shape s) { return Var(Tensor::from_vector(v, s), true); }

}  // namespace

TEST(Engine, BackwardAccumulatesIntoLeaves) {
  Var x = leaf({1, 2, 3}, {3});
  Var y = sum(x * x + x * 3.0);  // dy/dx = 2x + 3
  y.backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{5, 7, 9}));
  // A second graph adds to the existing gradient, as in PyTorch.
  sum(x * 2.0).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{7, 9, 11}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Engine, FanOutSumsEveryPath) {
  Var x = leaf({2}, {1});
  Var a = x * x;         // used three times below
  Var y = sum(a * a + a + exp(a) * 0.0);  // d/dx (x^4 + x^2) = 4x^3 + 2x = 36
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad().item<double>(), 36.0);
}

TEST(Engine, GradTouchesNoLeafGradAndReturnsInputOrder) {
  Var x = leaf({1, 2}, {1, 2});
  Var w = leaf({3, 4, 5, 6}, {2, 2});
  Var y = sum(matmul(x, w));  // dy/dx = row sums of w, dy/dw = x^T 1
  std::vector<Var> g = grad({y}, {w, x});
  EXPECT_EQ(g[1].data().to_vector<double>(), (std::vector<double>{7, 11}));
  EXPECT_EQ(g[0].data().to_vector<double>(), (std::vector<double>{1, 1, 2, 2}));
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  // An input the output does not depend on gets an undefined gradient.
  Var unused = leaf({1}, {1});
  Var z = sum(x * 2.0);
  std::vector<Var> g2 = grad({z}, {unused, x});
  EXPECT_FALSE(g2[0].defined());
  EXPECT_EQ(g2[1].data().to_vector<double>(), (std::vector<double>{2, 2}));
}

TEST(Engine, GradWithRespectToAnIntermediate) {
  Var x = leaf({1, 2}, {2});
  Var h = x * 3.0;
  Var y = sum(h * h);
  std::vector<Var> g = grad({y}, {h});
  EXPECT_EQ(g[0].data().to_vector<double>(), (std::vector<double>{6, 12}));  // 2h
}

TEST(Engine, InputGradientSkipsWeightGradientKernels) {
  Generator gen(1);
  Var x(randn({2, 3, 6, 6}, gen), true);
  Var w(randn({4, 3, 3, 3}, gen), true);  // a parameter: requires grad, but nobody asks for it
  Var b(randn({4}, gen), true);
  Var loss = sum(relu(conv2d(x, w, b, 1, 1)));
  int64_t filter_before = kernel_calls(Kernel::conv2d_backward_filter);
  int64_t data_before = kernel_calls(Kernel::conv2d_backward_data);
  std::vector<Var> g = grad({loss}, {x});
  EXPECT_EQ(kernel_calls(Kernel::conv2d_backward_filter), filter_before) << "weight gradient computed for an attack";
  EXPECT_EQ(kernel_calls(Kernel::conv2d_backward_data), data_before + 1);
  EXPECT_EQ(g[0].shape(), x.shape());
  // And the other way round: training needs no input gradient.
  Var x2(randn({2, 3, 6, 6}, gen), false);
  Var loss2 = sum(conv2d(x2, w, b, 1, 1));
  data_before = kernel_calls(Kernel::conv2d_backward_data);
  loss2.backward();
  EXPECT_EQ(kernel_calls(Kernel::conv2d_backward_data), data_before);
  EXPECT_EQ(kernel_calls(Kernel::conv2d_backward_filter), filter_before + 1);
  EXPECT_TRUE(w.grad().defined());
  EXPECT_TRUE(b.grad().defined());
}

TEST(Engine, FreedTapeAndMissingSeedAreClearErrors) {
  Var x = leaf({1, 2}, {2});
  Var y = sum(exp(x));
  y.backward();
  expect_error([&] { y.backward(); }, "already freed");
  Var z = sum(exp(x));
  z.backward(Tensor(), /*retain_graph=*/true);
  z.backward();  // allowed: the first call kept the tape
  expect_error([&] { exp(x).backward(); }, "output of shape [2] is not a scalar; pass a seed gradient");
  expect_error([&] { Var(Tensor::zeros({1})).backward(); }, "does not require a gradient");
  expect_error([&] { exp(x).backward(Tensor::ones({3}, DType::f64)); }, "seed");
}

TEST(Engine, NoGradGuardRecordsNothing) {
  Var x = leaf({1, 2}, {2});
  {
    NoGradGuard guard;
    Var y = x * 2.0;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
  }
  EXPECT_TRUE((x * 2.0).requires_grad());
  EXPECT_FALSE(x.detach().requires_grad());
}

TEST(Engine, DoubleBackward) {
  Var x = leaf({2, -1}, {2});
  Var y = sum(pow(x, 3.0));
  std::vector<Var> g = grad({y}, {x}, {}, false, /*create_graph=*/true);  // 3x^2
  EXPECT_EQ(g[0].data().to_vector<double>(), (std::vector<double>{12, 3}));
  ASSERT_TRUE(g[0].requires_grad());
  std::vector<Var> gg = grad({sum(g[0])}, {x});  // 6x
  EXPECT_EQ(gg[0].data().to_vector<double>(), (std::vector<double>{12, -6}));
  // Ops whose backward is a fused kernel say so instead of returning a wrong second derivative.
  Var img(Tensor::ones({1, 1, 3, 3}, DType::f64), true);
  Var k(Tensor::ones({1, 1, 2, 2}, DType::f64), true);
  Var out = sum(conv2d(img, k));
  expect_error([&] { grad({out}, {img}, {}, false, true); }, "op 'conv2d' has no differentiable backward");
}

TEST(Engine, ShapeErrorsNameOpAndShapes) {
  Var a(Tensor::zeros({2, 3}), true), b(Tensor::zeros({4}), true);
  expect_error([&] { add(a, b); }, "add: shapes [2, 3] and [4] cannot broadcast");
  expect_error([&] { linear(a, Var(Tensor::zeros({3}))); }, "linear: expected x [N, in] and w [out, in]");
  expect_error([&] { matmul(a, a); }, "matmul: inner sizes differ");
  expect_error([&] { cross_entropy(a, Tensor::zeros({2}, DType::i64).to(DType::f32)); }, "labels must be i64");
  expect_error([&] { Var(Tensor::zeros({2}, DType::i64), true); }, "a i64 tensor cannot require a gradient");
}

// The README's example, kept compiling and correct.
TEST(Engine, ReadmeExample) {
  Generator gen(/*seed=*/0);
  Var x(rand({8, 1, 28, 28}, gen), /*requires_grad=*/true);  // images in [0, 1]
  Var w(randn({16, 1, 3, 3}, gen, DType::f32, Device::cpu(), 0, 0.1), true);
  Tensor labels = Tensor::from_vector<int64_t>({0, 1, 2, 3, 4, 5, 6, 7}, {8});

  Var feats = global_avg_pool(relu(conv2d(x, w, Var(), /*stride=*/1, /*padding=*/1)));  // [8, 16]
  Var loss = cross_entropy(feats, labels);                                              // mean over 8

  loss.backward();  // training: w.grad() and x.grad() accumulate
  EXPECT_EQ(feats.shape(), (Shape{8, 16}));
  EXPECT_EQ(w.grad().shape(), w.shape());
  Tensor w_grad = w.grad().clone();

  // Attacks: a fresh forward, then d loss / d x only (w.grad() is left alone).
  Var loss2 = cross_entropy(global_avg_pool(relu(conv2d(x, w, Var(), 1, 1))), labels);
  std::vector<Var> g = grad({loss2}, {x});  // g[0] has x's shape [8, 1, 28, 28]
  EXPECT_EQ(g[0].shape(), (Shape{8, 1, 28, 28}));
  EXPECT_TRUE(ops::allclose(g[0].data(), x.grad(), 0, 0).ok);  // same graph, same gradient
  EXPECT_TRUE(ops::allclose(w.grad(), w_grad, 0, 0).ok);
}

// The numerics debug mode names the op that made the first NaN or Inf, forward and backward.
TEST(Engine, CheckNumericsNamesTheOpThatMadeANonFiniteValue) {
  struct On {
    On() { set_check_numerics(true); }
    ~On() { set_check_numerics(false); }
  };
  Var x(Tensor::from_vector<double>({1.0, -2.0, 3.0}, {3}), true);
  {
    On on;
    // log of a negative number: NaN made by 'log' from finite inputs.
    expect_error([&] { log(x); }, "check-numerics: op 'log' produced 1 NaN and 0 Inf among 3 values");
    expect_error([&] { log(x); }, "its inputs were finite");
    // A NaN that comes in from outside is reported as such by the first op that sees it.
    Var bad(Tensor::from_vector<double>({1.0, NAN}, {2}), true);
    expect_error([&] { exp(bad); }, "input 0 was already non-finite");
    // sqrt at 0 is finite, its gradient g / (2 sqrt(0)) is not: the division inside sqrt's
    // backward is named, with the backward it belongs to.
    Var z(Tensor::from_vector<double>({0.0, 4.0}, {2}), true);
    Var s = sum(sqrt(z));
    expect_error([&] { s.backward(); }, "op 'div' (inside the backward of op 'sqrt') produced 0 NaN and 1 Inf");
    // An overflow: 1e308 * 10 is Inf, made by the scaling op.
    Var big(Tensor::from_vector<double>({1e308, 1.0}, {2}), true);
    expect_error([&] { relu(big) * 10.0; }, "op 'affine' produced 0 NaN and 1 Inf");
  }
  // Off (the default): the same NaN passes silently, as in PyTorch.
  EXPECT_FALSE(check_numerics());
  EXPECT_TRUE(std::isnan(log(x).data().to_vector<double>()[1]));
}
