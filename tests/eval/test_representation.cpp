// The representation analyses (afd/eval/representation.h): the H-divergence estimate from D's
// outputs, the Jacobi eigenvalues, and the dimensionality of features with a known structure.
#include <gtest/gtest.h>

#include <cmath>

#include "afd/eval/representation.h"
#include "nn/models/discriminator.h"
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

TEST(HDivergence, EstimatedThroughTheModelAndTheDiscriminator) {
  Generator g(5);
  nn::SmallCNN model(nn::SmallCNNConfig{}, g);
  nn::SNPDFC3 disc(model.feature_dim(), 10, g);
  Tensor x = rand({6, 1, 28, 28}, g, DType::f32), y = Tensor::from_vector<int64_t>({0, 1, 2, 3, 4, 5}, {6});
  // The same images as "adversarial": D's outputs agree, so alpha = 1 exactly and d_hat = 0.
  HDivergence same = estimate_h_divergence(model, disc, x, x, y, /*batch_size=*/4);
  EXPECT_DOUBLE_EQ(same.alpha, 1.0);
  EXPECT_DOUBLE_EQ(same.d_hat, 0.0);
  EXPECT_EQ(features_of(model, x, 4).shape(), (Shape{6, model.feature_dim()}));
  EXPECT_TRUE(model.is_training());  // the modes are restored
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
