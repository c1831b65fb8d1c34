// Attack a model trained in PyTorch: PGD-L2 and DDN on a few MNIST images.
//
// What it teaches: a PyTorch model's state_dict, saved with safetensors.torch.save_file, loads
// into the afd module of the same architecture by name (afd modules use PyTorch's parameter
// names, e.g. "feature_extractor.conv1.weight", and PyTorch's [out, in, kH, kW] layouts); then any
// attack of the registry (attacks::make_attack) runs on it. The file used here is the committed
// tests/fixtures/attacks/mnist_at_smallcnn.safetensors, written by PyTorch 1.13 from
// tests/fixtures/attacks/make_mnist_at_model.py; pass your own file as the second argument (it
// must hold a SmallCNN with channels 16/32 and hidden 100, or change `cfg` below).
//
// Run:  build/examples/attack_pytorch_model [SOURCE_ROOT] [MODEL.safetensors]
//
// The two attacks, on x in [0, 1] with label y (f the model, CE the cross-entropy):
//   PGD-L2:  x_{t+1} = clip_[0,1](Proj_{||. - x||_2 <= eps}(x_t + a g / ||g||_2)),
//            g = grad_x CE(f(x_t), y); eps = 3, a = 0.2, 40 steps. Success: f(x_adv) != y.
//   DDN:     minimal L2 (Rony et al. 2019): a gradient step on delta, then delta is rescaled to a
//            norm eps_t that shrinks by (1 - gamma) while x + delta is adversarial and grows by
//            (1 + gamma) while it is not; returns the smallest adversarial iterate found.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "afd/data/readers.h"
#include "attacks/attack.h"
#include "autograd/var.h"
#include "nn/checkpoint.h"
#include "nn/models/small_cnn.h"
#include "nn/safetensors.h"
#include "tensor/backend.h"
#include "tensor/ops.h"

using namespace afd;

namespace {

// The model's class predictions for x [N, 1, 28, 28]: argmax of the logits [N, 10] -> i64 [N].
std::vector<int64_t> predict(nn::SmallCNN& model, const Tensor& x) {
  NoGradGuard no_grad;
  return ops::argmax(model.forward(Var(x)).data(), 1).to_vector<int64_t>();
}

}  // namespace

int main(int argc, char** argv) {
  // OpenBLAS's kernels for this CPU where it fell back to its slow generic ones (tensor/backend.h).
  afd::restart_with_runtime_settings(argv, /*omp_passive=*/false);
  const std::string root = argc > 1 ? argv[1] : ".";
  const std::string dir = root + "/tests/fixtures/attacks/";
  const std::string weights = argc > 2 ? argv[2] : dir + "mnist_at_smallcnn.safetensors";
  const std::string images_file = dir + "mnist_t10k_1000-images-idx3-ubyte.gz";
  const std::string labels_file = dir + "mnist_t10k_1000-labels-idx1-ubyte.gz";
  for (const std::string& path : {weights, images_file, labels_file}) {
    if (!std::filesystem::exists(path)) {
      std::fprintf(stderr, "attack_pytorch_model: missing file %s (pass the source folder as the first argument)\n",
                   path.c_str());
      return 1;
    }
  }

  try {
    // What PyTorch wrote: tensor names and shapes, and the metadata it stored.
    const SafetensorsFile file = read_safetensors(weights);
    std::printf("%s: %zu tensors written by torch %s\n", weights.c_str(), file.tensors.size(),
                file.metadata.count("torch") ? file.metadata.at("torch").c_str() : "(unknown version)");
    for (const auto& [name, t] : file.tensors)
      std::printf("  %-32s %s\n", name.c_str(), shape_str(t.shape()).c_str());

    nn::SmallCNNConfig cfg;
    cfg.channels1 = 16;
    cfg.channels2 = 32;
    cfg.hidden = 100;
    Generator gen(0);
    nn::SmallCNN model(cfg, gen);
    nn::load_state_dict_file(model, weights);  // strict: every name present, every shape equal
    model.eval();

    // The first 8 test images: f32 [8, 1, 28, 28] in [0, 1], labels i64 [8].
    const int64_t count = 8;
    const Tensor x = ops::mul_scalar(data::read_idx_images(images_file).to(DType::f32), 1.0 / 255).slice(0, count);
    const Tensor y = data::read_idx_labels(labels_file, 10).slice(0, count);

    attacks::AttackConfig pgd_cfg;  // make_attack("pgd-l2", ...) sets norm = l2
    pgd_cfg.eps = 3.0;
    pgd_cfg.steps = 40;
    pgd_cfg.step_size = 0.2;
    attacks::AttackConfig ddn_cfg;  // eps is ignored: DDN looks for the smallest perturbation
    ddn_cfg.steps = 100;
    ddn_cfg.init_norm = 1.0;
    ddn_cfg.gamma = 0.05;
    const attacks::AttackResult pgd = attacks::make_attack("pgd-l2", pgd_cfg)->perturb(model, x, y);
    const attacks::AttackResult ddn = attacks::make_attack("ddn", ddn_cfg)->perturb(model, x, y);

    const std::vector<int64_t> labels = y.to_vector<int64_t>(), clean = predict(model, x),
                               pred_pgd = predict(model, pgd.x_adv), pred_ddn = predict(model, ddn.x_adv);
    const std::vector<double> norm_pgd = pgd.norms.to_vector<double>(), norm_ddn = ddn.norms.to_vector<double>();
    // A norm of 0 means the attack returned x itself: DDN found no adversarial, or the point was
    // misclassified already. PGD-L2 reports its last iterate's norm even where it failed. Note that
    // DDN can find an adversarial smaller than 3 where PGD-L2 at eps 3 fails: a fixed-eps attack's
    // failure does not prove a point robust (robust accuracy under an attack is an upper bound).
    std::printf("%5s %6s %6s | %9s %9s | %9s %9s\n", "image", "label", "clean", "PGD-L2", "||d||_2", "DDN",
                "||d||_2");
    for (int64_t i = 0; i < count; ++i)
      std::printf("%5lld %6lld %6lld | %9lld %9.4f | %9lld %9.4f\n", static_cast<long long>(i),
                  static_cast<long long>(labels[i]), static_cast<long long>(clean[i]),
                  static_cast<long long>(pred_pgd[i]), norm_pgd[i], static_cast<long long>(pred_ddn[i]), norm_ddn[i]);
    std::printf("PGD-L2 (eps %.1f) fooled %lld of %lld; DDN fooled %lld of %lld\n", pgd_cfg.eps,
                static_cast<long long>(pgd.success_count()), static_cast<long long>(count),
                static_cast<long long>(ddn.success_count()), static_cast<long long>(count));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attack_pytorch_model: %s\n", e.what());
    return 1;
  }
  return 0;
}
