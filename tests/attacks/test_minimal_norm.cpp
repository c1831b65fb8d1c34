// The minimal-norm attacks DDN, DeepFool (Linf, L2) and C&W-L2 (attacks/minimal_norm_attacks.h):
// properties on small random models (float64, CPU), closed forms on a binary linear model, the
// minimal-norm evaluation rule, and agreement with AdverTorch e063e34's own DDNL2Attack,
// DeepfoolLinfAttack and CarliniWagnerL2Attack run in float64 on the fixed SmallCNN of
// attack_refs (tests/fixtures/attacks/make_minimal_norm_refs.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attacks/attack.h"
#include "attacks/core.h"
#include "attacks/evaluate.h"
#include "attacks/minimal_norm_attacks.h"
#include "nn/layers.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/attacks/reference_model.h"
#include "tests/attacks/tiny_models.h"
#include "tests/support/checks.h"

namespace afd::attacks {
namespace {

using afd::testing::expect_close;
using afd::testing::expect_error;

constexpr int64_t kClasses = 5;
const std::vector<std::string> kMinimalNorm = {"ddn", "deepfool-linf", "deepfool-l2", "cw-l2"};

using Case = TinyCase;

Case make_case(int64_t n, uint64_t seed) { return tiny_case(/*cnn=*/true, kClasses, n, seed); }

// Settings small enough for a quick test and large enough to break most points.
AttackConfig config_for(const std::string& name) {
  AttackConfig c;
  c.eps = 0.1;  // ignored by every minimal-norm attack
  if (name == "ddn") {
    c.steps = 30;
    c.init_norm = 0.5;
  } else if (name == "cw-l2") {
    c.steps = 30;
    c.binary_steps = 5;
    c.initial_const = 0.1;
    c.step_size = 0.05;
  } else {
    c.steps = 20;
  }
  return c;
}

std::vector<int64_t> predictions(nn::UnaryModule& model, const Tensor& x) {
  return ops::argmax(logits_of(model, x), 1).to_vector<int64_t>();
}

// ---- properties --------------------------------------------------------------------------------
TEST(MinimalNormProperties, BoxNormsSuccessIsTheModelsVerdictAndEpsIsIgnored) {
  Case c = make_case(6, 7);
  const int64_t n = c.x.size(0), d = c.x.numel() / n;
  for (const std::string& name : kMinimalNorm) {
    SCOPED_TRACE(name);
    AttackConfig cfg = config_for(name);
    auto atk = make_attack(name, cfg);
    EXPECT_TRUE(atk->minimal_norm());
    AttackResult r = atk->perturb(*c.model, c.x, c.y);
    std::vector<double> xa = r.x_adv.to_vector<double>(), x0 = c.x.to_vector<double>(), delta(xa.size());
    for (size_t i = 0; i < xa.size(); ++i) {
      ASSERT_GE(xa[i], 0.0);
      ASSERT_LE(xa[i], 1.0);
      delta[i] = xa[i] - x0[i];
    }
    std::vector<double> norms = r.norms.to_vector<double>();
    std::vector<uint8_t> success = r.success.to_vector<uint8_t>();
    std::vector<int64_t> pred = predictions(*c.model, r.x_adv), y = c.y.to_vector<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(norms[i], lp(delta, i * d, (i + 1) * d, atk->config().norm), 1e-12) << "row " << i;
      EXPECT_EQ(success[i], pred[i] != y[i] ? 1 : 0) << "row " << i;
    }
    EXPECT_GE(r.success_count(), n / 2) << "too weak to test anything";
    // eps (config or per sample) plays no part.
    for (double eps : {0.0, 0.01, 50.0}) {
      AttackConfig other = cfg;
      other.eps = eps;
      AttackResult r2 = make_attack(name, other)->perturb(*c.model, c.x, c.y, Tensor(),
                                                          Tensor::full({n}, eps / 2, DType::f64));
      EXPECT_EQ(r2.x_adv.to_vector<double>(), xa) << "eps " << eps;
    }
  }
}

TEST(MinimalNormProperties, InputTensorIsNotModified) {
  Case c = make_case(4, 5);
  std::vector<double> before = c.x.to_vector<double>();
  std::vector<int64_t> labels = c.y.to_vector<int64_t>();
  Tensor target = Tensor::from_vector<int64_t>({1, 2, 3, 4}, {4});
  for (const std::string& name : kMinimalNorm) {
    AttackConfig cfg = config_for(name);
    make_attack(name, cfg)->perturb(*c.model, c.x, c.y);
    if (name == "ddn" || name == "cw-l2") {
      cfg.targeted = true;
      make_attack(name, cfg)->perturb(*c.model, c.x, c.y, target);
    }
    EXPECT_EQ(c.x.to_vector<double>(), before) << name;
    EXPECT_EQ(c.y.to_vector<int64_t>(), labels) << name;
  }
}

TEST(MinimalNormProperties, DdnAndDeepFoolAreBatchConsistent) {
  // C&W is not: its loss, and so its abort-early test, is summed over the batch (as in both references).
  Case c = make_case(5, 11);
  for (std::string name : {"ddn", "deepfool-linf", "deepfool-l2"}) {
    auto atk = make_attack(name, config_for(name));
    AttackResult all = atk->perturb(*c.model, c.x, c.y);
    for (int64_t i = 0; i < c.x.size(0); ++i) {
      AttackResult one = atk->perturb(*c.model, c.x.slice(i, i + 1), c.y.slice(i, i + 1));
      SCOPED_TRACE(std::string(name) + " row " + std::to_string(i));
      expect_close(one.x_adv, all.x_adv.slice(i, i + 1), 0, 1e-12);
      EXPECT_EQ(one.success.item<uint8_t>(), all.success.to_vector<uint8_t>()[i]);
    }
  }
}

TEST(MinimalNormProperties, APointNeverBrokenComesBackAsX0) {
  // (a) No iterations. (b) A constant model: logits = b whatever x, so nothing is ever adversarial
  // (its gradients are zero: DDN draws random directions, DeepFool's steps are zero).
  Case c = make_case(4, 13);
  for (const std::string& name : kMinimalNorm) {
    AttackConfig cfg = config_for(name);
    cfg.steps = 0;
    AttackResult r = make_attack(name, cfg)->perturb(*c.model, c.x, c.y);
    EXPECT_EQ(r.x_adv.to_vector<double>(), c.x.to_vector<double>()) << name << ", 0 steps";
    EXPECT_EQ(r.success_count(), 0) << name;
  }
  Generator gen(5);
  auto lin = std::make_shared<nn::Linear>(64, kClasses, gen);
  auto constant = std::make_shared<nn::Sequential>();
  constant->add(std::make_shared<nn::Flatten>());
  constant->add(lin);
  constant->to(DType::f64);
  constant->load_state_dict({{"1.weight", Tensor::zeros({kClasses, 64}, DType::f64)},
                             {"1.bias", Tensor::from_vector<double>({0.1, 0.3, -0.2, 0.0, 0.25}, {kClasses})}});
  Tensor y = Tensor::full({4}, 1, DType::i64);
  for (const std::string& name : kMinimalNorm) {
    AttackResult r = make_attack(name, config_for(name))->perturb(*constant, c.x, y);
    EXPECT_EQ(r.x_adv.to_vector<double>(), c.x.to_vector<double>()) << name << ", constant model";
    EXPECT_EQ(r.success_count(), 0) << name;
    EXPECT_EQ(r.norms.to_vector<double>(), std::vector<double>(4, 0.0)) << name;
  }
}

TEST(MinimalNormProperties, CleanMisclassifiedPointsAreSuccessesAtOnce) {
  Case c = make_case(4, 17);
  std::vector<int64_t> wrong = c.y.to_vector<int64_t>();
  for (int64_t& v : wrong) v = (v + 1) % kClasses;
  Tensor y = Tensor::from_vector<int64_t>(wrong, {4});
  for (const std::string& name : kMinimalNorm) {
    AttackResult r = make_attack(name, config_for(name))->perturb(*c.model, c.x, y);
    EXPECT_EQ(r.success_count(), 4) << name;
    // DDN and DeepFool return x0 itself; C&W its tanh reconstruction (within 1e-6 per pixel).
    for (double v : r.norms.to_vector<double>()) EXPECT_LE(v, name == "cw-l2" ? 1e-5 : 0.0) << name;
  }
}

TEST(MinimalNormProperties, TargetedDdnAndCwReachTheTarget) {
  Case c = make_case(8, 23);
  std::vector<int64_t> t = c.y.to_vector<int64_t>();
  for (int64_t& v : t) v = (v + 2) % kClasses;
  Tensor target = Tensor::from_vector<int64_t>(t, {8});
  for (std::string name : {"ddn", "cw-l2"}) {
    AttackConfig cfg = config_for(name);
    cfg.targeted = true;
    AttackResult r = make_attack(name, cfg)->perturb(*c.model, c.x, c.y, target);
    std::vector<int64_t> pred = predictions(*c.model, r.x_adv);
    std::vector<uint8_t> success = r.success.to_vector<uint8_t>();
    for (size_t i = 0; i < t.size(); ++i) {
      EXPECT_EQ(success[i], pred[i] == t[i] ? 1 : 0) << name << " row " << i;
      if (!success[i]) {
        EXPECT_EQ(r.norms.to_vector<double>()[i], 0.0) << name << ": a failure returns x0";
      }
    }
    EXPECT_GE(r.success_count(), 4) << name;
  }
}

TEST(MinimalNormProperties, OnlyInputGradientsAndEvalMode) {
  Generator gen(3);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Conv2d>(1, 3, 3, 1, 1, false, gen));
  auto bn = net->add(std::make_shared<nn::BatchNorm2d>(3));
  net->add(std::make_shared<nn::ReLU>());
  net->add(std::make_shared<nn::Flatten>());
  net->add(std::make_shared<nn::Linear>(3 * 64, kClasses, gen));
  net->to(DType::f64);
  Tensor x = rand({4, 1, 8, 8}, gen, DType::f64);
  Tensor y = Tensor::from_vector<int64_t>({0, 1, 2, 3}, {4});
  for (const std::string& name : kMinimalNorm) {
    const int64_t filter_before = kernel_calls(Kernel::conv2d_backward_filter);
    make_attack(name, config_for(name))->perturb(*net, x, y);
    EXPECT_EQ(kernel_calls(Kernel::conv2d_backward_filter), filter_before) << name << ": a weight gradient";
    EXPECT_TRUE(net->is_training() && bn->is_training()) << name << ": training mode not restored";
  }
}

