// APGD (attacks/apgd.h): the checkpoint schedule, the box-aware L1 projection against an
// independent solver, DLR values by hand, and properties of the attack on small random models
// (CPU, float64): ball and box, eps = 0, input untouched, what comes back for points fooled and not
// fooled, restarts, given and looped targets, strength against PGD, errors.
// Agreement with fra31/auto-attack itself: APGD::single_run(model, x, y, target, eps, x_init) is the
// reference's attack_single_run(x, y, x_init) (tests/fixtures/attacks/attack_refs.*).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "attacks/apgd.h"
#include "attacks/attack.h"
#include "attacks/core.h"
#include "nn/layers.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/attacks/tiny_models.h"
#include "tests/support/checks.h"

namespace afd::attacks {
namespace {

using afd::testing::expect_error;

constexpr int64_t kClasses = 6;

using Case = TinyCase;

Case make_case(bool cnn, int64_t n, uint64_t seed) { return tiny_case(cnn, kClasses, n, seed); }

double budget(Norm p) { return p == Norm::linf ? 0.1 : (p == Norm::l2 ? 1.0 : 3.0); }

AttackConfig apgd_config(Norm p, LossKind loss, int steps = 20) {
  AttackConfig c;
  c.norm = p;
  c.eps = budget(p);
  c.steps = steps;
  c.loss = loss;
  c.seed = 11;
  return c;
}

// Every row of x_adv in the box and within eps (1 + 1e-6) + 1e-6 of x in norm p.
void expect_in_ball_and_box(const Tensor& x_adv, const Tensor& x, double eps, Norm p, const std::string& what) {
  SCOPED_TRACE(what);
  const int64_t n = x.size(0), d = x.numel() / n;
  std::vector<double> xa = x_adv.to_vector<double>(), x0 = x.to_vector<double>(), delta(xa.size());
  for (size_t i = 0; i < xa.size(); ++i) {
    ASSERT_GE(xa[i], 0.0) << "element " << i;
    ASSERT_LE(xa[i], 1.0) << "element " << i;
    delta[i] = xa[i] - x0[i];
  }
  for (int64_t i = 0; i < n; ++i)
    EXPECT_LE(lp(delta, i * d, (i + 1) * d, p), eps * (1 + 1e-6) + 1e-6) << "row " << i;
}

bool rows_equal(const Tensor& a, int64_t i, const Tensor& b, int64_t j) {
  return a.select(i).to_vector<double>() == b.select(j).to_vector<double>();
}

double accuracy(nn::UnaryModule& model, const Tensor& x, const Tensor& y) {
  std::vector<int64_t> p = ops::argmax(logits_of(model, x), 1).to_vector<int64_t>(), t = y.to_vector<int64_t>();
  double ok = 0;
  for (size_t i = 0; i < p.size(); ++i) ok += p[i] == t[i];
  return ok / static_cast<double>(p.size());
}

// The class with the (rank + 1)-th largest clean logit of every point (rank 1: the runner-up).
std::vector<int64_t> ranked_class(const Case& c, int rank) {
  std::vector<double> z = logits_of(*c.model, c.x).to_vector<double>();
  const int64_t n = c.x.size(0);
  std::vector<int64_t> out(static_cast<size_t>(n)), order(kClasses);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < kClasses; ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return z[i * kClasses + a] > z[i * kClasses + b]; });
    out[i] = order[rank];
  }
  return out;
}

