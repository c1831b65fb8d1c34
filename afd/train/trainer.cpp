// The Trainer: one loop for NT, AT, TRADES, AFD and the norm baseline (trainer.h has the step order,
// the random streams and the checkpoint layout).
#include "afd/train/trainer.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <numeric>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "afd/dist/data_parallel.h"
#include "attacks/core.h"
#include "autograd/ops.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "nn/models/preact_resnet.h"
#include "nn/models/resnet.h"
#include "nn/models/small_cnn.h"
#include "nn/models/wide_resnet.h"
#include "nn/optim/losses.h"
#include "nn/safetensors.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::train {

namespace {

constexpr const char* kFormat = "afd-trainer-1";
constexpr const char* kCheckpointFile = "trainer.safetensors";
constexpr const char* kPreviousFile = "trainer.prev.safetensors";  // the checkpoint before it
// Philox counter bases (trainer.h, "Randomness"): model init starts at 0, the loader at 2^63.
constexpr uint64_t kStepStream = uint64_t(1) << 62;                            // rng_: step draws
constexpr uint64_t kEvalStream = (uint64_t(1) << 62) + (uint64_t(1) << 61);   // evaluate(): per batch

// A 64-bit seed from one Philox block.
uint64_t seed_from_block(uint64_t seed, uint64_t block) {
  std::array<uint32_t, 4> r = philox4x32(seed, block);
  return (uint64_t(r[1]) << 32) | r[0];
}

// Any tensor as host doubles.
std::vector<double> host_values(const Tensor& t) { return t.to(Device::cpu()).to(DType::f64).to_vector<double>(); }

double scalar_of(const Var& v) { return v.data().to(Device::cpu()).item_double(); }

// Fraction of rows whose argmax equals the label.
double accuracy(const Tensor& logits, const Tensor& y) {
  std::vector<int64_t> pred = ops::argmax(logits, 1).to(Device::cpu()).to_vector<int64_t>();
  std::vector<int64_t> labels = y.to(Device::cpu()).to_vector<int64_t>();
  int64_t correct = 0;
  for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == labels[i];
  return pred.empty() ? 0.0 : double(correct) / double(pred.size());
}

// ||v_i||_2 for every row of v [N, F], with the subgradient 0 at v_i = 0 (as torch's norm) instead of
// the 0 * inf = NaN of d sqrt(s) / ds at s = 0.
Var row_norms(const Var& v) {
  Var sq = sum(mul(v, v), {1});
  Tensor positive = ops::unary(UnaryOp::gt_scalar, sq.data(), 0.0);
  Var ones(Tensor::ones(sq.shape(), sq.dtype(), sq.device()));
  Var zeros(Tensor::zeros(sq.shape(), sq.dtype(), sq.device()));
  return where(positive, sqrt(where(positive, sq, ones)), zeros);
}

// Parameters of a module frozen while alive (no weight gradient is computed through them).
class FrozenGuard {
 public:
  explicit FrozenGuard(nn::Module& m) : module_(m) { m.set_requires_grad(false); }
  ~FrozenGuard() { module_.set_requires_grad(true); }
  FrozenGuard(const FrozenGuard&) = delete;
  FrozenGuard& operator=(const FrozenGuard&) = delete;

 private:
  nn::Module& module_;
};

using Field = double StepMetrics::*;
const std::vector<std::pair<std::string, Field>>& metric_fields() {
  static const std::vector<std::pair<std::string, Field>> fields = {
      {"loss", &StepMetrics::loss},           {"ce", &StepMetrics::ce},
      {"kl", &StepMetrics::kl},               {"distance", &StepMetrics::distance},
      {"l_d", &StepMetrics::l_d},             {"gp", &StepMetrics::gp},
      {"l_f", &StepMetrics::l_f},             {"d_clean", &StepMetrics::d_clean},
      {"d_adv", &StepMetrics::d_adv},         {"d_acc_clean", &StepMetrics::d_acc_clean},
      {"d_acc_adv", &StepMetrics::d_acc_adv}, {"clean_acc", &StepMetrics::clean_acc},
      {"adv_acc", &StepMetrics::adv_acc}};
  return fields;
}

std::string model_description(const TrainConfig& c, int64_t classes) {
  return fmt::format("{} (width {}, {} classes, {})", c.model, c.width, classes, dtype_name(c.dtype));
}

}  // namespace

std::vector<std::pair<std::string, double>> StepMetrics::named() const {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [name, field] : metric_fields())
    if (!std::isnan(this->*field)) out.emplace_back(name, this->*field);
  return out;
}

// Running sums of the epoch in progress: per term, the sum of value x batch size and the images
// that term was seen on.
struct Trainer::Accumulator {
  std::map<std::string, std::pair<double, int64_t>> sums;

  void add(const StepMetrics& m) {
    for (const auto& [name, value] : m.named()) {
      auto& [sum, count] = sums[name];
      sum += value * double(m.batch_size);
      count += m.batch_size;
    }
  }
  StepMetrics mean() const {
    StepMetrics out;
    for (const auto& [name, field] : metric_fields()) {
      auto it = sums.find(name);
      if (it != sums.end() && it->second.second > 0) out.*field = it->second.first / double(it->second.second);
    }
    return out;
  }
  std::string to_json() const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [name, sc] : sums) j[name] = {sc.first, sc.second};
    return j.dump();
  }
  void from_json(const std::string& text) {
    sums.clear();
    nlohmann::json j = nlohmann::json::parse(text);
    for (auto it = j.begin(); it != j.end(); ++it)
      sums[it.key()] = {it.value().at(0).get<double>(), it.value().at(1).get<int64_t>()};
  }
};

// ---- models ----------------------------------------------------------------------------------