TEST(MinimalNormErrors, BadConfigurationsAreNamed) {
  AttackConfig cfg;
  cfg.targeted = true;
  expect_error([&] { make_attack("deepfool-l2", cfg); }, "no targeted DeepFool");
  cfg.targeted = false;
  cfg.random_start = true;
  for (const std::string& name : kMinimalNorm) expect_error([&] { make_attack(name, cfg); }, "random_start");
  cfg.random_start = false;
  cfg.norm = Norm::linf;
  expect_error([&] { DDN ddn(cfg); }, "the norm must be l2");
  expect_error([&] { CarliniWagnerL2 cw(cfg); }, "the norm must be l2");
  cfg.norm = Norm::l1;
  expect_error([&] { DeepFool df(cfg); }, "linf or l2");
  AttackConfig bad;
  bad.candidates = 1;
  expect_error([&] { make_attack("deepfool-linf", bad); }, "candidates");
  bad = AttackConfig();
  bad.gamma = 1.5;
  expect_error([&] { make_attack("ddn", bad); }, "gamma");
  bad = AttackConfig();
  bad.binary_steps = 0;
  expect_error([&] { make_attack("cw-l2", bad); }, "binary_steps");
  for (const std::string& name : kMinimalNorm) {
    auto atk = make_attack(name, AttackConfig());
    EXPECT_EQ(atk->name(), name);
    EXPECT_EQ(atk->config().norm, name == "deepfool-linf" ? Norm::linf : Norm::l2);
  }
}

