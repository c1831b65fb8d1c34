// Robust accuracy of an adversarially trained MNIST model under FGSM and PGD.
//
// What it teaches: loading a trained model from a safetensors file, reading MNIST's IDX files,
// and measuring robust accuracy over a list of eps with attacks::robust_accuracy (which builds
// each attack through the registry, attacks::make_attack). The model is the committed SmallCNN
// tests/fixtures/attacks/mnist_at_smallcnn.safetensors, PGD-trained on MNIST; the data are the
// first 200 of the 1,000 committed test images.
//
// Run:  build/examples/fgsm_pgd_mnist [SOURCE_ROOT]     (default: the current folder)
//
// Robust accuracy at eps (specs/attacks.md): the fraction of points x with label y that the model
// classifies correctly both clean and at the attack's x_adv, where ||x_adv - x||_inf <= eps and
// x_adv is in [0, 1]:
//   FGSM:      x_adv = clip_[0,1](x + eps sign(grad_x CE(f(x), y)))              (one step)
//   PGD-Linf:  x_{t+1} = clip_[0,1](Proj_{||. - x||_inf <= eps}(x_t + a sign(grad_x CE(f(x_t), y))))
//              with a = 0.01 and 40 steps, starting at x_0 = x.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "afd/data/readers.h"
#include "attacks/attack.h"
#include "attacks/evaluate.h"
#include "nn/checkpoint.h"
#include "nn/models/small_cnn.h"
#include "tensor/backend.h"
#include "tensor/ops.h"

using namespace afd;

int main(int argc, char** argv) {
  // OpenBLAS's kernels for this CPU where it fell back to its slow generic ones (tensor/backend.h).
  afd::restart_with_runtime_settings(argv, /*omp_passive=*/false);
  const std::string root = argc > 1 ? argv[1] : ".";
  const std::string dir = root + "/tests/fixtures/attacks/";
  const std::string weights = dir + "mnist_at_smallcnn.safetensors";
  const std::string images_file = dir + "mnist_t10k_1000-images-idx3-ubyte.gz";
  const std::string labels_file = dir + "mnist_t10k_1000-labels-idx1-ubyte.gz";
  for (const std::string& path : {weights, images_file, labels_file}) {
    if (!std::filesystem::exists(path)) {
      std::fprintf(stderr, "fgsm_pgd_mnist: missing file %s (pass the source folder as the first argument)\n",
                   path.c_str());
      return 1;
    }
  }

  try {
    // The fixture's SmallCNN: 3x3 convs 1->16, 16->16, max-pool, 16->32, 32->32, max-pool
    // (features [N, 32, 4, 4] = 512), then linear 512->100, 100->100, 100->10 with ReLUs.
    // Weights are loaded by name, strictly (every tensor present, shapes equal).
    nn::SmallCNNConfig cfg;
    cfg.channels1 = 16;
    cfg.channels2 = 32;
    cfg.hidden = 100;
    Generator gen(0);  // the initial weights, overwritten by the file
    nn::SmallCNN model(cfg, gen);
    nn::load_state_dict_file(model, weights);
    model.eval();

    // Images u8 [1000, 1, 28, 28] -> f32 in [0, 1]; labels i64 [1000]. The first 200 points.
    const int64_t count = 200;
    Tensor x = ops::mul_scalar(data::read_idx_images(images_file).to(DType::f32), 1.0 / 255);
    Tensor y = data::read_idx_labels(labels_file, 10);
    x = x.slice(0, count);
    y = y.slice(0, count);

    const std::vector<double> eps_list = {0.0, 0.1, 0.2, 0.3};
    attacks::AttackConfig fgsm;  // one step of size eps; no random start
    attacks::AttackConfig pgd;
    pgd.steps = 40;
    pgd.step_size = 0.01;  // absolute step a
    attacks::EvalOptions opt;
    opt.batch_size = count;
    opt.progress = false;
    const attacks::RobustnessCurve c_fgsm = attacks::robust_accuracy(model, "fgsm", fgsm, x, y, eps_list, opt);
    const attacks::RobustnessCurve c_pgd = attacks::robust_accuracy(model, "pgd-linf", pgd, x, y, eps_list, opt);

    std::printf("adversarially trained SmallCNN, first %lld MNIST test images, Linf\n",
                static_cast<long long>(count));
    std::printf("clean accuracy: %.1f%%\n", 100 * c_fgsm.clean_accuracy);
    std::printf("%5s %8s %8s %12s\n", "eps", "clean", "FGSM", "PGD-40");
    for (size_t j = 0; j < eps_list.size(); ++j)
      std::printf("%5.2f %7.1f%% %7.1f%% %11.1f%%\n", eps_list[j], 100 * c_fgsm.clean_accuracy,
                  100 * c_fgsm.robust_accuracy[j], 100 * c_pgd.robust_accuracy[j]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fgsm_pgd_mnist: %s\n", e.what());
    return 1;
  }
  return 0;
}
