// GPU benchmark of afd (not a test): forward, training-step and attack-step throughput of the CIFAR
// ResNet18 and the MNIST SmallCNN on one CUDA device, f32, in each GPU precision.
// tools/bench_gpu_torch.py runs the same workloads in PyTorch eager on the same GPU (the PyTorch
// definitions of tests/fixtures/models/make_model_fixtures.py); tools/device_check.sh runs both and
// tools/gpu_table.py prints the ratios.
//
//   bench_gpu [--device cuda:0] [--precision both|strict|tf32] [--batch 128] [--warmup 3] [--reps 20]
//             [--max-seconds 6] [--threads N] [--only MODEL] [--workload forward|train|attack]
//             [--profile-one-step] [--cudnn-benchmark]
//
// Models: cifar_resnet18 (nn::ResNet18, ResNetConfig::cifar(10), input [B, 3, 32, 32]) and
// small_cnn (nn::SmallCNN 32/64/200, input [B, 1, 28, 28]); inputs uniform in [0, 1], labels
// i * 7 mod 10, all resident on the device. Workloads, per model and precision:
//   forward  eval mode, no gradient tape: logits = model(x)
//   train    train mode: mean cross-entropy of model(x), backward, SGD (lr 0.01, momentum 0.9,
//            weight decay 5e-4) step, gradients dropped
//   attack   eval mode, parameters frozen: one PGD-Linf step as bench_attacks times it, i.e.
//            summed cross-entropy, the gradient with respect to the input only, then
//            x <- clip_[0,1](P_eps(x + alpha sign(g))) (CIFAR eps 8/255, alpha 2/255; MNIST 0.3, 0.01)
//            with attacks::sign_step, the step PGD takes
// No step reads a value back to the host; the last training loss is checked after the timing.
//
// Timing: afd::synchronize(device) before the clock starts and before it stops (the timed call is
// step + synchronize, after a synchronize). --warmup untimed steps, then the median of --reps steps
// (fewer, at least 5, only when one warm-up step shows that --reps steps would take longer than
// --max-seconds; the JSON says how many ran). Throughput = batch / median seconds.
// Allocator: device_mallocs (cudaMalloc calls) just before and just after the timed steps, which
// must be equal (no cudaMalloc inside a steady-state step), and peak_bytes over the timed steps.
// Launches: the op layer's kernel counters (kernel_calls) over the last warm-up step, in total and
// by kind (launches_per_step, launches_by_kind; also on --device cpu, where they count calls).
// --cudnn-benchmark: convolution algorithms chosen by timing (set_conv_benchmark), as PyTorch's
// cudnn.benchmark = True (bench_gpu_torch.py --cudnn-benchmark); the heuristics' choice otherwise.
// --profile-one-step: after the warm-up, one step only, between cuda::profiler_start() and
// profiler_stop(), for a profiler that records that range alone (tools/device_check.sh runs
// `ncu --profile-from-start off` over it: the kernels of exactly one step); its time is reported
// with reps 1 and "profiled": true (a profiled step is slower: not a benchmark figure).
//
// A workload that throws is reported with its error and the others still run. Every workload also
// prints a "ROW {...}" line as it finishes (kept if the run is cut short); the last line is
// "JSON {...}". Without a usable device it says so and exits 0.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "attacks/core.h"
#include "autograd/ops.h"
#include "autograd/var.h"
#include "nn/models/resnet.h"
#include "nn/models/small_cnn.h"
#include "nn/optim/optimizer.h"
#include "tensor/backend.h"
#include "tensor/cuda/cuda_info.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tools/bench_harness.h"

