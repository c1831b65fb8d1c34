// What a training run is: the method, the network, the optimizers and their schedule, the training
// attack, the data order and where checkpoints go. One flat struct, so that a command line can map
// every field to one flag, plus the paper's presets (../shared/specs/afd.md, "Hyper-parameters").
//
//   train::TrainConfig cfg = train::presets("mnist", train::Method::afd);   // the authors' settings
//   cfg.epochs = 5;                                                          // any field overrides
//   cfg.attack_config.steps = 10;
//   cfg.validate();                                  // throws naming the bad field and its value
//   std::string json = train::config_to_json(cfg);   // stored in every checkpoint
//
// Methods (one shared loop, trainer.h):
//   nt      natural training: CE on clean inputs
//   at      adversarial training (Madry): CE on the training attack's x' only
//   trades  CE(f(x), y) + beta KL(softmax f(x) || softmax f(x')), x' from TRADES' KL-PGD attack
//   afd     Adversarial Feature Desensitization: C step, D step, F step (gan_loss wgan|dcgan|hinge,
//           optional gradient penalty)
//   norm    norm-based desensitisation (paper 4.6): CE(f(x), y) + norm_lambda mean_i ||F(x)_i - F(x')_i||_2
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "attacks/attack.h"
#include "nn/optim/losses.h"
#include "tensor/device.h"
#include "tensor/dtype.h"

namespace afd::train {

enum class Method { nt, at, trades, afd, norm };
const char* method_name(Method method);         // "nt", "at", "trades", "afd", "norm"
Method parse_method(const std::string& name);   // throws listing the accepted names

// What the training attack returns for a point it did not fool: the clean image (AutoAttack's rule,
// the reference's choice) or the attack's last iterate. For APGD this is its return_last_iterate
// option; for any other attack the rows without success are replaced by x (clean).
enum class KeepFailed { clean, last };
const char* keep_failed_name(KeepFailed rule);   // "clean", "last"
KeepFailed parse_keep_failed(const std::string& name);

// TRADES' own attack (its reference trades_loss): start at x + init_std N(0, 1), then `steps` times
// x' <- clip_[0,1](clip_[x-eps, x+eps](x' + step_size sign(grad_x' KL(f(x) || f(x'))))), the model
// in eval mode, input gradients only.
struct TradesAttack {
  double eps = 0.031;
  int steps = 10;
  double step_size = 0.003;
  double init_std = 0.001;
};

struct TrainConfig {
  // ---- what is trained ----
  Method method = Method::afd;
  std::string dataset = "mnist";    // informational (presets, reports); the data come from the caller
  // The classifier (make_classifier in trainer.h): "resnet18-mnist" (the paper's MNIST ResNet18),
  // "resnet18-cifar" (the paper's CIFAR ResNet18), "small-cnn", "preact-resnet18", "wrn-28-10",
  // "wrn-34-10". width: the base width of the ResNets (0 = the paper's: 16 MNIST, 64 CIFAR).
  std::string model = "resnet18-mnist";
  int64_t width = 0;
  DType dtype = DType::f32;         // parameters and inputs (f64 for the fidelity tests)
  Device device = Device::cpu();

  // ---- optimisation (SGD with momentum everywhere) ----
  int64_t epochs = 100;
  int64_t batch_size = 128;
  bool drop_last = false;           // drop the last partial batch of each epoch
  double lr = 0.1;                  // the C step of AFD; the single optimizer of the other methods
  double lr_d = 0.5;                // AFD's D step
  double lr_f = 0.5;                // AFD's F step
  double momentum = 0.9;            // all optimizers
  double weight_decay = 1e-4;       // the C-step (single) optimizer only
  std::vector<int64_t> milestones{50, 80};  // epochs at which every lr is multiplied by gamma
  double gamma = 0.1;

  // ---- method terms ----
  GanLoss gan_loss = GanLoss::wgan;  // AFD
  double gp_lambda = 0;              // AFD gradient penalty weight (0: off, not computed)
  double trades_beta = 1;            // TRADES
  double norm_lambda = 1;            // norm-based desensitisation
  TradesAttack trades_attack;        // TRADES' KL-PGD (TRADES uses it instead of `attack`)

  // ---- the training attack (AT, AFD, norm; also the "adversarial accuracy" of evaluate()) ----
  std::string attack = "apgd-ce";   // any name of attacks::attack_registry()
  attacks::AttackConfig attack_config;  // seed is ignored: every step derives its own (trainer.h)
  KeepFailed keep_failed = KeepFailed::clean;

  // ---- data ----
  int64_t crop_padding = 0;         // random crop with this zero padding (CIFAR: 4)
  bool flip = false;                // random horizontal flip (CIFAR: true)
  int64_t prefetch = 2;             // batches the loader prepares ahead (0: no thread)
  int64_t eval_batch_size = 1000;
  uint64_t seed = 0;                // the one seed of the run (model init, data order, attacks, GP)

  // ---- data parallel (a Trainer with a communicator of size > 1; no effect in one process) ----
  bool sync_bn = false;             // BatchNorm statistics over the global batch (dist::enable_sync_batch_norm)

  // ---- checkpoints (Trainer::fit) ----
  int64_t checkpoint_every = 10;    // epochs; a checkpoint is also written at the end and on stop
  std::string out_dir;              // fit() writes out_dir/checkpoint/ ("" = no checkpoints)

  // Throws afd::Error naming the first bad field and its value.
  void validate() const;
};

// The hyper-parameters of the authors' code for `dataset` ("mnist", "fashion-mnist", "cifar10",
// "cifar100", "tiny-imagenet-32") and `method`, as specs/afd.md tabulates them. Where the spec is
// silent the choice is written next to it in config.cpp (e.g. NT on CIFAR uses AT's schedule).
TrainConfig presets(const std::string& dataset, Method method);

// The resolved config as JSON (every field; the attack config in full) and back. from_json
// rejects unknown keys and wrong types, naming the key; missing keys keep the defaults above.
std::string config_to_json(const TrainConfig& config);
TrainConfig config_from_json(const std::string& json);

}  // namespace afd::train
