// The AutoAttack ensemble: the standard list, cumulative accuracies, the self-check, the state file
// (an interrupted evaluation resumes to the same flags; a different evaluation, a damaged or an
// edited state file is refused).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "attacks/autoattack.h"
#include "attacks/autoattack_state.h"
#include "attacks/core.h"
#include "nn/safetensors.h"
#include "nn/layers.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/support/checks.h"

namespace afd::attacks {
namespace {

using afd::testing::expect_error;
namespace fs = std::filesystem;

struct Scene {
  std::shared_ptr<nn::Sequential> model;
  Tensor x, y;
};

// A tiny CNN on [N, 1, 8, 8] with 5 classes; labels = its clean predictions except every 7th point
// (so the clean accuracy is below 1 and those points must never count as robust).
Scene make_scene(int64_t n) {
  Generator gen(4);
  Scene s;
  s.model = std::make_shared<nn::Sequential>();
  s.model->add(std::make_shared<nn::Conv2d>(1, 4, 3, 1, 1, true, gen));
  s.model->add(std::make_shared<nn::ReLU>());
  s.model->add(std::make_shared<nn::MaxPool2d>(2));
  s.model->add(std::make_shared<nn::Flatten>());
  s.model->add(std::make_shared<nn::Linear>(64, 5, gen));
  s.x = rand({n, 1, 8, 8}, gen);
  std::vector<int64_t> y = ops::argmax(logits_of(*s.model, s.x), 1).to_vector<int64_t>();
  for (size_t i = 0; i < y.size(); i += 7) y[i] = (y[i] + 1) % 5;
  s.y = Tensor::from_vector<int64_t>(y, {n});
  return s;
}

AutoAttackOptions small_options() {
  AutoAttackOptions o;
  o.eps = 0.05;
  o.batch_size = 8;
  o.apgd_steps = 10;
  o.fab_steps = 10;
  o.n_target_classes = 3;
  o.square_queries = 50;
  o.verbose = false;
  return o;
}

TEST(AutoAttack, StandardListAndComponentSettings) {
  AutoAttackOptions o;
  auto c = autoattack_components(o);
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0].first, "apgd-ce");
  EXPECT_EQ(c[1].first, "apgd-t");
  EXPECT_EQ(c[2].first, "fab-t");
  EXPECT_EQ(c[3].first, "square");
  EXPECT_EQ(c[0].second.steps, 100);
  EXPECT_EQ(c[1].second.n_target_classes, 9);
  EXPECT_EQ(c[2].second.steps, 100);
  EXPECT_EQ(c[3].second.n_queries, 5000);
  for (auto& [name, cfg] : c) {
    EXPECT_EQ(cfg.restarts, 1) << name;
    EXPECT_EQ(cfg.eps, o.eps) << name;
  }
  o.attacks = {"apgd-ce"};
  expect_error([&] { autoattack_components(o); }, "needs version custom");
  o.version = "custom";
  o.attacks = {"apgd-ce", "nope"};
  Scene s = make_scene(4);
  expect_error([&] { run_autoattack(*s.model, s.x, s.y, o); }, "unknown attack 'nope'");
  o.version = "plus";
  expect_error([&] { autoattack_components(o); }, "unknown version 'plus'");
}

TEST(AutoAttack, CumulativeAccuracyAndSelfCheck) {
  Scene s = make_scene(40);
  AutoAttackOptions o = small_options();
  AutoAttackReport r = run_autoattack(*s.model, s.x, s.y, o);
  ASSERT_TRUE(r.complete);
  ASSERT_EQ(r.robust_accuracy.size(), 4u);
  EXPECT_LT(r.clean_accuracy, 1.0);
  EXPECT_LE(r.robust_accuracy[0], r.clean_accuracy);
  for (size_t k = 1; k < r.robust_accuracy.size(); ++k) EXPECT_LE(r.robust_accuracy[k], r.robust_accuracy[k - 1]);
  EXPECT_LT(r.robust_accuracy.back(), r.clean_accuracy) << "the ensemble broke nothing";
  // The flags are the model's verdict on x_adv, and a clean mistake is never robust.
  std::vector<int64_t> pred = ops::argmax(logits_of(*s.model, r.x_adv), 1).to_vector<int64_t>();
  std::vector<int64_t> y = s.y.to_vector<int64_t>();
  int64_t robust = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    EXPECT_EQ(r.robust[i] != 0, pred[i] == y[i]) << "point " << i;
    if (i % 7 == 0) {
      EXPECT_EQ(r.robust[i], 0) << "clean mistake " << i;
    }
    robust += r.robust[i];
  }
  EXPECT_DOUBLE_EQ(r.final_robust_accuracy(), static_cast<double>(robust) / 40.0);
  EXPECT_LE(r.max_norm, o.eps * (1 + 1e-6) + 1e-6);
  EXPECT_EQ(r.nan_count, 0);
  EXPECT_GE(r.min_value, 0.0);
  EXPECT_LE(r.max_value, 1.0);
  // A huge budget breaks every point (the unbounded-budget sanity check).
  o.eps = 1.0;
  EXPECT_EQ(run_autoattack(*s.model, s.x, s.y, o).final_robust_accuracy(), 0.0);
}

