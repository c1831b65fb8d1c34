// CPU benchmark of the whole models (not a test): forward and training-step throughput of each of
// nn/models at full size, f32. tools/bench_models_torch.py runs the same models (the PyTorch
// definitions of tests/fixtures/models/make_model_fixtures.py) in PyTorch; tools/bench_models.sh
// runs both side by side at the same thread count and prints the ratios.
//
//   bench_models [--threads 2] [--warmup 1] [--reps 3] [--min-seconds 0] [--only MODEL]
//       [--conv automatic|im2col|direct]   (the CPU convolution algorithm; automatic by default)
//
// Workloads, per model (batch sizes in kModels; inputs uniform in [0, 1], labels i * 7 mod K):
//   forward     eval mode, no gradient tape: logits = model(x)
//   train_step  train mode: mean cross-entropy of model(x), backward, SGD (lr 0.01, momentum 0.9,
//               weight decay 5e-4) step, gradients dropped
// The discriminator SNPDFC3 runs on features z [B, 64] with labels; its training step is the
// paper's D loss mean softplus(-D(z, y)) + mean softplus(D(z', y)) (two forwards) and SGD.
//
// Every figure is the median wall time of one call after warm-up (at least --reps calls and at
// least --min-seconds in all); throughput is batch / median. The last line is "JSON {...}".
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/models/discriminator.h"
#include "nn/models/preact_resnet.h"
#include "nn/models/resnet.h"
#include "nn/models/small_cnn.h"
#include "nn/models/wide_resnet.h"
#include "nn/optim/optimizer.h"
#include "tensor/backend.h"
#include "tools/bench_harness.h"

namespace {

using namespace afd;

constexpr SGDOptions kSgd{.lr = 0.01, .momentum = 0.9, .weight_decay = 5e-4};

using bench::Options;
using bench::Timing;
using bench::time_ms;

struct ModelSpec {
  const char* name;
  int64_t batch;
  Shape input;  // one image [C, H, W]
  std::function<std::shared_ptr<nn::Classifier>(Generator&)> make;
};

// Batches small enough that one round of every model stays within a minute or two on 2 cores.
const ModelSpec kModels[] = {
    {"small_cnn", 128, {1, 28, 28},
     [](Generator& g) { return std::make_shared<nn::SmallCNN>(nn::SmallCNNConfig{}, g); }},
    {"mnist_resnet18", 128, {1, 28, 28},
     [](Generator& g) { return std::make_shared<nn::ResNet18>(nn::ResNetConfig::mnist(10), g); }},
    {"cifar_resnet18", 32, {3, 32, 32},
     [](Generator& g) { return std::make_shared<nn::ResNet18>(nn::ResNetConfig::cifar(10), g); }},
    {"preact_resnet18", 32, {3, 32, 32},
     [](Generator& g) { return std::make_shared<nn::PreActResNet18>(nn::PreActResNetConfig{}, g); }},
    {"wrn28_10", 8, {3, 32, 32},
     [](Generator& g) { return std::make_shared<nn::WideResNet>(nn::WideResNetConfig{28, 10}, g); }},
};
constexpr int64_t kDiscriminatorBatch = 128, kFeatures = 64, kClasses = 10;

struct Result {
  std::string model;
  int64_t batch;
  Timing forward, train_step;
};

Tensor cyclic_labels(int64_t n) {
  std::vector<int64_t> y(n);
  for (int64_t i = 0; i < n; ++i) y[i] = (i * 7) % kClasses;
  return Tensor::from_vector<int64_t>(y, {n});
}

Result bench_classifier(const ModelSpec& spec, const Options& o, Generator& gen) {
  auto model = spec.make(gen);
  Shape shape{spec.batch};
  shape.insert(shape.end(), spec.input.begin(), spec.input.end());
  Var x(rand(shape, gen));
  Tensor labels = cyclic_labels(spec.batch);

  model->eval();
  Timing forward = time_ms([&] {
    NoGradGuard no_grad;
    model->forward(x);
  }, o);

  model->train();
  SGD opt(model->parameters(), kSgd);
  double loss_value = 0;
  Timing train = time_ms([&] {
    Var loss = cross_entropy(model->forward(x), labels, Reduction::mean);
    loss.backward();
    opt.step();
    opt.zero_grad();
    loss_value = loss.item();
  }, o);
  AFD_CHECK(std::isfinite(loss_value), "bench_models: {} loss became {}", spec.name, loss_value);
  std::fprintf(stderr, "%s: loss %.4f at the last step\n", spec.name, loss_value);
  return {spec.name, spec.batch, forward, train};
}

Result bench_discriminator(const Options& o, Generator& gen) {
  nn::SNPDFC3 d(kFeatures, kClasses, gen);
  Var z_clean(randn({kDiscriminatorBatch, kFeatures}, gen)), z_adv(randn({kDiscriminatorBatch, kFeatures}, gen));
  Tensor labels = cyclic_labels(kDiscriminatorBatch);
  d.eval();
  Timing forward = time_ms([&] {
    NoGradGuard no_grad;
    d.forward(z_adv, labels);
  }, o);
  d.train();
  SGD opt(d.parameters(), kSgd);
  Timing train = time_ms([&] {
    Var loss = mean(softplus(neg(d.forward(z_clean, labels)))) + mean(softplus(d.forward(z_adv, labels)));
    loss.backward();
    opt.step();
    opt.zero_grad();
  }, o);
  return {"snpdfc3", kDiscriminatorBatch, forward, train};
}

}  // namespace

int main(int argc, char** argv) try {
  restart_with_runtime_settings(argv, /*omp_passive=*/false);  // OpenBLAS's kernels for this CPU
  Options o = bench::parse_options("bench_models", argc, argv, {.warmup = 1, .reps = 3, .min_seconds = 0, .only = ""});
  afd::set_num_threads(o.threads);
  Generator gen(20261127);
  std::vector<Result> results;
  for (const ModelSpec& spec : kModels)
    if (o.only.empty() || o.only == spec.name) results.push_back(bench_classifier(spec, o, gen));
  if (o.only.empty() || o.only == "snpdfc3") results.push_back(bench_discriminator(o, gen));
  AFD_CHECK(!results.empty(), "bench_models: no model called '{}'", o.only);

  std::string cpu = bench::cpu_and_blas();
  std::printf("afd model benchmark: f32, %d threads, %s\n", o.threads, cpu.c_str());
  std::printf("%-16s %6s %12s %12s %14s %14s\n", "model", "batch", "forward ms", "train ms", "forward img/s",
              "train img/s");
  for (const Result& r : results)
    std::printf("%-16s %6lld %12.2f %12.2f %14.1f %14.1f\n", r.model.c_str(), static_cast<long long>(r.batch),
                r.forward.median_ms, r.train_step.median_ms, r.batch / (r.forward.median_ms * 1e-3),
                r.batch / (r.train_step.median_ms * 1e-3));
  std::printf("JSON {\"impl\": \"afd\", \"threads\": %d, \"precision\": \"f32\", \"cpu\": \"%s\", \"models\": {",
              o.threads, cpu.c_str());
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    std::printf("%s\"%s\": {\"batch\": %lld, \"forward_ms\": %.4f, \"forward_min_ms\": %.4f, \"train_ms\": %.4f, "
                "\"train_min_ms\": %.4f}", i ? ", " : "", r.model.c_str(), static_cast<long long>(r.batch),
                r.forward.median_ms, r.forward.min_ms, r.train_step.median_ms, r.train_step.min_ms);
  }
  std::printf("}}\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 2;
}
