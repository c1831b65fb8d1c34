// Module bookkeeping and the layers: names and order, strict loading errors, modes, freezing,
// initialisation bounds, dropout, checkpoints.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <tuple>

#include "nn/checkpoint.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/models/resnet.h"
#include "nn/safetensors.h"
#include "support/checks.h"
#include "tensor/ops.h"

using namespace afd;
using afd::testing::expect_close;
using afd::testing::expect_error;

namespace {

// conv -> bn -> relu -> flatten -> linear, with a nested Sequential, to check naming.
std::shared_ptr<nn::Sequential> tiny_net(Generator& gen) {
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Conv2d>(1, 2, 3, 1, 1, true, gen));
  auto inner = net->add(std::make_shared<nn::Sequential>());
  inner->add(std::make_shared<nn::BatchNorm2d>(2));
  inner->add(std::make_shared<nn::ReLU>());
  net->add(std::make_shared<nn::Flatten>());
  net->add(std::make_shared<nn::Linear>(2 * 4 * 4, 3, gen));
  return net;
}

std::vector<std::string> names(const nn::NamedTensors& entries) {
  std::vector<std::string> out;
  for (const auto& [name, t] : entries) out.push_back(name);
  return out;
}

}  // namespace

TEST(Module, StateDictNamesFollowPyTorch) {
  Generator gen(0);
  auto net = tiny_net(gen);
  std::vector<std::string> expected{"0.weight", "0.bias", "1.0.weight", "1.0.bias", "1.0.running_mean",
                                    "1.0.running_var", "1.0.num_batches_tracked", "3.weight", "3.bias"};
  EXPECT_EQ(names(net->state_dict()), expected);
  EXPECT_EQ(net->named_parameters().size(), 6u);
  EXPECT_EQ(net->named_buffers().size(), 3u);
  EXPECT_EQ(net->parameter_count(), 2 * 9 + 2 + 2 + 2 + 32 * 3 + 3);
  EXPECT_EQ(net->state_dict()[6].second.dtype(), DType::i64);
  EXPECT_EQ(net->state_dict()[6].second.dim(), 0);
}

TEST(Module, StrictLoadNamesEveryProblem) {
  Generator gen(0);
  auto net = tiny_net(gen);
  nn::NamedTensors sd = net->state_dict();
  nn::NamedTensors bad;
  for (auto& [name, t] : sd) {
    if (name == "0.bias") continue;                                                      // missing
    if (name == "3.weight") bad.emplace_back(name, Tensor::zeros({3, 31}));              // shape
    else if (name == "3.bias") bad.emplace_back(name, Tensor::zeros({3}, DType::f64));  // dtype
    else bad.emplace_back(name, t.clone());
  }
  bad.emplace_back("extra.weight", Tensor::zeros({1}));  // unexpected
  Tensor before = net->state_dict()[0].second.clone();
  for (const char* fragment : {"missing '0.bias'", "'3.weight': expected f32 [3, 32], got f32 [3, 31]",
                               "'3.bias': expected f32 [3], got f64 [3]", "unexpected 'extra.weight'"})
    expect_error([&] { net->load_state_dict(bad); }, fragment);
  // Nothing was loaded.
  EXPECT_EQ(net->state_dict()[0].second.to_vector<float>(), before.to_vector<float>());
  // Not strict: missing and unexpected names are fine, shapes still checked.
  nn::NamedTensors partial{{"0.weight", Tensor::zeros({2, 1, 3, 3})}, {"other", Tensor::zeros({1})}};
  net->load_state_dict(partial, /*strict=*/false);
  EXPECT_EQ(net->state_dict()[0].second.to_vector<float>(), std::vector<float>(18, 0.f));
}

TEST(Module, TrainEvalAndFreezingAreRecursive) {
  Generator gen(0);
  auto net = tiny_net(gen);
  net->eval();
  for (auto& [name, child] : net->named_children()) EXPECT_FALSE(child->is_training()) << name;
  net->train();
  EXPECT_TRUE(net->named_children()[1].second->named_children()[0].second->is_training());
  net->set_requires_grad(false);
  for (auto& [name, p] : net->named_parameters()) EXPECT_FALSE(p.requires_grad()) << name;
  net->set_requires_grad(true);
  for (auto& [name, p] : net->named_parameters()) EXPECT_TRUE(p.requires_grad()) << name;
}