// ---- the checkpoint schedule -------------------------------------------------------------------
TEST(ApgdCheckpoints, IterationsOfTheStepSizeTest) {
  // Linf / L2: k = 22, 19, 16, 13, 10, 7, 6, 6 for 100 (the paper's w_j = 22, 41, 57, ... minus 1).
  EXPECT_EQ(APGD::checkpoint_iterations(100), (std::vector<int>{21, 40, 56, 69, 79, 86, 92, 98}));
  // 40: n_iter_2 = 8, size_decr = 1, n_iter_min = 2.
  EXPECT_EQ(APGD::checkpoint_iterations(40), (std::vector<int>{7, 14, 20, 25, 29, 32, 34, 36, 38}));
  // 20: n_iter_2 = 4, size_decr = 1, n_iter_min = 1: k = 4, 3, 2, then every iteration.
  EXPECT_EQ(APGD::checkpoint_iterations(20),
            (std::vector<int>{3, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}));
  EXPECT_EQ(APGD::checkpoint_iterations(1), (std::vector<int>{0}));
  EXPECT_TRUE(APGD::checkpoint_iterations(0).empty());
  // L1: a fixed k = max(int(0.04 n), 1): 4 for 100, 1 for 20.
  std::vector<int> l1 = APGD::checkpoint_iterations(100, Norm::l1);
  ASSERT_EQ(l1.size(), 25u);
  for (size_t j = 0; j < l1.size(); ++j) EXPECT_EQ(l1[j], static_cast<int>(4 * j + 3));
  EXPECT_EQ(APGD::checkpoint_iterations(20, Norm::l1).size(), 20u);
}

TEST(ApgdCheckpoints, ARunRecordsTheCheckpointsThatFired) {
  Case c = make_case(false, 4, 3);
  for (Norm p : {Norm::linf, Norm::l2, Norm::l1}) {
    for (int steps : {20, 40}) {
      APGD atk(apgd_config(p, LossKind::ce, steps));
      Generator gen(5);
      APGDRun r = atk.single_run(*c.model, c.x, c.y, Tensor(), std::vector<double>(4, budget(p)), Tensor(), &gen);
      EXPECT_EQ(r.checkpoints, APGD::checkpoint_iterations(steps, p)) << norm_name(p) << " " << steps;
    }
  }
}

// ---- the box-aware L1 projection ---------------------------------------------------------------
// Independent solver: the projection of x + y onto {||w - x||_1 <= eps} and [0, 1] keeps each
// coordinate's sign and has magnitude clamp(|y_j| - theta, 0, cap_j), cap_j the room the box leaves in
// the direction of y_j; theta >= 0 is the smallest value whose magnitudes sum to <= eps, found here
// by 200 bisections on [0, max |y|].
std::vector<double> bisection_projection(const std::vector<double>& x, const std::vector<double>& y, double eps) {
  const size_t d = x.size();
  std::vector<double> cap(d);
  double hi = 0;
  for (size_t j = 0; j < d; ++j) {
    cap[j] = y[j] > 0 ? std::min(y[j], 1 - x[j]) : std::min(-y[j], x[j]);
    hi = std::max(hi, std::fabs(y[j]));
  }
  auto total = [&](double theta) {
    double s = 0;
    for (size_t j = 0; j < d; ++j) s += std::clamp(std::fabs(y[j]) - theta, 0.0, cap[j]);
    return s;
  };
  double theta = 0;
  if (total(0) > eps) {
    double lo = 0;
    for (int it = 0; it < 200; ++it) {
      const double mid = 0.5 * (lo + hi);
      (total(mid) > eps ? lo : hi) = mid;
    }
    theta = hi;
  }
  std::vector<double> w(d);  // the projected perturbation y + dy
  for (size_t j = 0; j < d; ++j) {
    const double m = std::clamp(std::fabs(y[j]) - theta, 0.0, cap[j]);
    w[j] = y[j] > 0 ? m : -m;
  }
  return w;
}