std::shared_ptr<nn::Classifier> make_classifier(const TrainConfig& config, int64_t in_channels, int64_t image_size,
                                                int64_t num_classes, Generator& gen) {
  const std::string& name = config.model;
  if (name == "resnet18-mnist" || name == "resnet18-cifar") {
    nn::ResNetConfig c = name == "resnet18-mnist" ? nn::ResNetConfig::mnist(num_classes, config.width ? config.width : 16)
                                                  : nn::ResNetConfig::cifar(num_classes, config.width ? config.width : 64);
    c.in_channels = in_channels;
    return std::make_shared<nn::ResNet18>(c, gen);
  }
  if (name == "small-cnn") {
    nn::SmallCNNConfig c;
    c.in_channels = in_channels;
    c.num_classes = num_classes;
    c.image_size = image_size;
    return std::make_shared<nn::SmallCNN>(c, gen);
  }
  AFD_CHECK(in_channels == 3, "make_classifier: {} takes 3-channel images, the data have {}", name, in_channels);
  if (name == "preact-resnet18") {
    nn::PreActResNetConfig c;
    c.num_classes = num_classes;
    c.base_width = config.width ? config.width : 64;
    return std::make_shared<nn::PreActResNet18>(c, gen);
  }
  if (name == "wrn-28-10" || name == "wrn-34-10") {
    nn::WideResNetConfig c;
    c.depth = name == "wrn-28-10" ? 28 : 34;
    c.widen_factor = 10;
    c.num_classes = num_classes;
    return std::make_shared<nn::WideResNet>(c, gen);
  }
  AFD_FAIL("make_classifier: unknown model '{}'", name);
}

// ---- construction ----------------------------------------------------------------------------

namespace {
bool contains_batch_norm(const nn::Module& m) {
  if (dynamic_cast<const nn::BatchNorm*>(&m)) return true;
  for (const auto& [name, child] : m.named_children())
    if (contains_batch_norm(*child)) return true;
  return false;
}
}  // namespace

Trainer::Trainer(TrainConfig config, data::Dataset train_set, std::shared_ptr<dist::Communicator> comm)
    : config_(std::move(config)), train_set_(std::move(train_set)), comm_(std::move(comm)),
      epoch_sums_(std::make_unique<Accumulator>()) {
  config_.validate();
  train_set_.validate();
  AFD_CHECK(train_set_.size() >= 1, "Trainer: the training set '{}' is empty", train_set_.name);
  const Tensor& images = train_set_.images;
  AFD_CHECK(images.dim() == 4 && images.size(2) == images.size(3),
            "Trainer: expected square images [N, C, H, H], got {}", shape_str(images.shape()));
  const int64_t n = train_set_.size();
  const int64_t world = distributed() ? comm_->size() : 1, last = n % config_.batch_size;
  AFD_CHECK(config_.batch_size % world == 0,
            "Trainer: the global batch size {} does not divide by the world size {}: every rank trains on batch_size "
            "/ world_size images; choose a batch size that is a multiple of {}",
            config_.batch_size, world, world);

  Generator gen(config_.seed);
  model_ = make_classifier(config_, images.size(1), images.size(2), train_set_.classes, gen);
  // The last batch must give every rank an image; and BatchNorm in training needs more than one
  // value per channel: a last batch of one image (per rank with per-rank BN; synchronised BN sums
  // over the ranks, so one image each will do) cannot train. Models without BN (small-cnn) take
  // any batch size otherwise.
  const bool bn = contains_batch_norm(*model_);
  if (!config_.drop_last && last != 0) {
    AFD_CHECK(!bn || world > 1 || last > 1,
              "Trainer: with {} training images and batch_size {} the last batch holds one image, and BatchNorm "
              "needs more than one value per channel in training: set drop_last or another batch size",
              n, config_.batch_size);
    const int64_t need = bn && !config_.sync_bn ? 2 : 1;
    AFD_CHECK(world == 1 || last / world >= need,
              "Trainer: the last batch of {} images split over {} ranks leaves a rank with fewer than {} image{} ({}): "
              "set drop_last or another batch size",
              last, world, need, need > 1 ? "s" : "",
              need == 1 ? "every rank needs one" : "per-rank BatchNorm needs more than one per channel");
  }
  model_->to(config_.dtype);
  model_->to(config_.device);
  // Synchronised BN (data parallel only): the model's BN layers use the global batch's statistics.
  sync_bn_ = distributed() && config_.sync_bn;
  if (sync_bn_) dist::enable_sync_batch_norm(*model_, comm_);
  const SGDOptions fc{.lr = config_.lr, .momentum = config_.momentum, .weight_decay = config_.weight_decay};
  opt_fc_ = std::make_unique<SGD>(model_->parameters(), fc);
  std::vector<Optimizer*> scheduled{opt_fc_.get()};
  if (config_.method == Method::afd) {
    disc_ = std::make_shared<nn::SNPDFC3>(model_->feature_dim(), train_set_.classes, gen);
    disc_->to(config_.dtype);
    disc_->to(config_.device);
    opt_d_ = std::make_unique<SGD>(disc_->parameters(), SGDOptions{.lr = config_.lr_d, .momentum = config_.momentum});
    opt_f_ = std::make_unique<SGD>(model_->encoder_parameters(),
                                   SGDOptions{.lr = config_.lr_f, .momentum = config_.momentum});
    scheduled.push_back(opt_d_.get());
    scheduled.push_back(opt_f_.get());
  }
  schedule_ = std::make_unique<MultiStepLR>(scheduled, config_.milestones, config_.gamma);

  data::LoaderOptions lo;
  lo.batch_size = config_.batch_size;
  lo.shuffle = true;
  lo.drop_last = config_.drop_last;
  lo.seed = config_.seed;
  lo.crop_padding = config_.crop_padding;
  lo.flip = config_.flip;
  lo.prefetch = config_.prefetch;
  lo.device = config_.device;
  if (distributed()) {
    lo.shard_rank = comm_->rank();
    lo.shard_count = comm_->size();
  }
  loader_ = std::make_unique<data::Loader>(train_set_, lo);
  AFD_CHECK(loader_->batches_per_epoch() >= 1, "Trainer: {} training images give no batch of {} (drop_last)", n,
            config_.batch_size);
  rng_ = Generator(config_.seed, kStepStream);
  broadcast_networks();
}

