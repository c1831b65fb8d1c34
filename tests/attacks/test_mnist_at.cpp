// Our attacks against the reference code on a real, adversarially trained model: the SmallCNN of
// tests/fixtures/attacks/mnist_at_smallcnn.safetensors (PGD-trained on the full MNIST training set
// by make_mnist_at_model.py) on the first 1,000 MNIST test images, float32, eps 0.3. The robust
// accuracies of AdverTorch's FGSM, PGD-Linf and MIM and of auto-attack's APGD-CE, measured by
// make_mnist_at_refs.py, are in mnist_at_refs.json; ours must be within 1 percentage point.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "afd/data/readers.h"
#include "attacks/autoattack.h"
#include "attacks/evaluate.h"
#include "nn/checkpoint.h"
#include "nn/models/small_cnn.h"
#include "tensor/ops.h"

namespace afd::attacks {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

struct AtFixture {
  std::shared_ptr<nn::SmallCNN> model;
  Tensor x, y;
  nlohmann::json refs;
};

// `weights`: mnist_at_smallcnn.safetensors (adversarially trained) or mnist_nt_smallcnn.safetensors
// (naturally trained, make_mnist_nt_model.py); both are the same SmallCNN (16/32/100).
AtFixture load_at_fixture(const std::string& weights = "mnist_at_smallcnn.safetensors") {
  const std::string dir = std::string(AFD_SOURCE_DIR) + "/tests/fixtures/attacks/";
  AtFixture f;
  nn::SmallCNNConfig cfg;
  cfg.channels1 = 16;
  cfg.channels2 = 32;
  cfg.hidden = 100;
  Generator gen(0);
  f.model = std::make_shared<nn::SmallCNN>(cfg, gen);
  nn::load_state_dict_file(*f.model, dir + weights);
  f.model->eval();
  f.x = ops::mul_scalar(data::read_idx_images(dir + "mnist_t10k_1000-images-idx3-ubyte.gz").to(DType::f32), 1.0 / 255);
  f.y = data::read_idx_labels(dir + "mnist_t10k_1000-labels-idx1-ubyte.gz", 10);
  std::ifstream in(dir + "mnist_at_refs.json");
  f.refs = nlohmann::json::parse(in);
  return f;
}

// Runs the four attacks on the first `count` points and compares with the reference codes: the
// robust accuracy within `tolerance`, and for the deterministic attacks (no random start) the
// per-sample verdicts (which points survive) agreeing on at least 98% of the points.
void compare_with_references(int64_t count, double tolerance) {
  AtFixture f = load_at_fixture();
  ASSERT_EQ(f.x.size(0), 1000);
  Tensor x = f.x.slice(0, count), y = f.y.slice(0, count);
  const nlohmann::json& refs = f.refs["attacks"];
  EvalOptions opt;
  opt.batch_size = 250;
  opt.progress = false;

  struct Case {
    std::string ref, attack;
    AttackConfig cfg;
    bool deterministic;
  };
  AttackConfig fgsm, pgd, mim, apgd;
  pgd.steps = mim.steps = 40;
  pgd.step_size = mim.step_size = 0.01;
  mim.decay = 1.0;
  apgd.steps = 40;
  apgd.seed = 0;
  const std::vector<Case> cases = {{"fgsm", "fgsm", fgsm, true}, {"pgd_linf", "pgd-linf", pgd, true},
                                   {"mim_linf", "mim-linf", mim, true}, {"apgd_ce_linf", "apgd-ce", apgd, false}};
  std::map<std::string, double> ours;
  for (const Case& c : cases) {
    RobustnessCurve curve = robust_accuracy(*f.model, c.attack, c.cfg, x, y, {0.3}, opt);
    const std::string want_flags = refs[c.ref]["correct"];
    int64_t want_robust = 0, agree = 0;
    for (int64_t i = 0; i < count; ++i) {
      want_robust += want_flags[i] == '1';
      agree += (want_flags[i] == '1') == (curve.robust[0][i] != 0);
    }
    double want = static_cast<double>(want_robust) / static_cast<double>(count);
    ours[c.ref] = curve.robust_accuracy[0];
    std::printf("%-9s eps 0.3 on %lld points: ours %.2f%%, reference %.2f%%, %lld verdicts agree\n", c.attack.c_str(),
                static_cast<long long>(count), 100 * curve.robust_accuracy[0], 100 * want, static_cast<long long>(agree));
    // A randomised attack's start differs from the reference's (Philox, not torch's generator): on a
    // subset its accuracy may sit below the reference's by sampling noise (AutoAttack's own seeds
    // move it by 0.5 pp on 1,000 points), but never above (a weaker attack) by more than `tolerance`.
    double below = c.deterministic ? tolerance : std::max(tolerance, 0.03 * 200.0 / static_cast<double>(count));
    EXPECT_LE(curve.robust_accuracy[0], want + tolerance) << c.attack << ": ours " << curve.robust_accuracy[0]
                                                          << ", reference " << want << " on " << count << " points";
    EXPECT_GE(curve.robust_accuracy[0], want - below) << c.attack << ": ours " << curve.robust_accuracy[0]
                                                      << ", reference " << want << " on " << count << " points";
    if (c.deterministic) {
      EXPECT_GE(static_cast<double>(agree) / static_cast<double>(count), 0.98) << c.attack << ": " << agree << " of "
                                                                                << count << " verdicts agree";
    }
    // Each attack must actually break points, or the comparison says nothing.
    EXPECT_LT(curve.robust_accuracy[0], curve.clean_accuracy - 0.05) << c.attack;
  }
  // The fixture is in the range the issue asks for, and APGD-CE is at least as strong as PGD.
  EXPECT_GE(ours["pgd_linf"], 0.30);
  EXPECT_LE(ours["pgd_linf"], 0.80);
  EXPECT_LE(ours["apgd_ce_linf"], ours["pgd_linf"]);
}

// CI: the first 200 points (about 40 s of CPU); the tolerance is 1 pp plus one point (APGD: see above).
TEST(MnistAdversariallyTrained, RobustAccuraciesOnTheFirst200PointsEqualTheReferenceCodes) {
  if (kSanitized) GTEST_SKIP() << "attack loops on a real model: too slow under AddressSanitizer; runs in the plain build";
  compare_with_references(200, 0.01 + 1.0 / 200);
}

// The full check: 1,000 points within 1 percentage point (several minutes on 2 cores).
TEST(MnistAdversariallyTrained, RobustAccuraciesOn1000PointsEqualTheReferenceCodes) {
  if (std::getenv("AFD_FULL_CHECKS") == nullptr) GTEST_SKIP() << "set AFD_FULL_CHECKS=1 to run (several minutes)";
  compare_with_references(1000, 0.01);
}

// AutoAttack standard (Linf 0.3) against fra31/auto-attack's own run on the same 1,000 points
// (mnist_at_autoattack_refs.json, make_mnist_at_autoattack_refs.py): the cumulative robust accuracy
// after each component within 1 percentage point, every component that removed points there
// removing points here too, and each component's time next to the reference's (both on one CPU
// thread, float32; printed, not asserted). Measured 2026-11-27 (2-vCPU EPYC, both runs side by side):
// ours 64.1 / 62.2 / 62.2 / 62.0%, the reference 64.6 / 62.4 / 62.4 / 62.1%; 1373 s against 1806 s.
// About 23 minutes: AFD_FULL_CHECKS=1 only.
TEST(MnistAdversariallyTrained, AutoAttackCumulativeAccuraciesEqualTheReference) {
  if (std::getenv("AFD_FULL_CHECKS") == nullptr) GTEST_SKIP() << "set AFD_FULL_CHECKS=1 to run (about 23 minutes)";
  AtFixture f = load_at_fixture();
  std::ifstream in(std::string(AFD_SOURCE_DIR) + "/tests/fixtures/attacks/mnist_at_autoattack_refs.json");
  const nlohmann::json ref = nlohmann::json::parse(in);
  const int64_t count = ref["count"];
  AutoAttackOptions o;
  o.norm = Norm::linf;
  o.eps = 0.3;
  o.batch_size = 500;
  const AutoAttackReport r = run_autoattack(*f.model, f.x.slice(0, count), f.y.slice(0, count), o);
  EXPECT_NEAR(r.clean_accuracy, ref["clean_acc"].get<double>(), 1e-9);
  const auto& comps = ref["components"];
  ASSERT_EQ(r.attacks.size(), comps.size());
  double ours_before = r.clean_accuracy, ref_before = ref["clean_acc"], ours_total = 0, ref_total = 0;
  for (size_t c = 0; c < comps.size(); ++c) {
    const double ours = r.robust_accuracy[c], theirs = comps[c]["robust_acc"];
    EXPECT_EQ(r.attacks[c], comps[c]["attack"]);
    EXPECT_NEAR(ours, theirs, 0.01) << r.attacks[c] << ": cumulative robust accuracy";
    if (theirs < ref_before) {
      EXPECT_LT(ours, ours_before) << r.attacks[c] << " removed no point (the reference did)";
    }
    std::printf("%-8s ours %6.2f%% (%7.1f s)   reference %6.2f%% (%7.1f s)\n", r.attacks[c].c_str(), 100 * ours,
                r.seconds[c], 100 * theirs, comps[c]["seconds"].get<double>());
    ours_before = ours, ref_before = theirs;
    ours_total += r.seconds[c], ref_total += comps[c]["seconds"].get<double>();
  }
  std::printf("AutoAttack on %lld points: ours %.1f s, reference %.1f s (reference / ours %.2f)\n",
              static_cast<long long>(count), ours_total, ref_total, ref_total / ours_total);
  // Per-sample verdicts: the random starts differ (a port cannot replay torch's generator), so
  // only the count of agreeing points is printed.
  const std::string flags = ref["robust"];
  int64_t agree = 0;
  for (int64_t i = 0; i < count; ++i) agree += (flags[size_t(i)] == '1') == (r.robust[size_t(i)] != 0);
  std::printf("final per-sample robust flags agree on %lld of %lld points\n", static_cast<long long>(agree),
              static_cast<long long>(count));
  EXPECT_LE(r.max_norm, 0.3 * (1 + 1e-6) + 1e-6);
  EXPECT_EQ(r.nan_count, 0);
}

// AutoAttack standard on a naturally trained model at MNIST eps 0.3 leaves nothing (issue 7): the
// first 100 points (the model, make_mnist_nt_model.py, leaves 0.2% under PGD-40 on all 1,000),
// where APGD-CE alone must already break every clean-correct point, and the self-check holds
// (perturbations within eps, no NaN, x_adv in [0, 1]).
TEST(MnistNaturallyTrained, AutoAttackLeavesZeroRobustAccuracyAtEps03) {
  if (kSanitized) GTEST_SKIP() << "100 APGD iterations on a real model: too slow under AddressSanitizer";
  AtFixture f = load_at_fixture("mnist_nt_smallcnn.safetensors");
  Tensor x = f.x.slice(0, 100), y = f.y.slice(0, 100);
  AutoAttackOptions o;
  o.norm = Norm::linf;
  o.eps = 0.3;
  o.verbose = false;
  const AutoAttackReport r = run_autoattack(*f.model, x, y, o);
  EXPECT_GE(r.clean_accuracy, 0.95);
  ASSERT_EQ(r.attacks, (std::vector<std::string>{"apgd-ce", "apgd-t", "fab-t", "square"}));
  EXPECT_EQ(r.robust_accuracy[0], 0.0) << "APGD-CE alone";
  EXPECT_EQ(r.final_robust_accuracy(), 0.0);
  EXPECT_LE(r.max_norm, 0.3 * (1 + 1e-6) + 1e-6);
  EXPECT_EQ(r.nan_count, 0);
  EXPECT_GE(r.min_value, 0.0);
  EXPECT_LE(r.max_value, 1.0);
}

}  // namespace
}  // namespace afd::attacks
