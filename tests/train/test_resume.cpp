// Resume (issue 8, acceptance 2, in-process): a tiny run trained without a break and the same run
// stopped after k steps, checkpointed, destroyed, rebuilt from the checkpoint's config, loaded and
// finished must end with bit-identical checkpoints: every tensor (models, every optimizer's state,
// position, RNG counters, schedule) byte for byte.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <tuple>

#include "afd/data/synthetic.h"
#include "afd/train/trainer.h"
#include "nn/checkpoint.h"
#include "nn/safetensors.h"
#include "tensor/ops.h"
#include "tests/train/tiny_run.h"

namespace afd::train {
namespace {

namespace fs = std::filesystem;

class Resume : public ::testing::TestWithParam<std::tuple<Method, int64_t>> {};

TEST_P(Resume, StoppedAndResumedRunEndsBitIdentical) {
  const auto [method, k] = GetParam();
  const data::Dataset train_set = synthetic_dataset(40, 4);  // 5 batches of 8 per epoch
  const data::Dataset test_set = synthetic_dataset(20, 4, 1000);
  const std::string tag = std::string(method_name(method)) + "_" + std::to_string(k);
  const std::string full_dir = temp_dir(tag + "_full"), cut_dir = temp_dir(tag + "_cut");

  {  // Without a break; it also evaluates after every epoch, which must not change the run.
    Trainer full(tiny_config(method, full_dir), train_set);
    FitOptions fit;
    fit.test = &test_set;
    int64_t epochs_seen = 0;
    fit.on_epoch = [&](const EpochSummary& s) {
      ++epochs_seen;
      ASSERT_TRUE(s.test.has_value());
      EXPECT_EQ(s.test->count, 20);
      EXPECT_FALSE(s.checkpoint.empty());
    };
    FitResult r = full.fit(fit);
    EXPECT_FALSE(r.stopped);
    EXPECT_EQ(epochs_seen, 2);
    EXPECT_EQ(full.global_step(), 10);
  }
  {  // Stopped after k steps (as a SIGINT handler would ask): fit writes a checkpoint and returns.
    Trainer first(tiny_config(method, cut_dir), train_set);
    FitOptions fit;
    int64_t steps = 0;
    fit.on_batch = [&](const Progress& p) {
      EXPECT_EQ(p.global_step, steps + 1);
      if (++steps == k) first.request_stop();
    };
    FitResult r = first.fit(fit);
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(first.global_step(), k);
    EXPECT_EQ(r.epoch * 5 + r.batch, k);
  }
  {  // A new trainer from the checkpoint's own config.
    const std::string ckpt = cut_dir + "/checkpoint";
    Trainer second(Trainer::read_checkpoint_config(ckpt), train_set);
    second.load_checkpoint(ckpt);
    EXPECT_EQ(second.global_step(), k);
    EXPECT_EQ(second.epoch() * 5 + second.batch(), k);
    FitResult r = second.fit();
    EXPECT_FALSE(r.stopped);
    EXPECT_EQ(second.global_step(), 10);
  }
  expect_bit_identical(full_dir + "/checkpoint/trainer.safetensors", cut_dir + "/checkpoint/trainer.safetensors");
  expect_bit_identical(full_dir + "/checkpoint/model.safetensors", cut_dir + "/checkpoint/model.safetensors",
                       /*trainer_file=*/false);
  fs::remove_all(full_dir);
  fs::remove_all(cut_dir);
}

INSTANTIATE_TEST_SUITE_P(
    Runs, Resume,
    ::testing::Values(std::make_tuple(Method::afd, int64_t(3)),   // mid first epoch
                      std::make_tuple(Method::afd, int64_t(5)),   // at the epoch boundary
                      std::make_tuple(Method::afd, int64_t(7)),   // mid second epoch, after an LR step
                      std::make_tuple(Method::at, int64_t(6)), std::make_tuple(Method::trades, int64_t(7)),
                      std::make_tuple(Method::norm, int64_t(2)), std::make_tuple(Method::nt, int64_t(8))),
    [](const ::testing::TestParamInfo<std::tuple<Method, int64_t>>& info) {
      return std::string(method_name(std::get<0>(info.param))) + "_after_" + std::to_string(std::get<1>(info.param));
    });

// The loss of a tiny AFD run goes down and the checkpoint holds every piece the header promises.
TEST(Trainer, CheckpointLayoutAndExports) {
  const data::Dataset train_set = synthetic_dataset(40, 4);
  const std::string dir = temp_dir("layout");
  Trainer t(tiny_config(Method::afd, dir), train_set);
  t.train_epoch();
  t.save_checkpoint(dir + "/ckpt");
  SafetensorsFile f = read_safetensors(dir + "/ckpt/trainer.safetensors");
  EXPECT_TRUE(f.contains("model.conv1.weight"));
  EXPECT_TRUE(f.contains("discriminator.l_y.weight_orig"));
  EXPECT_TRUE(f.contains("optimizer.fc.param_groups.0.lr"));
  EXPECT_TRUE(f.contains("optimizer.d.state.0.momentum_buffer"));
  EXPECT_TRUE(f.contains("optimizer.f.state.0.momentum_buffer"));
  EXPECT_EQ(f.get("run.position").to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 5}));
  EXPECT_EQ(f.get("run.schedule").to_vector<int64_t>(), (std::vector<int64_t>{1}));
  EXPECT_EQ(f.metadata.at("format"), "afd-trainer-1");
  EXPECT_EQ(f.metadata.at("method"), "afd");
  // The LR schedule (milestone 1) moved all three optimizers.
  EXPECT_DOUBLE_EQ(f.get("optimizer.fc.param_groups.0.lr").item_double(), 0.05 * 0.1);
  EXPECT_DOUBLE_EQ(f.get("optimizer.d.param_groups.0.lr").item_double(), 0.1 * 0.1);
  EXPECT_DOUBLE_EQ(f.get("optimizer.f.param_groups.0.lr").item_double(), 0.1 * 0.1);
  // The exports load into fresh networks strictly.
  Generator gen(0);
  auto model = make_classifier(tiny_config(Method::afd, ""), 1, 12, 4, gen);
  nn::load_state_dict_file(*model, dir + "/ckpt/model.safetensors");
  nn::SNPDFC3 d(model->feature_dim(), 4, gen);
  nn::load_state_dict_file(d, dir + "/ckpt/discriminator.safetensors");
  fs::remove_all(dir);
}