TEST(AutoAttack, InterruptedEvaluationResumesToTheSameResult) {
  Scene s = make_scene(40);
  AutoAttackOptions o = small_options();
  AutoAttackReport full = run_autoattack(*s.model, s.x, s.y, o);

  const fs::path dir = fs::temp_directory_path() / "afd_autoattack_resume";
  fs::remove_all(dir);
  fs::create_directories(dir);
  o.state_path = (dir / "state.json").string();
  int batches = 0;
  o.should_stop = [&] { return ++batches == 5; };  // inside the second attack (clean-correct points: 5 batches)
  AutoAttackReport first = run_autoattack(*s.model, s.x, s.y, o);
  EXPECT_FALSE(first.complete);
  o.should_stop = nullptr;
  AutoAttackReport resumed = run_autoattack(*s.model, s.x, s.y, o);
  ASSERT_TRUE(resumed.complete);
  EXPECT_EQ(resumed.robust, full.robust);
  EXPECT_EQ(resumed.robust_accuracy, full.robust_accuracy);
  EXPECT_EQ(resumed.x_adv.to_vector<float>(), full.x_adv.to_vector<float>());

  // A finished state file replays without attacking; another evaluation is refused.
  EXPECT_EQ(run_autoattack(*s.model, s.x, s.y, o).robust, full.robust);
  AutoAttackOptions other = o;
  other.eps = 0.06;
  expect_error([&] { run_autoattack(*s.model, s.x, s.y, other); }, "belongs to another evaluation: eps");
  Tensor x2 = s.x.clone();
  x2.fill_(0.5);
  expect_error([&] { run_autoattack(*s.model, x2, s.y, o); }, "belongs to another evaluation: data");
  fs::remove_all(dir);
}

// The state file's parser on hand-made files: a valid one round-trips; every damaged field is an
// error naming the file and the field, never a crash or a read outside the state's folder.
TEST(AutoAttackState, ParserChecksEveryField) {
  const nlohmann::json header = autoattack_state_header("linf", 0.3, 0, 2, {"apgd-ce", "square"}, 4, "abc");
  AutoAttackState st;
  st.robust = {1, 0, 1, 0};
  st.completed = 1;
  st.current_points = {0, 2};
  st.batches_done = 1;
  st.batch_files = {"0_0.safetensors", "1_0.safetensors"};
  st.robust_accuracy = {0.5};
  st.seconds = {1.5, 0.25};
  const std::string good = autoattack_state_json(header, st);
  const AutoAttackState back = parse_autoattack_state(good, header, "s.json");
  EXPECT_EQ(back.robust, st.robust);
  EXPECT_EQ(back.current_points, st.current_points);
  EXPECT_EQ(back.batch_files, st.batch_files);
  EXPECT_EQ(back.seconds, st.seconds);

  auto edited = [&](const char* key, nlohmann::json value) {
    nlohmann::json j = nlohmann::json::parse(good);
    if (value.is_null()) j.erase(key); else j[key] = value;
    return j.dump();
  };
  auto refused = [&](const std::string& text, const std::string& message) {
    expect_error([&] { parse_autoattack_state(text, header, "s.json"); }, message);
  };
  refused("{\"robust\": ", "s.json is not valid JSON");
  refused("[1, 2]", "not a JSON object");
  refused(edited("batch_size", 3), "belongs to another evaluation: batch_size");
  refused(edited("robust", nlohmann::json()), "has no 'robust'");
  refused(edited("robust", 1010), "'robust' has the wrong type or is out of range");
  refused(edited("robust", "101"), "3 robust flags for 4 points");
  refused(edited("robust", "10x0"), "other than 0 and 1");
  refused(edited("completed", 3), "'completed' is 3, but there are 2 attacks");
  refused(edited("completed", -1), "'completed' has the wrong type or is out of range");
  refused(edited("completed", 0.5), "'completed' has the wrong type or is out of range");
  refused(edited("current_points", {0, 1e52}), "'current_points' has the wrong type or is out of range");  // fuzz find
  refused(edited("current_points", {2, 0}), "'current_points' must ascend inside [0, 4), got 0 at position 1");
  refused(edited("current_points", {0, 4}), "got 4 at position 1");
  refused(edited("current_points", {0, 0}), "got 0 at position 1");
  refused(edited("batches_done", 2), "'batches_done' is 2, but the current attack has 1 batches");
  refused(edited("batch_files", {"../../etc/passwd"}), "batch file name '../../etc/passwd'");
  refused(edited("batch_files", {"0_0.safetensors/../x"}), "is not <attack>_<batch>.safetensors");
  refused(edited("batch_files", {"2_0.safetensors"}), "batch file name '2_0.safetensors'");  // attack 2 of 2
  refused(edited("batch_files", {"_0.safetensors"}), "batch file name");
  refused(edited("robust_accuracy", {0.5, 0.5}), "2 robust accuracies for 1 finished attacks");
  refused(edited("robust_accuracy", {1.5}), "robust accuracy of 1.5 is outside [0, 1]");
  refused(edited("seconds", nlohmann::json::array()), "0 attack times for 1 finished of 2 attacks");
  refused(edited("seconds", {1.0, -2.0}), "an attack time of -2 s");
}

