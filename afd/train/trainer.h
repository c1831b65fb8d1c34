// The trainers of AFD and its baselines: one Trainer for every method (config.h), owning the
// networks, the optimizers, the LR schedule, the data loader and the run's random state, so that a
// run is saved and resumed as one object.
//
//   data::Dataset train_set = data::load_dataset("mnist", "data/mnist", data::Split::train);
//   data::Dataset test_set = data::load_dataset("mnist", "data/mnist", data::Split::test);
//   train::TrainConfig cfg = train::presets("mnist", train::Method::afd);
//   cfg.out_dir = "runs/afd";
//   train::Trainer trainer(cfg, train_set);
//   train::FitOptions fit;
//   fit.test = &test_set;
//   fit.on_batch = [](const train::Progress& p) { /* live line: p.batch, p.images_per_second, p.running */ };
//   fit.on_epoch = [](const train::EpochSummary& s) { /* summary line, metrics.jsonl */ };
//   train::FitResult r = trainer.fit(fit);      // checkpoints in runs/afd/checkpoint/
//
//   // Resume (same binary, same data): build the trainer from the checkpoint's own config, load it.
//   train::Trainer again(train::Trainer::read_checkpoint_config("runs/afd/checkpoint"), train_set);
//   again.load_checkpoint("runs/afd/checkpoint");
//   again.fit(fit);                             // continues at the saved epoch and batch
//
// ---- One training step (specs/afd.md "One training step", in this order) ----------------------
// Every method first makes x' (except NT): the training attack (config.attack, e.g. APGD-CE) runs on
// the classifier in EVAL mode with input gradients only, with the parameters from before this
// batch's updates; TRADES runs its own KL-PGD attack (config.trades_attack) instead. Points the
// attack did not fool come back clean under KeepFailed::clean. Then, with the networks in TRAIN mode:
//   NT      one forward of x; CE; optimizer "fc" (SGD, all classifier parameters, weight decay).
//   AT      one forward of x'; CE; optimizer "fc".
//   TRADES  forward x, then forward x' (two batches of BN statistics); CE(f(x)) + beta KL; "fc".
//   norm    forward x (logits and z), then F(x'); CE + lambda mean ||z - z'||_2; "fc".
//   AFD     1. C step: forward x; L_C = CE; optimizer "fc" (all classifier parameters, weight decay).
//           2. D step: z = F(x) and z' = F(x') in two separate train-mode forwards of the updated F
//              (no tape: the gradient the reference lets reach F is discarded anyway), then
//              D(z, y), D(z', y) with the TRUE labels; L_D (+ gp_lambda GP); optimizer "d" over D.
//              GP (when gp_lambda > 0) = mean (||grad_z D0(z_int)|| - 1)^2 with z_int = z' + a (z - z'),
//              a ~ U(0, 1) per sample, D0 = D without the label projection, in train mode (one more
//              power iteration of linear1, linear2 and l7, as the authors' decoder_only call).
//           3. F step: D(F(x'), y) afresh against the just-updated D; L_F; optimizer "f" over the
//              encoder parameters only (Classifier::encoder_parameters), no weight decay.
// BatchNorm running statistics therefore move once per train-mode forward listed above and nowhere
// else (not in the attack, not in evaluation, not in any logging forward). Every loss term is checked
// before its backward: NaN or Inf throws afd::Error naming the step, the phase and the term, e.g.
//   "train step 1203 (epoch 2, batch 267), D step: L_D = nan".
// One LR schedule (MultiStepLR(milestones, gamma), stepped after each epoch) drives every optimizer.
//
// ---- Randomness: one seed (config.seed), Philox streams at disjoint counters ------------------
//   model init   Generator(seed) from counter 0: the classifier, then D
//   loader       counters from 2^63 (afd/data/loader.h): shuffling and augmentation, a pure
//                function of (seed, epoch, batch index)
//   train steps  the run's step Generator rng() = Generator(seed, 2^62), saved in checkpoints. Each
//                attacking step draws one block for the attack's seed (so APGD's random start and
//                TRADES' noise differ from step to step), then, with a gradient penalty, N uniforms
//                for its mixing weights.
//   evaluation   batch b of evaluate() attacks with a seed derived from (seed, b) only, so
//                evaluating never changes the training stream.
// With these, a resumed run on the CPU continues bit-identically (tests/train/test_resume.cpp).
//
// ---- Checkpoints: a folder --------------------------------------------------------------------
//   trainer.safetensors   THE checkpoint, one atomic file (temp + fsync + rename):
//                           model.<name>          the classifier's state_dict (PyTorch names)
//                           discriminator.<name>  D's state_dict (AFD)
//                           optimizer.<opt>.<k>   each optimizer's state (fc; AFD also d and f):
//                                                 "param_groups.0.lr", "state.<i>.momentum_buffer"
//                           run.position          i64 [3]: epoch, batch within it, global step
//                           run.rng               i64 [2]: the step Generator's seed and offset (bits)
//                           run.schedule          i64 [1]: the schedule's last_epoch
//                         metadata: "format" (afd-trainer-1), "config" (config_to_json), "method",
//                         "model", "dataset_size", "epoch", "batch", "global_step", "epoch_sums"
//                         (the running sums of the epoch in progress, so its summary survives).
//   model.safetensors     the classifier alone, written after trainer.safetensors: loads in PyTorch
//                         with load_state_dict(strict=True) and in nn::load_state_dict_file
//   discriminator.safetensors   D alone (AFD)
//   trainer.prev.safetensors    the checkpoint this one replaced (from the second save on). Every
//                         file carries a crc32 of its data (nn/safetensors.h); when the latest is
//                         unreadable or corrupt, loading falls back to this one with a warning.
// Loading checks the method, the model, its width, the classes, the dtype, the seed and the training
// set's size against this trainer, then every name, shape and dtype (strictly), and names the file
// and the first difference. A failed load leaves the Trainer unusable: make a new one.
//
// ---- Data parallel (a Communicator of size W > 1, afd/dist/) -----------------------------------
// One Trainer per process, each built with the same config (config.batch_size is the GLOBAL batch,
// a multiple of W) and the same training set, plus its communicator:
//   - at construction and after load_checkpoint: rank 0's parameters and buffers are broadcast;
//   - the loader gives rank r its slice dist::shard_of(B, r, W) of every global batch (the same
//     shuffle from the same seed on every rank), so the ranks together see the single-process batch;
//   - the training attack runs on each rank's shard, with the step's seed mixed with the rank;
//   - after each backward (C, D and F steps of AFD alike), before the optimizer step, the gradients
//     are summed over the ranks in ~1 MB buckets, each rank's weighted by its share of the global
//     batch (data_parallel.h): every rank applies the single-process update. Not overlapped with
//     the backward pass;
//   - the GP's mixing weights are drawn for the whole global batch on every rank (each takes its rows);
//   - BatchNorm statistics are per rank by default (as PyTorch DDP without SyncBatchNorm): a model
//     with BN then trains differently from one process. With config.sync_bn every BN layer uses the
//     global batch's statistics (dist::enable_sync_batch_norm; two all-reduces per BN layer in each
//     train-mode forward and two in its backward), each rank's loss is weighted by its share before
//     backward and the gradients are summed: the single-process run, also with BN;
//   - train_step returns metrics averaged over the global batch (batch_size = the global size), and
//     request_stop() on any rank stops every rank after the same step;
//   - evaluate() splits the batches over the ranks and sums the counts (the same numbers as one process);
//   - save_checkpoint writes on rank 0 only (the other ranks return at once).
// Collectives per step: one for the batch size, one per bucket per optimizer step, one for metrics.
// Without a communicator (or with size 1) none of this runs: the single-process path is unchanged.
#pragma once
#include <atomic>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "afd/data/dataset.h"
#include "afd/data/loader.h"
#include "afd/dist/communicator.h"
#include "afd/train/config.h"
#include "nn/models/discriminator.h"
#include "nn/module.h"
#include "nn/optim/lr_scheduler.h"
#include "nn/optim/optimizer.h"
#include "tensor/rng.h"

