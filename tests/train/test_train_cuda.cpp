// Training on cuda:0 against the CPU, one step at a time (issue 3). Two trainers of one config, in
// float64 with deterministic kernels, one per device, take the same batches; every parameter and
// buffer must agree within 1e-9 + 1e-7 |b| after every step, so a failure names the method, the
// step and the tensor instead of only "the checkpoints differ" (CliGpu.TrainingOnCudaMatchesTheCpu).
//   - StepsOnTheSameAdversarialImages: before each step, the eval-mode logits and input gradient
//     (what the attack starts from) and the images of the trainer's attack (same seed) must agree;
//     then both step on the CPU's images, so a difference in the attack cannot hide one in the
//     update, nor the other way round.
//   - TheTrainersOwnStepsMatch: the trainer's own steps (its attack, seeds, the keep-failed rule).
// The comparison is only well posed while no image's loss gradient is rounding noise. An image the
// model classifies with a saturated softmax (p = one-hot to 1e-17, common for a fresh model in eval
// mode, whose running statistics are still 0 and 1) has a gradient of about 1e-17 whose signs depend
// on the order of the sums; sign() and L2 normalisation turn that noise into full steps, and the two
// devices, or any two BLAS builds, then train on different images. Found on an H200 on 2026-11-29:
// with the CLI test's data and seed, four of 16 images had |grad| <= 1e-15 at the first step and
// the runs parted at once. So the first test checks that every image's gradient is far above the
// noise before it compares, and the pair first fills BatchNorm's running statistics from the data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "attacks/attack.h"
#include "attacks/core.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tiny_run.h"

namespace afd::train {
namespace {

constexpr double kAtol = 1e-9, kRtol = 1e-7;
// Rounding differences grow with every step (on an H200, 2026-11-29, AFD with its own attack stayed
// within the tolerance for six steps and exceeded it by 1.6x at the seventh); a defect shows at once.
constexpr int kSteps = 5;
constexpr int64_t kBatch = 8;

// The worst element of a list of tensors against another: max |a - b| / (atol + rtol |b|).
struct Worst {
  double ratio = 0;
  std::string where;
};

// Elementwise (the tolerance grows with |b|), or for a gradient relative to the largest |b| of its
// row: a small component of a large gradient is a difference of large terms and carries their
// rounding, not its own.
enum class Scale { element, row_max };

void compare(const std::string& name, const Tensor& a, const Tensor& b, Worst& w, Scale scale = Scale::element) {
  const Tensor ha = a.to(Device::cpu()).to(DType::f64), hb = b.to(Device::cpu()).to(DType::f64);
  ASSERT_EQ(ha.shape(), hb.shape()) << name;
  const double* pa = ha.data<double>();
  const double* pb = hb.data<double>();
  const int64_t row = ha.dim() > 0 && ha.size(0) > 0 ? ha.numel() / ha.size(0) : ha.numel();
  std::vector<double> row_max(size_t(row > 0 ? ha.numel() / row : 0), 0.0);
  for (int64_t i = 0; i < ha.numel(); ++i) row_max[size_t(i / row)] = std::max(row_max[size_t(i / row)], std::abs(pb[i]));
  for (int64_t i = 0; i < ha.numel(); ++i) {
    const double size = scale == Scale::row_max ? row_max[size_t(i / row)] : std::abs(pb[i]);
    const double r = std::abs(pa[i] - pb[i]) / (kAtol + kRtol * size);
    if (!(r <= w.ratio)) {  // NaN counts as the worst
      w.ratio = std::isnan(r) ? INFINITY : r;
      std::ostringstream s;
      s << name << "[" << i << "]: cuda " << pa[i] << " vs cpu " << pb[i];
      w.where = s.str();
    }
  }
}

// Every parameter and buffer of the classifier (and D): cuda's against the CPU's.
Worst compare_networks(Trainer& gpu, Trainer& cpu) {
  Worst w;
  auto a = gpu.classifier().state_dict(), b = cpu.classifier().state_dict();
  EXPECT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) compare(a[i].first, a[i].second, b[i].second, w);
  if (cpu.discriminator()) {
    auto da = gpu.discriminator()->state_dict(), db = cpu.discriminator()->state_dict();
    EXPECT_EQ(da.size(), db.size());
    for (size_t i = 0; i < da.size() && i < db.size(); ++i) compare("D." + da[i].first, da[i].second, db[i].second, w);
  }
  return w;
}

struct Pair {
  data::Dataset data = synthetic_dataset(4 * kBatch, 10, 0, 28);
  TrainConfig cpu_config, gpu_config;
  std::unique_ptr<Trainer> cpu, gpu;