bool Trainer::distributed() const { return comm_ && comm_->size() > 1; }

int Trainer::rank() const { return comm_ ? comm_->rank() : 0; }

int Trainer::world_size() const { return comm_ ? comm_->size() : 1; }

// Rank 0's parameters and buffers everywhere (the same seed already gives the same init; this also
// covers a resumed run and any difference in how a rank built its networks).
void Trainer::broadcast_networks() {
  if (!distributed()) return;
  dist::broadcast_module(*comm_, *model_);
  if (disc_) dist::broadcast_module(*comm_, *disc_);
}

// This rank's backward of a loss that is a mean over its rows. With synchronised BN the loss is
// weighted by the rank's share of the global batch first (a seed w_r), because the all-reduces in
// BN's backward add the ranks' incoming gradients as they are (data_parallel.h).
void Trainer::backward_local(const Var& loss) {
  if (sync_bn_) loss.backward(Tensor::full({}, shard_weight_, loss.dtype(), loss.device()));
  else loss.backward();
}

// Before an optimizer step: the gradients of `opt`'s parameters summed over the ranks, each rank's
// weighted by its share of the global batch (data_parallel.h); with synchronised BN the weight was
// applied by backward_local, so a plain sum.
void Trainer::sync_gradients(const Optimizer& opt) {
  if (distributed()) dist::average_gradients(*comm_, opt.params(), sync_bn_ ? 1.0 : shard_weight_);
}

Trainer::~Trainer() = default;

std::vector<std::pair<std::string, Optimizer*>> Trainer::optimizers() const {
  std::vector<std::pair<std::string, Optimizer*>> out{{"fc", opt_fc_.get()}};
  if (opt_d_) out.emplace_back("d", opt_d_.get());
  if (opt_f_) out.emplace_back("f", opt_f_.get());
  return out;
}

std::vector<std::string> Trainer::optimizer_parameter_names(const std::string& optimizer) const {
  std::vector<std::string> names;
  if (optimizer == "fc" || optimizer == "f") {
    const std::string head = model_->head_name() + ".";
    for (const auto& [name, p] : model_->named_parameters())
      if (optimizer == "fc" || name.rfind(head, 0) != 0) names.push_back(name);
  } else if (optimizer == "d" && disc_) {
    for (const auto& [name, p] : disc_->named_parameters()) names.push_back(name);
  } else {
    AFD_FAIL("Trainer: no optimizer '{}' for method {}", optimizer, method_name(config_.method));
  }
  return names;
}

int64_t Trainer::batches_per_epoch() const { return loader_->batches_per_epoch(); }

// ---- one step --------------------------------------------------------------------------------

void Trainer::check_finite(double value, const char* phase, const char* term) const {
  if (!std::isfinite(value))  // NaN printed without a sign: fmt shows "-nan" for some bit patterns
    AFD_FAIL("train step {} (epoch {}, batch {}), {}: {} = {}", global_step_, epoch_ + 1, batch_ + 1, phase, term,
             std::isnan(value) ? std::string("nan") : fmt::format("{}", value));
}

uint64_t Trainer::next_attack_seed() {
  const uint64_t block = rng_.reserve(4, DType::f32);  // one Philox block
  const uint64_t seed = seed_from_block(rng_.seed, block);
  // Data parallel: each rank attacks its own rows, with its own random starts.
  return distributed() ? seed_from_block(seed, uint64_t(comm_->rank())) : seed;
}

StepMetrics Trainer::train_step(const Tensor& x_in, const Tensor& y_in, const StepOverrides& given) {
  AFD_CHECK(x_in.defined() && x_in.dim() == 4 && x_in.size(0) >= 1 && is_floating(x_in.dtype()),
            "train_step: expected a float batch x [N, C, H, W], got {}", x_in.defined() ? x_in.str() : "undefined");
  AFD_CHECK(y_in.defined() && y_in.dtype() == DType::i64 && y_in.dim() == 1 && y_in.size(0) == x_in.size(0),
            "train_step: expected labels i64 [{}], got {}", x_in.size(0), y_in.defined() ? y_in.str() : "undefined");
  const Tensor x = x_in.to(config_.device).to(config_.dtype);
  const Tensor y = y_in.to(config_.device);
  ++global_step_;
  StepMetrics m;
  m.batch_size = x.size(0);
  if (distributed()) {
    // x is this rank's shard of the global batch: its size and place (dist::shard_of).
    const int64_t n = x.size(0);
    global_batch_ = int64_t(dist::sum_over_ranks(*comm_, {double(n)}, config_.device)[0]);
    const dist::Shard s = dist::shard_of(global_batch_, comm_->rank(), comm_->size());
    AFD_CHECK(s.count == n, "train_step: rank {} of {} got {} rows of a global batch of {}, expected {}", comm_->rank(),
              comm_->size(), n, global_batch_, s.count);
    shard_begin_ = s.begin;
    shard_weight_ = double(n) / double(global_batch_);
  }
  const Tensor x_adv = config_.method == Method::nt ? Tensor() : adversarial(x, y, given, m);
  switch (config_.method) {
    case Method::nt:
    case Method::at: step_nt_at(x, y, x_adv, m); break;
    case Method::trades: step_trades(x, y, x_adv, m); break;
    case Method::norm: step_norm(x, y, x_adv, m); break;
    case Method::afd: step_afd(x, y, x_adv, given.gp_alpha, m); break;
  }
  if (distributed()) reduce_metrics(m);
  return m;
}

