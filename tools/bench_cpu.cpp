// CPU benchmark (not a test): conv2d forward and backward for the two layers of the small MNIST
// CNN, the layers of the MNIST ResNet18 and the CIFAR ResNet18's stages (kLayers), and one whole
// training step of the small CNN, at batch 128 (the CIFAR layers 32), f32. tools/bench_cpu_torch.py runs
// the same workloads in PyTorch; tools/bench_cpu.sh runs both side by side at the same thread
// count and prints the ratios.
//
//   bench_cpu [--threads 2] [--warmup 5] [--reps 20] [--min-seconds 1.0] [--only NAME]
//       [--conv automatic|im2col|direct]   (the CPU convolution algorithm; automatic by default)
//
// Every figure is the median wall time of one call after warm-up (at least --reps calls and at
// least --min-seconds in all); the minimum is reported too. The last line of output is "JSON {...}" for the driver script.
//
// The small CNN (input x [128, 1, 28, 28], labels [128]):
//   conv(1->32, 3x3, pad 1, no bias) - BN(train) - ReLU - maxpool 2   -> [128, 32, 14, 14]
//   conv(32->64, 3x3, pad 1, no bias) - BN(train) - ReLU - maxpool 2  -> [128, 64, 7, 7]
//   flatten - linear(3136 -> 10) - cross-entropy (mean)
//   backward; plain SGD (lr 0.01, no momentum): p -= lr dp.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "autograd/var.h"
#include "tensor/backend.h"
#include "tools/bench_harness.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

namespace {

using namespace afd;

constexpr int64_t kBatch = 128;
constexpr double kLearningRate = 0.01;

using bench::Options;
using bench::Timing;
using bench::time_ms;

struct Result {
  std::string name;
  Timing t;       // milliseconds per call
  double gflop;   // floating-point work of one call (multiply-adds count 2)
};

// Weights uniform in +-1/sqrt(fan_in), as PyTorch's default initialisation bounds them.
Tensor init_weight(const Shape& shape, int64_t fan_in, Generator& gen) {
  double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return rand(shape, gen, DType::f32, Device::cpu(), -bound, bound);
}

// ---- conv2d layers ------------------------------------------------------------------------------
struct ConvLayer {
  const char* name;
  int64_t C, K, H, W, stride;  // 3x3, pad 1: output K x P x Q
  int64_t batch = kBatch;
  int64_t P() const { return (H - 1) / stride + 1; }
  int64_t Q() const { return (W - 1) / stride + 1; }
  // Nominal work: every tap counted, also those on the zero padding (on a 1x1 map 8 of 9 are).
  double gflop() const { return 2.0 * batch * K * C * 9 * P() * Q() * 1e-9; }
};
constexpr ConvLayer kLayers[] = {
    {"conv1", 1, 32, 28, 28, 1}, {"conv2", 32, 64, 14, 14, 1},  // the small CNN below
    // the layers of the paper's MNIST ResNet18 (widths 16/32/48/64, a stride-2 stem)
    {"r18_stem", 1, 16, 28, 28, 2}, {"r18_14x14_s2", 16, 16, 14, 14, 2},
    {"r18_7x7", 16, 16, 7, 7, 1}, {"r18_4x4", 32, 32, 4, 4, 1}, {"r18_4x4_s2", 32, 48, 4, 4, 2},
    {"r18_2x2", 48, 48, 2, 2, 1}, {"r18_2x2_s2", 48, 64, 2, 2, 2}, {"r18_1x1", 64, 64, 1, 1, 1},
    // the CIFAR ResNet18's four stages and one downsampling conv, at batch 32 (as bench_models)
    {"c18_32x32", 64, 64, 32, 32, 1, 32}, {"c18_32x32_s2", 64, 128, 32, 32, 2, 32},
    {"c18_16x16", 128, 128, 16, 16, 1, 32}, {"c18_8x8", 256, 256, 8, 8, 1, 32},
    {"c18_4x4", 512, 512, 4, 4, 1, 32}};

void bench_conv(const ConvLayer& l, const Options& o, Generator& gen, std::vector<Result>& out) {
  Conv2dParams p{l.stride, 1};
  Tensor x = randn({l.batch, l.C, l.H, l.W}, gen);
  Tensor w = init_weight({l.K, l.C, 3, 3}, l.C * 9, gen);
  Tensor dy = randn({l.batch, l.K, l.P(), l.Q()}, gen);
  std::string n = l.name;
  auto want = [&](const std::string& name) { return o.only.empty() || o.only == name; };
  if (want(n + "_fwd"))
    out.push_back({n + "_fwd", time_ms([&] { ops::conv2d(x, w, Tensor(), p); }, o), l.gflop()});
  if (want(n + "_bwd_data"))
    out.push_back({n + "_bwd_data",
                   time_ms([&] { ops::conv2d_backward_data(dy, w, x.shape(), p); }, o), l.gflop()});
  if (want(n + "_bwd_filter"))
    out.push_back({n + "_bwd_filter",
                   time_ms([&] { ops::conv2d_backward_filter(dy, x, w.shape(), p, false); }, o),
                   l.gflop()});
  if (want(n + "_bwd"))
    out.push_back({n + "_bwd", time_ms([&] {
                     ops::conv2d_backward_data(dy, w, x.shape(), p);
                     ops::conv2d_backward_filter(dy, x, w.shape(), p, false);
                   }, o),
                   2 * l.gflop()});
}

// ---- the small CNN training step --------------------------------------------------------------
struct SmallCnn {
  Var w1, g1, b1, w2, g2, b2, wl, bl;
  Tensor mean1, var1, mean2, var2;  // BN running statistics