TEST(ApgdL1Projection, MatchesBisectionStaysFeasibleAndIsTheClosestPoint) {
  Generator gen(21);
  int projected = 0, box_only = 0;
  for (int64_t d : {1, 2, 3, 7, 50, 300}) {
    const int64_t n = 12;
    std::vector<double> x = rand({n, d}, gen, DType::f64).to_vector<double>();
    std::vector<double> y = randn({n, d}, gen, DType::f64).to_vector<double>();
    std::vector<double> coin = rand({n, d}, gen, DType::f64).to_vector<double>();
    std::vector<double> eps(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < d; ++j) {  // some coordinates on the box faces, some moves of 0
        double& xv = x[i * d + j];
        if (coin[i * d + j] < 0.15) xv = 0;
        else if (coin[i * d + j] > 0.85) xv = 1;
        if (coin[i * d + j] > 0.45 && coin[i * d + j] < 0.5) y[i * d + j] = 0;
      }
      // Radii from 0 (everything shrinks away) through binding to larger than ||y||_1.
      eps[i] = i == 0 ? 0.0 : 0.05 * static_cast<double>(d) * static_cast<double>(i % 6) * 0.5;
    }
    Tensor tx = Tensor::from_vector<double>(x, {n, d}), ty = Tensor::from_vector<double>(y, {n, d});
    std::vector<double> dy = box_l1_projection(tx, ty, eps).to_vector<double>();
    std::vector<double> z = rand({n * 20, d}, gen, DType::f64).to_vector<double>();
    for (int64_t i = 0; i < n; ++i) {
      SCOPED_TRACE("d " + std::to_string(d) + " row " + std::to_string(i));
      std::vector<double> xi(x.begin() + i * d, x.begin() + (i + 1) * d), yi(y.begin() + i * d, y.begin() + (i + 1) * d);
      std::vector<double> w(static_cast<size_t>(d));
      double l1 = 0, l1_box = 0;
      for (int64_t j = 0; j < d; ++j) {
        w[j] = yi[j] + dy[i * d + j];
        l1 += std::fabs(w[j]);
        l1_box += std::fabs(std::clamp(xi[j] + yi[j], 0.0, 1.0) - xi[j]);
        ASSERT_GE(xi[j] + w[j], -1e-12);
        ASSERT_LE(xi[j] + w[j], 1 + 1e-12);
      }
      (l1_box > eps[i] ? projected : box_only) += 1;
      EXPECT_LE(l1, eps[i] * (1 + 1e-12) + 1e-12);
      std::vector<double> ref = bisection_projection(xi, yi, eps[i]);
      for (int64_t j = 0; j < d; ++j) ASSERT_NEAR(w[j], ref[j], 1e-9) << "coordinate " << j;
      // The closest feasible point p = x + w to x + y: <(x + y) - p, q - p> <= 0 for every feasible
      // q; here q = x + clip(eps v / ||v||_1) for 20 random directions v (clipping to the box only
      // shortens the move, so q stays in the ball).
      for (int t = 0; t < 20; ++t) {
        const double* v = z.data() + (i * 20 + t) * d;
        double vn = 0;
        for (int64_t j = 0; j < d; ++j) vn += std::fabs(v[j] - 0.5);
        double inner = 0;
        for (int64_t j = 0; j < d; ++j) {
          const double q = std::clamp(xi[j] + eps[i] * (v[j] - 0.5) / vn, 0.0, 1.0) - xi[j];
          inner += (yi[j] - w[j]) * (q - w[j]);
        }
        EXPECT_LE(inner, 1e-9) << "direction " << t;
      }
    }
  }
  EXPECT_GT(projected, 20);  // both branches were exercised
  EXPECT_GT(box_only, 5);
}