namespace afd::train {

// The classifier named by config.model for images [N, in_channels, image_size, image_size] and
// `num_classes` classes, with weights drawn from `gen` (PyTorch's default init), in f32 on the CPU.
std::shared_ptr<nn::Classifier> make_classifier(const TrainConfig& config, int64_t in_channels, int64_t image_size,
                                                int64_t num_classes, Generator& gen);

// One step's numbers. Only the terms of the step's method are set; the others stay NaN.
struct StepMetrics {
  static constexpr double kUnset = std::numeric_limits<double>::quiet_NaN();
  int64_t batch_size = 0;
  double loss = kUnset;        // what the classifier's optimizer "fc" minimised (AFD: L_C)
  double ce = kUnset;          // the cross-entropy term (AT: on x'; others: on x)
  double kl = kUnset;          // TRADES' KL term (batchmean)
  double distance = kUnset;    // norm: mean ||F(x) - F(x')||_2
  double l_d = kUnset;         // AFD: the discriminator loss (without GP)
  double gp = kUnset;          // AFD: the gradient penalty (when gp_lambda > 0)
  double l_f = kUnset;         // AFD: the F-step loss
  double d_clean = kUnset;     // AFD: mean D(F(x), y) in the D step
  double d_adv = kUnset;       // AFD: mean D(F(x'), y) in the D step
  double d_acc_clean = kUnset;  // AFD: fraction of D(F(x), y) > 0 (D says "clean")
  double d_acc_adv = kUnset;    // AFD: fraction of D(F(x'), y) < 0 (D says "adversarial")
  double clean_acc = kUnset;   // accuracy of the step's first train-mode forward on x (not AT)
  double adv_acc = kUnset;     // fraction of the batch the training attack did not fool (eval mode,
                               // before the step); unset for NT, TRADES (its KL attack has no
                               // success test) and when x' was given
  // The set terms as (name, value), in the order above (names as the fields).
  std::vector<std::pair<std::string, double>> named() const;
};

// The mean over the samples of an epoch (each step weighted by its batch size).
struct EpochStats {
  int64_t epoch = 0;           // the epoch these batches belong to
  int64_t batches = 0;         // batches of this epoch trained in this call
  int64_t images = 0;
  double seconds = 0;
  bool completed = false;      // false: stopped early (request_stop) mid-epoch
  StepMetrics mean;            // over the WHOLE epoch so far, resumed batches included
};

struct Progress {
  int64_t epoch = 0, batch = 0;   // the step just done: batch index within the epoch (0-based)
  int64_t batches = 0;            // batches per epoch
  int64_t global_step = 0;        // steps done in the run, this one included
  double seconds = 0;             // since this call of train_epoch started
  double images_per_second = 0;
  double eta_seconds = 0;         // for the rest of the epoch, at the current rate
  StepMetrics step;               // this step
  StepMetrics running;            // mean over the epoch so far
};
using ProgressFn = std::function<void(const Progress&)>;

struct EvalOptions {
  int64_t limit = 0;              // the first `limit` points of the dataset (0: all)
  int64_t batch_size = 0;         // 0: config.eval_batch_size
  bool attack = true;             // also the accuracy under the training attack (config.attack)
  std::function<void(int64_t done, int64_t total)> progress;
};

struct EvalResult {
  int64_t count = 0;
  double clean_acc = 0;           // fractions in [0, 1]
  double adv_acc = std::numeric_limits<double>::quiet_NaN();  // under config.attack (unset: NaN)
  double clean_loss = 0;          // mean CE on clean inputs
  double seconds = 0;
};

struct EpochSummary {
  EpochStats train;
  std::optional<EvalResult> test;  // when FitOptions::test is set
  std::vector<double> lrs;         // every optimizer's lr for the NEXT epoch (fc[, d, f])
  std::string checkpoint;          // the folder written after this epoch ("" if none)
};

struct FitOptions {
  const data::Dataset* test = nullptr;  // evaluated after every epoch when set
  EvalOptions eval;                     // how (limit, batch size, attack)
  ProgressFn on_batch;
  std::function<void(const EpochSummary&)> on_epoch;
};

struct FitResult {
  bool stopped = false;            // request_stop() ended it before config.epochs
  int64_t epoch = 0, batch = 0;    // the position reached
  std::string checkpoint;          // the last checkpoint folder written ("" if none)
};

// Values that replace a step's random parts, for tests that compare one step against a reference.
struct StepOverrides {
  Tensor x_adv;     // [N, ...] like x: used as x' instead of running the attack (no seed is drawn)
  Tensor gp_alpha;  // [N]: the gradient penalty's mixing weights instead of a draw
};

class Trainer {
 public:
  // Builds the classifier (and D for AFD) from config.seed, the optimizers, the schedule and the
  // loader over `train_set` (kept by shared storage). Validates the config; the training set must
  // have images [N, C, H, H] with N >= 1.
  // `comm`: the data-parallel group this trainer is one rank of (null: a single process).
  Trainer(TrainConfig config, data::Dataset train_set, std::shared_ptr<dist::Communicator> comm = nullptr);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  const TrainConfig& config() const { return config_; }
  bool distributed() const;  // a communicator of size > 1
  int rank() const;          // 0 without a communicator
  int world_size() const;    // 1 without a communicator
  nn::Classifier& classifier() { return *model_; }
  std::shared_ptr<nn::Classifier> classifier_ptr() const { return model_; }
  nn::SNPDFC3* discriminator() { return disc_.get(); }  // null unless AFD
  // The optimizers by checkpoint name: "fc" (every method), then "d" and "f" (AFD).
  std::vector<std::pair<std::string, Optimizer*>> optimizers() const;
  // The parameter names behind each slot i of an optimizer's state (state.<i>.*).
  std::vector<std::string> optimizer_parameter_names(const std::string& optimizer) const;