TEST(Trainer, LoadRejectsAnotherRun) {
  const data::Dataset train_set = synthetic_dataset(40, 4);
  const std::string dir = temp_dir("mismatch");
  Trainer t(tiny_config(Method::afd, dir), train_set);
  t.save_checkpoint(dir + "/ckpt");
  auto message = [&](TrainConfig c, const data::Dataset& data) -> std::string {
    Trainer other(c, data);
    try {
      other.load_checkpoint(dir + "/ckpt");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message(tiny_config(Method::at, dir), train_set).find("method afd, this trainer has at"), std::string::npos);
  TrainConfig wider = tiny_config(Method::afd, dir);
  wider.width = 3;
  EXPECT_NE(message(wider, train_set).find("with model resnet18-mnist (width 2"), std::string::npos);
  TrainConfig seeded = tiny_config(Method::afd, dir);
  seeded.seed = 12;
  EXPECT_NE(message(seeded, train_set).find("seed 11, this trainer has 12"), std::string::npos);
  EXPECT_NE(message(tiny_config(Method::afd, dir), synthetic_dataset(48, 4)).find("training set of size 40"),
            std::string::npos);
  // Same names, other shapes: 5 classes instead of 4.
  EXPECT_NE(message(tiny_config(Method::afd, dir), synthetic_dataset(40, 5)).find("the classifier does not match"),
            std::string::npos);
  Trainer fresh(tiny_config(Method::afd, dir), train_set);
  try {
    fresh.load_checkpoint(dir + "/nowhere");
    ADD_FAILURE() << "no error for a missing checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("trainer.safetensors does not exist"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

// evaluate() runs in eval mode and leaves parameters, buffers, position and RNG state unchanged.
TEST(Trainer, EvaluateChangesNothing) {
  const data::Dataset train_set = synthetic_dataset(40, 4);
  Trainer t(tiny_config(Method::afd, ""), train_set);
  t.train_step(ops::mul_scalar(train_set.images.slice(0, 8).to(DType::f32), 1.0 / 255), train_set.labels.slice(0, 8));
  NamedTensors before;
  for (auto& [k, v] : t.classifier().state_dict()) before.emplace_back(k, v.clone());
  const uint64_t offset = t.rng().offset;
  EvalOptions eval;
  eval.limit = 12;
  eval.batch_size = 5;
  EvalResult r = t.evaluate(synthetic_dataset(20, 4, 1000), eval);
  EXPECT_EQ(r.count, 12);
  EXPECT_GE(r.clean_acc, 0.0);
  EXPECT_LE(r.adv_acc, r.clean_acc);  // robust points are a subset of the clean-correct ones
  EXPECT_EQ(t.rng().offset, offset);
  EXPECT_TRUE(t.classifier().is_training());
  size_t i = 0;
  for (auto& [k, v] : t.classifier().state_dict()) {
    EXPECT_EQ(std::memcmp(v.raw_data(), before[i].second.raw_data(), v.nbytes()), 0) << k;
    ++i;
  }
}

TEST(Trainer, RejectsABatchOfOneWhenTheModelHasBatchNorm) {
  TrainConfig c = tiny_config(Method::nt, "");
  c.batch_size = 13;  // 40 = 3 x 13 + 1
  EXPECT_THROW(Trainer(c, synthetic_dataset(40, 4)), Error);
  c.drop_last = true;
  Trainer ok(c, synthetic_dataset(40, 4));
  EXPECT_EQ(ok.batches_per_epoch(), 3);
  // The SmallCNN has no BatchNorm: its last batch of one image trains (it was refused).
  c.drop_last = false;
  c.model = "small-cnn";
  c.width = 0;
  Trainer no_bn(c, synthetic_dataset(40, 4, 0, 28));
  EXPECT_EQ(no_bn.batches_per_epoch(), 4);
}

}  // namespace
}  // namespace afd::train
