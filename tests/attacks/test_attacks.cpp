// Property and closed-form tests of the classic gradient attacks (FGSM, PGD Linf/L2/L1, sparse L1,
// MIM) on small random models, CPU, float64 (specs/attacks.md: sanity checks, Appendix A section 10).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "attacks/attack.h"
#include "attacks/core.h"
#include "attacks/evaluate.h"
#include "attacks/gradient_attacks.h"
#include "nn/layers.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/attacks/tiny_models.h"
#include "tests/support/checks.h"

namespace afd::attacks {
namespace {

using afd::testing::expect_close;
using afd::testing::expect_error;

constexpr int64_t kClasses = 5;

using Case = TinyCase;

Case make_case(bool cnn, int64_t n, uint64_t seed) { return tiny_case(cnn, kClasses, n, seed); }

AttackConfig config_for(const std::string& name) {
  AttackConfig c;
  c.steps = 10;
  c.relative_step = true;
  if (name == "pgd-l2" || name == "mim-l2") {
    c.eps = 1.0;
    c.step_size = 0.25;
  } else if (name == "pgd-l1" || name == "sparse-l1") {
    c.eps = 3.0;
    c.step_size = 0.25;
  } else {
    c.eps = 0.1;
    c.step_size = 0.25;
  }
  return c;
}

const std::vector<std::string> kAttacks = {"fgsm", "pgd-linf", "pgd-l2", "pgd-l1", "sparse-l1", "mim-linf", "mim-l2"};

// ---- properties of every attack ----------------------------------------------------------------
TEST(AttackProperties, StayInTheBallAndTheBoxAndReportNorms) {
  for (bool cnn : {false, true}) {
    Case c = make_case(cnn, 6, 7);
    for (const std::string& name : kAttacks) {
      for (bool random_start : {false, true}) {
        AttackConfig cfg = config_for(name);
        cfg.random_start = random_start;
        cfg.restarts = 2;
        auto atk = make_attack(name, cfg);
        AttackResult r = atk->perturb(*c.model, c.x, c.y);
        SCOPED_TRACE(name + (cnn ? " cnn" : " mlp") + (random_start ? " random start" : ""));
        const int64_t n = c.x.size(0), d = c.x.numel() / n;
        std::vector<double> xa = r.x_adv.to_vector<double>(), x0 = c.x.to_vector<double>();
        std::vector<double> delta(xa.size());
        for (size_t i = 0; i < xa.size(); ++i) {
          ASSERT_GE(xa[i], 0.0);
          ASSERT_LE(xa[i], 1.0);
          delta[i] = xa[i] - x0[i];
        }
        std::vector<double> norms = r.norms.to_vector<double>();
        for (int64_t i = 0; i < n; ++i) {
          double norm = lp(delta, i * d, (i + 1) * d, atk->config().norm);
          EXPECT_LE(norm, cfg.eps * (1 + 1e-6) + 1e-6) << "row " << i;
          EXPECT_NEAR(norms[i], norm, 1e-9) << "reported norm, row " << i;
        }
        // The success mask is the model's own verdict on x_adv.
        expect_close(r.success.to(DType::f64), success_mask(logits_of(*c.model, r.x_adv), c.y, Tensor(), false).to(DType::f64), 0, 0);
      }
    }
  }
}

TEST(AttackProperties, ZeroEpsReturnsTheInputExactly) {
  Case c = make_case(true, 4, 3);
  for (const std::string& name : kAttacks) {
    for (bool random_start : {false, true}) {
      AttackConfig cfg = config_for(name);
      cfg.eps = 0;
      cfg.random_start = random_start;
      AttackResult r = make_attack(name, cfg)->perturb(*c.model, c.x, c.y);
      EXPECT_EQ(r.x_adv.to_vector<double>(), c.x.to_vector<double>()) << name;
      EXPECT_EQ(r.success_count(), 0) << name;
    }
  }
}

TEST(AttackProperties, InputTensorIsNotModified) {
  Case c = make_case(true, 4, 5);
  std::vector<double> before = c.x.to_vector<double>();
  std::vector<int64_t> labels = c.y.to_vector<int64_t>();
  for (const std::string& name : kAttacks) {
    AttackConfig cfg = config_for(name);
    cfg.random_start = true;
    make_attack(name, cfg)->perturb(*c.model, c.x, c.y);
    cfg.targeted = true;
    Tensor target = Tensor::from_vector<int64_t>({1, 2, 3, 4}, {4});
    make_attack(name, cfg)->perturb(*c.model, c.x, c.y, target);
    EXPECT_EQ(c.x.to_vector<double>(), before) << name;
    EXPECT_EQ(c.y.to_vector<int64_t>(), labels) << name;
  }
}

TEST(AttackProperties, BatchConsistentWithoutRandomStart) {
  for (bool cnn : {false, true}) {
    Case c = make_case(cnn, 5, 11);
    for (const std::string& name : kAttacks) {
      AttackConfig cfg = config_for(name);
      auto atk = make_attack(name, cfg);
      AttackResult all = atk->perturb(*c.model, c.x, c.y);
      for (int64_t i = 0; i < c.x.size(0); ++i) {
        AttackResult one = atk->perturb(*c.model, c.x.slice(i, i + 1), c.y.slice(i, i + 1));
        SCOPED_TRACE(name + " row " + std::to_string(i));
        expect_close(one.x_adv, all.x_adv.slice(i, i + 1), 0, 1e-12);
        EXPECT_EQ(one.success.item<uint8_t>(), all.success.to_vector<uint8_t>()[i]);
      }
    }
  }
}

TEST(AttackProperties, AccuracyDoesNotIncreaseWithEps) {
  Case c = make_case(true, 40, 21);
  const std::vector<std::pair<std::string, std::vector<double>>> grids = {
      {"fgsm", {0, 0.02, 0.05, 0.1, 0.2, 0.4}},
      {"pgd-linf", {0, 0.02, 0.05, 0.1, 0.2, 0.4}},
      {"pgd-l2", {0, 0.2, 0.5, 1, 2, 4}},
      {"sparse-l1", {0, 0.5, 1, 2, 4, 8}},
      {"mim-linf", {0, 0.02, 0.05, 0.1, 0.2, 0.4}},
  };
  EvalOptions opt;
  opt.batch_size = 16;
  opt.progress = false;
  for (const auto& [name, grid] : grids) {
    AttackConfig cfg = config_for(name);
    cfg.steps = 20;
    RobustnessCurve curve = robust_accuracy(*c.model, name, cfg, c.x, c.y, grid, opt);
    EXPECT_DOUBLE_EQ(curve.clean_accuracy, 1.0);
    EXPECT_DOUBLE_EQ(curve.robust_accuracy.front(), 1.0) << name << ": eps 0 must leave every point";
    for (size_t j = 1; j < grid.size(); ++j)
      EXPECT_LE(curve.robust_accuracy[j], curve.robust_accuracy[j - 1]) << name << " eps " << grid[j];
    EXPECT_LT(curve.robust_accuracy.back(), 0.5) << name << ": a large budget must break most points";
  }
}

TEST(AttackProperties, PgdIsAtLeastAsStrongAsFgsm) {
  Case c = make_case(true, 60, 31);
  EvalOptions opt;
  opt.progress = false;
  for (double eps : {0.03, 0.06, 0.1}) {
    AttackConfig fg = config_for("fgsm");
    AttackConfig pgd = config_for("pgd-linf");
    pgd.steps = 20;
    double acc_fgsm = robust_accuracy(*c.model, "fgsm", fg, c.x, c.y, {eps}, opt).robust_accuracy[0];
    double acc_pgd = robust_accuracy(*c.model, "pgd-linf", pgd, c.x, c.y, {eps}, opt).robust_accuracy[0];
    EXPECT_LE(acc_pgd, acc_fgsm) << "eps " << eps;
  }
}

TEST(AttackProperties, TargetedModeReachesTheTargetMoreOften) {
  Case c = make_case(true, 40, 41);
  std::vector<int64_t> labels = c.y.to_vector<int64_t>(), t(labels.size());
  for (size_t i = 0; i < t.size(); ++i) t[i] = (labels[i] + 1) % kClasses;
  Tensor target = Tensor::from_vector<int64_t>(t, {static_cast<int64_t>(t.size())});
  for (const std::string& name : kAttacks) {
    AttackConfig cfg = config_for(name);
    cfg.eps *= 2;
    auto hits = [&](bool targeted) {
      cfg.targeted = targeted;
      AttackResult r = make_attack(name, cfg)->perturb(*c.model, c.x, c.y, target);
      std::vector<int64_t> pred = ops::argmax(logits_of(*c.model, r.x_adv), 1).to_vector<int64_t>();
      int64_t h = 0;
      for (size_t i = 0; i < t.size(); ++i) h += pred[i] == t[i];
      if (targeted) {
        EXPECT_EQ(h, r.success_count()) << name << ": targeted success means reaching the target";
      }
      return h;
    };
    int64_t untargeted = hits(false), targeted = hits(true);
    EXPECT_GT(targeted, untargeted) << name;
    EXPECT_GT(targeted, 0) << name;
  }
}

TEST(AttackProperties, RestartsOnlyAddSuccesses) {
  Case c = make_case(true, 30, 51);
  for (const std::string name : {"pgd-linf", "pgd-l2", "mim-linf"}) {
    AttackConfig cfg = config_for(name);
    cfg.eps *= 0.5;
    cfg.steps = 5;
    cfg.random_start = true;
    cfg.seed = 9;
    std::vector<uint8_t> one = make_attack(name, cfg)->perturb(*c.model, c.x, c.y).success.to_vector<uint8_t>();
    cfg.restarts = 4;
    std::vector<uint8_t> four = make_attack(name, cfg)->perturb(*c.model, c.x, c.y).success.to_vector<uint8_t>();
    for (size_t i = 0; i < one.size(); ++i) EXPECT_GE(four[i], one[i]) << name << " row " << i;
  }
}

TEST(AttackProperties, SameSeedSameResultDifferentSeedDifferentStart) {
  Case c = make_case(true, 4, 61);
  AttackConfig cfg = config_for("pgd-linf");
  cfg.random_start = true;
  cfg.seed = 5;
  Tensor a = make_attack("pgd-linf", cfg)->perturb(*c.model, c.x, c.y).x_adv;
  Tensor b = make_attack("pgd-linf", cfg)->perturb(*c.model, c.x, c.y).x_adv;
  EXPECT_EQ(a.to_vector<double>(), b.to_vector<double>());
  cfg.seed = 6;
  cfg.steps = 0;
  Tensor s6 = make_attack("pgd-linf", cfg)->perturb(*c.model, c.x, c.y).x_adv;
  cfg.seed = 5;
  Tensor s5 = make_attack("pgd-linf", cfg)->perturb(*c.model, c.x, c.y).x_adv;
  EXPECT_NE(s5.to_vector<double>(), s6.to_vector<double>());
}

TEST(AttackProperties, OnlyInputGradientsAndEvalMode) {
  // A conv net with BatchNorm in training mode: the attack must use eval mode (running statistics
  // untouched), restore training mode, and never compute a weight gradient.
  Generator gen(3);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Conv2d>(1, 3, 3, 1, 1, false, gen));
  auto bn = net->add(std::make_shared<nn::BatchNorm2d>(3));
  net->add(std::make_shared<nn::ReLU>());
  net->add(std::make_shared<nn::Flatten>());
  net->add(std::make_shared<nn::Linear>(3 * 64, kClasses, gen));
  Tensor x = rand({4, 1, 8, 8}, gen);
  Tensor y = Tensor::from_vector<int64_t>({0, 1, 2, 3}, {4});
  auto running_mean = [&] {
    for (auto& [name, t] : net->state_dict())
      if (name == "1.running_mean") return t.to_vector<float>();
    ADD_FAILURE() << "no 1.running_mean";
    return std::vector<float>();
  };
  std::vector<float> mean_before = running_mean();
  int64_t filter_before = kernel_calls(Kernel::conv2d_backward_filter);
  int64_t data_before = kernel_calls(Kernel::conv2d_backward_data);
  AttackConfig cfg = config_for("pgd-linf");
  make_attack("pgd-linf", cfg)->perturb(*net, x, y);
  EXPECT_EQ(kernel_calls(Kernel::conv2d_backward_filter), filter_before) << "a weight gradient was computed";
  EXPECT_EQ(kernel_calls(Kernel::conv2d_backward_data), data_before + cfg.steps);
  EXPECT_EQ(running_mean(), mean_before) << "BatchNorm ran in training mode";
  EXPECT_TRUE(net->is_training());
  EXPECT_TRUE(bn->is_training());
}

// ---- closed forms ------------------------------------------------------------------------------
TEST(AttackClosedForm, FgsmOnALinearSoftmaxModel) {
  // logits = W x + b: d CE / dx = W^T (softmax(z) - onehot(y)); x_adv = clip(x + eps sign(.)).
  Generator gen(17);
  auto lin = std::make_shared<nn::Linear>(16, kClasses, gen);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Flatten>());
  net->add(lin);
  net->to(DType::f64);
  const int64_t n = 6;
  Tensor x = rand({n, 1, 4, 4}, gen, DType::f64);
  Tensor y = Tensor::from_vector<int64_t>({0, 1, 2, 3, 4, 0}, {n});
  const double eps = 0.07;
  AttackConfig cfg;
  cfg.eps = eps;
  AttackResult r = make_attack("fgsm", cfg)->perturb(*net, x, y);

