// One training step of every method against PyTorch (issue 8, acceptance 1): the fixture
// tests/fixtures/train/train_step_refs.safetensors holds the MNIST ResNet18 (base width 2) and its
// SNPDFC3 before the step, a fixed batch, a fixed x' and fixed gradient-penalty weights, and every
// parameter, buffer and momentum buffer after one step, all in float64
// (tests/fixtures/train/make_train_step_refs.py). The trainer runs the same step with x' given, so
// the attack takes no part; every value must satisfy |afd - torch| <= 1e-10 + 1e-8 |torch|.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <iomanip>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "afd/train/trainer.h"
#include "nn/safetensors.h"
#include "tensor/ops.h"

namespace afd::train {
namespace {

constexpr double kRtol = 1e-8, kAtol = 1e-10;

const SafetensorsFile& fixture() {
  static const SafetensorsFile f =
      read_safetensors(std::string(AFD_SOURCE_DIR) + "/tests/fixtures/train/train_step_refs.safetensors");
  return f;
}

const nlohmann::json& cases() {
  static const nlohmann::json j = nlohmann::json::parse(fixture().metadata.at("cases"));
  return j;
}

// Entries "<prefix><name>" of the fixture, with the prefix removed.
NamedTensors with_prefix(const std::string& prefix) {
  NamedTensors out;
  for (const auto& [name, t] : fixture().tensors)
    if (name.rfind(prefix, 0) == 0) out.emplace_back(name.substr(prefix.size()), t);
  return out;
}

// A dataset that only fixes the shapes the trainer builds its networks for ([8, 1, 28, 28], 10 classes).
data::Dataset fixture_shaped_dataset() {
  data::Dataset d;
  d.name = "fixture";
  d.images = Tensor::zeros({8, 1, 28, 28}, DType::u8);
  d.labels = fixture().get("y").clone();
  d.classes = 10;
  return d;
}

TrainConfig config_for(const nlohmann::json& hp) {
  TrainConfig c;
  c.method = parse_method(hp.at("method").get<std::string>());
  c.model = "resnet18-mnist";
  c.width = std::stoll(fixture().metadata.at("base_width"));
  c.dtype = DType::f64;
  c.batch_size = 8;
  c.prefetch = 0;
  c.attack = "pgd-linf";  // not run: x' is given
  c.lr = hp.at("lr").get<double>();
  c.momentum = hp.at("momentum").get<double>();
  c.weight_decay = hp.at("weight_decay").get<double>();
  if (hp.contains("lr_d")) c.lr_d = hp.at("lr_d").get<double>();
  if (hp.contains("lr_f")) c.lr_f = hp.at("lr_f").get<double>();
  if (hp.contains("gan_loss")) c.gan_loss = parse_gan_loss(hp.at("gan_loss").get<std::string>());
  if (hp.contains("gp_lambda")) c.gp_lambda = hp.at("gp_lambda").get<double>();
  if (hp.contains("beta")) c.trades_beta = hp.at("beta").get<double>();
  if (hp.contains("norm_lambda")) c.norm_lambda = hp.at("norm_lambda").get<double>();
  return c;
}

// Worst use of the tolerance over the comparisons of one case: max |a - b| / (atol + rtol |b|).
struct Agreement {
  double worst_ratio = 0, max_abs = 0;
  std::string worst_name;
  int64_t tensors = 0, values = 0;
};

void expect_close(const std::string& name, const Tensor& actual, const Tensor& expected, Agreement& agree) {
  ASSERT_TRUE(actual.defined()) << name << ": afd has no such tensor";
  ASSERT_EQ(actual.numel(), expected.numel())
      << name << ": afd shape " << shape_str(actual.shape()) << ", torch " << shape_str(expected.shape());
  ++agree.tensors;
  agree.values += expected.numel();
  if (expected.dtype() == DType::i64) {
    EXPECT_EQ(actual.to_vector<int64_t>(), expected.to_vector<int64_t>()) << name;
    return;
  }
  ASSERT_EQ(actual.dtype(), DType::f64) << name;
  std::vector<double> a = actual.to(Device::cpu()).to_vector<double>(), b = expected.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) {
    const double diff = std::fabs(a[i] - b[i]), bound = kAtol + kRtol * std::fabs(b[i]);
    agree.max_abs = std::max(agree.max_abs, diff);
    if (diff / bound > agree.worst_ratio) agree.worst_ratio = diff / bound, agree.worst_name = name;
    if (!(diff <= bound)) {
      ADD_FAILURE() << std::setprecision(17) << name << "[" << i << "]: afd " << a[i] << ", torch " << b[i]
                    << ", |diff| " << diff << " > " << bound;
      return;
    }
  }
}

class TrainStepVsPyTorch : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainStepVsPyTorch, EveryParameterBufferAndMomentumAfterOneStep) {
  const std::string name = GetParam();
  ASSERT_TRUE(cases().contains(name)) << name;
  const nlohmann::json& hp = cases().at(name);
  Trainer trainer(config_for(hp), fixture_shaped_dataset());
  trainer.classifier().load_state_dict(with_prefix("init.model."));
  if (trainer.discriminator()) trainer.discriminator()->load_state_dict(with_prefix("init.disc."));

