// TrainConfig: the paper's presets (specs/afd.md tables), validation messages, the JSON round trip.
#include <gtest/gtest.h>

#include <string>

#include "afd/train/config.h"
#include "tensor/error.h"

namespace afd::train {
namespace {

std::string error_of(const TrainConfig& c) {
  try {
    c.validate();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Presets, MnistAfdIsTheReferenceTable) {
  TrainConfig c = presets("mnist", Method::afd);
  EXPECT_EQ(c.model, "resnet18-mnist");
  EXPECT_EQ(c.epochs, 100);
  EXPECT_EQ(c.batch_size, 128);
  EXPECT_DOUBLE_EQ(c.lr, 0.1);
  EXPECT_DOUBLE_EQ(c.lr_d, 0.5);
  EXPECT_DOUBLE_EQ(c.lr_f, 0.5);
  EXPECT_EQ(c.milestones, (std::vector<int64_t>{50, 80}));
  EXPECT_DOUBLE_EQ(c.gamma, 0.1);
  EXPECT_DOUBLE_EQ(c.momentum, 0.9);
  EXPECT_DOUBLE_EQ(c.weight_decay, 1e-4);
  EXPECT_EQ(c.attack, "apgd-ce");
  EXPECT_EQ(c.attack_config.norm, attacks::Norm::linf);
  EXPECT_DOUBLE_EQ(c.attack_config.eps, 0.3);
  EXPECT_EQ(c.attack_config.steps, 40);
  EXPECT_EQ(c.keep_failed, KeepFailed::clean);
  EXPECT_EQ(c.gan_loss, GanLoss::wgan);
  EXPECT_EQ(c.gp_lambda, 0);
  EXPECT_EQ(c.crop_padding, 0);
  EXPECT_FALSE(c.flip);
  EXPECT_EQ(c.eval_batch_size, 1000);
  EXPECT_EQ(c.checkpoint_every, 10);
  EXPECT_EQ(error_of(c), "");
}

TEST(Presets, CifarAndTinyImageNetAfd) {
  for (const char* d : {"cifar10", "cifar100"}) {
    TrainConfig c = presets(d, Method::afd);
    EXPECT_EQ(c.model, "resnet18-cifar");
    EXPECT_EQ(c.epochs, 300);
    EXPECT_DOUBLE_EQ(c.lr, 0.1);
    EXPECT_DOUBLE_EQ(c.lr_d, 0.1);
    EXPECT_DOUBLE_EQ(c.lr_f, 0.5);
    EXPECT_EQ(c.milestones, (std::vector<int64_t>{150, 250}));
    EXPECT_DOUBLE_EQ(c.attack_config.eps, 8.0 / 255);
    EXPECT_EQ(c.attack_config.steps, 20);
    EXPECT_EQ(c.crop_padding, 4);
    EXPECT_TRUE(c.flip);
  }
  TrainConfig t = presets("tiny-imagenet-32", Method::afd);
  EXPECT_DOUBLE_EQ(t.attack_config.eps, 4.0 / 255);
  EXPECT_EQ(t.attack_config.steps, 5);
  EXPECT_DOUBLE_EQ(t.lr_d, 0.1);
}

TEST(Presets, Baselines) {
  TrainConfig nt = presets("mnist", Method::nt);
  EXPECT_EQ(nt.epochs, 20);
  TrainConfig at = presets("mnist", Method::at);
  EXPECT_EQ(at.epochs, 90);
  EXPECT_EQ(at.milestones, (std::vector<int64_t>{40, 80}));
  EXPECT_DOUBLE_EQ(at.lr, 0.1);
  EXPECT_DOUBLE_EQ(at.weight_decay, 1e-4);
  TrainConfig at_c = presets("cifar10", Method::at);
  EXPECT_EQ(at_c.epochs, 300);
  EXPECT_EQ(at_c.milestones, (std::vector<int64_t>{150, 250}));
  TrainConfig tr = presets("cifar10", Method::trades);
  EXPECT_DOUBLE_EQ(tr.trades_beta, 6);
  EXPECT_DOUBLE_EQ(tr.lr, 0.1);
  EXPECT_DOUBLE_EQ(tr.weight_decay, 2e-4);
  EXPECT_EQ(tr.epochs, 76);
  EXPECT_EQ(tr.milestones, (std::vector<int64_t>{74}));  // TRADES' 1-based "epoch >= 75"
  EXPECT_DOUBLE_EQ(tr.trades_attack.eps, 0.031);
  EXPECT_EQ(tr.trades_attack.steps, 10);
  EXPECT_DOUBLE_EQ(tr.trades_attack.step_size, 0.003);
  EXPECT_DOUBLE_EQ(tr.trades_attack.init_std, 0.001);
  TrainConfig tm = presets("mnist", Method::trades);
  EXPECT_DOUBLE_EQ(tm.trades_beta, 1);
  EXPECT_DOUBLE_EQ(tm.lr, 0.01);
  EXPECT_DOUBLE_EQ(tm.weight_decay, 0);
  EXPECT_EQ(tm.epochs, 100);
  EXPECT_EQ(tm.milestones, (std::vector<int64_t>{54, 74, 89}));
  EXPECT_DOUBLE_EQ(tm.trades_attack.eps, 0.3);
  EXPECT_EQ(tm.trades_attack.steps, 40);
  EXPECT_DOUBLE_EQ(tm.trades_attack.step_size, 0.01);
  TrainConfig nm = presets("mnist", Method::norm);
  EXPECT_DOUBLE_EQ(nm.norm_lambda, 1);
  EXPECT_THROW(presets("svhn", Method::afd), Error);
}

TEST(TrainConfig, ValidateNamesTheField) {
  TrainConfig c = presets("mnist", Method::afd);
  c.lr_d = -1;
  EXPECT_NE(error_of(c).find("lr_d must be finite and >= 0, got -1"), std::string::npos);
  c = presets("mnist", Method::afd);
  c.model = "resnet50";
  EXPECT_NE(error_of(c).find("unknown model 'resnet50'"), std::string::npos);
  c = presets("mnist", Method::afd);
  c.attack = "bim";
  EXPECT_NE(error_of(c).find("unknown attack 'bim'"), std::string::npos);
  c = presets("mnist", Method::afd);
  c.milestones = {80, 50};
  EXPECT_NE(error_of(c).find("milestones must increase"), std::string::npos);
  c = presets("mnist", Method::afd);
  c.attack_config.eps = -0.1;
  EXPECT_NE(error_of(c).find("eps"), std::string::npos);
  c = presets("mnist", Method::afd);
  c.batch_size = 0;
  EXPECT_NE(error_of(c).find("batch_size must be >= 1, got 0"), std::string::npos);
  EXPECT_THROW(parse_method("madry"), Error);
  EXPECT_THROW(parse_keep_failed("best"), Error);
  EXPECT_EQ(parse_method("trades"), Method::trades);
  EXPECT_EQ(parse_keep_failed("last"), KeepFailed::last);
}

TEST(TrainConfig, JsonRoundTrip) {
  for (const char* d : {"mnist", "cifar10", "tiny-imagenet-32"}) {
    for (Method m : {Method::nt, Method::at, Method::trades, Method::afd, Method::norm}) {
      TrainConfig c = presets(d, m);
      c.seed = 0xfedcba9876543210ull;
      c.out_dir = "runs/x";
      c.dtype = DType::f64;
      c.gp_lambda = 0.1 + 0.2;  // not a short decimal: must survive exactly
      const std::string json = config_to_json(c);
      TrainConfig back = config_from_json(json);
      EXPECT_EQ(config_to_json(back), json);
      EXPECT_EQ(back.seed, c.seed);
      EXPECT_EQ(back.gp_lambda, c.gp_lambda);
      EXPECT_EQ(back.method, m);
      EXPECT_EQ(back.milestones, c.milestones);
    }
  }
}

TEST(TrainConfig, JsonRejectsUnknownKeysAndTypes) {
  try {
    config_from_json(R"({"method": "afd", "learning_rate": 0.1})");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown key 'learning_rate'"), std::string::npos) << e.what();
  }
  try {
    config_from_json(R"({"epochs": "ten"})");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'epochs' has the wrong type"), std::string::npos) << e.what();
  }
  try {
    config_from_json(R"({"attack_config": {"eps": 0.3, "iters": 4}})");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown key 'attack_config.iters'"), std::string::npos) << e.what();
  }
  // Numbers outside the field's type (converting them would be undefined behaviour), or of another kind.
  for (const char* text : {R"({"epochs": 1e30})", R"({"epochs": 10000000000000000000})", R"({"epochs": 2.5})",
                           R"({"seed": -1})", R"({"milestones": [1, "2"]})", R"({"flip": 1})", R"({"lr": "0.1"})",
                           R"({"attack_config": {"steps": 1e300}})"}) {
    try {
      config_from_json(text);
      ADD_FAILURE() << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("has the wrong type or is out of range"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(config_from_json(R"({"epochs": 7, "seed": 18446744073709551615, "lr": 1})").seed, 18446744073709551615ull);
  EXPECT_THROW(config_from_json("{"), Error);
  EXPECT_EQ(config_from_json("{}").epochs, TrainConfig().epochs);  // missing keys keep the defaults
}

}  // namespace
}  // namespace afd::train