// ---- binary linear model -----------------------------------------------------------------------
// logits = [0, f(x)], f(x) = w.x + b on x [N, 1, 4, 4]: the boundary is the hyperplane f = 0 and
// the smallest perturbation that crosses it has L2 norm |f(x)| / ||w||_2 and Linf norm
// |f(x)| / ||w||_1 (inside the box here: every point sits near 0.5 and the distances are small).
struct LinearCase {
  std::shared_ptr<nn::Sequential> model;
  Tensor x, y;
  std::vector<double> f;  // f(x_i)
  double w_l2 = 0, w_l1 = 0;
};

LinearCase make_linear_case() {
  Generator gen(29);
  LinearCase c;
  c.model = std::make_shared<nn::Sequential>();
  c.model->add(std::make_shared<nn::Flatten>());
  c.model->add(std::make_shared<nn::Linear>(16, 2, gen));
  c.model->to(DType::f64);
  std::vector<double> w = randn({16}, gen, DType::f64).to_vector<double>(), weight(32, 0.0);
  for (int j = 0; j < 16; ++j) {
    weight[16 + j] = w[j];
    c.w_l2 += w[j] * w[j];
    c.w_l1 += std::fabs(w[j]);
  }
  c.w_l2 = std::sqrt(c.w_l2);
  const int64_t n = 6;
  c.x = rand({n, 1, 4, 4}, gen, DType::f64, Device::cpu(), 0.4, 0.6);
  std::vector<double> xv = c.x.to_vector<double>();
  double wx0 = 0;  // choose b so that f(x_0) = 0.3
  for (int j = 0; j < 16; ++j) wx0 += w[j] * xv[j];
  const double b = 0.3 - wx0;
  c.model->load_state_dict({{"1.weight", Tensor::from_vector<double>(weight, {2, 16})},
                            {"1.bias", Tensor::from_vector<double>({0.0, b}, {2})}});
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n; ++i) {
    double f = b;
    for (int j = 0; j < 16; ++j) f += w[j] * xv[i * 16 + j];
    c.f.push_back(f);
    y.push_back(f > 0 ? 1 : 0);
  }
  c.y = Tensor::from_vector<int64_t>(y, {n});
  return c;
}

