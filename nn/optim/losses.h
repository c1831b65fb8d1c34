// The losses of AFD and its baselines (specs/afd.md), composed from differentiable ops
// (autograd/ops.h), so their gradients come from the ops' own backward closures.
//
// Cross-entropy is autograd's cross_entropy(logits, labels, reduction); it is not repeated here.
//
// Conventions: D(.) is the discriminator's logit, one per sample ([N] or [N, 1]); "clean" is
// D(F(x), y), "adv" is D(F(x'), y). The discriminator says "clean" with large logits. S = softplus.
//
//   Var l_d = discriminator_loss(GanLoss::wgan, d_clean, d_adv);   // D step
//   Var l_f = feature_loss(GanLoss::wgan, d_adv);                   // F step (fool D)
//   Var l_trades = cross_entropy(logits_clean, y) + beta * trades_kl(logits_clean, logits_adv);
#pragma once
#include <functional>
#include <string>

#include "autograd/var.h"
#include "tensor/rng.h"

namespace afd {

// TRADES' robust term: (1/N) sum_i KL(softmax(clean_i) || softmax(adv_i)) over logits [N, K]
// ("batchmean"; the TRADES reference: KLDivLoss(sum)(log_softmax(adv), softmax(clean)) / N).
// The gradient flows into both logits, as in the reference.
Var trades_kl(const Var& logits_clean, const Var& logits_adv);

// ---- GAN losses ------------------------------------------------------------------------------
// DCGAN (paper Eq. 9, 10):        L_D = mean S(-D(x)) + mean S(D(x'))      L_F = mean S(-D(x'))
Var dcgan_discriminator_loss(const Var& d_clean, const Var& d_adv);
Var dcgan_feature_loss(const Var& d_adv);
// Wasserstein (Eq. 11, 12):       L_D = mean D(x') - mean D(x)            L_F = -mean D(x')
Var wgan_discriminator_loss(const Var& d_clean, const Var& d_adv);
Var wgan_feature_loss(const Var& d_adv);
// Hinge:                          L_D = mean relu(1 - D(x)) + mean relu(1 + D(x'))   L_F = -mean D(x')
Var hinge_discriminator_loss(const Var& d_clean, const Var& d_adv);
Var hinge_feature_loss(const Var& d_adv);

enum class GanLoss { dcgan, wgan, hinge };
GanLoss parse_gan_loss(const std::string& name);  // "dcgan", "wgan", "hinge"; else an error
const char* gan_loss_name(GanLoss kind);
Var discriminator_loss(GanLoss kind, const Var& d_clean, const Var& d_adv);
Var feature_loss(GanLoss kind, const Var& d_adv);

// ---- gradient penalty (WGAN-GP) ---------------------------------------------------------------
// A discriminator as a function of the features z [N, ...] -> one logit per sample (N values).
using DiscriminatorFn = std::function<Var(const Var& z)>;

// GP = mean_i (||grad_z D(z_int)_i||_2 - 1)^2 with z_int = z_adv + alpha_i (z_clean - z_adv).
// z_clean and z_adv are used as values (detached: no gradient reaches F through GP); alpha is [N]
// in [0, 1]. The input gradient is taken with create_graph, so GP is differentiable w.r.t. D's
// parameters: GP.backward() accumulates d GP / d theta_D. A per-sample gradient norm of exactly 0
// gets the subgradient 0 (as torch's norm), not NaN.
Var gradient_penalty(const DiscriminatorFn& d, const Var& z_clean, const Var& z_adv, const Tensor& alpha);
// The same with alpha ~ U(0, 1) per sample drawn from `gen` (one draw of N values, z's dtype).
Var gradient_penalty(const DiscriminatorFn& d, const Var& z_clean, const Var& z_adv, Generator& gen);

}  // namespace afd
