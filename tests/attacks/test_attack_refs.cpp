// Agreement with the reference implementations: x_adv of our FGSM, PGD (Linf untargeted and
// targeted, L2), sparse L1 and MIM equal those computed by AdverTorch e063e34 itself, run in float64
// with random start off on a fixed SmallCNN (tests/fixtures/attacks/make_attack_refs.py, which names
// every parameter in attack_refs.json).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "attacks/apgd.h"
#include "attacks/attack.h"
#include "attacks/core.h"
#include "nn/models/small_cnn.h"
#include "nn/safetensors.h"
#include "tests/attacks/reference_model.h"
#include "tensor/ops.h"
#include "tests/support/checks.h"

namespace afd::attacks {
namespace {

using afd::testing::expect_close;

TEST(AttackReference, AdvertorchOutputsMatchWithin1e6) {
  ReferenceFixture f = load_reference_fixture();
  // Our configuration for each AdverTorch run: its eps_iter is an absolute step; its losses are
  // summed cross-entropy, as ours.
  struct Run {
    std::string name, attack;
  };
  const std::vector<Run> runs = {{"fgsm", "fgsm"},         {"pgd_linf", "pgd-linf"},   {"pgd_linf_targeted", "pgd-linf"},
                                 {"pgd_l2", "pgd-l2"},     {"sparse_l1", "sparse-l1"}, {"mim_linf", "mim-linf"}};
  int checked = 0;
  for (const Run& run : runs) {
    const nlohmann::json* spec = f.run(run.name);
    ASSERT_NE(spec, nullptr) << run.name << " missing from attack_refs.json";
    const nlohmann::json& p = (*spec)["params"];
    AttackConfig cfg;
    cfg.eps = p["eps"];
    cfg.steps = p.value("nb_iter", 1);
    cfg.step_size = p.value("eps_iter", 0.0);
    cfg.targeted = p.value("targeted", false);
    cfg.decay = p.value("decay_factor", 1.0);
    cfg.sparsity = p.value("l1_sparsity", 0.95);
    const std::string input = (*spec)["input"], labels = (*spec)["labels"];
    Tensor x = f.file.get(input), lab = f.file.get(labels);
    Tensor y = cfg.targeted ? f.file.get("y_box") : lab;
    AttackResult r = make_attack(run.attack, cfg)->perturb(*f.model, x, y, cfg.targeted ? lab : Tensor());
    SCOPED_TRACE(run.name);
    expect_close(r.x_adv, f.file.get((*spec)["outputs"]["x_adv"]), 0, 1e-6);
    // The attack must actually move the points, or the comparison says nothing.
    EXPECT_GT(row_norms(ops::sub(r.x_adv, x), Norm::linf).to_vector<double>()[0], 0.0);
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

TEST(AttackReference, ApgdFromAnInjectedStartMatchesAutoAttackWithin1e6) {
  // attack_single_run(x, y, x_init) of fra31/auto-attack a392200 in float64: x_best (highest
  // loss), x_best_adv (latest misclassified iterate), loss_best and the fooled flags.
  ReferenceFixture f = load_reference_fixture();
  int checked = 0;
  for (const nlohmann::json& spec : f.spec["runs"]) {
    if (spec["attack"] != "apgd") continue;
    const nlohmann::json& p = spec["params"];
    AttackConfig cfg;
    cfg.norm = p["norm"] == "Linf" ? Norm::linf : (p["norm"] == "L2" ? Norm::l2 : Norm::l1);
    cfg.eps = p["eps"];
    cfg.steps = p["n_iter"];
    cfg.rho = p["rho"];
    cfg.loss = parse_loss(p["loss"]);
    APGD apgd(cfg);
    Tensor x = f.file.get(spec["input"]), y = f.file.get(spec["labels"]);
    Tensor target = spec["target"].is_null() ? Tensor() : f.file.get(spec["target"]);
    std::vector<double> eps(static_cast<size_t>(x.size(0)), cfg.eps);
    APGDRun run = apgd.single_run(*f.model, x, y, target, eps, f.file.get(spec["x_init"]));
    const nlohmann::json& out = spec["outputs"];
    SCOPED_TRACE(spec["name"].get<std::string>());
    expect_close(run.x_best, f.file.get(out["x_best"]), 0, 1e-6);
    expect_close(run.x_best_adv, f.file.get(out["x_best_adv"]), 0, 1e-6);
    expect_close(run.loss_best, f.file.get(out["loss_best"]).to(DType::f64), 1e-6, 1e-6);
    // The reference's acc is 1 where the point is still classified correctly.
    std::vector<double> acc = f.file.get(out["acc"]).to(DType::f64).to_vector<double>();
    std::vector<uint8_t> fooled = run.fooled.to_vector<uint8_t>();
    for (size_t i = 0; i < acc.size(); ++i) EXPECT_EQ(fooled[i], acc[i] == 0 ? 1 : 0) << "row " << i;
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

TEST(AttackReference, ApgdCheckpointIterationsEqualAutoAttacks) {
  ReferenceFixture f = load_reference_fixture();
  for (int n : {20, 40, 100}) {
    std::vector<int> want = f.spec["checkpoints"]["checkpoints_" + std::to_string(n)];
    EXPECT_EQ(APGD::checkpoint_iterations(n), want) << "n_iter " << n;
    std::vector<int64_t> stored = f.file.get("checkpoints_" + std::to_string(n)).to_vector<int64_t>();
    EXPECT_EQ(std::vector<int64_t>(want.begin(), want.end()), stored);
  }
}

}  // namespace
}  // namespace afd::attacks