TEST(MinimalNormClosedForm, DeepFoolReachesTheHyperplaneInOneStep) {
  // One step: r = (|f| / (||w||_q + 1e-8) + 1e-4) times w / (||w||_2 + 1e-8) (L2) or sign(w) (Linf),
  // then x = x0 + (1 + overshoot) r: the norm is (1 + overshoot)(minimal distance + 1e-4), up to
  // the 1e-8 terms.
  LinearCase c = make_linear_case();
  for (Norm norm : {Norm::l2, Norm::linf}) {
    AttackConfig cfg;
    cfg.steps = 1;
    auto atk = make_attack(norm == Norm::l2 ? "deepfool-l2" : "deepfool-linf", cfg);
    AttackResult r = atk->perturb(*c.model, c.x, c.y);
    std::vector<double> norms = r.norms.to_vector<double>();
    for (size_t i = 0; i < c.f.size(); ++i) {
      const double minimal = std::fabs(c.f[i]) / (norm == Norm::l2 ? c.w_l2 : c.w_l1);
      const double expect = (1 + cfg.overshoot) * (minimal + 1e-4);
      EXPECT_NEAR(norms[i], expect, 1e-7 * expect) << norm_name(norm) << " row " << i;
      EXPECT_GT(norms[i], minimal);
    }
    EXPECT_EQ(r.success_count(), static_cast<int64_t>(c.f.size())) << norm_name(norm);
    // More iterations change nothing: every point is adversarial after the first.
    cfg.steps = 50;
    EXPECT_EQ(make_attack(atk->name(), cfg)->perturb(*c.model, c.x, c.y).x_adv.to_vector<double>(),
              r.x_adv.to_vector<double>());
  }
}

TEST(MinimalNormClosedForm, DdnAndCwComeWithinFivePercentOfTheMinimalL2Distance) {
  LinearCase c = make_linear_case();
  for (std::string name : {"ddn", "cw-l2"}) {
    AttackConfig cfg;
    if (name == "ddn") {
      cfg.steps = 100;
      cfg.init_norm = 0.5;
    } else {
      cfg.steps = 200;
      cfg.binary_steps = 9;
    }
    AttackResult r = make_attack(name, cfg)->perturb(*c.model, c.x, c.y);
    std::vector<double> norms = r.norms.to_vector<double>();
    EXPECT_EQ(r.success_count(), static_cast<int64_t>(c.f.size())) << name;
    for (size_t i = 0; i < c.f.size(); ++i) {
      const double minimal = std::fabs(c.f[i]) / c.w_l2;
      EXPECT_GE(norms[i], minimal * (1 - 1e-9)) << name << " row " << i << ": below the minimum";
      EXPECT_LE(norms[i], 1.05 * minimal) << name << " row " << i;
    }
  }
}