// ---- DLR by hand -------------------------------------------------------------------------------
TEST(ApgdLosses, DlrValuesOnHandMadeLogits) {
  // z = [1, 2, 3, 4, 0], sorted 4 > 3 > 2 > 1 > 0.
  //   y = 3 (the top class): -(z_y - z_(2)) / (z_(1) - z_(3)) = -(4 - 3) / (4 - 2) = -0.5
  //   y = 0:                 -(z_y - z_(1)) / (z_(1) - z_(3)) = -(1 - 4) / 2 = 1.5
  // z = [0.5, -1, 2, 0, 1], sorted 2 > 1 > 0.5 > 0 > -1, y = 2: -(2 - 1) / (2 - 0.5) = -2/3
  Tensor logits = Tensor::from_vector<double>({1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 0.5, -1, 2, 0, 1}, {3, 5});
  Tensor y = Tensor::from_vector<int64_t>({3, 0, 2}, {3});
  LossInputs in{&y, nullptr, nullptr};
  std::vector<double> dlr = per_sample_loss(LossKind::dlr, Var(logits), in, false).data().to_vector<double>();
  EXPECT_NEAR(dlr[0], -0.5, 1e-9);
  EXPECT_NEAR(dlr[1], 1.5, 1e-9);
  EXPECT_NEAR(dlr[2], -2.0 / 3.0, 1e-9);
  // Targeted: -(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2).
  //   row 0, y = 3, t = 0: -(4 - 1) / (4 - (2 + 1) / 2) = -3 / 2.5 = -1.2
  //   row 1, y = 0, t = 3: -(1 - 4) / 2.5 = 1.2
  //   row 2, y = 2, t = 4: -(2 - 1) / (2 - (0.5 + 0) / 2) = -1 / 1.75
  Tensor t = Tensor::from_vector<int64_t>({0, 3, 4}, {3});
  LossInputs in_t{&y, &t, nullptr};
  std::vector<double> dlr_t =
      per_sample_loss(LossKind::dlr_targeted, Var(logits), in_t, false).data().to_vector<double>();
  EXPECT_NEAR(dlr_t[0], -1.2, 1e-9);
  EXPECT_NEAR(dlr_t[1], 1.2, 1e-9);
  EXPECT_NEAR(dlr_t[2], -1.0 / 1.75, 1e-9);
}

// ---- properties of the attack -------------------------------------------------------------------
TEST(ApgdProperties, StaysInTheBallAndTheBox) {
  for (bool cnn : {false, true}) {
    Case c = make_case(cnn, 6, 7);
    for (Norm p : {Norm::linf, Norm::l2, Norm::l1}) {
      for (LossKind loss : {LossKind::ce, LossKind::dlr, LossKind::dlr_targeted}) {
        AttackConfig cfg = apgd_config(p, loss, 15);
        cfg.restarts = 2;
        cfg.n_target_classes = 2;
        cfg.return_last_iterate = true;  // the last iterates must be in the ball too
        const std::string what = std::string(cnn ? "cnn " : "mlp ") + norm_name(p) + " " + loss_name(loss);
        APGD atk(cfg);
        AttackResult r = atk.perturb(*c.model, c.x, c.y);
        expect_in_ball_and_box(r.x_adv, c.x, cfg.eps, p, what);
        std::vector<double> norms = r.norms.to_vector<double>();
        std::vector<double> x0 = c.x.to_vector<double>(), xa = r.x_adv.to_vector<double>();
        const int64_t d = c.x.numel() / c.x.size(0);
        for (size_t j = 0; j < xa.size(); ++j) xa[j] -= x0[j];
        for (int64_t i = 0; i < c.x.size(0); ++i) EXPECT_NEAR(norms[i], lp(xa, i * d, (i + 1) * d, p), 1e-9) << what;
        // single_run's three outputs, from a random start.
        Generator gen(3);
        Tensor target = Tensor::from_vector<int64_t>(std::vector<int64_t>(6, 1), {6});
        APGDRun run = atk.single_run(*c.model, c.x, c.y, target, std::vector<double>(6, cfg.eps), Tensor(), &gen);
        expect_in_ball_and_box(run.x_best, c.x, cfg.eps, p, what + " x_best");
        expect_in_ball_and_box(run.x_best_adv, c.x, cfg.eps, p, what + " x_best_adv");
        expect_in_ball_and_box(run.x_last, c.x, cfg.eps, p, what + " x_last");
      }
    }
  }
  // L1 with the large-eps schedule (3 eps, 2 eps, eps) ends in the eps ball.
  Case c = make_case(true, 6, 8);
  AttackConfig cfg = apgd_config(Norm::l1, LossKind::ce, 20);
  cfg.return_last_iterate = true;
  APGD big(cfg, /*use_largereps=*/true);
  expect_in_ball_and_box(big.perturb(*c.model, c.x, c.y).x_adv, c.x, cfg.eps, Norm::l1, "l1 largereps");
}

