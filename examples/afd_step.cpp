// One step of Adversarial Feature Desensitization (AFD) on a tiny synthetic batch.
//
// What it teaches: how a train::TrainConfig and a train::Trainer are built, and what one AFD step
// computes. The classifier is the paper's MNIST ResNet18 at base width 2 (so it runs in a second),
// split as F (the feature extractor) and C (the linear head); D is the spectrally normalised
// projection discriminator on F's features. The batch is 8 synthetic 12x12 images of 4 classes.
//
// Run:  build/examples/afd_step
//
// One step (the project's specification specs/afd.md, "One training step"; the paper: Bashivan et
// al., "Adversarial Feature Desensitization", NeurIPS 2021):
//   0. attack   x' = PGD-Linf(F, C; x, y), eps 0.3, 2 steps of 0.1, in eval mode.
//   1. C step   L_C = (1/m) sum_i CE(C(F(x_i)), y_i)                  (Eq. 7; clean inputs only)
//               SGD over F and C.
//   2. D step   AFD-WGAN (appendix Eq. 11, the reference code's default):
//                 L_D = (1/m) sum_i D(F(x'_i), y_i) - (1/m) sum_i D(F(x_i), y_i)
//               plus lambda * GP, GP = (1/m) sum_i (||grad_z D(z_i)||_2 - 1)^2 at
//               z_i = z'_i + a_i (z_i - z'_i), a_i ~ U(0, 1); SGD over D.
//               (AFD-DCGAN, Eq. 9: L_D = (1/m) sum_i S(-D(F(x_i), y_i)) + S(D(F(x'_i), y_i)).)
//   3. F step   L_F = -(1/m) sum_i D(F(x'_i), y_i)                   (appendix Eq. 12)
//               with the D just updated; SGD over F only.
//               (AFD-DCGAN, Eq. 10: L_F = (1/m) sum_i S(-D(F(x'_i), y_i)).)
// D is trained to say "clean" (D > 0) on F(x) and "adversarial" (D < 0) on F(x'); F is trained to
// make its adversarial features look clean to D, i.e. insensitive to the perturbation.
#include <cmath>
#include <cstdio>
#include <exception>

#include "afd/train/trainer.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

using namespace afd;

namespace {

// n images u8 [n, 1, 12, 12]: dim noise (0..63) plus one bright row at 2 + 2 * label, so the
// classes are learnable; labels i = 0, 1, 2, 3, 0, ... (i64 [n]).
data::Dataset tiny_dataset(int64_t n, int64_t classes) {
  const int64_t size = 12;
  Generator gen(/*seed=*/1);
  const std::vector<float> noise = rand({n, size, size}, gen).to_vector<float>();  // U[0, 1)
  data::Dataset d;
  d.name = "synthetic";
  d.classes = classes;
  d.images = Tensor({n, 1, size, size}, DType::u8);
  d.labels = Tensor({n}, DType::i64);
  uint8_t* px = d.images.data<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = i % classes;
    d.labels.data<int64_t>()[i] = label;
    for (int64_t r = 0; r < size; ++r)
      for (int64_t c = 0; c < size; ++c) {
        const int64_t k = (i * size + r) * size + c;
        px[k] = r == 2 + 2 * label ? 255 : uint8_t(64 * noise[k]);
      }
  }
  return d;
}

}  // namespace

int main(int, char** argv) {
  // OpenBLAS's kernels for this CPU where it fell back to its slow generic ones (tensor/backend.h).
  afd::restart_with_runtime_settings(argv, /*omp_passive=*/false);
  try {
    train::TrainConfig cfg;
    cfg.method = train::Method::afd;
    cfg.dataset = "synthetic";
    cfg.model = "resnet18-mnist";
    cfg.width = 2;            // base width (the paper's is 16)
    cfg.epochs = 1;
    cfg.milestones = {};
    cfg.batch_size = 8;
    cfg.prefetch = 0;         // no loader thread: we hand the batch to train_step ourselves
    cfg.lr = 0.05;            // alpha, the C step
    cfg.lr_d = 0.1;           // beta, the D step
    cfg.lr_f = 0.1;           // gamma, the F step
    cfg.gan_loss = GanLoss::wgan;
    cfg.gp_lambda = 1.0;      // lambda (the reference's default is 0, off)
    cfg.attack = "pgd-linf";  // a tiny attack; the paper's MNIST preset is APGD-CE, eps 0.3, 40 steps
    cfg.attack_config.eps = 0.3;
    cfg.attack_config.steps = 2;
    cfg.attack_config.step_size = 0.1;
    cfg.seed = 11;

    data::Dataset batch = tiny_dataset(8, 4);
    const Tensor x = ops::mul_scalar(batch.images.to(DType::f32), 1.0 / 255);  // f32 [8, 1, 12, 12] in [0, 1]
    const Tensor y = batch.labels;                                              // i64 [8]
    train::Trainer trainer(cfg, batch);
    const train::StepMetrics m = trainer.train_step(x, y);

    // Each printed number, and where it is in the paper (m = 8 here):
    //   L_C          Eq. 7, the C step's loss before its update.
    //   L_D          appendix Eq. 11 (WGAN form of Eq. 9), without the gradient penalty.
    //   GP           the gradient penalty, added to L_D with weight lambda (code only, not the paper).
    //   L_F          appendix Eq. 12 (WGAN form of Eq. 10), after the D update.
    //   mean D(F(x)), mean D(F(x'))   the two means inside L_D: L_D = mean D(F(x')) - mean D(F(x)).
    //   D acc clean  fraction of D(F(x_i), y_i) > 0; D acc adv: fraction of D(F(x'_i), y_i) < 0
    //                (the discriminator's accuracy; 0.5 each is chance, cf. the H-divergence, Eq. 6).
    //   clean acc    C(F(x)) on the batch in the C step; adv acc: the fraction the attack did not fool.
    std::printf("AFD-WGAN, one step, batch of %lld synthetic 12x12 images, ResNet18 width %lld\n",
                static_cast<long long>(m.batch_size), static_cast<long long>(cfg.width));
    std::printf("L_C           %.6f\n", m.loss);
    std::printf("L_D           %.6f\n", m.l_d);
    std::printf("GP            %.6f\n", m.gp);
    std::printf("L_F           %.6f\n", m.l_f);
    std::printf("mean D(F(x))  %.6f\n", m.d_clean);
    std::printf("mean D(F(x')) %.6f\n", m.d_adv);
    std::printf("D acc clean   %.3f\n", m.d_acc_clean);
    std::printf("D acc adv     %.3f\n", m.d_acc_adv);
    std::printf("clean acc     %.3f\n", m.clean_acc);
    std::printf("adv acc       %.3f\n", m.adv_acc);
    // A check that the printed L_D is the difference of the printed means (Eq. 11).
    const double l_d_from_means = m.d_adv - m.d_clean;
    std::printf("check: L_D - (mean D(F(x')) - mean D(F(x))) = %.3e\n", m.l_d - l_d_from_means);
    return std::fabs(m.l_d - l_d_from_means) <= 1e-5 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "afd_step: %s\n", e.what());
    return 1;
  }
}