TEST(Module, BatchNormCountsTrainModeForwardsOnly) {
  nn::BatchNorm2d bn(3);
  Generator gen(1);
  Var x(randn({4, 3, 2, 2}, gen));
  bn.forward(x);
  bn.forward(x);
  EXPECT_EQ(bn.num_batches_tracked.data().item<int64_t>(), 2);
  bn.eval();
  Tensor mean_before = bn.running_mean.data().clone();
  bn.forward(x);
  EXPECT_EQ(bn.num_batches_tracked.data().item<int64_t>(), 2);
  EXPECT_EQ(bn.running_mean.data().to_vector<float>(), mean_before.to_vector<float>());
  expect_error([&] { bn.forward(Var(Tensor::zeros({4, 3}))); }, "BatchNorm2d");
}

TEST(Module, ShapeErrorsNameBothShapes) {
  Generator gen(0);
  nn::Linear fc(4, 2, gen);
  expect_error([&] { fc.forward(Var(Tensor::zeros({3, 5}))); }, "expected x [N, 4], got [3, 5]");
  nn::Conv2d conv(3, 4, 3, 1, 1, false, gen);
  expect_error([&] { conv.forward(Var(Tensor::zeros({1, 1, 8, 8}))); }, "got [1, 1, 8, 8]");
}

TEST(Init, BoundsAndReproducibility) {
  Generator a(5), b(5);
  Tensor w = nn::init::kaiming_uniform({64, 3, 3, 3}, std::sqrt(5.0), a);
  Tensor w2 = nn::init::kaiming_uniform({64, 3, 3, 3}, std::sqrt(5.0), b);
  EXPECT_EQ(w.to_vector<float>(), w2.to_vector<float>());  // one seed, one model
  double bound = 1.0 / std::sqrt(27.0), max_abs = 0;
  for (float v : w.to_vector<float>()) max_abs = std::max(max_abs, std::abs(static_cast<double>(v)));
  EXPECT_LE(max_abs, bound);
  EXPECT_GT(max_abs, 0.9 * bound);
  Tensor x = nn::init::xavier_uniform({10, 30}, 1.0, a);
  double xb = std::sqrt(6.0 / 40.0), xmax = 0;
  for (float v : x.to_vector<float>()) xmax = std::max(xmax, std::abs(static_cast<double>(v)));
  EXPECT_LE(xmax, xb);
  EXPECT_GT(xmax, 0.8 * xb);
  // Two models from the same seed are identical.
  Generator g1(9), g2(9);
  nn::ResNet18 m1(nn::ResNetConfig::mnist(10, 4), g1), m2(nn::ResNetConfig::mnist(10, 4), g2);
  EXPECT_EQ(m1.state_dict()[0].second.to_vector<float>(), m2.state_dict()[0].second.to_vector<float>());
  EXPECT_EQ(m1.state_dict().back().second.to_vector<float>(), m2.state_dict().back().second.to_vector<float>());
}

TEST(Layers, DropoutScalesKeptUnitsAndIsOffInEval) {
  nn::Dropout drop(0.25, Generator(3));
  Var x(Tensor::ones({1000}));
  std::vector<float> y = drop.forward(x).data().to_vector<float>();
  int zeros = 0;
  for (float v : y) {
    if (v == 0) ++zeros;
    else EXPECT_FLOAT_EQ(v, 1 / 0.75f);
  }
  EXPECT_NEAR(zeros, 250, 50);
  drop.eval();
  EXPECT_EQ(drop.forward(x).data().to_vector<float>(), std::vector<float>(1000, 1.f));
}

TEST(Layers, NormalizeAndPooling) {
  nn::Normalize norm({0.5, 0.25}, {0.5, 2.0});
  Var x(Tensor::ones({1, 2, 1, 1}));
  EXPECT_EQ(norm.forward(x).data().to_vector<float>(), (std::vector<float>{1.f, 0.375f}));
  EXPECT_TRUE(norm.state_dict().empty());  // non-persistent
  nn::AdaptiveAvgPool2d pool;
  Var img(Tensor::arange(0, 8).reshape({1, 2, 2, 2}));
  Var pooled = pool.forward(img);
  EXPECT_EQ(pooled.shape(), (Shape{1, 2, 1, 1}));
  EXPECT_EQ(pooled.data().to_vector<float>(), (std::vector<float>{1.5f, 5.5f}));
}