TEST(ApgdProperties, PerSampleBudgets) {
  Case c = make_case(false, 4, 9);
  for (Norm p : {Norm::linf, Norm::l2, Norm::l1}) {
    AttackConfig cfg = apgd_config(p, LossKind::ce, 10);
    cfg.return_last_iterate = true;
    const double e = budget(p);
    Tensor eps = Tensor::from_vector<double>({0.0, 0.25 * e, e, 2 * e}, {4});
    AttackResult r = APGD(cfg).perturb(*c.model, c.x, c.y, Tensor(), eps);
    std::vector<double> norms = r.norms.to_vector<double>(), want = eps.to_vector<double>();
    EXPECT_EQ(norms[0], 0.0);
    for (int i = 0; i < 4; ++i) EXPECT_LE(norms[i], want[i] * (1 + 1e-6) + 1e-9) << norm_name(p) << " row " << i;
    EXPECT_GT(norms[3], want[2]) << norm_name(p) << ": the largest budget is used";
  }
}

TEST(ApgdProperties, EpsZeroReturnsXExactlyAndTheInputIsUntouched) {
  Case c = make_case(true, 5, 4);
  const std::vector<double> before = c.x.to_vector<double>();
  for (Norm p : {Norm::linf, Norm::l2, Norm::l1}) {
    for (bool last : {false, true}) {
      AttackConfig cfg = apgd_config(p, LossKind::ce, 10);
      cfg.eps = 0;
      cfg.return_last_iterate = last;
      AttackResult r = APGD(cfg).perturb(*c.model, c.x, c.y);
      EXPECT_EQ(r.x_adv.to_vector<double>(), before) << norm_name(p);
      EXPECT_EQ(r.success_count(), 0) << norm_name(p);
    }
    AttackConfig cfg = apgd_config(p, LossKind::dlr, 10);
    APGD(cfg).perturb(*c.model, c.x, c.y);
    EXPECT_EQ(c.x.to_vector<double>(), before) << norm_name(p) << ": the input was modified";
  }
}

// What perturb returns: with one restart and every point clean-correct, perturb runs exactly
// single_run from the same generator (seeded with config.seed), so each row must be x_best_adv where
// the run fooled it, and the clean x (or x_last with return_last_iterate) where it did not.
TEST(ApgdProperties, FooledPointsGetTheirAdversarialOthersTheCleanImageOrTheLastIterate) {
  Case c = make_case(false, 24, 12);
  for (Norm p : {Norm::linf, Norm::l2}) {
    for (bool last : {false, true}) {
      AttackConfig cfg = apgd_config(p, LossKind::ce, 10);
      cfg.eps = 0.4 * budget(p);
      cfg.return_last_iterate = last;
      APGD atk(cfg);
      AttackResult r = atk.perturb(*c.model, c.x, c.y);
      Generator gen(cfg.seed);
      APGDRun run = atk.single_run(*c.model, c.x, c.y, Tensor(), std::vector<double>(24, cfg.eps), Tensor(), &gen);
      std::vector<uint8_t> fooled = run.fooled.to_vector<uint8_t>(), success = r.success.to_vector<uint8_t>();
      int n_fooled = 0;
      for (int64_t i = 0; i < 24; ++i) {
        SCOPED_TRACE(std::string(norm_name(p)) + " row " + std::to_string(i));
        EXPECT_EQ(success[i], fooled[i]);
        n_fooled += fooled[i];
        const Tensor& want = fooled[i] ? run.x_best_adv : (last ? run.x_last : c.x);
        EXPECT_TRUE(rows_equal(r.x_adv, i, want, i));
      }
      // Both kinds of points occur, or the test says nothing.
      EXPECT_GT(n_fooled, 0) << norm_name(p);
      EXPECT_LT(n_fooled, 24) << norm_name(p);
      // Not fooled: the clean image has norm 0, the last iterate moved.
      std::vector<double> norms = r.norms.to_vector<double>();
      for (int64_t i = 0; i < 24; ++i) {
        if (!fooled[i]) {
          EXPECT_EQ(norms[i] > 0, last) << norm_name(p) << " row " << i;
        }
      }
    }
  }
}

