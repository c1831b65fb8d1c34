// CPU benchmark of whole attacks (not a test): attack-step throughput of afd's attacks
// (attacks/registry.cpp) on the paper's models at full size, f32. tools/bench_attacks_torch.py
// writes the same attacks as plain PyTorch loops on the same models (the PyTorch definitions of
// tests/fixtures/models/make_model_fixtures.py); tools/bench_attacks.sh runs both side by side at
// the same thread count and prints the ratios.
//
//   bench_attacks [--threads 2] [--warmup 1] [--reps 3] [--min-seconds 0] [--only CASE]
//       [--conv automatic|im2col|direct]   (the CPU convolution algorithm; automatic by default)
//
// Cases (kCases): an attack from make_attack(name, cfg), 10 steps, Linf, no random start (PGD),
// on a model in eval mode; inputs uniform in [0, 1] and labels uniform in 0..9, both seeded:
//   pgd_linf_small_cnn        pgd-linf, eps 0.3, step 0.01, SmallCNN (32/64/200), batch 128, 1x28x28
//   pgd_linf_mnist_resnet18   pgd-linf, eps 0.3, step 0.01, the paper's MNIST ResNet18 (16/32/48/64), batch 128
//   pgd_linf_cifar_resnet18   pgd-linf, eps 8/255, step 2/255, CIFAR ResNet18, batch 32, 3x32x32
//   apgd_ce_small_cnn         apgd-ce, eps 0.3, SmallCNN, batch 128
//   apgd_ce_mnist_resnet18    apgd-ce, eps 0.3, MNIST ResNet18, batch 128
//   apgd_ce_cifar_resnet18    apgd-ce, eps 8/255, CIFAR ResNet18, batch 32
// The APGD cases run only when "apgd-ce" is in the attack registry (else they are skipped with a
// note). APGD attacks only the points the model classifies correctly, so its labels are the
// model's clean predictions: every point is attacked, as in the PGD cases.
//
// One timed call is one whole perturb(model, x, y): for PGD the 10 forward + input-gradient steps
// plus perturb's bookkeeping (input range check, one forward for the success mask, norms); for APGD
// a clean forward, 11 forward + input-gradient evaluations (the start and 10 steps), the step-size
// checkpoints, and the final forward. Throughput per attack step = batch * steps / median seconds.
// Per model, for reading the attack figures against the model's own cost, it also times one
// forward without a tape and one forward + summed cross-entropy + input-only gradient
// (afd::grad(loss, {x}), what every attack step costs at least).
//
// Every figure is the median wall time of one call after warm-up (at least --reps calls and at
// least --min-seconds in all). The last line is "JSON {...}".
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "attacks/attack.h"
#include "nn/models/resnet.h"
#include "nn/models/small_cnn.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tools/bench_harness.h"

namespace {

using namespace afd;

using bench::Options;
using bench::Timing;
using bench::time_ms;

constexpr int64_t kClasses = 10;
constexpr int kSteps = 10;

struct ModelSpec {
  const char* name;
  int64_t batch;
  Shape input;  // one image [C, H, W]
  std::function<std::shared_ptr<nn::Classifier>(Generator&)> make;
};

const ModelSpec kModels[] = {
    {"small_cnn", 128, {1, 28, 28},
     [](Generator& g) { return std::make_shared<nn::SmallCNN>(nn::SmallCNNConfig{}, g); }},
    {"mnist_resnet18", 128, {1, 28, 28},
     [](Generator& g) { return std::make_shared<nn::ResNet18>(nn::ResNetConfig::mnist(kClasses), g); }},
    {"cifar_resnet18", 32, {3, 32, 32},
     [](Generator& g) { return std::make_shared<nn::ResNet18>(nn::ResNetConfig::cifar(kClasses), g); }},
};

struct CaseSpec {
  const char* name;
  const char* attack;  // registry name
  const char* model;   // a kModels name
  double eps, step_size;
};

const CaseSpec kCases[] = {
    {"pgd_linf_small_cnn", "pgd-linf", "small_cnn", 0.3, 0.01},
    {"pgd_linf_mnist_resnet18", "pgd-linf", "mnist_resnet18", 0.3, 0.01},
    {"pgd_linf_cifar_resnet18", "pgd-linf", "cifar_resnet18", 8.0 / 255, 2.0 / 255},
    {"apgd_ce_small_cnn", "apgd-ce", "small_cnn", 0.3, 0},  // APGD's step is 2 eps, then adapts
    {"apgd_ce_mnist_resnet18", "apgd-ce", "mnist_resnet18", 0.3, 0},
    {"apgd_ce_cifar_resnet18", "apgd-ce", "cifar_resnet18", 8.0 / 255, 0},
};

bool registered(const std::string& attack) {
  for (const attacks::AttackInfo& info : attacks::attack_registry())
    if (info.name == attack) return true;
  return false;
}

struct Bench {  // one model with its batch
  std::shared_ptr<nn::Classifier> model;
  Tensor x, random_labels, predicted_labels;
  Timing forward{}, input_grad{};
  bool timed_parts = false;
};

struct Result {
  std::string name, attack, model;
  int64_t batch;
  Timing attack_time;
  int64_t fooled;
};

Bench make_bench(const ModelSpec& spec, Generator& gen) {
  Bench b;
  b.model = spec.make(gen);
  b.model->eval();
  Shape shape{spec.batch};
  shape.insert(shape.end(), spec.input.begin(), spec.input.end());
  b.x = rand(shape, gen);
  std::vector<int64_t> y;
  for (double u : rand({spec.batch}, gen, DType::f64).to_vector<double>())
    y.push_back(std::min<int64_t>(static_cast<int64_t>(u * kClasses), kClasses - 1));
  b.random_labels = Tensor::from_vector<int64_t>(y, {spec.batch});
  NoGradGuard no_grad;
  b.predicted_labels = ops::argmax(b.model->forward(Var(b.x)).data(), 1);
  return b;
}

void time_parts(Bench& b, const Options& o) {
  b.forward = time_ms([&] {
    NoGradGuard no_grad;
    b.model->forward(Var(b.x));
  }, o);
  b.input_grad = time_ms([&] {
    Var xv(b.x, /*requires_grad=*/true);
    Var loss = cross_entropy(b.model->forward(xv), b.random_labels, Reduction::sum);
    std::vector<Var> g = grad({loss}, {xv});
    AFD_CHECK(g[0].defined(), "bench_attacks: no input gradient");
  }, o);
  b.timed_parts = true;
}

Result bench_case(const CaseSpec& c, Bench& b, const Options& o) {
  attacks::AttackConfig cfg;
  cfg.norm = attacks::Norm::linf;
  cfg.eps = c.eps;
  cfg.steps = kSteps;
  if (c.step_size > 0) cfg.step_size = c.step_size;
  cfg.seed = 20261127;
  auto attack = attacks::make_attack(c.attack, cfg);
  const bool apgd = std::string(c.attack).rfind("apgd", 0) == 0;
  const Tensor& y = apgd ? b.predicted_labels : b.random_labels;
  int64_t fooled = 0;
  Timing t = time_ms([&] { fooled = attack->perturb(*b.model, b.x, y).success_count(); }, o);
  AFD_CHECK(!b.model->is_training(), "bench_attacks: {} left the model in train mode", c.name);
  std::fprintf(stderr, "%s: %lld of %lld fooled at the last call\n", c.name, static_cast<long long>(fooled),
               static_cast<long long>(b.x.size(0)));
  return {c.name, c.attack, c.model, b.x.size(0), t, fooled};
}

}  // namespace