  std::vector<double> w = lin->weight.data().to_vector<double>(), b = lin->bias.data().to_vector<double>();
  std::vector<double> xv = x.to_vector<double>(), expect(xv.size());
  std::vector<int64_t> lab = y.to_vector<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    double z[kClasses], zmax = -INFINITY, s = 0;
    for (int64_t k = 0; k < kClasses; ++k) {
      z[k] = b[k];
      for (int64_t j = 0; j < 16; ++j) z[k] += w[k * 16 + j] * xv[i * 16 + j];
      zmax = std::max(zmax, z[k]);
    }
    for (double& v : z) s += (v = std::exp(v - zmax));
    for (int64_t j = 0; j < 16; ++j) {
      double g = 0;
      for (int64_t k = 0; k < kClasses; ++k) g += w[k * 16 + j] * (z[k] / s - (k == lab[i] ? 1.0 : 0.0));
      double sg = g > 0 ? 1.0 : (g < 0 ? -1.0 : 0.0);
      expect[i * 16 + j] = std::clamp(xv[i * 16 + j] + eps * sg, 0.0, 1.0);
    }
  }
  expect_close(r.x_adv, Tensor::from_vector<double>(expect, x.shape()), 0, 1e-15);
}

// The L1 projection by bisection on the threshold: theta >= 0 with sum max(|v| - theta, 0) = eps.
std::vector<double> l1_projection_by_bisection(const std::vector<double>& v, double eps) {
  double l1 = 0, hi = 0;
  for (double a : v) l1 += std::fabs(a), hi = std::max(hi, std::fabs(a));
  if (l1 <= eps) return v;
  double lo = 0;
  for (int it = 0; it < 200; ++it) {
    double mid = 0.5 * (lo + hi), s = 0;
    for (double a : v) s += std::max(std::fabs(a) - mid, 0.0);
    (s > eps ? lo : hi) = mid;
  }
  std::vector<double> w(v.size());
  for (size_t j = 0; j < v.size(); ++j) w[j] = std::copysign(std::max(std::fabs(v[j]) - hi, 0.0), v[j]);
  return w;
}