TEST(ApgdProperties, MisclassifiedPointsAreReturnedCleanAndUnattacked) {
  Case c = make_case(false, 6, 13);
  std::vector<int64_t> y = c.y.to_vector<int64_t>();
  y[1] = (y[1] + 1) % kClasses;  // wrong labels: already "fooled"
  y[4] = (y[4] + 2) % kClasses;
  Tensor wrong = Tensor::from_vector<int64_t>(y, {6});
  AttackConfig cfg = apgd_config(Norm::linf, LossKind::ce, 10);
  cfg.return_last_iterate = true;
  AttackResult r = APGD(cfg).perturb(*c.model, c.x, wrong);
  std::vector<uint8_t> success = r.success.to_vector<uint8_t>();
  for (int64_t i : {1, 4}) {
    EXPECT_TRUE(rows_equal(r.x_adv, i, c.x, i)) << "row " << i;
    EXPECT_EQ(success[i], 1) << "row " << i;
  }
  EXPECT_GT(r.norms.to_vector<double>()[0], 0.0);  // the others were attacked
}

// A fooled point keeps its adversarial; restarts attack only the points still robust. The first
// run of both calls is the same (one seed), so three restarts fool a superset of what one fools.
TEST(ApgdProperties, RestartsOnlyAddSuccesses) {
  Case c = make_case(true, 24, 14);
  AttackConfig cfg = apgd_config(Norm::linf, LossKind::ce, 8);
  cfg.eps = 0.2;
  AttackResult one = APGD(cfg).perturb(*c.model, c.x, c.y);
  cfg.restarts = 4;
  AttackResult four = APGD(cfg).perturb(*c.model, c.x, c.y);
  std::vector<uint8_t> s1 = one.success.to_vector<uint8_t>(), s4 = four.success.to_vector<uint8_t>();
  for (int64_t i = 0; i < 24; ++i) {
    if (s1[i]) {
      EXPECT_TRUE(s4[i]) << "row " << i;
      EXPECT_TRUE(rows_equal(one.x_adv, i, four.x_adv, i)) << "row " << i << " kept its first adversarial";
    }
  }
  EXPECT_LT(one.success_count(), 24);
  EXPECT_GT(four.success_count(), 0);
  EXPECT_GT(four.success_count(), one.success_count());
}

TEST(ApgdProperties, SingleRunFromAGivenStartIsDeterministic) {
  Case c = make_case(true, 5, 15);
  for (Norm p : {Norm::linf, Norm::l2, Norm::l1}) {
    APGD atk(apgd_config(p, LossKind::dlr, 12));
    std::vector<double> eps(5, budget(p));
    // The start: half-way to the ball's edge in some direction, in the box.
    Generator gen(1);
    Tensor start = clip_box(ops::add(c.x, random_in_ball(c.x, std::vector<double>(5, 0.5 * budget(p)), p, gen)));
    APGDRun a = atk.single_run(*c.model, c.x, c.y, Tensor(), eps, start);
    APGDRun b = atk.single_run(*c.model, c.x, c.y, Tensor(), eps, start);
    EXPECT_EQ(a.x_best.to_vector<double>(), b.x_best.to_vector<double>()) << norm_name(p);
    EXPECT_EQ(a.x_best_adv.to_vector<double>(), b.x_best_adv.to_vector<double>()) << norm_name(p);
    // loss_best is the loss at x_best, and never below the loss at the start.
    Tensor logits_best = logits_of(*c.model, a.x_best), logits_start = logits_of(*c.model, start);
    LossInputs in{&c.y, nullptr, nullptr};
    std::vector<double> at_best = per_sample_loss(LossKind::dlr, Var(logits_best), in, false).data().to_vector<double>();
    std::vector<double> at_start = per_sample_loss(LossKind::dlr, Var(logits_start), in, false).data().to_vector<double>();
    std::vector<double> best = a.loss_best.to_vector<double>();
    for (int i = 0; i < 5; ++i) {
      EXPECT_NEAR(best[i], at_best[i], 1e-12) << norm_name(p) << " row " << i;
      EXPECT_GE(best[i], at_start[i]) << norm_name(p) << " row " << i;
    }
  }
}