// Every set term becomes its mean over the global batch (each rank's mean weighted by its rows);
// the last entry carries request_stop() so that every rank stops after the same step.
void Trainer::reduce_metrics(StepMetrics& m) {
  const auto& fields = metric_fields();
  std::vector<double> v;
  for (const auto& [name, field] : fields) v.push_back(std::isnan(m.*field) ? 0.0 : m.*field * double(m.batch_size));
  v.push_back(stop_requested() ? 1.0 : 0.0);
  v = dist::sum_over_ranks(*comm_, v, config_.device);
  for (size_t i = 0; i < fields.size(); ++i)
    if (!std::isnan(m.*fields[i].second)) m.*fields[i].second = v[i] / double(global_batch_);
  m.batch_size = global_batch_;
  if (v.back() > 0) request_stop();
}

Tensor Trainer::adversarial(const Tensor& x, const Tensor& y, const StepOverrides& given, StepMetrics& m) {
  if (given.x_adv.defined()) {
    AFD_CHECK(given.x_adv.shape() == x.shape(), "train_step: given x_adv has shape {}, x has {}",
              shape_str(given.x_adv.shape()), shape_str(x.shape()));
    return given.x_adv.to(config_.device).to(config_.dtype);
  }
  const uint64_t seed = next_attack_seed();
  if (config_.method == Method::trades) return trades_attack(x, seed);

  attacks::AttackConfig cfg = config_.attack_config;
  cfg.seed = seed;
  cfg.return_last_iterate = config_.keep_failed == KeepFailed::last;  // APGD's own form of the rule
  std::unique_ptr<attacks::Attack> attack = attacks::make_attack(config_.attack, cfg);
  attacks::AttackResult r = attack->perturb(*model_, x, y);  // eval mode, input gradients only
  m.adv_acc = 1.0 - double(r.success_count()) / double(x.size(0));
  if (config_.keep_failed == KeepFailed::last) return r.x_adv;
  Shape rows(size_t(x.dim()), 1);
  rows[0] = x.size(0);
  return ops::where(r.success.reshape(rows).to(x.device()), r.x_adv, x);  // not fooled: the clean image
}

Tensor Trainer::trades_attack(const Tensor& x, uint64_t seed) {
  const TradesAttack& t = config_.trades_attack;
  attacks::EvalModeGuard eval_mode(*model_);
  Generator gen(seed);
  Tensor clean_logits = attacks::logits_of(*model_, x);
  attacks::LossInputs in;
  in.clean_logits = &clean_logits;
  const std::vector<double> eps(size_t(x.size(0)), t.eps), step(size_t(x.size(0)), t.step_size);
  const Tensor steps = attacks::sign_steps(step, eps, x);  // uploaded once for all steps
  // x' = x + init_std N(0, 1), not clipped before the first step (TRADES' trades_loss).
  Tensor x_adv = ops::add(x, ops::mul_scalar(randn(x.shape(), gen, x.dtype(), x.device()), t.init_std));
  for (int k = 0; k < t.steps; ++k) {
    // Ascend sum_i KL(f(x_i) || f(x'_i)); only the sign of the gradient is used.
    attacks::LossGrad lg = attacks::loss_and_grad(*model_, x_adv, attacks::LossKind::kl, in, false, 1.0);
    x_adv = attacks::sign_step(x, x_adv, lg.grad, steps);  // clip(P(x' + step sign(g)))
  }
  return attacks::clip_box(x_adv);
}

// NT: CE(f(x)); AT: CE(f(x')). One train-mode forward, optimizer "fc".
void Trainer::step_nt_at(const Tensor& x, const Tensor& y, const Tensor& x_adv, StepMetrics& m) {
  const bool adv = config_.method == Method::at;
  model_->train();
  opt_fc_->zero_grad();
  Var logits = model_->forward(Var(adv ? x_adv : x));
  Var ce = cross_entropy(logits, y);
  m.loss = m.ce = scalar_of(ce);
  check_finite(m.ce, "classifier step", "CE");
  backward_local(ce);
  sync_gradients(*opt_fc_);
  opt_fc_->step();
  if (!adv) m.clean_acc = accuracy(logits.data(), y);
}

// TRADES: CE(f(x), y) + beta (1/N) sum_i KL(softmax f(x_i) || softmax f(x'_i)); clean forward first.
void Trainer::step_trades(const Tensor& x, const Tensor& y, const Tensor& x_adv, StepMetrics& m) {
  model_->train();
  opt_fc_->zero_grad();
  Var logits = model_->forward(Var(x));
  Var logits_adv = model_->forward(Var(x_adv));
  Var ce = cross_entropy(logits, y);
  Var kl = trades_kl(logits, logits_adv);
  Var loss = ce + kl * config_.trades_beta;
  m.ce = scalar_of(ce);
  m.kl = scalar_of(kl);
  m.loss = scalar_of(loss);
  check_finite(m.ce, "classifier step", "CE");
  check_finite(m.kl, "classifier step", "KL");
  check_finite(m.loss, "classifier step", "loss");
  backward_local(loss);
  sync_gradients(*opt_fc_);
  opt_fc_->step();
  m.clean_acc = accuracy(logits.data(), y);
}

// Norm-based desensitisation (paper 4.6): CE(f(x), y) + lambda mean_i ||F(x)_i - F(x')_i||_2.
void Trainer::step_norm(const Tensor& x, const Tensor& y, const Tensor& x_adv, StepMetrics& m) {
  model_->train();
  opt_fc_->zero_grad();
  nn::Classifier::Output out = model_->forward_with_features(Var(x));
  Var z_adv = model_->features(Var(x_adv));
  Var ce = cross_entropy(out.logits, y);
  Var distance = mean(row_norms(out.features - z_adv));
  Var loss = ce + distance * config_.norm_lambda;
  m.ce = scalar_of(ce);
  m.distance = scalar_of(distance);
  m.loss = scalar_of(loss);
  check_finite(m.ce, "classifier step", "CE");
  check_finite(m.distance, "classifier step", "distance");
  check_finite(m.loss, "classifier step", "loss");
  backward_local(loss);
  sync_gradients(*opt_fc_);
  opt_fc_->step();
  m.clean_acc = accuracy(out.logits.data(), y);
}