  // Position: the next step trains batch `batch()` of epoch `epoch()`.
  int64_t epoch() const { return epoch_; }
  int64_t batch() const { return batch_; }
  int64_t global_step() const { return global_step_; }
  int64_t batches_per_epoch() const;
  bool finished() const { return epoch_ >= config_.epochs; }
  const Generator& rng() const { return rng_; }

  // One training step on a batch x [N, C, H, W] in [0, 1] (any float dtype; converted to the
  // config's dtype and device), labels i64 [N]. Data parallel: x and y are this rank's shard
  // dist::shard_of(global N, rank, W) of the global batch, and the metrics are global. Advances global_step() but not the loader position
  // (train_epoch does that). Throws on NaN/Inf in a loss, before the bad update is applied.
  StepMetrics train_step(const Tensor& x, const Tensor& y, const StepOverrides& given = {});

  // Trains the rest of the current epoch from batch(), calling `progress` after every step; at the
  // end of the epoch steps the LR schedule and moves to batch 0 of the next epoch. Returns early,
  // mid-epoch, after the step during which request_stop() was called.
  EpochStats train_epoch(const ProgressFn& progress = {});

  // Accuracy on `data` in eval mode, clean and (options.attack) under the training attack. Uses no
  // randomness of the training stream and leaves every parameter, buffer and position unchanged.
  EvalResult evaluate(const data::Dataset& data, const EvalOptions& options = {});