// sign_step (ops::linf_sign_step, one pass) against the ops it replaced in PGD, FGSM, MIM and
// TRADES: the same bits, f32 and f64, with gradients of 0, -0 and NaN, points outside the box and
// the ball, -0 coordinates, and rows with eps 0 and alpha 0; and its argument checks.
TEST(AttackClosedForm, SignStepEqualsTheSeparateOpsBitForBit) {
  Generator gen(31);
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x0 = rand({4, 3, 5, 5}, gen, DType::f64), g = randn(x0.shape(), gen, DType::f64);
    Tensor x = ops::add(x0, ops::mul_scalar(randn(x0.shape(), gen, DType::f64), 0.01));  // mostly inside the ball
    double *pg = g.data<double>(), *px = x.data<double>(), *p0 = x0.data<double>();
    pg[0] = 0, pg[1] = -0.0, pg[2] = NAN, px[3] = -0.0, p0[4] = -0.0, px[5] = 1.5, px[6] = -0.5;
    x0 = x0.to(dt), x = x.to(dt), g = g.to(dt);
    const std::vector<double> alpha{0.01, 0.0, 2.0 / 255, 0.5}, eps{0.03, 0.1, 0.0, 8.0 / 255};
    const Tensor moved = ops::add(x, ops::mul(ops::sign(g), attacks::as_rows(alpha, x)));
    const Tensor want = attacks::clip_box(attacks::project_ball(x0, moved, eps, attacks::Norm::linf));
    const Tensor got = attacks::sign_step(x0, x, g, alpha, eps);
    ASSERT_EQ(got.shape(), want.shape());
    EXPECT_EQ(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()), 0) << dtype_name(dt);
  }
  const Tensor x = Tensor::zeros({2, 3}), steps = Tensor::zeros({2, 2});
  expect_error([&] { attacks::sign_step(x, x, x, {0.1}, {0.1, 0.1}); },
               "sign_step: 1 step sizes and 2 radii for a batch of 2");
  expect_error([&] { ops::linf_sign_step(x, x, Tensor::zeros({2, 2}), steps); },
               "linf_sign_step: the gradient has shape [2, 2], expected [2, 3]");
  expect_error([&] { ops::linf_sign_step(x, x, x, Tensor::zeros({2, 3})); },
               "linf_sign_step: steps (alpha; eps) has shape [2, 3], expected [2, 2]");
}