// AFD (Algorithm 1 as the reference runs it): C step, D step, F step; trainer.h has the details.
void Trainer::step_afd(const Tensor& x, const Tensor& y, const Tensor& x_adv, const Tensor& gp_alpha,
                       StepMetrics& m) {
  model_->train();
  disc_->train();

  // 1. C step: L_C = CE(C(F(x)), y) on the clean batch (Eq. 7), optimizer over F and C.
  opt_fc_->zero_grad();
  Var logits = model_->forward(Var(x));
  Var l_c = cross_entropy(logits, y);
  m.loss = m.ce = scalar_of(l_c);
  check_finite(m.ce, "C step", "L_C");
  backward_local(l_c);
  sync_gradients(*opt_fc_);
  opt_fc_->step();
  m.clean_acc = accuracy(logits.data(), y);

  // 2. D step. F(x) and F(x') are two train-mode forwards (their own BN batch statistics) of the F
  // just updated; recorded on no tape, since the reference discards the gradient they would get.
  Tensor z_clean, z_adv;
  {
    NoGradGuard no_grad;
    z_clean = model_->features(Var(x)).data();
    z_adv = model_->features(Var(x_adv)).data();
  }
  opt_d_->zero_grad();
  Var d_clean = disc_->forward(Var(z_clean), y);  // [N, 1], the true labels for both
  Var d_adv = disc_->forward(Var(z_adv), y);
  Var l_d = discriminator_loss(config_.gan_loss, d_clean, d_adv);
  m.l_d = scalar_of(l_d);
  check_finite(m.l_d, "D step", "L_D");
  Var d_total = l_d;
  if (config_.gp_lambda > 0) {
    Tensor alpha;
    if (gp_alpha.defined()) {
      AFD_CHECK(gp_alpha.shape() == Shape{x.size(0)}, "train_step: given gp_alpha has shape {}, expected [{}]",
                shape_str(gp_alpha.shape()), x.size(0));
      alpha = gp_alpha.to(config_.device).to(config_.dtype);
    } else if (distributed()) {
      // The global batch's weights, drawn alike on every rank; this rank's rows of them.
      alpha = rand({global_batch_}, rng_, config_.dtype, config_.device).slice(shard_begin_, shard_begin_ + x.size(0));
    } else {
      alpha = rand({x.size(0)}, rng_, config_.dtype, config_.device);
    }
    // D without the projection term (the authors' decoder_only call with y = None).
    auto d_unconditional = [this](const Var& z) {
      Var h = leaky_relu(disc_->linear1->forward(z), 0.2);
      h = leaky_relu(disc_->linear2->forward(h), 0.2);
      return disc_->l7->forward(h);
    };
    Var gp = gradient_penalty(d_unconditional, Var(z_clean), Var(z_adv), alpha);
    m.gp = scalar_of(gp);
    check_finite(m.gp, "D step", "GP");
    d_total = l_d + gp * config_.gp_lambda;
  }
  backward_local(d_total);
  sync_gradients(*opt_d_);
  opt_d_->step();
  std::vector<double> dc = host_values(d_clean.data()), da = host_values(d_adv.data());
  double sum_c = 0, sum_a = 0, right_c = 0, right_a = 0;
  for (size_t i = 0; i < dc.size(); ++i) {
    sum_c += dc[i], sum_a += da[i];
    right_c += dc[i] > 0, right_a += da[i] < 0;
  }
  m.d_clean = sum_c / double(dc.size());
  m.d_adv = sum_a / double(da.size());
  m.d_acc_clean = right_c / double(dc.size());
  m.d_acc_adv = right_a / double(da.size());

  // 3. F step: D(F(x'), y) afresh, against the updated D; the optimizer holds F's parameters only.
  opt_f_->zero_grad();
  {
    FrozenGuard frozen(*disc_);  // the gradient flows through D into F, D's own is not needed
    Var d_adv_new = disc_->forward(model_->features(Var(x_adv)), y);
    Var l_f = feature_loss(config_.gan_loss, d_adv_new);
    m.l_f = scalar_of(l_f);
    check_finite(m.l_f, "F step", "L_F");
    backward_local(l_f);
  }
  sync_gradients(*opt_f_);
  opt_f_->step();
}

// ---- epochs ----------------------------------------------------------------------------------

EpochStats Trainer::train_epoch(const ProgressFn& progress) {
  using clock = std::chrono::steady_clock;
  EpochStats stats;
  stats.epoch = epoch_;
  const int64_t total = batches_per_epoch();
  loader_->start_epoch(epoch_);
  data::Batch b;
  for (int64_t i = 0; i < batch_; ++i)  // a resumed epoch: skip the batches trained before the checkpoint
    AFD_CHECK(loader_->next(b), "train_epoch: epoch {} has fewer than {} batches", epoch_, batch_);
  const auto start = clock::now();
  while (batch_ < total && !stop_requested()) {
    AFD_CHECK(loader_->next(b), "train_epoch: the loader ended epoch {} after {} of {} batches", epoch_, batch_, total);
    StepMetrics m = train_step(b.images, b.labels);
    epoch_sums_->add(m);
    ++batch_;
    ++stats.batches;
    stats.images += m.batch_size;
    if (progress) {
      Progress p;
      p.epoch = epoch_;
      p.batch = batch_ - 1;
      p.batches = total;
      p.global_step = global_step_;
      p.seconds = std::chrono::duration<double>(clock::now() - start).count();
      p.images_per_second = p.seconds > 0 ? double(stats.images) / p.seconds : 0;
      p.eta_seconds = p.seconds / double(stats.batches) * double(total - batch_);
      p.step = m;
      p.running = epoch_sums_->mean();
      progress(p);
    }
  }
  stats.seconds = std::chrono::duration<double>(clock::now() - start).count();
  stats.mean = epoch_sums_->mean();
  if (batch_ == total) {
    schedule_->step();
    ++epoch_;
    batch_ = 0;
    *epoch_sums_ = Accumulator();
    stats.completed = true;
  }
  return stats;
}