// ---- strength ------------------------------------------------------------------------------------
TEST(ApgdStrength, ApgdCeIsAtLeastAsStrongAsPgdWithTheSameSteps) {
  for (bool cnn : {false, true}) {
    Case c = make_case(cnn, 40, 16);
    AttackConfig cfg = apgd_config(Norm::linf, LossKind::ce, 20);
    cfg.eps = 0.2;
    double acc_apgd = accuracy(*c.model, APGD(cfg).perturb(*c.model, c.x, c.y).x_adv, c.y);
    AttackConfig pgd = cfg;
    pgd.relative_step = true;
    pgd.step_size = 0.25;  // eps / 4
    double acc_pgd = accuracy(*c.model, make_attack("pgd-linf", pgd)->perturb(*c.model, c.x, c.y).x_adv, c.y);
    EXPECT_LE(acc_apgd, acc_pgd) << (cnn ? "cnn" : "mlp");
    EXPECT_LT(acc_apgd, 1.0) << "the attack must do something";
  }
}

// ---- targets --------------------------------------------------------------------------------------
TEST(ApgdTargeted, AGivenTargetIsTheOneAttacked) {
  // Random small models reach only some classes inside the box: target the runner-up class.
  Case c = make_case(false, 16, 17);
  std::vector<int64_t> y = c.y.to_vector<int64_t>(), t = ranked_class(c, 1);
  Tensor target = Tensor::from_vector<int64_t>(t, {16});
  AttackConfig cfg = apgd_config(Norm::linf, LossKind::dlr_targeted, 20);
  cfg.eps = 0.2;
  AttackResult r = make_attack("apgd-t", cfg)->perturb(*c.model, c.x, c.y, target);
  std::vector<int64_t> pred = ops::argmax(logits_of(*c.model, r.x_adv), 1).to_vector<int64_t>();
  std::vector<uint8_t> success = r.success.to_vector<uint8_t>();
  int hit = 0, fooled = 0;
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(success[i], pred[i] != y[i]) << "success is any misclassification, row " << i;
    if (!success[i]) {
      EXPECT_TRUE(rows_equal(r.x_adv, i, c.x, i)) << "row " << i;
    }
    fooled += success[i];
    hit += pred[i] == t[i];
  }
  EXPECT_GE(fooled, 8);
  EXPECT_GE(2 * hit, fooled) << "ascending z_t - z_y drives most points into the given class";
  // single_run's loss is the targeted DLR with these targets, at x_best.
  APGD atk(cfg);
  Generator gen(2);
  APGDRun run = atk.single_run(*c.model, c.x, c.y, target, std::vector<double>(16, cfg.eps), Tensor(), &gen);
  LossInputs in{&c.y, &target, nullptr};
  std::vector<double> want = per_sample_loss(LossKind::dlr_targeted, Var(logits_of(*c.model, run.x_best)), in, false)
                                 .data()
                                 .to_vector<double>();
  std::vector<double> got = run.loss_best.to_vector<double>();
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << "row " << i;
}

TEST(ApgdTargeted, WithoutTargetsTheTopClassesAreTriedInTurn) {
  Case c = make_case(false, 16, 18);
  AttackConfig cfg = apgd_config(Norm::linf, LossKind::dlr_targeted, 10);
  cfg.eps = 0.2;
  // One target class: the second-largest clean logit, exactly as if it were given.
  cfg.n_target_classes = 1;
  Tensor given = Tensor::from_vector<int64_t>(ranked_class(c, 1), {16});
  AttackResult looped = APGD(cfg).perturb(*c.model, c.x, c.y);
  AttackResult direct = APGD(cfg).perturb(*c.model, c.x, c.y, given);
  EXPECT_EQ(looped.x_adv.to_vector<double>(), direct.x_adv.to_vector<double>());
  // More target classes attack the points still robust again: never fewer successes, and a point
  // fooled by the first target keeps that adversarial.
  cfg.n_target_classes = kClasses - 1;
  AttackResult all = APGD(cfg).perturb(*c.model, c.x, c.y);
  std::vector<uint8_t> s1 = looped.success.to_vector<uint8_t>(), s5 = all.success.to_vector<uint8_t>();
  for (int i = 0; i < 16; ++i) {
    if (!s1[i]) continue;
    EXPECT_TRUE(s5[i]) << "row " << i;
    EXPECT_TRUE(rows_equal(looped.x_adv, i, all.x_adv, i)) << "row " << i;
  }
  EXPECT_LT(looped.success_count(), 16);
  EXPECT_GT(all.success_count(), looped.success_count());
  cfg.n_target_classes = kClasses;  // needs kClasses + 1 classes
  expect_error([&] { APGD(cfg).perturb(*c.model, c.x, c.y); }, "exceeds the model's 6 classes");
}

