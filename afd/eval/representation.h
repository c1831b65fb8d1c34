// Analyses of the learned representation z = F(x) (the L2-normalised features C and D see), as
// the paper measures them (specs/afd.md):
//
//   H-divergence estimate (Fig. 3, Eq. 6): with AFD's discriminator D,
//     alpha = P_clean[D(F(x), y) > 0] + P_adv[D(F(x'), y) < 0],   d_hat = 2 |alpha - 1|
//   d_hat near 0: D cannot tell adversarial features from clean ones (desensitised features);
//   near 2: it always can. The paper's claim is that d_hat tracks the adversarial-minus-clean
//   error gap across attacks and eps.
//   Eq. 6 reads D's sign, a threshold at 0. A Wasserstein critic has no calibrated offset (it
//   may score every input above 0 and still rank clean above adversarial), so the fitted
//   estimate replaces 0 by the threshold (and orientation) that maximises |alpha - 1| on one half
//   of the points and measures alpha on the other half, and the other way round (2-fold
//   cross-fitting: no point is scored with a threshold fitted on it).
//
//   Feature sensitivity (Sec. 4.6's S_e, Figure A4): how far an attack moves each point's features,
//     shift_i = ||F(x'_i) - F(x_i)||_2,   relative_i = shift_i / ||F(x_i)||_2,
//   and S_e = the mean shift. The relative shift makes models comparable whose z is not
//   L2-normalised; for z on the unit sphere (the paper's ResNets) the two are equal. AFD's claim is
//   that its features move less than AT's and TRADES', over a larger range of eps.
//
//   Dimensionality (Sec. 4.5, Table A4): the feature dimensions that are non-zero anywhere on the
//   data, and the number of principal components that explain 99% of the features' variance
//   (the paper: AFD 6 on MNIST, 9 on CIFAR-10, 76 on CIFAR-100).
//
//   Tensor z = features_of(model, x), z_adv = features_of(model, x_adv);
//   DOutputs d = discriminator_outputs(disc, z, z_adv, y);
//   HDivergence h = h_divergence(d.clean, d.adv), fitted = h_divergence_fitted(d.clean, d.adv);
//   FeatureShift s = feature_shift(z, z_adv);
//   Dimensionality d = dimensionality(z);
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

// Eq. 6 from D's outputs on clean and adversarial features ([N] or [N, 1] each, the same N).
HDivergence h_divergence(const Tensor& d_clean, const Tensor& d_adv);

// The fitted estimate: the same fields, each point judged by the threshold fitted on the other
// half (points 0, 2, 4, ... and 1, 3, 5, ...; D > t calls a point clean, D <= t adversarial, or
// the reverse where that orientation fits better). alpha >= 1 up to noise; NaN fields for N < 2.
HDivergence h_divergence_fitted(const Tensor& d_clean, const Tensor& d_adv);

// The threshold (and orientation) fitted on one set of D outputs: t maximises |alpha(t) - 1| with
// alpha(t) = P_clean[D > t] + P_adv[D <= t]; flipped means D <= t calls a point clean (then
// alpha is 2 - alpha(t)). t is -inf, +inf or the midpoint between two neighbouring outputs; of
// equal candidates the lowest t and the unflipped orientation win. Exposed for its test.
struct Threshold {
  double t = 0;
  bool flipped = false;
};
Threshold fit_threshold(const std::vector<double>& d_clean, const std::vector<double>& d_adv);

// z = F(x) in eval mode with no tape, batch by batch: [N, feature_dim] on x's device.
Tensor features_of(nn::Classifier& model, const Tensor& x, int64_t batch_size = 256);

// D's outputs ([N] each, z's device) on the clean and the adversarial features z, z_adv [N, F] of
// points labelled y [N]: D in eval mode (spectral norm from its stored vectors), no tape.
struct DOutputs {
  Tensor clean, adv;
};
DOutputs discriminator_outputs(nn::SNPDFC3& disc, const Tensor& z, const Tensor& z_adv, const Tensor& y);

// Per point of z, z_adv [N, F] (host values): shift_i = ||z_adv_i - z_i||_2 and
// relative_i = shift_i / ||z_i||_2 (NaN where z_i = 0).
struct FeatureShift {
  std::vector<double> shift, relative;
};
FeatureShift feature_shift(const Tensor& z, const Tensor& z_adv);

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