EvalResult Trainer::evaluate(const data::Dataset& data, const EvalOptions& options) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const int64_t n = options.limit > 0 ? std::min(options.limit, data.size()) : data.size();
  AFD_CHECK(n >= 1, "evaluate: the dataset '{}' is empty", data.name);
  data::LoaderOptions lo;
  lo.batch_size = options.batch_size > 0 ? options.batch_size : config_.eval_batch_size;
  lo.shuffle = false;
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));

  attacks::EvalModeGuard eval_mode(*model_);  // the previous mode comes back, also on an error
  EvalResult r;
  int64_t clean_correct = 0, robust = 0;
  double loss_sum = 0;
  // Data parallel: rank r evaluates batches r, r + W, r + 2W, ...; the sums are reduced below. Each
  // batch's attack seed depends on b only, so the result equals the single-process one.
  const int64_t stride = world_size(), first = rank();
  for (int64_t b = first; b * lo.batch_size < n; b += stride) {
    data::Batch batch = data::make_batch(data, lo, 0, b, order);
    const Tensor x = batch.images.to(config_.device).to(config_.dtype);
    const Tensor y = batch.labels.to(config_.device);
    Tensor logits;
    {
      NoGradGuard no_grad;
      logits = model_->forward(Var(x)).data();
    }
    loss_sum += ops::sum(ops::cross_entropy(logits, y)).to(Device::cpu()).item_double();
    std::vector<int64_t> pred = ops::argmax(logits, 1).to(Device::cpu()).to_vector<int64_t>();
    std::vector<int64_t> labels = batch.labels.to_vector<int64_t>();
    std::vector<uint8_t> correct(pred.size());
    for (size_t i = 0; i < pred.size(); ++i) {
      correct[i] = pred[i] == labels[i];
      clean_correct += correct[i];
    }
    if (options.attack) {
      attacks::AttackConfig cfg = config_.attack_config;
      cfg.seed = seed_from_block(config_.seed, kEvalStream + uint64_t(b));
      cfg.return_last_iterate = config_.keep_failed == KeepFailed::last;
      attacks::AttackResult a = attacks::make_attack(config_.attack, cfg)->perturb(*model_, x, y);
      Tensor adv_logits;
      {
        NoGradGuard no_grad;
        adv_logits = model_->forward(Var(a.x_adv)).data();
      }
      std::vector<int64_t> adv_pred = ops::argmax(adv_logits, 1).to(Device::cpu()).to_vector<int64_t>();
      // Robust: right on x and on x' (a clean mistake is broken at every eps).
      for (size_t i = 0; i < adv_pred.size(); ++i) robust += correct[i] && adv_pred[i] == labels[i];
    }
    r.count += int64_t(pred.size());
    if (options.progress) options.progress(r.count, n);
  }
  if (distributed()) {
    std::vector<double> sums = dist::sum_over_ranks(
        *comm_, {double(clean_correct), double(robust), loss_sum, double(r.count)}, config_.device);
    clean_correct = int64_t(sums[0]), robust = int64_t(sums[1]), loss_sum = sums[2], r.count = int64_t(sums[3]);
  }
  r.clean_acc = double(clean_correct) / double(r.count);
  r.clean_loss = loss_sum / double(r.count);
  if (options.attack) r.adv_acc = double(robust) / double(r.count);
  r.seconds = std::chrono::duration<double>(clock::now() - start).count();
  return r;
}

std::string Trainer::checkpoint_dir() const { return (std::filesystem::path(config_.out_dir) / "checkpoint").string(); }

FitResult Trainer::fit(const FitOptions& options) {
  FitResult r;
  while (epoch_ < config_.epochs && !stop_requested()) {
    EpochStats stats = train_epoch(options.on_batch);
    if (!stats.completed) break;
    EpochSummary s;
    s.train = stats;
    if (options.test) s.test = evaluate(*options.test, options.eval);
    s.lrs = schedule_->lrs();
    const bool save = !config_.out_dir.empty() && (epoch_ % config_.checkpoint_every == 0 || epoch_ == config_.epochs);
    if (save) s.checkpoint = r.checkpoint = checkpoint_dir();
    // The epoch's record (metrics, validation, best/) before its checkpoint: a run killed between
    // the two resumes from the previous checkpoint and records this epoch again (the other order
    // lost the record for good).
    if (options.on_epoch) options.on_epoch(s);
    if (save) save_checkpoint(checkpoint_dir());
  }
  if (epoch_ < config_.epochs) {
    r.stopped = true;
    if (!config_.out_dir.empty()) {
      save_checkpoint(checkpoint_dir());
      r.checkpoint = checkpoint_dir();
    }
  } else if (!config_.out_dir.empty() &&
             !std::filesystem::exists(std::filesystem::path(checkpoint_dir()) / kCheckpointFile)) {
    // Nothing was trained (--epochs 0): the initial weights are the run's checkpoint.
    save_checkpoint(checkpoint_dir());
    r.checkpoint = checkpoint_dir();
  }
  r.epoch = epoch_;
  r.batch = batch_;
  return r;
}

// ---- checkpoints -----------------------------------------------------------------------------

