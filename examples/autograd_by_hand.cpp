// Backpropagation by hand, checked against the library's autograd.
//
// What it teaches: the chain rule for a 2-layer MLP written out with matrices, using plain tensor
// ops (tensor/ops.h, no tape), next to the same gradients from autograd (autograd/ops.h). Both are
// printed, then the largest difference; the program exits with status 1 if any gradient differs by
// more than 1e-10 (everything is float64, so the two agree to rounding).
//
// Run:  build/examples/autograd_by_hand
//
// The network, N = 4 samples, 3 inputs, 5 hidden units, 2 classes:
//   z1 = x W1^T + b1        [4, 5]    x [4, 3], W1 [5, 3], b1 [5]
//   h  = relu(z1)           [4, 5]
//   z2 = h W2^T + b2        [4, 2]    W2 [2, 5], b2 [2]   (the logits)
//   L  = (1/N) sum_i -log softmax(z2_i)[y_i]              (mean cross-entropy, a scalar)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

using namespace afd;

namespace {

void print_tensor(const std::string& name, const Tensor& t) {
  std::printf("  %-9s %s:", name.c_str(), shape_str(t.shape()).c_str());
  for (double v : t.to_vector<double>()) std::printf(" %+.6f", v);
  std::printf("\n");
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  return ops::max(ops::abs(ops::sub(a, b)).reshape({-1}), 0).first.item_double();
}

}  // namespace

int main() {
  const int64_t N = 4, in = 3, hidden = 5, classes = 2;
  Generator gen(/*seed=*/0);
  const Tensor x = Tensor::from_vector<double>({0.5, -1.0, 2.0, 1.5, 0.2, -0.3, -0.7, 0.9, 0.1, 0.0, -1.2, 0.8},
                                               {N, in});
  const Tensor y = Tensor::from_vector<int64_t>({0, 1, 1, 0}, {N});
  const Tensor w1 = randn({hidden, in}, gen, DType::f64, Device::cpu(), 0, 0.7);
  const Tensor b1 = randn({hidden}, gen, DType::f64, Device::cpu(), 0, 0.1);
  const Tensor w2 = randn({classes, hidden}, gen, DType::f64, Device::cpu(), 0, 0.7);
  const Tensor b2 = randn({classes}, gen, DType::f64, Device::cpu(), 0, 0.1);

  // ---- forward, with tensor ops only (nothing is recorded) ----------------------------------
  const Tensor z1 = ops::add(ops::matmul(x, w1, false, /*trans_b=*/true), b1);  // [4, 5]
  const Tensor h = ops::relu(z1);                                                // [4, 5]
  const Tensor z2 = ops::add(ops::matmul(h, w2, false, true), b2);               // [4, 2]
  const double loss = ops::mean(ops::cross_entropy(z2, y)).item_double();

  // ---- backward by hand: each line is one step of the chain rule ------------------------------
  // dL/dz2 = (softmax(z2) - onehot(y)) / N: the softmax-cross-entropy gradient, averaged.  [4, 2]
  const Tensor d_z2 =
      ops::mul_scalar(ops::sub(ops::softmax(z2, 1), ops::one_hot(y, classes, DType::f64)), 1.0 / double(N));
  // z2 = h W2^T + b2:  dL/dW2 = dz2^T h [2, 5],  dL/db2 = sum over rows of dz2 [2],  dL/dh = dz2 W2 [4, 5].
  const Tensor d_w2 = ops::matmul(d_z2, h, /*trans_a=*/true);
  const Tensor d_b2 = ops::sum(d_z2, {0});
  const Tensor d_h = ops::matmul(d_z2, w2);
  // h = relu(z1):  dL/dz1 = dL/dh * 1[z1 > 0] (elementwise; sign(relu(z1)) is that 0/1 mask).  [4, 5]
  const Tensor d_z1 = ops::mul(d_h, ops::sign(h));
  // z1 = x W1^T + b1:  dL/dW1 = dz1^T x [5, 3],  dL/db1 = sum over rows of dz1 [5],  dL/dx = dz1 W1 [4, 3].
  const Tensor d_w1 = ops::matmul(d_z1, x, true);
  const Tensor d_b1 = ops::sum(d_z1, {0});
  const Tensor d_x = ops::matmul(d_z1, w1);

  // ---- the same gradients from autograd ---------------------------------------------------------
  // Leaves that require a gradient; the forward records one node per op on the tape, and
  // backward() replays it in reverse, accumulating into each leaf's .grad().
  Var vx(x, true), vw1(w1, true), vb1(b1, true), vw2(w2, true), vb2(b2, true);
  Var logits = linear(relu(linear(vx, vw1, vb1)), vw2, vb2);
  Var vloss = cross_entropy(logits, y);  // mean over the 4 samples
  vloss.backward();

  // In the printout, hidden unit 3 has z1 < 0 for all 4 samples: the relu mask zeroes its row of
  // dL/dW1, its entry of dL/db1 and (since h = 0 there) its column of dL/dW2 (a "dead" unit).
  std::printf("loss: by hand %.12f, autograd %.12f\n", loss, vloss.data().item_double());
  struct Pair {
    const char* name;
    Tensor by_hand, autograd;
  };
  const std::vector<Pair> pairs = {{"dL/dW1", d_w1, vw1.grad()}, {"dL/db1", d_b1, vb1.grad()},
                                   {"dL/dW2", d_w2, vw2.grad()}, {"dL/db2", d_b2, vb2.grad()},
                                   {"dL/dx", d_x, vx.grad()}};
  double worst = std::fabs(loss - vloss.data().item_double());
  for (const Pair& p : pairs) {
    const double diff = max_abs_diff(p.by_hand, p.autograd);
    std::printf("%s  (max |by hand - autograd| = %.3e)\n", p.name, diff);
    print_tensor("by hand", p.by_hand);
    print_tensor("autograd", p.autograd);
    worst = std::max(worst, diff);
  }
  const bool ok = worst <= 1e-10;
  std::printf("max difference: %.3e (%s, tolerance 1e-10)\n", worst, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