  StepOverrides given;
  given.x_adv = fixture().get("x_adv");
  given.gp_alpha = fixture().get("gp_alpha");
  StepMetrics m = trainer.train_step(fixture().get("x"), fixture().get("y"), given);

  Agreement agree;
  for (const auto& [k, t] : trainer.classifier().state_dict())
    expect_close(name + ".model." + k, t, fixture().get(name + ".model." + k), agree);
  if (trainer.discriminator()) {
    for (const auto& [k, t] : trainer.discriminator()->state_dict())
      expect_close(name + ".disc." + k, t, fixture().get(name + ".disc." + k), agree);
  }
  // Momentum buffers: state.<i> of an optimizer belongs to its i-th parameter.
  for (const auto& [opt_name, opt] : trainer.optimizers()) {
    const std::vector<std::string> params = trainer.optimizer_parameter_names(opt_name);
    const NamedTensors expected = with_prefix(name + ".optim." + opt_name + ".");
    EXPECT_EQ(expected.size(), params.size()) << opt_name;
    int64_t buffers = 0;
    for (const auto& [k, t] : opt->state()) {
      if (k == "param_groups.0.lr") continue;
      const size_t i = std::stoul(k.substr(6, k.find('.', 6) - 6));
      ASSERT_LT(i, params.size());
      expect_close(name + ".optim." + opt_name + "." + params[i], t,
                   fixture().get(name + ".optim." + opt_name + "." + params[i]), agree);
      ++buffers;
    }
    EXPECT_EQ(buffers, int64_t(params.size())) << opt_name << ": every parameter has a momentum buffer";
  }
  // The step's loss terms.
  std::vector<double> losses = fixture().get(name + ".losses").to_vector<double>();
  std::vector<std::string> loss_names = hp.at("loss_names").get<std::vector<std::string>>();
  std::map<std::string, double> ours = {{"loss", m.loss}, {"ce", m.ce}, {"kl", m.kl}, {"distance", m.distance},
                                        {"l_c", m.loss}, {"l_d", m.l_d}, {"l_f", m.l_f},
                                        {"gp", std::isnan(m.gp) ? 0.0 : m.gp}};
  for (size_t i = 0; i < loss_names.size(); ++i)
    EXPECT_NEAR(ours.at(loss_names[i]), losses[i], kAtol + kRtol * std::fabs(losses[i])) << loss_names[i];

  std::printf("[ agreement ] %-12s %5lld tensors, %6lld values: max |afd - torch| %.3g, worst %.3g of the "
              "tolerance (%s)\n",
              name.c_str(), (long long)agree.tensors, (long long)agree.values, agree.max_abs, agree.worst_ratio,
              agree.worst_name.c_str());
}