TEST(Checkpoint, MissingTensorInFileIsAnErrorNamingFileAndTensor) {
  Generator gen(0);
  auto net = tiny_net(gen);
  nn::NamedTensors sd = net->state_dict();
  sd.erase(sd.begin() + 1);  // drop 0.bias
  std::string path = ::testing::TempDir() + "/afd_bad_checkpoint.safetensors";
  write_safetensors(path, sd);
  expect_error([&] { nn::load_state_dict_file(*net, path); }, "missing '0.bias'");
  expect_error([&] { nn::load_state_dict_file(*net, path); }, path);
  std::remove(path.c_str());
}

// conv_bn folds an eval-mode batch norm into the convolution (nn/layers.h): the same output and
// the same gradients for x and all five parameters as bn(conv(x)), in float64; train mode is the
// two layers as they are (running statistics updated once).
TEST(Layers, ConvBnFoldsAnEvalBatchNormIntoTheConvolution) {
  Generator gen(21);
  nn::Conv2d conv(3, 4, 3, 2, 1, /*bias=*/true, gen);
  nn::BatchNorm2d bn(4);
  conv.to(DType::f64);
  bn.to(DType::f64);
  Tensor gamma = bn.weight.data(), beta = bn.bias.data();  // views of the parameters
  gamma.copy_(ops::add_scalar(randn({4}, gen, DType::f64), 1.0));
  beta.copy_(randn({4}, gen, DType::f64));
  Var x(randn({5, 3, 6, 6}, gen, DType::f64));
  x.set_requires_grad(true);
  for (int i = 0; i < 3; ++i) conv_bn(conv, bn, x);  // running statistics away from 0 and 1
  EXPECT_EQ(bn.num_batches_tracked.data().item<int64_t>(), 3);

  bn.eval();
  Tensor r = randn({5, 4, 3, 3}, gen, DType::f64);
  std::vector<Var> wrt = {x, conv.weight, conv.bias, bn.weight, bn.bias};
  Var folded = conv_bn(conv, bn, x);
  Var layered = bn.forward(conv.forward(x));
  expect_close(folded.data(), layered.data(), 1e-12, 1e-12);
  std::vector<Var> g_folded = grad({sum(mul(folded, Var(r)))}, wrt);
  std::vector<Var> g_layered = grad({sum(mul(layered, Var(r)))}, wrt);
  for (size_t i = 0; i < wrt.size(); ++i) {
    SCOPED_TRACE("gradient " + std::to_string(i));
    expect_close(g_folded[i].data(), g_layered[i].data(), 1e-11, 1e-11);
  }
  EXPECT_EQ(bn.num_batches_tracked.data().item<int64_t>(), 3);  // eval mode updates nothing

  nn::BatchNorm2d wrong(5);
  expect_error([&] { conv_bn(conv, wrong, x); }, "conv_bn: BatchNorm2d of 5 channels after a Conv2d of 4");
}

// ops::bn_fold (the fold in one pass) against the separate ops nn::conv_bn used before: the same
// bits, f32 and f64, with and without a convolution bias, with a zero variance, -0 and tiny values.
TEST(BnFold, EqualsTheSeparateOpsBitForBit) {
  Generator gen(5);
  for (DType dt : {DType::f32, DType::f64})
    for (bool with_bias : {false, true}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + (with_bias ? " with a conv bias" : " without"));
      const int64_t K = 37;
      const Tensor w = randn({K, 3, 3, 3}, gen, dt), bias = with_bias ? randn({K}, gen, dt) : Tensor();
      Tensor gamma = randn({K}, gen), beta = randn({K}, gen), mean = randn({K}, gen, dt);
      Tensor var = rand({K}, gen, DType::f32, Device::cpu(), 0, 3);
      var.data<float>()[3] = 0;  // invstd = 1 / sqrt(eps)
      gamma.data<float>()[4] = 1e-30f;
      beta.data<float>()[5] = -0.0f;
      gamma = gamma.to(dt), beta = beta.to(dt), var = var.to(dt);
      const double eps = 1e-5;
      const Tensor invstd = ops::reciprocal(ops::sqrt(ops::add_scalar(var, eps)));
      const Tensor a = ops::mul(gamma, invstd);
      const Tensor shift = with_bias ? ops::add(ops::sub(beta, ops::mul(a, mean)), ops::mul(a, bias))
                                     : ops::sub(beta, ops::mul(a, mean));
      const Tensor weight = ops::mul(w, a.reshape({K, 1, 1, 1}));
      const ops::BnFold f = ops::bn_fold(w, bias, gamma, beta, mean, var, eps);
      for (auto [got, want, what] : {std::tuple{&f.weight, &weight, "weight"}, std::tuple{&f.shift, &shift, "shift"},
                                     std::tuple{&f.invstd, &invstd, "invstd"}}) {
        ASSERT_EQ(got->shape(), want->shape()) << what;
        EXPECT_EQ(std::memcmp(got->raw_data(), want->raw_data(), want->nbytes()), 0) << what;
      }
    }
}

