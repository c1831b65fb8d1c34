// AFD's losses, composed from differentiable ops: no backward is written here.
#include "nn/optim/losses.h"

#include "autograd/ops.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd {

namespace {

void check_logits_pair(const Var& d_clean, const Var& d_adv, const char* who) {
  AFD_CHECK(d_clean.defined() && d_adv.defined(), "{}: undefined discriminator output", who);
  AFD_CHECK(d_clean.numel() > 0 && d_adv.numel() > 0, "{}: empty discriminator output ({} and {})", who,
            shape_str(d_clean.shape()), shape_str(d_adv.shape()));
}

void check_logits(const Var& d, const char* who) {
  AFD_CHECK(d.defined() && d.numel() > 0, "{}: undefined or empty discriminator output", who);
}

}  // namespace

Var trades_kl(const Var& logits_clean, const Var& logits_adv) {
  // kl_div reduces the per-sample KL(p || q) (summed over classes) by the mean over the batch:
  // exactly sum / N, TRADES' "batchmean".
  return kl_div(logits_clean, logits_adv, Reduction::mean);
}

// ---- GAN losses ------------------------------------------------------------------------------

Var dcgan_discriminator_loss(const Var& d_clean, const Var& d_adv) {
  check_logits_pair(d_clean, d_adv, "dcgan_discriminator_loss");
  // -log sigmoid(D(x)) - log(1 - sigmoid(D(x'))) = S(-D(x)) + S(D(x'))
  return mean(softplus(neg(d_clean))) + mean(softplus(d_adv));
}

Var dcgan_feature_loss(const Var& d_adv) {
  check_logits(d_adv, "dcgan_feature_loss");
  return mean(softplus(neg(d_adv)));
}

Var wgan_discriminator_loss(const Var& d_clean, const Var& d_adv) {
  check_logits_pair(d_clean, d_adv, "wgan_discriminator_loss");
  return mean(d_adv) - mean(d_clean);
}

Var wgan_feature_loss(const Var& d_adv) {
  check_logits(d_adv, "wgan_feature_loss");
  return neg(mean(d_adv));
}

Var hinge_discriminator_loss(const Var& d_clean, const Var& d_adv) {
  check_logits_pair(d_clean, d_adv, "hinge_discriminator_loss");
  return mean(relu(affine(d_clean, -1, 1))) + mean(relu(affine(d_adv, 1, 1)));
}

Var hinge_feature_loss(const Var& d_adv) {
  check_logits(d_adv, "hinge_feature_loss");
  return neg(mean(d_adv));
}

Var discriminator_loss(GanLoss kind, const Var& d_clean, const Var& d_adv) {
  switch (kind) {
    case GanLoss::dcgan: return dcgan_discriminator_loss(d_clean, d_adv);
    case GanLoss::wgan: return wgan_discriminator_loss(d_clean, d_adv);
    case GanLoss::hinge: return hinge_discriminator_loss(d_clean, d_adv);
  }
  AFD_FAIL("discriminator_loss: unknown GAN loss {}", static_cast<int>(kind));
}

Var feature_loss(GanLoss kind, const Var& d_adv) {
  switch (kind) {
    case GanLoss::dcgan: return dcgan_feature_loss(d_adv);
    case GanLoss::wgan: return wgan_feature_loss(d_adv);
    case GanLoss::hinge: return hinge_feature_loss(d_adv);
  }
  AFD_FAIL("feature_loss: unknown GAN loss {}", static_cast<int>(kind));
}

// ---- gradient penalty ------------------------------------------------------------------------

Var gradient_penalty(const DiscriminatorFn& d, const Var& z_clean, const Var& z_adv, const Tensor& alpha) {
  AFD_CHECK(z_clean.defined() && z_adv.defined(), "gradient_penalty: undefined features");
  AFD_CHECK(z_clean.shape() == z_adv.shape() && z_clean.dim() >= 1,
            "gradient_penalty: z_clean {} and z_adv {} must have one shape [N, ...]", shape_str(z_clean.shape()),
            shape_str(z_adv.shape()));
  const int64_t n = z_clean.size(0);
  AFD_CHECK(alpha.defined() && alpha.shape() == Shape{n},
            "gradient_penalty: alpha must have shape [{}] (one per sample), got {}", n,
            alpha.defined() ? shape_str(alpha.shape()) : "undefined");

  // z_int = z' + a (z - z'), a broadcast over each sample's features: a new leaf, so that the
  // input gradient below is d D / d z_int and nothing flows back into F.
  Shape alpha_shape(static_cast<size_t>(z_clean.dim()), 1);
  alpha_shape[0] = n;
  Tensor z_int_data;
  {
    NoGradGuard no_grad;
    Tensor a = alpha.to(z_clean.dtype()).reshape(alpha_shape);
    z_int_data = ops::add(z_adv.data(), ops::mul(a, ops::sub(z_clean.data(), z_adv.data())));
  }
  Var z_int(z_int_data, /*requires_grad=*/true);

  Var out = d(z_int);
  AFD_CHECK(out.numel() == n, "gradient_penalty: the discriminator returned shape {}, expected {} values",
            shape_str(out.shape()), n);
  // g = d sum(D(z_int)) / d z_int, itself on the tape (create_graph) so GP can be differentiated
  // w.r.t. D's parameters; retain_graph keeps D's forward tape, which g's graph reaches.
  Var g = grad({out}, {z_int}, {Tensor::ones(out.shape(), out.dtype(), out.device())},
               /*retain_graph=*/true, /*create_graph=*/true)[0];
  AFD_CHECK(g.defined(), "gradient_penalty: the discriminator's output does not depend on its input");

  std::vector<int64_t> feature_dims;
  for (int64_t k = 1; k < g.dim(); ++k) feature_dims.push_back(k);
  Var sq = feature_dims.empty() ? mul(g, g) : sum(mul(g, g), feature_dims);  // [N] = ||g_i||^2
  // ||g_i|| = sqrt(sq_i); where sq_i == 0 the sqrt sees 1 instead (finite derivative) and the norm
  // is replaced by 0, so the gradient there is 0 rather than 0 * inf = NaN.
  Tensor positive = ops::unary(UnaryOp::gt_scalar, sq.data(), 0.0);
  Var ones(Tensor::ones(sq.shape(), sq.dtype(), sq.device()));
  Var zeros(Tensor::zeros(sq.shape(), sq.dtype(), sq.device()));
  Var norm = where(positive, sqrt(where(positive, sq, ones)), zeros);
  Var dev = norm - 1.0;
  return mean(mul(dev, dev));
}

Var gradient_penalty(const DiscriminatorFn& d, const Var& z_clean, const Var& z_adv, Generator& gen) {
  AFD_CHECK(z_clean.defined() && z_clean.dim() >= 1, "gradient_penalty: undefined or 0-d features");
  Tensor alpha = rand({z_clean.size(0)}, gen, z_clean.dtype(), z_clean.device());
  return gradient_penalty(d, z_clean, z_adv, alpha);
}

}  // namespace afd
