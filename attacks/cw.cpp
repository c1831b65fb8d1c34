// Carlini-Wagner L2 (Carlini and Wagner, S&P 2017); see minimal_norm_attacks.h.
#include <cmath>
#include <limits>
#include <vector>

#include "attacks/core.h"
#include "attacks/minimal_norm_attacks.h"
#include "autograd/ops.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::attacks {

namespace {

// a where mask_i, else b (rows).
Tensor where_rows(const std::vector<uint8_t>& mask, const Tensor& a, const Tensor& b) {
  std::vector<double> m(mask.begin(), mask.end());
  return ops::where(as_rows(m, a), a, b);
}

// Adam (Kingma and Ba 2015) on one tensor, bias-corrected:
//   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   step = lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
class Adam {
 public:
  Adam(const Tensor& like, double lr)
      : lr_(lr), m_(Tensor::zeros(like.shape(), like.dtype(), like.device())), v_(m_.clone()) {}
  // The step to subtract from the parameter.
  Tensor step(const Tensor& g) {
    ++t_;
    m_ = ops::add(ops::mul_scalar(m_, kBeta1), ops::mul_scalar(g, 1 - kBeta1));
    v_ = ops::add(ops::mul_scalar(v_, kBeta2), ops::mul_scalar(ops::mul(g, g), 1 - kBeta2));
    const double c1 = 1 - std::pow(kBeta1, t_), c2 = 1 - std::pow(kBeta2, t_);
    Tensor denom = ops::add_scalar(ops::sqrt(ops::mul_scalar(v_, 1 / c2)), kEps);
    return ops::mul_scalar(ops::div(m_, denom), lr_ / c1);
  }

 private:
  static constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;
  double lr_;
  Tensor m_, v_;
  int t_ = 0;
};

}  // namespace

CarliniWagnerL2::CarliniWagnerL2(AttackConfig config, CarliniWagnerOptions options)
    : Attack(config), options_(options) {
  AFD_CHECK(config.norm == Norm::l2, "cw-l2: the norm must be l2, got {}", norm_name(config.norm));
  AFD_CHECK(!config.random_start, "cw-l2: random_start is not supported (a minimal-norm attack runs once from x)");
  AFD_CHECK(config.binary_steps >= 1, "cw-l2: binary_steps must be >= 1, got {}", config.binary_steps);
  AFD_CHECK(std::isfinite(config.initial_const) && config.initial_const > 0,
            "cw-l2: initial_const must be > 0, got {}", config.initial_const);
  AFD_CHECK(std::isfinite(config.confidence) && config.confidence >= 0, "cw-l2: confidence must be >= 0, got {}",
            config.confidence);
  AFD_CHECK(options.abort_threshold > 0, "cw-l2: abort_threshold must be > 0, got {}", options.abort_threshold);
}

