// The representation analyses (afd/eval/representation.h): the H-divergence estimate from D's
// outputs, the feature shift under an attack, the Jacobi eigenvalues, and the dimensionality of
// features with a known structure.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "afd/eval/representation.h"
#include "nn/models/discriminator.h"
#include "nn/models/resnet.h"
#include "nn/models/small_cnn.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/support/checks.h"

namespace afd::eval {
namespace {

TEST(HDivergence, AlphaAndDHatFromDOutputs) {
  // Clean: 3 of 4 called clean (D > 0); adversarial: 1 of 4 called adversarial (D < 0).
  HDivergence h = h_divergence(Tensor::from_vector<double>({1, 2, -1, 0.5}, {4, 1}),
                               Tensor::from_vector<double>({1, 2, -1, 0.5}, {4, 1}));
  EXPECT_DOUBLE_EQ(h.clean_right, 0.75);
  EXPECT_DOUBLE_EQ(h.adv_right, 0.25);
  EXPECT_DOUBLE_EQ(h.alpha, 1.0);
  EXPECT_DOUBLE_EQ(h.d_hat, 0.0);  // D does no better than chance: the features look alike
  // D separates perfectly: d_hat = 2; D exactly wrong: alpha = 0, d_hat = 2 as well.
  EXPECT_DOUBLE_EQ(h_divergence(Tensor::ones({5}), ops::neg(Tensor::ones({5}))).d_hat, 2.0);
  EXPECT_DOUBLE_EQ(h_divergence(ops::neg(Tensor::ones({5})), Tensor::ones({5})).d_hat, 2.0);
  EXPECT_EQ(h.count, 4);
  afd::testing::expect_error([] { h_divergence(Tensor::ones({3}), Tensor::ones({4})); }, "of one size");
}

// A critic with an arbitrary offset: every output above 0, clean ones higher. Eq. 6 sees nothing
// (alpha = 1); the fitted threshold separates them on held-out halves (alpha = 2).
TEST(HDivergence, FittedThresholdReadsACriticWithAnOffset) {
  Tensor clean = Tensor::from_vector<double>({5.1, 5.9, 5.3, 5.7, 5.5, 5.2}, {6});
  Tensor adv = Tensor::from_vector<double>({3.2, 3.8, 3.4, 3.1, 3.9, 3.6}, {6});
  EXPECT_DOUBLE_EQ(h_divergence(clean, adv).d_hat, 0.0);
  HDivergence f = h_divergence_fitted(clean, adv);
  EXPECT_DOUBLE_EQ(f.clean_right, 1.0);
  EXPECT_DOUBLE_EQ(f.adv_right, 1.0);
  EXPECT_DOUBLE_EQ(f.d_hat, 2.0);
  EXPECT_EQ(f.count, 6);
  // Reversed (clean below adversarial): the flipped orientation fits, d_hat = 2 as Eq. 6 would give
  // for a D that is exactly wrong.
  EXPECT_DOUBLE_EQ(h_divergence_fitted(adv, clean).d_hat, 2.0);
  EXPECT_TRUE(fit_threshold({1, 2}, {3, 4}).flipped);
  // The fitted threshold lies halfway between the two groups: (5.1 + 3.9) / 2 on all points.
  Threshold t = fit_threshold(clean.to_vector<double>(), adv.to_vector<double>());
  EXPECT_FALSE(t.flipped);
  EXPECT_NEAR(t.t, 4.5, 1e-12);
  // One point has no other half; non-finite outputs give NaN rather than a number.
  EXPECT_TRUE(std::isnan(h_divergence_fitted(Tensor::ones({1}), Tensor::ones({1})).d_hat));
  EXPECT_TRUE(std::isnan(
      h_divergence_fitted(Tensor::from_vector<double>({1, NAN}, {2}), Tensor::from_vector<double>({0, 0}, {2})).d_hat));
  afd::testing::expect_error([] { fit_threshold({1, INFINITY}, {0}); }, "not finite");
  afd::testing::expect_error([] { h_divergence_fitted(Tensor::ones({3}), Tensor::ones({4})); }, "of one size");
}

// fit_threshold against a brute force over every candidate (each output's value and the midpoints
// between neighbours, -inf, +inf), on overlapping random outputs with ties; and the cross-fitted
// alpha against counting each half with the threshold fitted on the other half.
TEST(HDivergence, FittedThresholdEqualsABruteForce) {
  Generator g(17);
  for (int trial = 0; trial < 20; ++trial) {
    const int64_t n = 2 + trial * 3;
    // Rounded to 0.25 so that ties occur; adversarial outputs shifted down by a trial-dependent amount.
    std::vector<double> c = rand({n}, g, DType::f64).to_vector<double>(), a = rand({n}, g, DType::f64).to_vector<double>();
    for (auto& v : c) v = std::round(v * 8) / 4;
    for (auto& v : a) v = std::round(v * 8) / 4 - 0.25 * (trial % 5) + 0.5;
    auto alpha_at = [&](const std::vector<double>& cs, const std::vector<double>& as, double t) {
      double r = 0;
      for (double v : cs) r += (v > t) / double(cs.size());
      for (double v : as) r += (v <= t) / double(as.size());
      return r;
    };
    std::vector<double> values = c;
    values.insert(values.end(), a.begin(), a.end());
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    std::vector<double> candidates = {-INFINITY};
    for (size_t i = 0; i < values.size(); ++i)
      candidates.push_back(i + 1 < values.size() ? (values[i] + values[i + 1]) / 2 : INFINITY);
    double best = -1;
    for (double t : candidates) best = std::max(best, std::abs(alpha_at(c, a, t) - 1));
    const Threshold th = fit_threshold(c, a);
    const double got = alpha_at(c, a, th.t);
    EXPECT_NEAR(std::abs(got - 1), best, 1e-12) << trial;
    EXPECT_EQ(th.flipped, got < 1) << trial;  // the orientation that reads the best deviation
    // Cross-fitting: fold f (points i % 2 == f) judged with the threshold fitted on the other fold.
    std::vector<double> fc[2], fa[2];
    for (int64_t i = 0; i < n; ++i) fc[i % 2].push_back(c[size_t(i)]), fa[i % 2].push_back(a[size_t(i)]);
    double alpha = 0;
    for (int f = 0; f < 2; ++f) {
      const Threshold other = fit_threshold(fc[1 - f], fa[1 - f]);
      const double k = alpha_at(fc[f], fa[f], other.t) * double(fc[f].size()) / double(n);  // this fold's share
      alpha += other.flipped ? 2 * double(fc[f].size()) / double(n) - k : k;
    }
    const HDivergence h = h_divergence_fitted(Tensor::from_vector<double>(c, {n}), Tensor::from_vector<double>(a, {n}));
    EXPECT_NEAR(h.alpha, alpha, 1e-12) << trial;
    EXPECT_DOUBLE_EQ(h.d_hat, 2 * std::abs(h.alpha - 1));
  }
}

TEST(HDivergence, EstimatedThroughTheModelAndTheDiscriminator) {
  Generator g(5);
  nn::SmallCNN model(nn::SmallCNNConfig{}, g);
  nn::SNPDFC3 disc(model.feature_dim(), 10, g);
  Tensor x = rand({6, 1, 28, 28}, g, DType::f32), y = Tensor::from_vector<int64_t>({0, 1, 2, 3, 4, 5}, {6});
  // The same images as "adversarial": D's outputs agree, so alpha = 1 exactly and d_hat = 0, for
  // Eq. 6 and for the fitted threshold.
  const Tensor z = features_of(model, x, /*batch_size=*/4);
  DOutputs d = discriminator_outputs(disc, z, z, y);
  EXPECT_EQ(d.clean.shape(), (Shape{6}));
  EXPECT_EQ(d.clean.to_vector<float>(), d.adv.to_vector<float>());
  for (const HDivergence& same : {h_divergence(d.clean, d.adv), h_divergence_fitted(d.clean, d.adv)}) {
    EXPECT_DOUBLE_EQ(same.alpha, 1.0);
    EXPECT_DOUBLE_EQ(same.d_hat, 0.0);
  }
  EXPECT_EQ(z.shape(), (Shape{6, model.feature_dim()}));
  EXPECT_TRUE(model.is_training());  // the modes are restored
  EXPECT_TRUE(disc.is_training());
}

TEST(FeatureShift, DistancesAndRelativeDistancesPerPoint) {
  // z rows (3, 4), (0, 0), (1, 0); z_adv moves them by (0, 1.5), (1, 0), (0, 0).
  const Tensor z = Tensor::from_vector<float>({3, 4, 0, 0, 1, 0}, {3, 2});
  const Tensor z_adv = Tensor::from_vector<float>({3, 5.5f, 1, 0, 1, 0}, {3, 2});
  const FeatureShift s = feature_shift(z, z_adv);
  EXPECT_EQ(s.shift, (std::vector<double>{1.5, 1.0, 0.0}));
  ASSERT_EQ(s.relative.size(), 3u);
  EXPECT_DOUBLE_EQ(s.relative[0], 1.5 / 5);
  EXPECT_TRUE(std::isnan(s.relative[1]));  // z = 0: no scale
  EXPECT_EQ(s.relative[2], 0.0);
  afd::testing::expect_error([&] { feature_shift(z, z_adv.slice(0, 2)); }, "feature_shift: clean and adversarial features");
}

TEST(FeatureShift, ThroughAModel) {
  // The same images give no shift; images moved by an attack-sized step give a positive one, and
  // on a ResNet's L2-normalised z the relative shift equals the shift.
  Generator g(8);
  nn::ResNet18 model(nn::ResNetConfig::mnist(10, 4), g);
  Tensor x = rand({5, 1, 28, 28}, g, DType::f32);
  Tensor x_adv = ops::clamp(ops::add(x, ops::mul_scalar(ops::sign(randn(x.shape(), g)), 0.3)), 0, 1);
  const Tensor z = features_of(model, x, 2);
  const FeatureShift same = feature_shift(z, features_of(model, x, 2));
  for (double v : same.shift) EXPECT_EQ(v, 0.0);
  const FeatureShift moved = feature_shift(z, features_of(model, x_adv, 2));
  for (size_t i = 0; i < moved.shift.size(); ++i) {
    EXPECT_GT(moved.shift[i], 1e-4) << i;
    EXPECT_NEAR(moved.relative[i], moved.shift[i], 1e-6 * moved.shift[i]) << i;
  }
}

TEST(Dimensionality, EigenvaluesOfAKnownMatrix) {
  // Q diag(5, 2, 1, 0) Q^T with Q a rotation in the (0, 1) and (2, 3) planes.
  const double c = std::cos(0.3), s = std::sin(0.3);
  std::vector<double> q = {c, -s, 0, 0, s, c, 0, 0, 0, 0, c, -s, 0, 0, s, c}, d = {5, 2, 1, 0}, a(16, 0.0);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 4; ++k) a[i * 4 + j] += q[i * 4 + k] * d[k] * q[j * 4 + k];
  std::vector<double> e = symmetric_eigenvalues(a, 4);
  ASSERT_EQ(e.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(e[i], d[i], 1e-12) << i;
}

TEST(Dimensionality, CountsNonZeroDimensionsAndPrincipalComponents) {
  // 200 points in a 3-dim subspace of 16 dims (variances 9, 4, 1 along random directions), and
  // dims 12..15 exactly zero.
  Generator g(9);
  const int64_t N = 200, F = 16;
  Tensor basis = randn({3, 12}, g, DType::f64), coef = randn({N, 3}, g, DType::f64);
  coef = ops::mul(coef, Tensor::from_vector<double>({3, 2, 1}, {1, 3}));
  Tensor z = ops::matmul(coef, basis);  // [N, 12]
  z = cat({z, Tensor::zeros({N, F - 12}, DType::f64)}, 1);
  Dimensionality d = dimensionality(z);
  EXPECT_EQ(d.features, F);
  EXPECT_EQ(d.nonzero, 12);
  EXPECT_EQ(d.pca_99, 3);
  ASSERT_EQ(d.explained.size(), size_t(F));
  EXPECT_NEAR(d.explained[0] + d.explained[1] + d.explained[2], 1.0, 1e-9);
  // A threshold below the first component's share needs one component.
  EXPECT_EQ(dimensionality(z, d.explained[0] * 0.5).pca_99, 1);
  afd::testing::expect_error([&] { dimensionality(z.slice(0, 1)); }, "N >= 2");
}

}  // namespace
}  // namespace afd::eval