INSTANTIATE_TEST_SUITE_P(Methods, TrainStepVsPyTorch,
                         ::testing::Values("nt", "at", "trades", "norm", "afd_wgan", "afd_dcgan", "afd_hinge",
                                           "afd_wgan_gp"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(TrainStepVsPyTorch, FixtureHasEveryCase) {
  for (const char* c : {"nt", "at", "trades", "norm", "afd_wgan", "afd_dcgan", "afd_hinge", "afd_wgan_gp"})
    EXPECT_TRUE(cases().contains(c)) << c;
  EXPECT_EQ(cases().size(), 8u);
}

// ---- what a step does besides the numbers ------------------------------------------------------

std::unique_ptr<Trainer> fixture_trainer(const std::string& name) {
  auto t = std::make_unique<Trainer>(config_for(cases().at(name)), fixture_shaped_dataset());
  t->classifier().load_state_dict(with_prefix("init.model."));
  if (t->discriminator()) t->discriminator()->load_state_dict(with_prefix("init.disc."));
  return t;
}

int64_t batches_tracked(Trainer& t) {
  for (const auto& [k, v] : t.classifier().state_dict())
    if (k == "bn1.num_batches_tracked") return v.item<int64_t>();
  return -1;
}

// BatchNorm statistics move once per train-mode forward of the step: AFD's C, D-clean, D-adv and
// F-adv forwards; one for NT and AT; two for TRADES and norm. Never in an attack.
TEST(TrainStep, BatchNormUpdatesOncePerTrainModeForward) {
  const std::map<std::string, int64_t> forwards = {{"nt", 1}, {"at", 1}, {"trades", 2}, {"norm", 2}, {"afd_wgan", 4}};
  for (const auto& [name, count] : forwards) {
    auto t = fixture_trainer(name);
    const int64_t before = batches_tracked(*t);
    StepOverrides given;
    given.x_adv = fixture().get("x_adv");
    t->train_step(fixture().get("x"), fixture().get("y"), given);
    EXPECT_EQ(batches_tracked(*t) - before, count) << name;
  }
}

// A NaN or Inf in a loss stops the step before the bad update, naming the step, phase and term.
// (The NaN is put into a bias: the CPU relu maps NaN to 0, so a NaN pixel would not reach the loss.)
TEST(TrainStep, NonFiniteLossNamesTheStepAndTerm) {
  auto poison = [](nn::Module& m, const std::string& name) {
    for (auto& [k, v] : m.state_dict())
      if (k == name) v.data<double>()[0] = std::nan("");
  };
  auto error_of = [](Trainer& t) -> std::string {
    StepOverrides given;
    given.x_adv = fixture().get("x_adv");
    try {
      t.train_step(fixture().get("x"), fixture().get("y"), given);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  auto at = fixture_trainer("at");
  poison(at->classifier(), "linear.bias");
  EXPECT_NE(error_of(*at).find("train step 1 (epoch 1, batch 1), classifier step: CE = nan"), std::string::npos)
      << error_of(*at);

  // AFD: the C step is fine, the discriminator's output is not.
  auto afd = fixture_trainer("afd_dcgan");
  poison(*afd->discriminator(), "l7.bias");
  const std::string message = error_of(*afd);
  EXPECT_NE(message.find("train step 1 (epoch 1, batch 1), D step: L_D = nan"), std::string::npos) << message;
  // The D update was not applied: D's parameters are still those of the fixture (l7.bias aside).
  for (const auto& [k, v] : afd->discriminator()->state_dict()) {
    if (k == "l7.bias" || k.find("weight_u") != std::string::npos || k.find("weight_v") != std::string::npos) continue;
    std::vector<double> now = v.to_vector<double>(), init = fixture().get("init.disc." + k).to_vector<double>();
    EXPECT_EQ(now, init) << k;
  }
}

TEST(TrainStep, RejectsMalformedInputs) {
  auto t = fixture_trainer("nt");
  EXPECT_THROW(t->train_step(fixture().get("x"), Tensor::zeros({7}, DType::i64)), Error);
  EXPECT_THROW(t->train_step(fixture().get("x").reshape({8, 784}), fixture().get("y")), Error);
  auto a = fixture_trainer("at");
  StepOverrides given;
  given.x_adv = fixture().get("x_adv").slice(0, 4);
  EXPECT_THROW(a->train_step(fixture().get("x"), fixture().get("y"), given), Error);
}

}  // namespace
}  // namespace afd::train
