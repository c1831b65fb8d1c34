// Square Attack (Andriushchenko, Croce, Flammarion and Hein, ECCV 2020), the score-based black-box
// attack of AutoAttack, as fra31/auto-attack's square.py runs it (specs/attacks.md, Appendix B
// section 4, decision 10), in Linf and L2. It uses the model's logits only, never a gradient.
//
//   attacks::AttackConfig cfg;
//   cfg.norm = attacks::Norm::linf; cfg.eps = 8.0 / 255;
//   cfg.n_queries = 5000; cfg.p_init = 0.8; cfg.seed = 0;
//   auto square = attacks::make_attack("square", cfg);
//   attacks::AttackResult r = square->perturb(model, x, y);   // x [N, C, H, W]
//
// Loss: the margin m = z_y - max_{j != y} z_j, minimised; a point is fooled when m <= 0.
// Schedule: at iteration i (0-based) the window holds a fraction p(i) of the pixels (square_p); its
// side s follows square_window (Linf: round(sqrt(p H W)) in [1, min(H, W)]; L2: at least 3 and odd).
//   Linf  start: x + eps * one random sign per (image, channel, column): vertical stripes, clipped to
//         [0, 1]. Each iteration draws ONE window position and ONE sign per channel for the whole
//         batch; every still-unfooled image gets x_best + 2 eps sign on that window, projected onto
//         the eps-ball and [0, 1].
//   L2    start: a grid of (H/s0) x (W/s0) windows of side s0 = H/5 from offset ((H - 5 s0)/2, same),
//         each adding eta(s0) times a random sign per (image, channel); the sum is scaled to norm eps.
//         Each iteration draws two windows W1, W2 (shared by the batch) and a sign per (image,
//         channel): the perturbation's mass on W2 moves to W1 as eta(s) sign + delta[W1] normalised,
//         rescaled so the norm budget is kept, then delta goes back to norm eps and x + delta is
//         clipped to [0, 1].
//   eta(s) [s, s]: the top s/2 rows hold R(s/2, s), the rest -R(s - s/2, s), R(a, b) summing
//         1/(k+1)^2 over concentric rectangles, each block and the whole of unit Frobenius norm,
//         transposed when a uniform draw exceeds 0.5.
// Acceptance per image: the new point replaces x_best when its loss is lower (strict) or it is
// misclassified (m <= 0); an image leaves the batch once m <= 0. Each model evaluation of an image
// counts one query (the start included). The loop stops when every image is fooled or after
// config.n_queries iterations.
//
// Random numbers: the reference's draws (torch.rand) are, in order, Linf: the start signs
// [B, C, 1, W]; per iteration vh, vw (random_int), the channel signs [C]. L2: per start window
// eta's draw then the signs [B, C]; per iteration vh, vw, vh2, vw2, eta's draw, the signs [B', C].
// random_int(lo, hi) = floor(lo + (hi - lo) u) (never hi, so the window never touches the last
// row/column offset H - s, a quirk kept); a sign is sign(2u - 1). Ours come from the Philox generator
// (one seed), or from any UniformSource, so a recorded reference stream can be replayed.
//
// perturb(): only the points the model classifies correctly are attacked; after the run each is
// evaluated once more and keeps its x_best only if misclassified (else x is returned). Restarts
// (config.restarts) re-attack the points not fooled with the continuing stream. Square always uses
// the margin loss (config.loss is ignored) and is untargeted; config.steps is unused. Batch
// consistency does not hold: windows are shared by the batch.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "attacks/attack.h"

namespace afd::attacks {

// p at iteration `it` (0-based): p_init for it <= 10, then halved at 50, 200, 500, 1000, 2000, 4000,
// 6000, 8000 (p_init / 512 above 8000). With rescale_schedule, it is first rescaled to
// int(it / n_queries * 10000) (AutoAttack uses rescale_schedule = false).
double square_p(int it, int n_queries, double p_init, bool rescale_schedule = false);
// The window side for fraction p on an H x W image: Linf max(round(sqrt(p H W)), 1); L2
// max(round(sqrt(p H W)), 3), plus 1 when even; both capped at min(H, W). round() is Python's,
// half to even. H W is computed as the reference does, (p C H W) / C, which can differ in the last
// bit (and so, at an exact .5, in the rounding) for C > 1.
int64_t square_window(Norm norm, double p, int64_t height, int64_t width, int64_t channels = 1);
// eta(s) of the L2 attack before its random transpose: [s, s] row-major, unit Frobenius norm.
std::vector<double> square_eta(int64_t s);

// n uniform numbers in [0, 1), consumed in the reference's order (see above).
using UniformSource = std::function<std::vector<double>(int64_t n)>;
// A source drawing f64 uniforms from gen.
UniformSource philox_source(Generator& gen);

// The outcome of one Square run (AutoAttack's attack_single_run) on n points.
struct SquareRun {
  Tensor x_best;   // [n, C, H, W] the lowest-loss (or first misclassified) point found
  Tensor margin;   // f64 [n] on the CPU: its margin z_y - max_{j != y} z_j (<= 0: fooled)
  Tensor queries;  // i64 [n] on the CPU: model evaluations of each image, the start included
};

class Square : public Attack {
 public:
  explicit Square(AttackConfig config);
  std::string name() const override { return "square"; }

  // One run on every row of x [n, C, H, W] in [0, 1] (labels y i64 [n], budgets eps [n]), in eval
  // mode, drawing from `uniform`. No clean-point filtering and no final re-evaluation.
  SquareRun single_run(nn::UnaryModule& model, const Tensor& x, const Tensor& y, const std::vector<double>& eps,
                       const UniformSource& uniform) const;

 protected:
  Tensor run(const Problem& p, Generator& gen) override;
  bool randomized() const override { return true; }
};

}  // namespace afd::attacks