  explicit Pair(Method method) {
    cpu_config = tiny_config(method, temp_dir("cuda_pair"));
    cpu_config.dtype = DType::f64;
    gpu_config = cpu_config;
    gpu_config.device = Device::cuda(0);
    cpu = std::make_unique<Trainer>(cpu_config, data);
    gpu = std::make_unique<Trainer>(gpu_config, data);
    // BatchNorm's running statistics from the data (train-mode forwards, no step), so that eval
    // mode does not saturate the softmax (see the top of the file).
    NoGradGuard no_grad;
    cpu->classifier().train();
    gpu->classifier().train();
    for (int pass = 0; pass < 10; ++pass)
      for (int k = 0; k < 4; ++k) {
        const Tensor x = batch(k).first;
        cpu->classifier().forward(Var(x));
        gpu->classifier().forward(Var(x.to(gpu_config.device)));
      }
  }
  // Batch k: images [8, 1, 28, 28] in [0, 1] (f64) and labels, on the CPU.
  std::pair<Tensor, Tensor> batch(int k) const {
    const int64_t begin = (k % 4) * kBatch;
    Tensor x = ops::mul_scalar(data.images.slice(begin, begin + kBatch).to(DType::f64), 1.0 / 255);
    return {x, data.labels.slice(begin, begin + kBatch).clone()};
  }
};

class TrainOnCuda : public ::testing::TestWithParam<Method> {
 protected:
  void SetUp() override {
    if (!backend_available(Device::cuda(0))) GTEST_SKIP() << "no CUDA device is visible on this machine";
    set_deterministic(true);
  }
  void TearDown() override { set_deterministic(false); }
};

TEST_P(TrainOnCuda, StepsOnTheSameAdversarialImages) {
  Pair p(GetParam());
  Worst start = compare_networks(*p.gpu, *p.cpu);
  // The statistics pass sums in other orders on the two devices: equal within the tolerance.
  ASSERT_LE(start.ratio, 1.0) << "the networks differ before training: " << start.where;
  for (int k = 0; k < kSteps; ++k) {
    auto [x, y] = p.batch(k);
    const Device cuda = Device::cuda(0);
    {  // the eval-mode logits and input gradient the attack starts from
      attacks::EvalModeGuard eval_cpu(p.cpu->classifier()), eval_gpu(p.gpu->classifier());
      Worst logits;
      compare("logits", attacks::logits_of(p.gpu->classifier(), x.to(cuda)), attacks::logits_of(p.cpu->classifier(), x),
              logits);
      EXPECT_LE(logits.ratio, 1.0) << "step " << k + 1 << ", eval-mode forward: " << logits.where;
      const Tensor y_gpu = y.to(cuda);
      attacks::LossInputs in_cpu{&y}, in_gpu{&y_gpu};
      const Tensor g_cpu = attacks::loss_and_grad(p.cpu->classifier(), x, attacks::LossKind::ce, in_cpu, false, 1.0).grad;
      const Tensor g_gpu =
          attacks::loss_and_grad(p.gpu->classifier(), x.to(cuda), attacks::LossKind::ce, in_gpu, false, 1.0).grad;
      const std::vector<double> largest = ops::max(ops::abs(g_cpu).reshape({kBatch, -1}), 1).first.to_vector<double>();
      for (int64_t i = 0; i < kBatch; ++i)
        ASSERT_GT(largest[size_t(i)], 1e-8) << "step " << k + 1 << ": image " << i << "'s loss gradient is rounding "
                                            << "noise (saturated softmax); the comparison is not well posed on this data";
      Worst grad;
      compare("input gradient", g_gpu, g_cpu, grad, Scale::row_max);
      EXPECT_LE(grad.ratio, 1.0) << "step " << k + 1 << ", eval-mode input gradient: " << grad.where;
    }
    attacks::AttackConfig cfg = p.cpu_config.attack_config;
    cfg.seed = 1000 + uint64_t(k);
    attacks::AttackResult on_cpu = attacks::make_attack(p.cpu_config.attack, cfg)->perturb(p.cpu->classifier(), x, y);
    attacks::AttackResult on_gpu =
        attacks::make_attack(p.cpu_config.attack, cfg)->perturb(p.gpu->classifier(), x.to(cuda), y.to(cuda));
    Worst adv;
    compare("x_adv", on_gpu.x_adv, on_cpu.x_adv, adv);
    const Tensor gap = ops::abs(ops::sub(on_gpu.x_adv.to(Device::cpu()), on_cpu.x_adv));
    int64_t apart = 0;
    for (double v : gap.to_vector<double>()) apart += v > 1e-6;
    EXPECT_LE(adv.ratio, 1.0) << "step " << k + 1 << ", the attack: " << adv.where << " (" << apart << " of "
                              << gap.numel() << " values more than 1e-6 apart)";
    EXPECT_EQ(on_gpu.success.to_vector<uint8_t>(), on_cpu.success.to_vector<uint8_t>()) << "step " << k + 1;

    StepOverrides given;
    given.x_adv = on_cpu.x_adv;
    StepMetrics mc = p.cpu->train_step(x, y, given), mg = p.gpu->train_step(x, y, given);
    EXPECT_NEAR(mg.loss, mc.loss, kAtol + kRtol * std::abs(mc.loss)) << "step " << k + 1;
    Worst net = compare_networks(*p.gpu, *p.cpu);
    ASSERT_LE(net.ratio, 1.0) << "step " << k + 1 << ", the update on the same x': " << net.where;
  }
}

TEST_P(TrainOnCuda, TheTrainersOwnStepsMatch) {
  Pair p(GetParam());
  for (int k = 0; k < kSteps; ++k) {
    auto [x, y] = p.batch(k);
    StepMetrics mc = p.cpu->train_step(x, y), mg = p.gpu->train_step(x, y);
    EXPECT_NEAR(mg.loss, mc.loss, kAtol + kRtol * std::abs(mc.loss)) << "step " << k + 1;
    if (!std::isnan(mc.adv_acc)) {
      EXPECT_EQ(mg.adv_acc, mc.adv_acc) << "step " << k + 1;
    }
    Worst net = compare_networks(*p.gpu, *p.cpu);
    ASSERT_LE(net.ratio, 1.0) << "step " << k + 1 << ": " << net.where;
  }
}

INSTANTIATE_TEST_SUITE_P(Methods, TrainOnCuda,
                         ::testing::Values(Method::nt, Method::at, Method::trades, Method::afd),
                         [](const auto& info) { return std::string(method_name(info.param)); });

}  // namespace
}  // namespace afd::train