// A state file edited to call a robust point broken (or a broken one robust), or a batch file
// with rows out of range, is caught against the model when the evaluation resumes.
TEST(AutoAttackState, EditedStateIsCaughtOnResume) {
  Scene s = make_scene(40);
  AutoAttackOptions o = small_options();
  const fs::path dir = fs::temp_directory_path() / "afd_autoattack_tamper";
  fs::remove_all(dir);
  fs::create_directories(dir);
  o.state_path = (dir / "state.json").string();
  const AutoAttackReport full = run_autoattack(*s.model, s.x, s.y, o);
  const std::string saved = [&] {
    std::ifstream in(o.state_path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }();
  auto write_state = [&](const nlohmann::json& j) { std::ofstream(o.state_path) << j.dump(); };
  nlohmann::json j = nlohmann::json::parse(saved);
  std::string flags = j["robust"];
  const size_t robust_point = flags.find('1'), misclassified = 0;  // point 0's label was changed (make_scene)
  ASSERT_NE(robust_point, std::string::npos);
  ASSERT_EQ(full.robust[misclassified], 0);

  flags[robust_point] = '0';  // "broken", but no adversarial example was stored for it
  j["robust"] = flags;
  write_state(j);
  expect_error([&] { run_autoattack(*s.model, s.x, s.y, o); },
               fmt::format("says point {} was broken, but its stored adversarial example is classified correctly",
                           robust_point));
  flags = nlohmann::json::parse(saved)["robust"];
  flags[misclassified] = '1';
  j["robust"] = flags;
  write_state(j);
  expect_error([&] { run_autoattack(*s.model, s.x, s.y, o); }, "says point 0 is robust, but the model misclassifies it");

  // A batch file whose index points outside the data.
  j = nlohmann::json::parse(saved);
  ASSERT_FALSE(j["batch_files"].empty());
  const std::string batch = o.state_path + ".d/" + std::string(j["batch_files"][0]);
  SafetensorsFile f = read_safetensors(batch);
  std::vector<int64_t> idx = f.get("index").to_vector<int64_t>();
  idx[0] = 40;
  write_safetensors(batch, {{"index", Tensor::from_vector<int64_t>(idx, {int64_t(idx.size())})}, {"x_adv", f.get("x_adv")}});
  write_state(j);
  expect_error([&] { run_autoattack(*s.model, s.x, s.y, o); }, "point index 40 outside [0, 40)");
  write_safetensors(batch, {{"index", f.get("index")}, {"x_adv", f.get("x_adv").slice(0, 0)}});
  expect_error([&] { run_autoattack(*s.model, s.x, s.y, o); }, "expected index i64 [k] and x_adv [k, 1, 8, 8]");
  fs::remove_all(dir);
}

TEST(AutoAttack, RegisteredAsOneAttack) {
  Scene s = make_scene(8);
  AttackConfig cfg;
  cfg.eps = 1.0;
  auto atk = make_attack("autoattack", cfg);
  AttackResult r = atk->perturb(*s.model, s.x, s.y);
  EXPECT_EQ(r.success_count(), 8) << "eps 1 must break every point";
}

}  // namespace
}  // namespace afd::attacks