TEST(AttackClosedForm, DuchiProjectionEqualsBisectionAndKeepsInsideRows) {
  Generator gen(23);
  for (int64_t d : {1, 2, 7, 64}) {
    const int64_t n = 50;
    Tensor v = randn({n, d}, gen, DType::f64);
    std::vector<double> vv = v.to_vector<double>(), eps(n);
    std::vector<double> u = rand({n}, gen, DType::f64).to_vector<double>();
    for (int64_t i = 0; i < n; ++i) eps[i] = u[i] * static_cast<double>(d);  // E||v||_1 = 0.8 d: some rows inside
    std::vector<double> got = duchi_l1_projection(v, eps).to_vector<double>();
    int inside = 0;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> row(vv.begin() + i * d, vv.begin() + (i + 1) * d);
      std::vector<double> want = l1_projection_by_bisection(row, eps[i]);
      double l1 = lp(row, 0, row.size(), Norm::l1);
      if (l1 <= eps[i]) {
        ++inside;
        for (int64_t j = 0; j < d; ++j) EXPECT_EQ(got[i * d + j], row[j]) << "inside row changed";
      }
      for (int64_t j = 0; j < d; ++j) EXPECT_NEAR(got[i * d + j], want[j], 1e-12) << "d " << d << " row " << i;
      EXPECT_LE(lp(got, i * d, (i + 1) * d, Norm::l1), eps[i] * (1 + 1e-12));
    }
    if (d > 1) {
      EXPECT_GT(inside, 0) << "the test needs rows inside the ball";
    }
  }
  // The case Foolbox's formula gets wrong (specs/attacks.md, Appendix A section 4).
  Tensor v = Tensor::from_vector<double>({10, 0.1}, {1, 2});
  EXPECT_EQ(duchi_l1_projection(v, {0.5}).to_vector<double>(), (std::vector<double>{0.5, 0}));
}