TEST(BnFold, RefusesMismatchedArguments) {
  const Tensor w = Tensor::zeros({4, 2, 3, 3}), k4 = Tensor::ones({4}), k3 = Tensor::ones({3});
  expect_error([&] { ops::bn_fold(w, Tensor(), k4, k4, k3, k4, 1e-5); }, "bn_fold: the running mean has shape [3]");
  expect_error([&] { ops::bn_fold(w, k3, k4, k4, k4, k4, 1e-5); }, "bn_fold: the convolution bias has shape [3]");
  expect_error([&] { ops::bn_fold(w, Tensor(), Tensor(), k4, k4, k4, 1e-5); }, "bn_fold: gamma is missing");
  expect_error([&] { ops::bn_fold(w, Tensor(), k4.to(DType::f64), k4, k4, k4, 1e-5); }, "bn_fold: dtypes");
  expect_error([&] { ops::bn_fold(Tensor::zeros({0, 2}), Tensor(), k4, k4, k4, k4, 1e-5); },
               "bn_fold: expected convolution weights [K, ...]");
}

// The fused ReLUs (a convolution's, in its bias pass; batch norm's in training, in its apply pass;
// add_relu, a residual sum's) give the bits of relu after the separate op, values and gradients,
// with NaN, -0 and exact zeros in the sums.
TEST(Layers, FusedReluEqualsReluAfterTheOpBitForBit) {
  Generator gen(17);
  auto same = [](const Tensor& a, const Tensor& b, const std::string& what) {
    ASSERT_EQ(a.shape(), b.shape()) << what;
    EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0) << what;
  };
  for (DType dt : {DType::f32, DType::f64}) {
    Var x(randn({2, 3, 6, 6}, gen, dt), true), w(randn({4, 3, 3, 3}, gen, dt), true), b(randn({4}, gen, dt), true);
    const Tensor r = randn({2, 4, 6, 6}, gen, dt);
    Var fused = conv2d(x, w, b, 1, 1, /*relu=*/true), plain = relu(conv2d(x, w, b, 1, 1));
    same(fused.data(), plain.data(), "conv2d relu");
    auto g_fused = grad({sum(mul(fused, Var(r)))}, {x, w, b}), g_plain = grad({sum(mul(plain, Var(r)))}, {x, w, b});
    for (size_t i = 0; i < 3; ++i)
      same(g_fused[i].data(), g_plain[i].data(), "conv2d relu gradient " + std::to_string(i));

    // batch norm in training, the ReLU in its own pass: the same output, gradients and statistics
    nn::BatchNorm2d fused_bn(4), plain_bn(4);
    fused_bn.to(dt), plain_bn.to(dt);
    Var h(randn({3, 4, 5, 5}, gen, dt), true);
    Var bn_fused = fused_bn.forward(h, /*relu=*/true), bn_plain = relu(plain_bn.forward(h));
    same(bn_fused.data(), bn_plain.data(), "batch_norm relu");
    same(fused_bn.running_var.data(), plain_bn.running_var.data(), "batch_norm relu running_var");
    const Tensor q = randn({3, 4, 5, 5}, gen, dt);
    auto g_bn_fused = grad({sum(mul(bn_fused, Var(q)))}, {h, fused_bn.weight, fused_bn.bias});
    auto g_bn_plain = grad({sum(mul(bn_plain, Var(q)))}, {h, plain_bn.weight, plain_bn.bias});
    for (size_t i = 0; i < 3; ++i)
      same(g_bn_fused[i].data(), g_bn_plain[i].data(), "batch_norm relu gradient " + std::to_string(i));

    Tensor av = randn({2, 5}, gen, DType::f64), bv = randn({5}, gen, DType::f64);
    av.data<double>()[0] = NAN, av.data<double>()[1] = -0.0, bv.data<double>()[1] = 0.0;
    av.data<double>()[2] = -bv.data<double>()[2];  // an exact zero sum
    Var a(av.to(dt), true), c(bv.to(dt), true);
    Var y = add_relu(a, c), z = relu(add(a, c));
    same(y.data(), z.data(), "add_relu");
    const Tensor s = randn({2, 5}, gen, dt);
    auto gy = grad({sum(mul(y, Var(s)))}, {a, c}), gz = grad({sum(mul(z, Var(s)))}, {a, c});
    same(gy[0].data(), gz[0].data(), "add_relu gradient of a");
    same(gy[1].data(), gz[1].data(), "add_relu gradient of b");
  }
}