// ---- evaluation --------------------------------------------------------------------------------
TEST(MinimalNormEvaluation, AccuracyFallsWithEpsToTheAttacksOwnSuccess) {
  Case c = make_case(24, 31);
  EvalOptions opt;
  opt.batch_size = 64;  // one batch: C&W's batch-level abort then matches the direct call
  opt.progress = false;
  for (const std::string& name : kMinimalNorm) {
    SCOPED_TRACE(name);
    AttackConfig cfg = config_for(name);
    AttackResult r = make_attack(name, cfg)->perturb(*c.model, c.x, c.y);
    std::vector<double> norms = r.norms.to_vector<double>();
    const double max_norm = *std::max_element(norms.begin(), norms.end());
    std::vector<double> grid;
    for (int j = 0; j <= 10; ++j) grid.push_back(max_norm * j / 8.0);  // 0 .. 1.25 max_norm
    RobustnessCurve curve = robust_accuracy(*c.model, name, cfg, c.x, c.y, grid, opt);
    EXPECT_DOUBLE_EQ(curve.clean_accuracy, 1.0);
    EXPECT_DOUBLE_EQ(curve.robust_accuracy.front(), 1.0);
    for (size_t j = 1; j < grid.size(); ++j) EXPECT_LE(curve.robust_accuracy[j], curve.robust_accuracy[j - 1]) << grid[j];
    const double own = 1.0 - static_cast<double>(r.success_count()) / static_cast<double>(norms.size());
    for (size_t j = 8; j < grid.size(); ++j) EXPECT_DOUBLE_EQ(curve.robust_accuracy[j], own) << "eps " << grid[j];
  }
}

// RobustnessCurve::norms and EvalOptions::on_adversarial (what afd_run eval's per-sample file,
// transfer and H-divergence use): the norms are the direct run's (inf where it failed); each eps
// hands over every attacked row once, inside its eps-ball, and a point whose adversarial lies
// within eps is not robust there (the clip leaves it unchanged).
TEST(MinimalNormEvaluation, NormsAndOnAdversarialMatchTheDirectRun) {
  Case c = make_case(24, 41);
  const int64_t n = 24;
  EvalOptions opt;
  opt.batch_size = 10;  // three batches
  opt.progress = false;
  for (const std::string& name : {std::string("ddn"), std::string("deepfool-linf")}) {
    SCOPED_TRACE(name);
    AttackConfig cfg = config_for(name);
    const Norm norm = make_attack(name, cfg)->config().norm;
    const std::vector<double> grid = {0.05, 0.5, 5};
    std::vector<std::vector<int>> seen(grid.size(), std::vector<int>(size_t(n), 0));
    opt.on_adversarial = [&](size_t k, const std::vector<int64_t>& rows, const Tensor& x_eval) {
      ASSERT_LT(k, grid.size());
      ASSERT_EQ(x_eval.size(0), int64_t(rows.size()));
      const std::vector<double> dist =
          row_norms(ops::sub(x_eval, take_rows(c.x, rows)), norm).to(DType::f64).to_vector<double>();
      for (size_t j = 0; j < rows.size(); ++j) {
        ++seen[k][size_t(rows[j])];
        EXPECT_LE(dist[j], grid[k] * (1 + 1e-9) + 1e-12) << "row " << rows[j];
      }
    };
    RobustnessCurve curve = robust_accuracy(*c.model, name, cfg, c.x, c.y, grid, opt);
    for (const auto& s : seen) EXPECT_EQ(s, std::vector<int>(size_t(n), 1)) << "every clean-correct row once per eps";
    ASSERT_EQ(curve.norms.size(), size_t(n));
    for (size_t k = 0; k < grid.size(); ++k)
      for (size_t i = 0; i < size_t(n); ++i)
        if (curve.norms[i] <= grid[k]) {
          EXPECT_EQ(curve.robust[k][i], 0) << "row " << i << " eps " << grid[k];
        }
    int64_t found = 0;
    for (double v : curve.norms) found += std::isfinite(v);
    EXPECT_GT(found, 0);
  }
  // Fixed-eps attacks keep no norms.
  opt.on_adversarial = nullptr;
  AttackConfig pgd = config_for("ddn");
  pgd.norm = Norm::l2;
  pgd.steps = 2;
  pgd.step_size = 0.1;
  EXPECT_TRUE(robust_accuracy(*c.model, "pgd-l2", pgd, c.x, c.y, {0.5}, opt).norms.empty());
}