namespace {

using namespace afd;
using json = nlohmann::ordered_json;

constexpr SGDOptions kSgd{.lr = 0.01, .momentum = 0.9, .weight_decay = 5e-4};
constexpr int64_t kClasses = 10;

struct ModelSpec {
  const char* name;
  Shape input;  // one image [C, H, W]
  double eps, step_size;  // of the attack step (Linf)
  std::function<std::shared_ptr<nn::Classifier>(Generator&)> make;
};

const ModelSpec kModels[] = {
    {"cifar_resnet18", {3, 32, 32}, 8.0 / 255, 2.0 / 255,
     [](Generator& g) { return std::make_shared<nn::ResNet18>(nn::ResNetConfig::cifar(kClasses), g); }},
    {"small_cnn", {1, 28, 28}, 0.3, 0.01,
     [](Generator& g) { return std::make_shared<nn::SmallCNN>(nn::SmallCNNConfig{}, g); }},
};
const char* const kWorkloads[] = {"forward", "train", "attack"};

// The flags of this tool; the rest go to bench::parse_options.
struct GpuOptions {
  bench::Options common;
  Device device = Device::cuda(0);
  std::vector<Precision> precisions{Precision::strict, Precision::tf32};
  int64_t batch = 128;
  double max_seconds = 6;
  std::string workload;  // empty: all three
  bool profile_one_step = false;
  bool cudnn_benchmark = false;
};

GpuOptions parse_gpu_options(int argc, char** argv) {
  GpuOptions g;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--profile-one-step") {
      g.profile_one_step = true;
      continue;
    }
    if (a == "--cudnn-benchmark") {
      g.cudnn_benchmark = true;
      continue;
    }
    bool ours = a == "--device" || a == "--precision" || a == "--batch" || a == "--max-seconds" || a == "--workload";
    if (!ours) {
      rest.push_back(argv[i]);
      continue;
    }
    AFD_CHECK(i + 1 < argc, "bench_gpu: {} needs a value", a);
    std::string v = argv[++i];
    if (a == "--device") g.device = Device::parse(v);
    else if (a == "--batch") g.batch = std::stoll(v);
    else if (a == "--max-seconds") g.max_seconds = std::stod(v);
    else if (a == "--workload") g.workload = v;
    else if (v == "both") g.precisions = {Precision::strict, Precision::tf32};
    else g.precisions = {parse_precision(v)};
  }
  AFD_CHECK(g.batch > 0, "bench_gpu: --batch must be positive, got {}", g.batch);
  AFD_CHECK(g.workload.empty() || g.workload == "forward" || g.workload == "train" || g.workload == "attack",
            "bench_gpu: --workload must be forward, train or attack, got '{}'", g.workload);
  g.common = bench::parse_options("bench_gpu", static_cast<int>(rest.size()), rest.data(),
                                  {.threads = 2, .warmup = 3, .reps = 20, .min_seconds = 0, .only = ""});
  AFD_CHECK(g.common.reps >= 1, "bench_gpu: --reps must be at least 1, got {}", g.common.reps);
  return g;
}

struct Measured {
  bench::Timing timing{};
  int reps = 0;
  MemoryStats before{}, after{};
  std::array<int64_t, static_cast<size_t>(Kernel::count_)> launches{};  // per step, by kind
};

std::array<int64_t, static_cast<size_t>(Kernel::count_)> kernel_counts() {
  std::array<int64_t, static_cast<size_t>(Kernel::count_)> n{};
  for (size_t k = 0; k < n.size(); ++k) n[k] = kernel_calls(static_cast<Kernel>(k));
  return n;
}

// Warm-up, then the timed steady state between two allocator snapshots.
Measured measure(const std::function<void()>& step, const GpuOptions& g) {
  const Device dev = g.device;
  auto synced_step = [&] {
    step();
    synchronize(dev);
  };
  synchronize(dev);
  // At least --warmup steps and, when there are any, 0.3 s of them: an idle GPU's clocks take a
  // moment to rise, and a 1 ms step would otherwise be timed while they do.
  double last_warmup_s = 0, warmup_s = 0;
  Measured m;
  for (int i = 0; i < g.common.warmup || (g.common.warmup > 0 && warmup_s < 0.3); ++i) {
    auto counts = kernel_counts();
    auto t0 = std::chrono::steady_clock::now();
    synced_step();
    last_warmup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    warmup_s += last_warmup_s;
    auto after = kernel_counts();
    for (size_t k = 0; k < after.size(); ++k) m.launches[k] = after[k] - counts[k];
  }
  if (g.profile_one_step) {
    m.reps = 1;
    m.before = memory_stats(dev);
    if (dev.is_cuda()) cuda::profiler_start();
    auto t0 = std::chrono::steady_clock::now();
    synced_step();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (dev.is_cuda()) cuda::profiler_stop();
    m.timing.median_ms = m.timing.min_ms = ms;
    m.after = memory_stats(dev);
    return m;
  }
  bench::Options timed = g.common;
  timed.warmup = 0;
  if (last_warmup_s * timed.reps > g.max_seconds)
    timed.reps = std::max(5, static_cast<int>(g.max_seconds / last_warmup_s));
  m.reps = timed.reps;
  reset_peak_memory(dev);
  m.before = memory_stats(dev);
  m.timing = bench::time_ms(synced_step, timed);
  m.after = memory_stats(dev);
  return m;
}