// Sequential runs a Conv2d directly followed by a ReLU as one convolution with the ReLU fused:
// the bits of the layers one by one, values and gradients, and no separate ReLU launch.
TEST(Layers, SequentialFusesAConvolutionAndTheReluAfterIt) {
  Generator gen(19);
  auto conv1 = std::make_shared<nn::Conv2d>(2, 3, 3, 1, 1, /*bias=*/true, gen);
  auto conv2 = std::make_shared<nn::Conv2d>(3, 4, 3, 1, 0, /*bias=*/false, gen);
  auto relu1 = std::make_shared<nn::ReLU>(), relu2 = std::make_shared<nn::ReLU>();
  nn::Sequential net({conv1, relu1, conv2, relu2});
  Var x(randn({2, 2, 7, 7}, gen), true);
  const int64_t elementwise = kernel_calls(Kernel::elementwise), convs = kernel_calls(Kernel::conv2d_forward);
  Var fused = net.forward(x);
  EXPECT_EQ(kernel_calls(Kernel::elementwise), elementwise);  // no separate ReLU
  EXPECT_EQ(kernel_calls(Kernel::conv2d_forward), convs + 2);
  Var plain = relu2->forward(conv2->forward(relu1->forward(conv1->forward(x))));
  ASSERT_EQ(fused.shape(), plain.shape());
  EXPECT_EQ(std::memcmp(fused.data().raw_data(), plain.data().raw_data(), plain.data().nbytes()), 0);
  const std::vector<Var> wrt{x, conv1->weight, conv1->bias, conv2->weight};
  const Tensor r = randn(plain.shape(), gen);
  auto g_fused = grad({sum(mul(fused, Var(r)))}, wrt), g_plain = grad({sum(mul(plain, Var(r)))}, wrt);
  for (size_t i = 0; i < wrt.size(); ++i)
    EXPECT_EQ(std::memcmp(g_fused[i].data().raw_data(), g_plain[i].data().raw_data(), g_plain[i].data().nbytes()), 0)
        << "gradient " << i;
}

// An eval-mode conv_bn is two launches, the fold and the convolution (it was eight: the fold as
// seven separate ops); train mode is the two layers.
TEST(Layers, ConvBnInEvalModeLaunchesTheFoldAndTheConvolution) {
  Generator gen(3);
  nn::Conv2d conv(3, 4, 3, 1, 1, /*bias=*/true, gen);
  nn::BatchNorm2d bn(4);
  bn.eval();
  const Var x(randn({2, 3, 5, 5}, gen));
  int64_t before = 0;
  for (int k = 0; k < static_cast<int>(Kernel::count_); ++k) before += kernel_calls(static_cast<Kernel>(k));
  const int64_t elementwise = kernel_calls(Kernel::elementwise), convs = kernel_calls(Kernel::conv2d_forward);
  conv_bn(conv, bn, x);
  int64_t after = 0;
  for (int k = 0; k < static_cast<int>(Kernel::count_); ++k) after += kernel_calls(static_cast<Kernel>(k));
  EXPECT_EQ(kernel_calls(Kernel::elementwise), elementwise + 1);
  EXPECT_EQ(kernel_calls(Kernel::conv2d_forward), convs + 1);
  EXPECT_EQ(after - before, 2);
}