void Trainer::save_checkpoint(const std::string& dir) const {
  if (rank() != 0) return;  // data parallel: every rank holds the same state; rank 0 writes it
  std::filesystem::create_directories(dir);
  NamedTensors all;
  for (auto& [name, t] : model_->state_dict()) all.emplace_back("model." + name, t);
  if (disc_)
    for (auto& [name, t] : disc_->state_dict()) all.emplace_back("discriminator." + name, t);
  for (const auto& [prefix, opt] : optimizers())
    for (auto& [name, t] : opt->state()) all.emplace_back("optimizer." + prefix + "." + name, t);
  all.emplace_back("run.position", Tensor::from_vector<int64_t>({epoch_, batch_, global_step_}, {3}));
  all.emplace_back("run.rng", Tensor::from_vector<int64_t>({int64_t(rng_.seed), int64_t(rng_.offset)}, {2}));
  all.emplace_back("run.schedule", Tensor::from_vector<int64_t>({schedule_->last_epoch()}, {1}));

  const std::string config_json = config_to_json(config_);
  std::map<std::string, std::string> meta = {
      {"format", kFormat},
      {"config", config_json},
      {"method", method_name(config_.method)},
      {"model", model_description(config_, train_set_.classes)},
      {"dataset_size", std::to_string(train_set_.size())},
      {"epoch", std::to_string(epoch_)},
      {"batch", std::to_string(batch_)},
      {"global_step", std::to_string(global_step_)},
      {"epoch_sums", epoch_sums_->to_json()}};
  const std::filesystem::path d(dir);
  // Keep the checkpoint being replaced as trainer.prev.safetensors (a hard link made under a temp
  // name, then renamed: at every moment both names hold complete files), so a latest checkpoint
  // found corrupt later still leaves one to resume from. The new one is written atomically.
  const std::filesystem::path current = d / kCheckpointFile, previous = d / kPreviousFile;
  if (std::filesystem::exists(current)) {
    const std::filesystem::path tmp = d / (std::string(kPreviousFile) + ".tmp");
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    std::filesystem::create_hard_link(current, tmp, ec);
    if (ec) std::filesystem::copy_file(current, tmp, ec);  // a filesystem without hard links
    if (!ec) std::filesystem::rename(tmp, previous, ec);
    AFD_CHECK(!ec, "save_checkpoint: cannot keep the previous checkpoint as {}: {}", previous.string(), ec.message());
  }
  write_safetensors(current.string(), all, meta);
  export_networks(dir);
}

void Trainer::export_networks(const std::string& dir) const {
  if (rank() != 0) return;
  // Exports (not read back by load_checkpoint): each network alone, PyTorch-loadable.
  const std::filesystem::path d(dir);
  std::filesystem::create_directories(d);
  // image_shape: [C, H, W] of the training images, so that an evaluation on other images (which a
  // ResNet would run, pooling any size) can be refused.
  const std::map<std::string, std::string> export_meta = {
      {"config", config_to_json(config_)},
      {"epoch", std::to_string(epoch_)},
      {"batch", std::to_string(batch_)},
      {"image_shape", shape_str(train_set_.image_shape())}};
  nn::save_state_dict(*model_, (d / "model.safetensors").string(), export_meta);
  if (disc_) nn::save_state_dict(*disc_, (d / "discriminator.safetensors").string(), export_meta);
}

namespace {

// The latest checkpoint of `dir`; when it is unreadable (truncated, corrupt, its checksum wrong)
// and the previous one is there, the previous one, with a warning on stderr (once per folder).
SafetensorsFile read_latest_or_previous(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / kCheckpointFile).string();
  const std::string previous = (std::filesystem::path(dir) / kPreviousFile).string();
  AFD_CHECK(std::filesystem::exists(path), "load_checkpoint: {} does not exist (a checkpoint folder holds {})", path,
            kCheckpointFile);
  try {
    return read_safetensors(path);
  } catch (const SafetensorsError& e) {
    if (!std::filesystem::exists(previous)) throw;
    static std::set<std::string> warned;
    if (warned.insert(dir).second)
      fmt::print(stderr, "warning: {}\nwarning: resuming from the previous checkpoint {} instead\n", e.what(), previous);
    return read_safetensors(previous);
  }
}

SafetensorsFile read_checkpoint_file(const std::string& dir) {
  SafetensorsFile f = read_latest_or_previous(dir);
  const std::string& path = f.path;
  auto format = f.metadata.find("format");
  AFD_CHECK(format != f.metadata.end() && format->second == kFormat,
            "load_checkpoint: {} is not a trainer checkpoint (metadata format '{}', expected '{}')", path,
            format == f.metadata.end() ? "" : format->second, kFormat);
  AFD_CHECK(f.metadata.count("config") && f.metadata.count("epoch_sums") && f.metadata.count("dataset_size"),
            "load_checkpoint: {} lacks the metadata config, epoch_sums or dataset_size", path);
  return f;
}

std::vector<int64_t> run_values(const SafetensorsFile& f, const std::string& name, int64_t count) {
  const Tensor& t = f.get(name);
  AFD_CHECK(t.dtype() == DType::i64 && t.numel() == count, "load_checkpoint: {}: '{}' must be i64 with {} values, got {}",
            f.path, name, count, t.str());
  return t.to_vector<int64_t>();
}

}  // namespace

TrainConfig Trainer::read_checkpoint_config(const std::string& dir) {
  SafetensorsFile f = read_checkpoint_file(dir);
  try {
    return config_from_json(f.metadata.at("config"));
  } catch (const Error& e) {
    throw Error(f.path + ": " + e.what());
  }
}