// ---- reference agreement -----------------------------------------------------------------------
TEST(MinimalNormReference, AdvertorchNormsMatchWithin1e3) {
  ReferenceFixture f = load_reference_fixture();
  const std::string dir = std::string(AFD_SOURCE_DIR) + "/tests/fixtures/attacks/";
  std::ifstream in(dir + "minimal_norm_refs.json");
  ASSERT_TRUE(in) << "missing minimal_norm_refs.json";
  const nlohmann::json spec = nlohmann::json::parse(in);
  SafetensorsFile refs = read_safetensors(dir + "minimal_norm_refs.safetensors");
  double worst = 0, worst_pixel = 0;
  int checked = 0;
  for (const nlohmann::json& run : spec["runs"]) {
    const std::string name = run["name"], attack = run["attack"];
    SCOPED_TRACE(name);
    const nlohmann::json& p = run["params"];
    AttackConfig cfg;
    std::unique_ptr<Attack> atk;
    if (attack == "ddn") {
      cfg.norm = Norm::l2;
      cfg.steps = p["nb_iter"];
      cfg.gamma = p["gamma"];
      cfg.init_norm = p["init_norm"];
      cfg.targeted = p["targeted"];
      ASSERT_FALSE(p["quantize"].get<bool>());
      atk = std::make_unique<DDN>(cfg);  // default options: AdverTorch's rules
    } else if (attack == "deepfool-linf") {
      cfg.norm = Norm::linf;
      cfg.steps = p["nb_iter"];
      cfg.candidates = p["num_classes"];
      cfg.overshoot = p["overshoot"];
      atk = std::make_unique<DeepFool>(cfg);
    } else {
      ASSERT_EQ(attack, "cw-l2");
      cfg.norm = Norm::l2;
      cfg.steps = p["max_iterations"];
      cfg.step_size = p["learning_rate"];
      cfg.binary_steps = p["binary_search_steps"];
      cfg.initial_const = p["initial_const"];
      cfg.confidence = p["confidence"];
      cfg.abort_early = p["abort_early"];
      CarliniWagnerOptions advertorch_abort;
      advertorch_abort.abort_threshold = 0.999999;
      advertorch_abort.abort_initial_prev = 1e6;
      atk = std::make_unique<CarliniWagnerL2>(cfg, advertorch_abort);
    }
    // The run's input and labels (the leading `rows` points where the run used fewer).
    Tensor x = f.file.get(run["input"].get<std::string>());
    const int64_t rows = run.value("rows", x.size(0));
    x = x.slice(0, rows);
    Tensor labels = refs.get(run["labels"].get<std::string>()).slice(0, rows);
    const std::string clean = std::string("pred_") + (run["input"] == "x_box" ? "box" : "mid");
    AttackResult r = cfg.targeted ? atk->perturb(*f.model, x, refs.get(clean).slice(0, rows), labels)
                                  : atk->perturb(*f.model, x, labels);
    std::vector<double> l2 = row_norms(ops::sub(r.x_adv, x), Norm::l2).to_vector<double>();
    std::vector<double> want = run["l2"].get<std::vector<double>>();
    std::vector<int64_t> want_success = refs.get(run["outputs"]["success"].get<std::string>()).to_vector<int64_t>();
    std::vector<uint8_t> success = r.success.to_vector<uint8_t>();
    for (size_t i = 0; i < want.size(); ++i) {
      const double rel = std::fabs(l2[i] - want[i]) / std::max(want[i], 1e-12);
      if (want[i] > 0 || l2[i] > 0) worst = std::max(worst, rel);
      EXPECT_LE(std::fabs(l2[i] - want[i]), 1e-3 * want[i] + 1e-12) << "row " << i << ": " << l2[i] << " vs " << want[i];
      EXPECT_EQ(success[i], want_success[i]) << "row " << i;
    }
    // Not required, reported: how far apart the images themselves are.
    Tensor ref_adv = refs.get(run["outputs"]["x_adv"].get<std::string>());
    worst_pixel = std::max(worst_pixel, ops::allclose(r.x_adv, ref_adv, 0, 0).max_abs_diff);
    if (attack == "deepfool-linf") {
      std::vector<double> linf = r.norms.to_vector<double>(), want_linf = run["linf"].get<std::vector<double>>();
      for (size_t i = 0; i < want.size(); ++i)
        EXPECT_LE(std::fabs(linf[i] - want_linf[i]), 1e-3 * want_linf[i] + 1e-12) << "row " << i;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 8);
  RecordProperty("max_relative_l2_difference", std::to_string(worst));
  std::printf("AdverTorch vs ours: max relative L2-norm difference %.3g, max |x_adv difference| %.3g\n", worst,
              worst_pixel);
}

}  // namespace
}  // namespace afd::attacks