// One model on the device with its batch, for one precision.
struct Bench {
  const ModelSpec& spec;
  std::shared_ptr<nn::Classifier> model;
  Tensor x, labels;
};

Bench make_bench(const ModelSpec& spec, const GpuOptions& g, Generator& gen) {
  Bench b{spec, spec.make(gen), {}, {}};
  b.model->to(g.device);
  Shape shape{g.batch};
  shape.insert(shape.end(), spec.input.begin(), spec.input.end());
  b.x = rand(shape, gen, DType::f32, g.device);
  std::vector<int64_t> y(g.batch);
  for (int64_t i = 0; i < g.batch; ++i) y[i] = (i * 7) % kClasses;
  b.labels = Tensor::from_vector<int64_t>(y, {g.batch}).to(g.device);
  return b;
}

Measured run_forward(Bench& b, const GpuOptions& g) {
  b.model->eval();
  return measure([&] {
    NoGradGuard no_grad;
    b.model->forward(Var(b.x));
  }, g);
}

Measured run_train(Bench& b, const GpuOptions& g) {
  b.model->train();
  b.model->set_requires_grad(true);
  SGD opt(b.model->parameters(), kSgd);
  Var loss;
  Measured m = measure([&] {
    loss = cross_entropy(b.model->forward(Var(b.x)), b.labels, Reduction::mean);
    loss.backward();
    opt.step();
    opt.zero_grad();
  }, g);
  double value = loss.item();
  AFD_CHECK(std::isfinite(value), "bench_gpu: {} training loss became {}", b.spec.name, value);
  std::fprintf(stderr, "%s: loss %.4f at the last training step\n", b.spec.name, value);
  b.model->eval();
  return m;
}

Measured run_attack(Bench& b, const GpuOptions& g) {
  b.model->eval();
  b.model->set_requires_grad(false);  // d/dx only: no weight gradients
  const Tensor steps = attacks::sign_steps(std::vector<double>(g.batch, b.spec.step_size),
                                           std::vector<double>(g.batch, b.spec.eps), b.x);  // as PGD::run
  Tensor x_adv = b.x;
  Measured m;
  try {
    m = measure([&] {
      Var xv(x_adv, /*requires_grad=*/true);
      Var loss = cross_entropy(b.model->forward(xv), b.labels, Reduction::sum);
      Tensor d_input = grad({loss}, {xv})[0].data();
      x_adv = attacks::sign_step(b.x, x_adv, d_input, steps);  // PGD's own Linf step
    }, g);
  } catch (...) {
    b.model->set_requires_grad(true);
    throw;
  }
  b.model->set_requires_grad(true);
  return m;
}

json measured_json(const Measured& m, int64_t batch) {
  json by_kind = json::object();
  int64_t total = 0;
  for (size_t k = 0; k < m.launches.size(); ++k) {
    if (m.launches[k] == 0) continue;
    by_kind[kernel_name(static_cast<Kernel>(k))] = m.launches[k];
    total += m.launches[k];
  }
  return {{"median_ms", m.timing.median_ms},
          {"min_ms", m.timing.min_ms},
          {"images_per_s", batch / (m.timing.median_ms * 1e-3)},
          {"reps", m.reps},
          {"device_mallocs_before", m.before.device_mallocs},
          {"device_mallocs_after", m.after.device_mallocs},
          {"peak_bytes", m.after.peak_bytes},
          {"launches_per_step", total},
          {"launches_by_kind", by_kind}};
}

// One line of JSON; bytes that are not UTF-8 (in an error message) become U+FFFD instead of throwing.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string device_label(Device dev) {
  if (dev.is_cpu()) return bench::cpu_model();
  try {
    return cuda::device_name(dev.index);
  } catch (const std::exception& e) {
    return std::string("unknown (") + e.what() + ")";
  }
}

}  // namespace