void Trainer::load_checkpoint(const std::string& dir) {
  SafetensorsFile f = read_checkpoint_file(dir);
  const std::string& path = f.path;
  TrainConfig saved;
  try {
    saved = config_from_json(f.metadata.at("config"));
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  // The run must be the same run: same networks, same random streams, same batches.
  auto same = [&](bool ok, const char* what, const std::string& theirs, const std::string& ours) {
    AFD_CHECK(ok, "load_checkpoint: {} was written by a run with {} {}, this trainer has {}", path, what, theirs, ours);
  };
  same(saved.method == config_.method, "method", method_name(saved.method), method_name(config_.method));
  same(saved.model == config_.model && saved.width == config_.width && saved.dtype == config_.dtype, "model",
       model_description(saved, train_set_.classes), model_description(config_, train_set_.classes));
  same(saved.seed == config_.seed, "seed", std::to_string(saved.seed), std::to_string(config_.seed));
  auto batching = [](const TrainConfig& c) {
    return fmt::format("{}{}", c.batch_size, c.drop_last ? " (drop_last)" : "");
  };
  same(saved.batch_size == config_.batch_size && saved.drop_last == config_.drop_last, "batch size", batching(saved),
       batching(config_));
  same(saved.dataset == config_.dataset, "dataset", saved.dataset, config_.dataset);
  same(f.metadata.at("dataset_size") == std::to_string(train_set_.size()), "a training set of size",
       f.metadata.at("dataset_size"), std::to_string(train_set_.size()));

  NamedTensors model_state, disc_state;
  std::map<std::string, NamedTensors> opt_state;
  for (auto& [name, t] : f.tensors) {
    if (name.rfind("model.", 0) == 0) {
      model_state.emplace_back(name.substr(6), t);
    } else if (name.rfind("discriminator.", 0) == 0) {
      disc_state.emplace_back(name.substr(14), t);
    } else if (name.rfind("optimizer.", 0) == 0) {
      const size_t dot = name.find('.', 10);
      AFD_CHECK(dot != std::string::npos, "load_checkpoint: {}: malformed optimizer entry '{}'", path, name);
      opt_state[name.substr(10, dot - 10)].emplace_back(name.substr(dot + 1), t);
    } else {
      AFD_CHECK(name.rfind("run.", 0) == 0, "load_checkpoint: {}: unexpected tensor '{}'", path, name);
    }
  }
  try {
    model_->load_state_dict(model_state, /*strict=*/true);
  } catch (const Error& e) {
    throw Error(fmt::format("load_checkpoint: {}: the classifier does not match: {}", path, e.what()));
  }
  AFD_CHECK(bool(disc_) == !disc_state.empty(), "load_checkpoint: {}: {} discriminator", path,
            disc_ ? "the checkpoint has no" : "this trainer has no");
  if (disc_) {
    try {
      disc_->load_state_dict(disc_state, /*strict=*/true);
    } catch (const Error& e) {
      throw Error(fmt::format("load_checkpoint: {}: the discriminator does not match: {}", path, e.what()));
    }
  }
  for (const auto& [name, opt] : optimizers()) {
    auto it = opt_state.find(name);
    AFD_CHECK(it != opt_state.end(), "load_checkpoint: {}: no state for optimizer '{}'", path, name);
    try {
      opt->load_state(it->second);
    } catch (const Error& e) {
      throw Error(fmt::format("load_checkpoint: {}: optimizer '{}': {}", path, name, e.what()));
    }
    opt_state.erase(it);
  }
  AFD_CHECK(opt_state.empty(), "load_checkpoint: {}: state for an unknown optimizer '{}'", path,
            opt_state.empty() ? "" : opt_state.begin()->first);

  const std::vector<int64_t> position = run_values(f, "run.position", 3);
  const std::vector<int64_t> rng = run_values(f, "run.rng", 2);
  const std::vector<int64_t> schedule = run_values(f, "run.schedule", 1);
  AFD_CHECK(position[0] >= 0 && position[1] >= 0 && position[1] < batches_per_epoch() && position[2] >= 0,
            "load_checkpoint: {}: position epoch {} batch {} step {} is not valid for {} batches per epoch", path,
            position[0], position[1], position[2], batches_per_epoch());
  AFD_CHECK(uint64_t(rng[0]) == config_.seed, "load_checkpoint: {}: step generator seed {} differs from the seed {}",
            path, uint64_t(rng[0]), config_.seed);
  epoch_ = position[0];
  batch_ = position[1];
  global_step_ = position[2];
  rng_ = Generator(uint64_t(rng[0]), uint64_t(rng[1]));
  schedule_->set_last_epoch(schedule[0]);
  AFD_CHECK(config_.epochs >= epoch_, "load_checkpoint: {} has trained {} epochs already, more than the {} asked for",
            path, epoch_, config_.epochs);
  // A learning rate or schedule (milestones, gamma) changed on resume (say, a smaller lr after a
  // NaN) takes effect from here: the lr the schedule gives at this epoch, base_lr * gamma^(milestones
  // passed), replaces the checkpoint's. Unchanged ones keep the checkpoint's lr, bit for bit.
  const bool schedule_changed = saved.milestones != config_.milestones || saved.gamma != config_.gamma;
  auto base_lr = [](const TrainConfig& c, const std::string& optimizer) {
    return optimizer == "fc" ? c.lr : optimizer == "d" ? c.lr_d : c.lr_f;
  };
  for (const auto& [name, opt] : optimizers()) {
    if (base_lr(saved, name) == base_lr(config_, name) && !schedule_changed) continue;
    double lr = base_lr(config_, name);
    for (int64_t m : config_.milestones)
      if (m <= schedule_->last_epoch()) lr *= config_.gamma;
    opt->set_lr(lr);
  }
  try {
    epoch_sums_->from_json(f.metadata.at("epoch_sums"));
  } catch (const std::exception& e) {
    AFD_FAIL("load_checkpoint: {}: bad epoch_sums metadata: {}", path, e.what());
  }
  broadcast_networks();
}

}  // namespace afd::train
