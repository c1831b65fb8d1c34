// What the CPU benchmarks (bench_cpu, bench_models, bench_attacks) share: their common flags, the
// timing loop and the CPU's name (with its BLAS kernels) for the report.
//
//   bench::Options o = bench::parse_options("bench_models", argc, argv, {.warmup = 1, .reps = 3});
//   bench::Timing t = bench::time_ms([&] { model.forward(x); }, o);   // t.median_ms, t.min_ms
#pragma once
#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "tensor/backend.h"
#include "tensor/cpu/cpu_backend.h"
#include "tensor/error.h"

namespace afd::bench {

struct Options {
  int threads = 2;
  int warmup = 5;            // untimed calls first
  int reps = 20;             // at least this many timed calls ...
  double min_seconds = 1.0;  // ... and at least this much time in all
  std::string only;          // run just this workload (for profiling)
  std::string conv = "automatic";  // CPU convolution algorithm: automatic, im2col or direct
};

struct Timing {
  double median_ms, min_ms;
};

// --threads N --warmup N --reps N --min-seconds S --only NAME --conv ALGORITHM, over `defaults`
// (--conv sets the CPU convolution algorithm, cpu::set_conv_algorithm); an unknown flag
// or a missing value is an error naming the tool and the flag.
inline Options parse_options(const char* tool, int argc, char** argv, Options defaults) {
  Options o = defaults;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      AFD_CHECK(i + 1 < argc, "{}: {} needs a value", tool, a);
      return argv[++i];
    };
    if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--warmup") o.warmup = std::stoi(next());
    else if (a == "--reps") o.reps = std::stoi(next());
    else if (a == "--min-seconds") o.min_seconds = std::stod(next());
    else if (a == "--only") o.only = next();
    else if (a == "--conv") o.conv = next();
    else AFD_FAIL("{}: unknown argument '{}' (see the comment at the top of tools/{}.cpp)", tool, a, tool);
  }
  if (o.conv == "automatic") cpu::set_conv_algorithm(cpu::ConvAlgorithm::automatic);
  else if (o.conv == "im2col") cpu::set_conv_algorithm(cpu::ConvAlgorithm::im2col);
  else if (o.conv == "direct") cpu::set_conv_algorithm(cpu::ConvAlgorithm::direct);
  else AFD_FAIL("{}: --conv '{}': expected automatic, im2col or direct", tool, o.conv);
  return o;
}

// Median (and minimum) milliseconds of fn() after `warmup` untimed calls.
inline Timing time_ms(const std::function<void()>& fn, const Options& o) {
  for (int i = 0; i < o.warmup; ++i) fn();
  std::vector<double> times;
  double total = 0;
  while ((static_cast<int>(times.size()) < o.reps || total < o.min_seconds) && times.size() < 10000) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    times.push_back(s * 1e3);
    total += s;
  }
  std::sort(times.begin(), times.end());
  size_t n = times.size();
  return {n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]), times[0]};
}

// "AMD EPYC ..." from /proc/cpuinfo, or "unknown".
inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      std::string m = line.substr(line.find(':') + 1);
      return m.erase(0, m.find_first_not_of(' '));
    }
  return "unknown";
}

// The CPU's name and the BLAS kernels in use, for the reports: "AMD EPYC ..., OpenBLAS 0.3.21,
// Haswell kernels" (the same model runs 2-3x apart on two kernel sets).
inline std::string cpu_and_blas() { return fmt::format("{}, {}", cpu_model(), cpu_blas_info()); }

}  // namespace afd::bench