int main(int argc, char** argv) try {
  restart_with_runtime_settings(argv, /*omp_passive=*/false);  // OpenBLAS's kernels for this CPU
  Options o = bench::parse_options("bench_attacks", argc, argv, {.warmup = 1, .reps = 3, .min_seconds = 0, .only = ""});
  afd::set_num_threads(o.threads);
  Generator gen(20261127);
  std::map<std::string, Bench> benches;
  for (const ModelSpec& spec : kModels) benches.emplace(spec.name, make_bench(spec, gen));

  std::vector<Result> results;
  std::vector<std::string> skipped;
  bool matched = false;
  for (const CaseSpec& c : kCases) {
    if (!o.only.empty() && o.only != c.name) continue;
    matched = true;
    if (!registered(c.attack)) {
      std::fprintf(stderr, "%s: skipped, no attack '%s' in the registry\n", c.name, c.attack);
      skipped.push_back(c.name);
      continue;
    }
    Bench& b = benches.at(c.model);
    if (!b.timed_parts) time_parts(b, o);
    results.push_back(bench_case(c, b, o));
  }
  AFD_CHECK(matched, "bench_attacks: no case called '{}'", o.only);

  std::string cpu = bench::cpu_and_blas();
  std::printf("afd attack benchmark: f32, %d threads, %s, %d steps per attack\n", o.threads, cpu.c_str(), kSteps);
  std::printf("%-26s %6s %12s %14s %12s %14s\n", "case", "batch", "attack ms", "step img/s", "forward ms",
              "fwd+grad ms");
  for (const Result& r : results) {
    const Bench& b = benches.at(r.model);
    std::printf("%-26s %6lld %12.2f %14.1f %12.2f %14.2f\n", r.name.c_str(), static_cast<long long>(r.batch),
                r.attack_time.median_ms, r.batch * kSteps / (r.attack_time.median_ms * 1e-3), b.forward.median_ms,
                b.input_grad.median_ms);
  }
  for (const std::string& s : skipped) std::printf("%-26s skipped (attack not registered)\n", s.c_str());
  std::printf("JSON {\"impl\": \"afd\", \"threads\": %d, \"precision\": \"f32\", \"cpu\": \"%s\", \"steps\": %d, "
              "\"cases\": {", o.threads, cpu.c_str(), kSteps);
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    const Bench& b = benches.at(r.model);
    std::printf("%s\"%s\": {\"attack\": \"%s\", \"model\": \"%s\", \"batch\": %lld, \"attack_ms\": %.4f, "
                "\"attack_min_ms\": %.4f, \"forward_ms\": %.4f, \"input_grad_ms\": %.4f, \"fooled\": %lld}",
                i ? ", " : "", r.name.c_str(), r.attack.c_str(), r.model.c_str(), static_cast<long long>(r.batch),
                r.attack_time.median_ms, r.attack_time.min_ms, b.forward.median_ms, b.input_grad.median_ms,
                static_cast<long long>(r.fooled));
  }
  std::printf("}, \"skipped\": [");
  for (size_t i = 0; i < skipped.size(); ++i) std::printf("%s\"%s\"", i ? ", " : "", skipped[i].c_str());
  std::printf("]}\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 2;
}