Tensor CarliniWagnerL2::run(const Problem& p, Generator&) {
  const Tensor& x0 = p.x;
  const int64_t n = x0.size(0);
  if (n == 0) return x0.clone();
  const bool targeted = config_.targeted;
  const double kappa = config_.confidence;
  const std::vector<int64_t> labels = (targeted ? p.target : p.y).to(Device::cpu()).to_vector<int64_t>();
  LossInputs in{&p.y, &p.target, nullptr};

  // Tanh space: w0 = atanh((2 x0 - 1) 0.999999), x(w) = (tanh(w) + 1) / 2, and the reconstruction
  // x(w0) that the distance term is measured to.
  const Tensor w0 = ops::unary(UnaryOp::atanh, ops::unary(UnaryOp::affine, x0, 2 * 0.999999, -0.999999));
  const Tensor x_rec = ops::unary(UnaryOp::affine, ops::tanh(w0), 0.5, 0.5);

  std::vector<double> c(static_cast<size_t>(n), config_.initial_const), lo(static_cast<size_t>(n), 0.0),
      hi(static_cast<size_t>(n), std::numeric_limits<double>::infinity());
  std::vector<double> best_norm(static_cast<size_t>(n), std::numeric_limits<double>::infinity());
  Tensor best = x0.clone();  // x0 where nothing is found
  const int check_every = std::max(1, (config_.steps + 9) / 10);  // ceil(steps / 10)

  for (int bs = 0; bs < config_.binary_steps; ++bs) {
    if (config_.binary_steps >= 10 && bs == config_.binary_steps - 1)
      for (int64_t i = 0; i < n; ++i) c[i] = std::min(hi[i], 1e10);  // the last step repeats the best c
    Tensor delta = Tensor::zeros(x0.shape(), x0.dtype(), x0.device());
    Adam adam(delta, config_.step_size);
    std::vector<uint8_t> found(static_cast<size_t>(n), 0);
    double prev = options_.abort_initial_prev;
    const Tensor c_t = Tensor::from_vector<double>(c, {n}).to(x0.dtype()).to(x0.device());

    for (int step = 0; step < config_.steps; ++step) {
      // loss = sum_i c_i max(0, m_i + kappa) + sum_i ||x(w0 + delta_i) - x(w0_i)||^2
      Tensor x_adv, logits;
      // Read on the host (a device sync on a GPU) only on the steps where abort-early looks at it.
      const bool check = config_.abort_early && step % check_every == 0;
      double loss_value = 0;
      Tensor g;
      {
        GradModeGuard grad_on(true);
        Var d(delta, /*requires_grad=*/true);
        Var xa = affine(tanh(add(Var(w0), d)), 0.5, 0.5);
        Var z = p.model->forward(xa);
        // core's cw loss is max_{j != l} z_j - z_l with l = y (or t when targeted): -m untargeted, m targeted.
        Var margin = per_sample_loss(LossKind::cw, z, in, targeted);
        if (!targeted) margin = neg(margin);
        Var hinge = clamp(add(margin, kappa), 0.0, std::numeric_limits<double>::infinity());
        Var diff = sub(xa, Var(x_rec));
        Var loss = add(sum(mul(hinge, Var(c_t))), sum(mul(diff, diff)));
        g = afd::grad({loss}, {d})[0].data();
        if (check) loss_value = loss.item();
        x_adv = xa.data();
        logits = z.data();
      }
      delta = ops::sub(delta, adam.step(g));

      if (check) {
        if (!(loss_value <= options_.abort_threshold * prev)) break;  // no progress in a tenth of the steps
        prev = loss_value;
      }

      // Success with the confidence margin: argmax(z + kappa onehot_y) != y, or
      // argmax(z - kappa onehot_t) == t.
      std::vector<double> zh = host_rows(logits);
      const int64_t classes = logits.size(1);
      std::vector<double> norm = host_rows(row_norms(ops::sub(x_adv, x0), Norm::l2));
      std::vector<uint8_t> better(static_cast<size_t>(n), 0);
      bool any_better = false;
      for (int64_t i = 0; i < n; ++i) {
        AFD_CHECK(labels[i] >= 0 && labels[i] < classes, "cw-l2: label {} of row {} is not a class of the model's {}",
                  labels[i], i, classes);
        double* row = zh.data() + i * classes;
        row[labels[i]] += targeted ? -kappa : kappa;
        int64_t arg = 0;
        for (int64_t j = 1; j < classes; ++j)
          if (row[j] > row[arg]) arg = j;
        const bool ok = targeted ? arg == labels[i] : arg != labels[i];
        found[i] |= ok;
        if (ok && norm[i] < best_norm[i]) {
          best_norm[i] = norm[i];
          better[i] = 1;
          any_better = true;
        }
      }
      if (any_better) best = where_rows(better, x_adv, best);
    }

    // Binary search: the smallest c that still finds an adversarial.
    for (int64_t i = 0; i < n; ++i) {
      (found[i] ? hi[i] : lo[i]) = c[i];
      c[i] = std::isinf(hi[i]) ? c[i] * 10 : (lo[i] + hi[i]) / 2;
    }
  }
  return best;
}

}  // namespace afd::attacks