  // The whole run from the current position to config.epochs: train_epoch, evaluate (when
  // options.test), a checkpoint in config.out_dir/checkpoint every config.checkpoint_every epochs
  // and after the last, on_epoch. On request_stop() it writes a checkpoint at the step reached and
  // returns stopped = true. With an empty out_dir nothing is written.
  FitResult fit(const FitOptions& options = {});

  // Asks train_epoch / fit to stop after the current step. Only stores an atomic flag, so a SIGINT
  // handler may call it. The flag stays set until clear_stop().
  void request_stop() noexcept { stop_.store(true); }
  void clear_stop() noexcept { stop_.store(false); }
  bool stop_requested() const noexcept { return stop_.load(); }

  // See "Checkpoints" above. save_checkpoint creates `dir` when needed.
  void save_checkpoint(const std::string& dir) const;
  void load_checkpoint(const std::string& dir);
  // Writes only the exports of save_checkpoint (model.safetensors, discriminator.safetensors) from
  // the current state: after a resume, so that a run stopped while writing them leaves no classifier
  // and D of different steps side by side. Rank 0 only.
  void export_networks(const std::string& dir) const;
  // The config stored in dir/trainer.safetensors (to rebuild a Trainer for resuming).
  static TrainConfig read_checkpoint_config(const std::string& dir);

 private:
  struct Accumulator;  // running sums of StepMetrics (trainer.cpp)

  Tensor adversarial(const Tensor& x, const Tensor& y, const StepOverrides& given, StepMetrics& m);
  Tensor trades_attack(const Tensor& x, uint64_t seed);
  uint64_t next_attack_seed();
  void step_nt_at(const Tensor& x, const Tensor& y, const Tensor& x_adv, StepMetrics& m);
  void step_trades(const Tensor& x, const Tensor& y, const Tensor& x_adv, StepMetrics& m);
  void step_norm(const Tensor& x, const Tensor& y, const Tensor& x_adv, StepMetrics& m);
  void step_afd(const Tensor& x, const Tensor& y, const Tensor& x_adv, const Tensor& gp_alpha, StepMetrics& m);
  void check_finite(double value, const char* phase, const char* term) const;
  void broadcast_networks();
  void sync_gradients(const Optimizer& opt);
  void backward_local(const Var& loss);
  void reduce_metrics(StepMetrics& m);
  std::string checkpoint_dir() const;

  TrainConfig config_;
  data::Dataset train_set_;
  std::shared_ptr<nn::Classifier> model_;
  std::shared_ptr<nn::SNPDFC3> disc_;
  std::unique_ptr<SGD> opt_fc_, opt_d_, opt_f_;
  std::unique_ptr<MultiStepLR> schedule_;
  std::unique_ptr<data::Loader> loader_;
  Generator rng_;
  int64_t epoch_ = 0, batch_ = 0, global_step_ = 0;
  std::shared_ptr<dist::Communicator> comm_;
  int64_t global_batch_ = 0, shard_begin_ = 0;  // data parallel: this step's global size, our first row
  double shard_weight_ = 1;                     // our rows / global rows
  bool sync_bn_ = false;                        // data parallel with config.sync_bn
  std::unique_ptr<Accumulator> epoch_sums_;
  std::atomic<bool> stop_{false};
};

}  // namespace afd::train