int main(int argc, char** argv) try {
  GpuOptions g = parse_gpu_options(argc, argv);
  if (!backend_available(g.device)) {
    std::printf("bench_gpu: no usable %s device (CUDA built: %s, visible devices: %d): nothing to benchmark\n",
                g.device.str().c_str(), cuda::built_with_cuda() ? "yes" : "no", cuda::device_count());
    return 0;
  }
  set_num_threads(g.common.threads);
  set_conv_benchmark(g.cudnn_benchmark);
  const std::string device_name = device_label(g.device);
  const std::string libraries = g.device.is_cuda() ? cuda::library_versions() : "";
  std::printf("afd GPU benchmark: %s (%s), f32, batch %lld, %d warm-up, median of %d%s\n", g.device.str().c_str(),
              device_name.c_str(), static_cast<long long>(g.batch), g.common.warmup, g.common.reps,
              g.cudnn_benchmark ? ", cuDNN algorithms by timing" : "");
  if (!libraries.empty()) std::printf("libraries: %s\n", libraries.c_str());
  std::fflush(stdout);

  json results = json::object();
  bool matched = false;
  for (Precision p : g.precisions) {
    set_precision(p);
    const std::string prec = precision_name(p);
    for (const ModelSpec& spec : kModels) {
      if (!g.common.only.empty() && g.common.only != spec.name) continue;
      matched = true;
      Generator gen(20261127);
      std::unique_ptr<Bench> b;
      std::string setup_error;
      try {
        b = std::make_unique<Bench>(make_bench(spec, g, gen));
      } catch (const std::exception& e) {
        setup_error = std::string("setup: ") + e.what();
      }
      for (const char* workload : kWorkloads) {
        if (!g.workload.empty() && g.workload != workload) continue;
        json row;
        if (!b) {
          row = {{"error", setup_error}};
        } else {
          try {
            std::string w = workload;
            Measured m = w == "forward" ? run_forward(*b, g) : w == "train" ? run_train(*b, g) : run_attack(*b, g);
            row = measured_json(m, g.batch);
            if (g.profile_one_step) row["profiled"] = true;
          } catch (const std::exception& e) {
            row = {{"error", e.what()}};
          }
        }
        results[prec][spec.name][workload] = row;
        json line = {{"precision", prec}, {"model", spec.name}, {"workload", workload}};
        line.update(row);
        std::printf("ROW %s\n", dump(line).c_str());
        std::fflush(stdout);
      }
    }
  }
  AFD_CHECK(matched, "bench_gpu: no model called '{}'", g.common.only);

  std::printf("%-9s %-16s %-8s %6s %10s %12s %5s %17s %10s\n", "precision", "model", "workload", "batch",
              "median ms", "images/s", "reps", "mallocs bef/aft", "peak MiB");
  for (auto& [prec, models] : results.items())
    for (auto& [model, workloads] : models.items())
      for (auto& [workload, r] : workloads.items()) {
        if (r.contains("error")) {
          std::printf("%-9s %-16s %-8s FAILED: %s\n", prec.c_str(), model.c_str(), workload.c_str(),
                      r["error"].get<std::string>().c_str());
          continue;
        }
        int64_t before = r["device_mallocs_before"], after = r["device_mallocs_after"];
        std::printf("%-9s %-16s %-8s %6lld %10.3f %12.1f %5d %8lld/%-8lld %10.1f%s\n", prec.c_str(), model.c_str(),
                    workload.c_str(), static_cast<long long>(g.batch), r["median_ms"].get<double>(),
                    r["images_per_s"].get<double>(), r["reps"].get<int>(), static_cast<long long>(before),
                    static_cast<long long>(after), r["peak_bytes"].get<double>() / (1 << 20),
                    before == after ? "" : "  cudaMalloc in the steady state!");
      }
  json record = {{"impl", "afd"},         {"device", g.device.str()}, {"gpu", device_name},
                 {"libraries", libraries}, {"dtype", "f32"},          {"batch", g.batch},
                 {"warmup", g.common.warmup}, {"reps", g.common.reps}, {"cudnn_benchmark", g.cudnn_benchmark},
                 {"results", results}};
  std::printf("JSON %s\n", dump(record).c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 2;
}