TEST(AttackClosedForm, SparseStepHasExactlyKCoordinates) {
  // d = 64, sparsity 0.95: k = round(3.2) = 3; one step of size 0.3 from an interior point with a
  // budget too large to bind moves exactly 3 coordinates by +-0.1.
  Case c = make_case(true, 4, 71);
  Generator gen(2);
  Tensor x = ops::add_scalar(ops::mul_scalar(rand({4, 1, 8, 8}, gen, DType::f64), 0.5), 0.25);
  AttackConfig cfg;
  cfg.norm = Norm::l1;
  cfg.eps = 100;
  cfg.steps = 1;
  cfg.step_size = 0.3;
  std::vector<double> d = ops::sub(make_attack("sparse-l1", cfg)->perturb(*c.model, x, c.y).x_adv, x).to_vector<double>();
  for (int64_t i = 0; i < 4; ++i) {
    int nonzero = 0;
    for (int64_t j = 0; j < 64; ++j) {
      double a = std::fabs(d[i * 64 + j]);
      if (a > 0) {
        ++nonzero;
        EXPECT_NEAR(a, 0.1, 1e-12);
      }
    }
    EXPECT_EQ(nonzero, 3) << "row " << i;
  }
}

TEST(AttackClosedForm, BallSamplersAreUniform) {
  // For a uniform point in a d-dimensional ball of radius eps, P(||r|| <= t) = (t/eps)^d, so
  // E||r|| = d/(d+1) eps (any norm); Linf coordinates are U(-eps, eps).
  Generator gen(29);
  const int64_t n = 4000, d = 10;
  Tensor like = Tensor::zeros({n, d}, DType::f64);
  std::vector<double> eps(n, 2.0);
  for (Norm p : {Norm::l2, Norm::l1, Norm::linf}) {
    std::vector<double> r = random_in_ball(like, eps, p, gen).to_vector<double>();
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) {
      double norm = lp(r, i * d, (i + 1) * d, p);
      EXPECT_LE(norm, 2.0 * (1 + 1e-12));
      mean += norm / n;
    }
    // L2 / L1: E||r|| = d / (d + 1) eps; Linf: the max of d uniforms |U(-2, 2)|, the same mean.
    EXPECT_NEAR(mean, 2.0 * d / (d + 1.0), 0.02) << norm_name(p);
  }
}