// A targeted config (ce) ascends -CE(x, target) and succeeds when the prediction is the target.
TEST(ApgdTargeted, TargetedCeConfigHitsTheTarget) {
  Case c = make_case(false, 16, 17);
  std::vector<int64_t> t = ranked_class(c, 1);
  Tensor target = Tensor::from_vector<int64_t>(t, {16});
  AttackConfig cfg = apgd_config(Norm::linf, LossKind::ce, 20);
  cfg.eps = 0.2;
  cfg.targeted = true;
  AttackResult r = APGD(cfg).perturb(*c.model, c.x, c.y, target);
  std::vector<int64_t> pred = ops::argmax(logits_of(*c.model, r.x_adv), 1).to_vector<int64_t>();
  std::vector<uint8_t> success = r.success.to_vector<uint8_t>();
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(success[i], pred[i] == t[i]) << "row " << i;
    if (!success[i]) {
      EXPECT_TRUE(rows_equal(r.x_adv, i, c.x, i)) << "row " << i;
    }
  }
  EXPECT_GE(r.success_count(), 8);
  EXPECT_LT(r.success_count(), 16);
}

// ---- registry and errors -------------------------------------------------------------------------
TEST(ApgdRegistry, NamesFixTheLossAndTheConfigTheNorm) {
  AttackConfig cfg;
  cfg.norm = Norm::l2;
  cfg.loss = LossKind::cw;
  EXPECT_EQ(make_attack("apgd-ce", cfg)->config().loss, LossKind::ce);
  EXPECT_EQ(make_attack("apgd-dlr", cfg)->config().loss, LossKind::dlr);
  EXPECT_EQ(make_attack("apgd-t", cfg)->config().loss, LossKind::dlr_targeted);
  EXPECT_EQ(make_attack("apgd", cfg)->config().loss, LossKind::cw);
  EXPECT_EQ(make_attack("apgd-ce", cfg)->config().norm, Norm::l2);
  EXPECT_EQ(make_attack("apgd", cfg)->name(), "apgd");
  EXPECT_EQ(make_attack("apgd-t", cfg)->name(), "apgd-t");
  EXPECT_EQ(APGD(cfg).name(), "apgd-cw");
}

TEST(ApgdRegistry, BadConfigurationsAreRefused) {
  AttackConfig cfg;
  cfg.loss = LossKind::dlr_targeted;
  cfg.targeted = true;
  expect_error([&] { APGD a(cfg); }, "a targeted config needs the ce or cw loss");
  cfg.targeted = false;
  cfg.norm = Norm::linf;
  expect_error([&] { APGD a(cfg, true); }, "use_largereps needs the l1 norm");
  Case c = make_case(false, 3, 20);
  APGD atk(apgd_config(Norm::linf, LossKind::ce));
  expect_error([&] { atk.single_run(*c.model, c.x, c.y, Tensor(), {0.1, 0.1}, Tensor()); }, "2 budgets for 3 points");
  expect_error([&] { atk.single_run(*c.model, c.x, c.y, Tensor(), {0.1, 0.1, 0.1}, c.x.reshape({3, 16})); },
               "x_init must have the shape of x");
}

}  // namespace
}  // namespace afd::attacks