  explicit SmallCnn(Generator& gen)
      : w1(init_weight({32, 1, 3, 3}, 9, gen), true),
        g1(Tensor::ones({32}), true),
        b1(Tensor::zeros({32}), true),
        w2(init_weight({64, 32, 3, 3}, 288, gen), true),
        g2(Tensor::ones({64}), true),
        b2(Tensor::zeros({64}), true),
        wl(init_weight({10, 3136}, 3136, gen), true),
        bl(init_weight({10}, 3136, gen), true),
        mean1(Tensor::zeros({32})),
        var1(Tensor::ones({32})),
        mean2(Tensor::zeros({64})),
        var2(Tensor::ones({64})) {}

  std::vector<Var*> params() { return {&w1, &g1, &b1, &w2, &g2, &b2, &wl, &bl}; }

  Var logits(const Var& x) {
    Var h = conv2d(x, w1, Var(), 1, 1);                               // [N, 32, 28, 28]
    h = max_pool2d(relu(batch_norm(h, g1, b1, mean1, var1, true)), 2, 2);  // [N, 32, 14, 14]
    h = conv2d(h, w2, Var(), 1, 1);                                   // [N, 64, 14, 14]
    h = max_pool2d(relu(batch_norm(h, g2, b2, mean2, var2, true)), 2, 2);  // [N, 64, 7, 7]
    return linear(flatten(h), wl, bl);                                // [N, 10]
  }

  // One step: forward, mean cross-entropy, backward, p -= lr dp. Returns the loss.
  double train_step(const Var& x, const Tensor& labels) {
    Var loss = cross_entropy(logits(x), labels);
    loss.backward();
    NoGradGuard no_grad;
    for (Var* p : params()) {
      Tensor data = p->data();
      data.copy_(ops::sub(data, ops::mul_scalar(p->grad(), kLearningRate)));
      p->zero_grad();
    }
    return loss.item();
  }
};

double train_step_gflop() {
  // Forward conv1 + conv2 + linear; backward: filter gradients of all three and data gradients of
  // conv2 and linear (the input needs no gradient). BN, ReLU, pooling and the loss are not counted.
  double c1 = kLayers[0].gflop(), c2 = kLayers[1].gflop(), fc = 2.0 * kBatch * 3136 * 10 * 1e-9;
  return 2 * c1 + 3 * c2 + 3 * fc;
}

void bench_train_step(const Options& o, Generator& gen, std::vector<Result>& out) {
  SmallCnn model(gen);
  Var x(randn({kBatch, 1, 28, 28}, gen));
  std::vector<int64_t> y(kBatch);
  for (int64_t i = 0; i < kBatch; ++i) y[i] = (i * 7) % 10;
  Tensor labels = Tensor::from_vector<int64_t>(y, {kBatch});
  double first = model.train_step(x, labels), last = first;
  Timing t = time_ms([&] { last = model.train_step(x, labels); }, o);
  AFD_CHECK(std::isfinite(last), "train_step: loss became {}", last);
  std::fprintf(stderr, "train_step: loss %.4f at the first step, %.4f at the last\n", first, last);
  out.push_back({"train_step", t, train_step_gflop()});
}

}  // namespace

int main(int argc, char** argv) try {
  restart_with_runtime_settings(argv, /*omp_passive=*/false);  // OpenBLAS's kernels for this CPU
  Options o = bench::parse_options("bench_cpu", argc, argv, {});
  afd::set_num_threads(o.threads);
  Generator gen(20261127);
  std::vector<Result> results;
  for (const ConvLayer& l : kLayers) bench_conv(l, o, gen, results);
  if (o.only.empty() || o.only == "train_step") bench_train_step(o, gen, results);

  std::string cpu = bench::cpu_and_blas();
  std::printf("afd CPU benchmark: batch %lld, f32, %d threads, %s\n", static_cast<long long>(kBatch),
              o.threads, cpu.c_str());
  std::printf("%-18s %10s %10s %10s\n", "workload", "median ms", "min ms", "GFLOP/s");
  for (const Result& r : results)
    std::printf("%-18s %10.3f %10.3f %10.1f\n", r.name.c_str(), r.t.median_ms, r.t.min_ms,
                r.gflop / (r.t.median_ms * 1e-3));
  std::printf("JSON {\"impl\": \"afd\", \"threads\": %d, \"precision\": \"f32\", \"batch\": %lld, \"cpu\": \"%s\", "
              "\"workloads\": {", o.threads, static_cast<long long>(kBatch), cpu.c_str());
  for (size_t i = 0; i < results.size(); ++i)
    std::printf("%s\"%s\": {\"ms\": %.4f, \"min_ms\": %.4f, \"gflop\": %.5f}", i ? ", " : "",
                results[i].name.c_str(), results[i].t.median_ms, results[i].t.min_ms, results[i].gflop);
  std::printf("}}\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 2;
}
