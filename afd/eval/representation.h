// Analyses of the learned representation z = F(x) (the L2-normalised features C and D see), as
// the paper measures them (specs/afd.md):
//
//   H-divergence estimate (Fig. 3, Eq. 6): with AFD's discriminator D,
//     alpha = P_clean[D(F(x), y) > 0] + P_adv[D(F(x'), y) < 0],   d_hat = 2 |alpha - 1|
//   d_hat near 0: D cannot tell adversarial features from clean ones (desensitised features);
//   near 2: it always can. The paper's claim is that d_hat tracks the adversarial-minus-clean
//   error gap across attacks and eps.
//
//   Dimensionality (Sec. 4.5, Table A4): the feature dimensions that are non-zero anywhere on the
//   data, and the number of principal components that explain 99% of the features' variance
//   (the paper: AFD 6 on MNIST, 9 on CIFAR-10, 76 on CIFAR-100).
//
//   HDivergence h = estimate_h_divergence(model, disc, x, x_adv, y);
//   Dimensionality d = dimensionality(features_of(model, x));
#pragma once
#include <cstdint>
#include <vector>

#include "nn/models/discriminator.h"
#include "nn/module.h"
#include "tensor/tensor.h"

namespace afd::eval {

struct HDivergence {
  double clean_right = 0;  // P_clean[D > 0]: clean features D calls clean
  double adv_right = 0;    // P_adv[D < 0]: adversarial features D calls adversarial
  double alpha = 0;        // clean_right + adv_right
  double d_hat = 0;        // 2 |alpha - 1|
  int64_t count = 0;       // points of each kind
};

// From D's outputs on clean and adversarial features ([N] or [N, 1] each, the same N).
HDivergence h_divergence(const Tensor& d_clean, const Tensor& d_adv);
// Features in eval mode (no tape), then D on both, batch by batch.
HDivergence estimate_h_divergence(nn::Classifier& model, nn::SNPDFC3& disc, const Tensor& x, const Tensor& x_adv,
                                  const Tensor& y, int64_t batch_size = 256);

// z = F(x) in eval mode with no tape, batch by batch: [N, feature_dim] on x's device.
Tensor features_of(nn::Classifier& model, const Tensor& x, int64_t batch_size = 256);

struct Dimensionality {
  int64_t features = 0;     // F, the feature size
  int64_t nonzero = 0;      // dimensions with |z_j| > 0 for some point
  int64_t pca_99 = 0;       // principal components explaining >= 99% of the variance
  std::vector<double> explained;  // variance fraction of each component, descending
};
// z [N, F], N >= 2. `threshold` is the variance fraction (0.99 in the paper).
Dimensionality dimensionality(const Tensor& z, double threshold = 0.99);

// Eigenvalues of the symmetric matrix a [n, n] (row-major), descending: cyclic Jacobi rotations
// in double until the off-diagonal mass is below 1e-22 of the total. Exposed for its test.
std::vector<double> symmetric_eigenvalues(std::vector<double> a, int64_t n);

}  // namespace afd::eval