TEST(AttackClosedForm, LossValuesOnHandMadeLogits) {
  Tensor z = Tensor::from_vector<double>({3, 1, 0, -1, 2,    // y = 0, argmax = y
                                          0, 4, 1, 2, -2},   // y = 0, argmax = 1
                                         {2, 5});
  Tensor y = Tensor::from_vector<int64_t>({0, 0}, {2});
  Tensor t = Tensor::from_vector<int64_t>({4, 3}, {2});
  LossInputs in{&y, &t, nullptr};
  // CW margin: max_{j != y} z_j - z_y.
  EXPECT_EQ(per_sample_loss(LossKind::cw, Var(z), in, false).data().to_vector<double>(), (std::vector<double>{-1, 4}));
  // DLR: -(z_y - max_{j != y} z_j) / (z_(1) - z_(3)): row 0: -(3 - 2)/(3 - 1); row 1: -(0 - 4)/(4 - 1).
  std::vector<double> dlr = per_sample_loss(LossKind::dlr, Var(z), in, false).data().to_vector<double>();
  EXPECT_NEAR(dlr[0], -0.5, 1e-12);
  EXPECT_NEAR(dlr[1], 4.0 / 3.0, 1e-12);
  // Targeted DLR: -(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2): row 0: -(3 - 2)/(3 - 0.5);
  // row 1: -(0 - 2)/(4 - 0.5).
  std::vector<double> tdlr = per_sample_loss(LossKind::dlr_targeted, Var(z), in, false).data().to_vector<double>();
  EXPECT_NEAR(tdlr[0], -1 / 2.5, 1e-12);
  EXPECT_NEAR(tdlr[1], 2 / 3.5, 1e-12);
  // KL to itself is 0; CE equals log-sum-exp minus z_y.
  Tensor clean = z.clone();
  LossInputs kin{&y, nullptr, &clean};
  for (double v : per_sample_loss(LossKind::kl, Var(z), kin, false).data().to_vector<double>()) EXPECT_NEAR(v, 0, 1e-15);
}

// ---- bad input -----------------------------------------------------------------------------------
TEST(AttackErrors, BadInputsAreNamed) {
  Case c = make_case(false, 3, 81);
  AttackConfig cfg = config_for("pgd-linf");
  auto atk = make_attack("pgd-linf", cfg);
  expect_error([&] { atk->perturb(*c.model, ops::mul_scalar(c.x, 2.0), c.y); }, "must lie in [0, 1]");
  expect_error([&] { atk->perturb(*c.model, c.x, c.y.slice(0, 2)); }, "true labels i64 [3]");
  expect_error([&] { atk->perturb(*c.model, c.x, c.y, Tensor(), Tensor::from_vector<double>({0.1, -1, 0.1}, {3})); },
               "eps[1] = -1");
  cfg.targeted = true;
  expect_error([&] { make_attack("pgd-linf", cfg)->perturb(*c.model, c.x, c.y); }, "target labels are required");
  cfg.targeted = false;
  cfg.eps = -0.1;
  expect_error([&] { make_attack("pgd-linf", cfg)->perturb(*c.model, c.x, c.y); }, "eps must be finite and >= 0");
  cfg.eps = 0.1;
  cfg.norm = Norm::l2;
  expect_error([&] { FGSM f(cfg); }, "fgsm: the norm must be linf");
  expect_error([&] { make_attack("pgd-l7", cfg); }, "unknown attack 'pgd-l7' (known: fgsm, pgd-linf");
  expect_error([&] { parse_norm("l3"); }, "unknown norm 'l3'");
  expect_error([&] { parse_loss("hinge"); }, "unknown attack loss 'hinge'");
}

TEST(AttackRegistry, NamesFixTheNorm) {
  AttackConfig cfg;
  cfg.norm = Norm::linf;
  EXPECT_EQ(make_attack("pgd-l2", cfg)->config().norm, Norm::l2);
  EXPECT_EQ(make_attack("pgd-l2", cfg)->name(), "pgd-l2");
  EXPECT_EQ(make_attack("sparse-l1", cfg)->config().norm, Norm::l1);
  EXPECT_EQ(make_attack("mim-l2", cfg)->name(), "mim-l2");
  for (const AttackInfo& info : attack_registry()) {
    AttackConfig c = config_for(info.name);
    EXPECT_EQ(info.make(c)->name().rfind(info.name, 0), 0u) << info.name;  // "apgd" names itself by its loss
  }
}

}  // namespace
}  // namespace afd::attacks
