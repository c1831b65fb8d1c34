// AFD's losses against PyTorch (fixture: losses_f64.safetensors), values and gradients in f64,
// |afd - torch| <= 1e-14 + 1e-10 |torch|:
//   - TRADES KL term: KLDivLoss(sum)(log_softmax(adv), softmax(clean)) / N, gradients into both
//   - DCGAN (Eq. 9, 10), Wasserstein (Eq. 11, 12) and hinge discriminator / feature losses
//   - the gradient penalty of a tiny D (linear -> leaky_relu 0.2 -> linear), built here from
//     autograd ops: its value and d GP / d theta_D (double backward through D).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "autograd/ops.h"
#include "nn/optim/losses.h"
#include "tests/support/checks.h"
#include "tests/nn_optim/fixture.h"

using namespace afd;
using afd::optim_test::expect_matches;
using afd::optim_test::load_fixture;
using afd::optim_test::max_abs_diff;

namespace {

constexpr double kRtol = 1e-10, kAtol = 1e-14;

SafetensorsFile fixture() { return load_fixture("losses_f64.safetensors"); }

TEST(Losses, TradesKl) {
  SafetensorsFile f = fixture();
  Var clean(f.get("logits_clean").clone(), true), adv(f.get("logits_adv").clone(), true);
  Var loss = trades_kl(clean, adv);
  expect_matches("trades value", loss.data(), f.get("trades.value"), kRtol, kAtol);
  loss.backward();
  expect_matches("trades d/d clean", clean.grad(), f.get("trades.grad_clean"), kRtol, kAtol);
  expect_matches("trades d/d adv", adv.grad(), f.get("trades.grad_adv"), kRtol, kAtol);
  std::printf("[ agreement ] trades_kl: value |diff| %.3g, grads %.3g / %.3g\n",
              max_abs_diff(loss.data(), f.get("trades.value")), max_abs_diff(clean.grad(), f.get("trades.grad_clean")),
              max_abs_diff(adv.grad(), f.get("trades.grad_adv")));
}

class GanLossVsTorch : public ::testing::TestWithParam<GanLoss> {};

TEST_P(GanLossVsTorch, DiscriminatorAndFeatureLoss) {
  SafetensorsFile f = fixture();
  const std::string k = gan_loss_name(GetParam());
  {
    Var d_clean(f.get("d_clean").clone(), true), d_adv(f.get("d_adv").clone(), true);
    Var l_d = discriminator_loss(GetParam(), d_clean, d_adv);
    expect_matches(k + ".d_loss", l_d.data(), f.get(k + ".d_loss"), kRtol, kAtol);
    l_d.backward();
    expect_matches(k + ".d_loss d/d clean", d_clean.grad(), f.get(k + ".d_loss.grad_clean"), kRtol, kAtol);
    expect_matches(k + ".d_loss d/d adv", d_adv.grad(), f.get(k + ".d_loss.grad_adv"), kRtol, kAtol);
  }
  {
    Var d_adv(f.get("d_adv").clone(), true);
    Var l_f = feature_loss(GetParam(), d_adv);
    expect_matches(k + ".f_loss", l_f.data(), f.get(k + ".f_loss"), kRtol, kAtol);
    l_f.backward();
    expect_matches(k + ".f_loss d/d adv", d_adv.grad(), f.get(k + ".f_loss.grad_adv"), kRtol, kAtol);
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, GanLossVsTorch, ::testing::Values(GanLoss::dcgan, GanLoss::wgan, GanLoss::hinge),
                         [](const auto& info) { return std::string(gan_loss_name(info.param)); });

TEST(Losses, GanLossNames) {
  EXPECT_EQ(parse_gan_loss("wgan"), GanLoss::wgan);
  EXPECT_EQ(parse_gan_loss("dcgan"), GanLoss::dcgan);
  EXPECT_EQ(parse_gan_loss("hinge"), GanLoss::hinge);
  afd::testing::expect_error([] { parse_gan_loss("lsgan"); }, "unknown GAN loss 'lsgan'");
}

// The fixture's D: linear(W1, b1) -> leaky_relu(0.2) -> linear(W2, b2), z [N, 3] -> [N, 1].
struct TinyD {
  Var W1, b1, W2, b2;
  explicit TinyD(const SafetensorsFile& f)
      : W1(f.get("gp.W1").clone(), true), b1(f.get("gp.b1").clone(), true), W2(f.get("gp.W2").clone(), true),
        b2(f.get("gp.b2").clone(), true) {}
  Var operator()(const Var& z) const { return linear(leaky_relu(linear(z, W1, b1), 0.2), W2, b2); }
};

TEST(Losses, GradientPenaltyValueAndParameterGradients) {
  SafetensorsFile f = fixture();
  TinyD d(f);
  Var z_clean(f.get("z_clean")), z_adv(f.get("z_adv"));
  Var gp = gradient_penalty([&](const Var& z) { return d(z); }, z_clean, z_adv, f.get("gp.alpha"));
  expect_matches("gp value", gp.data(), f.get("gp.value"), kRtol, kAtol);
  gp.backward();
  double worst = 0;
  for (auto [name, p] : {std::pair<const char*, Var>{"W1", d.W1}, {"b1", d.b1}, {"W2", d.W2}, {"b2", d.b2}}) {
    const Tensor& expected = f.get(std::string("gp.grad.") + name);
    // b2 does not change d D / d z: torch reports no gradient (stored as 0); we may have none or 0.
    Tensor ours = p.grad().defined() ? p.grad() : Tensor::zeros(expected.shape(), DType::f64);
    expect_matches(std::string("d gp / d ") + name, ours, expected, kRtol, kAtol);
    worst = std::max(worst, max_abs_diff(ours, expected));
  }
  std::printf("[ agreement ] gradient_penalty: value |diff| %.3g, max parameter-gradient |diff| %.3g\n",
              max_abs_diff(gp.data(), f.get("gp.value")), worst);
}

TEST(Losses, GradientPenaltyDrawsAlphaFromGenerator) {
  SafetensorsFile f = fixture();
  TinyD d(f);
  auto fn = [&](const Var& z) { return d(z); };
  Var z_clean(f.get("z_clean")), z_adv(f.get("z_adv"));
  Generator gen(42), replay(42);
  Var drawn = gradient_penalty(fn, z_clean, z_adv, gen);
  Tensor alpha = rand({z_clean.size(0)}, replay, DType::f64);
  Var given = gradient_penalty(fn, z_clean, z_adv, alpha);
  EXPECT_EQ(drawn.item(), given.item());
  EXPECT_EQ(gen.offset, replay.offset);
}

TEST(Losses, GradientPenaltyZeroGradientIsFinite) {
  // D(z) = 0 * sum(z): the input gradient is exactly 0, ||g|| = 0, GP = 1 with a finite gradient.
  Var scale(Tensor::scalar(0.0, DType::f64), true);
  auto fn = [&](const Var& z) { return sum(z, {1}) * scale; };
  Var z(Tensor::from_vector<double>({1, 2, 3, 4}, {2, 2}));
  Var gp = gradient_penalty(fn, z, z, Tensor::from_vector<double>({0.5, 0.5}, {2}));
  EXPECT_EQ(gp.item(), 1.0);
  gp.backward();
  ASSERT_TRUE(scale.grad().defined());
  EXPECT_TRUE(std::isfinite(scale.grad().item_double()));
}

TEST(Losses, GradientPenaltyErrors) {
  using afd::testing::expect_error;
  SafetensorsFile f = fixture();
  TinyD d(f);
  auto fn = [&](const Var& z) { return d(z); };
  Var z_clean(f.get("z_clean")), z_adv(f.get("z_adv"));
  expect_error([&] { gradient_penalty(fn, z_clean, z_adv, Tensor::zeros({3}, DType::f64)); },
               "alpha must have shape [4]");
  expect_error([&] { gradient_penalty(fn, z_clean, Var(Tensor::zeros({4, 2}, DType::f64)), Tensor::zeros({4}, DType::f64)); },
               "must have one shape");
  auto wide = [&](const Var& z) { return z; };  // N x 3 outputs instead of N
  expect_error([&] { gradient_penalty(wide, z_clean, z_adv, Tensor::zeros({4}, DType::f64)); },
               "the discriminator returned shape [4, 3], expected 4 values");
}

}  // namespace
