// The CUDA side of the build: libraries link, and on a machine with a GPU a kernel launches.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "tensor/backend.h"
#include "tensor/cuda/cuda_info.h"
#include "tensor/cuda/fast_divmod.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/support/checks.h"

using namespace afd;

TEST(Cuda, LibrariesLinkAndReportVersions) {
  if (!cuda::built_with_cuda()) GTEST_SKIP() << "built without CUDA (meson -Dcuda=disabled or no nvcc)";
  const std::string versions = cuda::library_versions();
  // Each library answers its version query (a query that fails leaves 0), and cuDNN and NCCL are the
  // majors the code is written for: cuDNN 9 (version 9xxyy), NCCL 2 (2xxyy).
  int runtime = 0, cublas = 0, minor = 0, patch = 0, cudnn = 0, nccl = 0;
  ASSERT_EQ(std::sscanf(versions.c_str(), "CUDA runtime %d, cuBLAS %d.%d.%d, cuDNN %d, NCCL %d", &runtime, &cublas,
                        &minor, &patch, &cudnn, &nccl),
            6)
      << versions;
  EXPECT_GT(runtime, 0) << versions;
  EXPECT_GT(cublas, 0) << versions;
  EXPECT_EQ(cudnn / 10000, 9) << versions;
  EXPECT_EQ(nccl / 10000, 2) << versions;
  std::cout << "[ info ] " << versions << ", visible devices: " << cuda::device_count() << "\n";
}

TEST(Cuda, KernelLaunchesAndCopiesBack) {
  if (!cuda::built_with_cuda()) GTEST_SKIP() << "built without CUDA";
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device is visible on this machine";
  std::vector<float> out(1000, 0.0f);
  std::string name = cuda::smoke_test(1000, 2.5f, out.data());
  for (float v : out) ASSERT_EQ(v, 2.5f);
  std::cout << "[ info ] ran on " << name << "\n";
}

// The divider of the broadcasting and batch-norm kernels (tensor/cuda/fast_divmod.h), on the host:
// n / d and n % d for every divisor shape (1, powers of two and their neighbours, small, large,
// 2^32 - 1) and numerators at both ends of the 32-bit range, around multiples of d, and random.
TEST(FastDivmod, EqualsIntegerDivision) {
  std::vector<uint32_t> divisors;
  for (uint32_t d = 1; d <= 2000; ++d) divisors.push_back(d);
  for (int s = 11; s < 32; ++s)
    for (int64_t delta : {-1, 0, 1}) divisors.push_back(static_cast<uint32_t>((int64_t(1) << s) + delta));
  for (uint32_t d : {3072u, 50176u, 802816u, 1000003u, 0x7fffffffu, 0x80000001u, 0xfffffffeu, 0xffffffffu})
    divisors.push_back(d);
  uint64_t state = 88172645463325252ull;  // xorshift64: the same numerators on every run
  auto next = [&state] {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return static_cast<uint32_t>(state >> 16);
  };
  int64_t checked = 0;
  for (uint32_t d : divisors) {
    const afd::cuda::FastDivmod f(d);
    std::vector<uint32_t> numerators{0u, 1u, d - 1, d, 0x7fffffffu, 0x80000000u, 0xfffffffeu, 0xffffffffu};
    for (uint32_t k : {1u, 2u, 7u, 1000u, 65537u}) {
      const uint64_t multiple = uint64_t(d) * k;
      if (multiple > 0xffffffffull) continue;
      for (int64_t delta : {-1, 0, 1})
        if (int64_t(multiple) + delta >= 0 && int64_t(multiple) + delta <= 0xffffffffll)
          numerators.push_back(static_cast<uint32_t>(int64_t(multiple) + delta));
    }
    for (int i = 0; i < 200; ++i) numerators.push_back(next());
    for (uint32_t n : numerators) {
      uint32_t q = 0, r = 0;
      f.divmod(n, q, r);
      ASSERT_EQ(q, n / d) << n << " / " << d;
      ASSERT_EQ(r, n % d) << n << " % " << d;
      ++checked;
    }
  }
  EXPECT_GT(checked, 400000);
}

// ---- the CUDA backend's own behaviour (op-by-op parity with the CPU: test_cuda_parity.cpp) ---------
namespace {
bool have_gpu() { return backend_available(Device::cuda(0)); }
const char* kNoGpu = "no CUDA device is visible on this machine (or the build has no CUDA)";
}  // namespace

TEST(CudaBackend, SteadyStateAllocationsComeFromTheCache) {
  if (!have_gpu()) GTEST_SKIP() << kNoGpu;
  const Device gpu = Device::cuda(0);
  Generator g(1);
  auto step = [&] {  // a few temporaries of assorted sizes, freed at the end
    Tensor a = rand({64, 300}, g, DType::f32, gpu), b = rand({300, 17}, g, DType::f32, gpu);
    Tensor c = ops::relu(ops::matmul(a, b));
    return ops::sum(c).item_double();
  };
  step();
  int64_t before = memory_stats(gpu).device_mallocs;
  for (int i = 0; i < 5; ++i) step();
  MemoryStats after = memory_stats(gpu);
  EXPECT_EQ(after.device_mallocs, before) << "cudaMalloc inside a repeated step";
  EXPECT_GT(after.cached_bytes, 0);
  EXPECT_GE(after.peak_bytes, after.in_use_bytes);
  std::cout << "[ info ] in use " << after.in_use_bytes << " B, peak " << after.peak_bytes << " B, cached "
            << after.cached_bytes << " B, cudaMalloc calls " << after.device_mallocs << "\n";
}

TEST(CudaBackend, OutOfMemoryIsAClearErrorAndTheDeviceStaysUsable) {
  if (!have_gpu()) GTEST_SKIP() << kNoGpu;
  const Device gpu = Device::cuda(0);
  afd::testing::expect_error([&] { Tensor huge({int64_t(1) << 46}, DType::f32, gpu); }, "out of memory");
  Tensor ok = Tensor::full({10}, 2.0, DType::f32, gpu);
  EXPECT_EQ(ops::sum(ok).item<float>(), 20.0f);
}

// The checks queue on the stream without a host wait (cuda_backend.cpp, "index checks"): the error
// comes where the host next reads back or synchronises, and names the first failing op.
TEST(CudaBackend, IndexOutOfRangeIsNamedAsOnTheCpu) {
  if (!have_gpu()) GTEST_SKIP() << kNoGpu;
  const Device gpu = Device::cuda(0);
  auto on_gpu = [&](std::vector<int64_t> v) { return Tensor::from_vector<int64_t>(v, {int64_t(v.size())}).to(gpu); };
  Tensor logits = Tensor::zeros({3, 4}, DType::f32, gpu);
  Tensor loss = ops::cross_entropy(logits, on_gpu({0, 7, 1}));
  afd::testing::expect_error([&] { loss.to(Device::cpu()); }, "cross_entropy (label): index 7 at position 1 is out of range [0, 4)");

  // Two failing checks before a synchronize: the first is named. The kernels skip bad entries
  // (index_select writes zeros), and compute-sanitizer's memcheck sees no access outside a tensor.
  Tensor table = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {5, 2}).to(gpu);
  Tensor rows = ops::index_select(table, on_gpu({4, -1}));
  Tensor summed = ops::index_add({5, 2}, on_gpu({9}), Tensor::ones({1, 2}, DType::f32, gpu));
  afd::testing::expect_error([&] { afd::synchronize(gpu); }, "index_select: index -1 at position 1 is out of range [0, 5)");
  EXPECT_EQ(rows.to_vector<float>(), std::vector<float>({9, 10, 0, 0}));
  EXPECT_EQ(summed.to_vector<float>(), std::vector<float>(10, 0.0f));

  Tensor picked = ops::gather(table, 1, Tensor::from_vector<int64_t>({1, 2, 0, 0, 0, 0, 0, 0, 0, 0}, {5, 2}).to(gpu));
  Tensor spread = ops::scatter_add({5, 2}, 1, on_gpu({0, 0, 0, 0, 0, 0, 0, 0, 5, 1}).reshape({5, 2}), table);
  afd::testing::expect_error([&] { picked.to(Device::cpu()); }, "gather: index 2 at position 1 is out of range [0, 2)");
  EXPECT_EQ(picked.to_vector<float>(), std::vector<float>({2, 0, 3, 3, 5, 5, 7, 7, 9, 9}));
  EXPECT_EQ(spread.to_vector<float>(), std::vector<float>({3, 0, 7, 0, 11, 0, 15, 0, 0, 10}));

  // After an error the checks start afresh: a good batch reads back without one.
  Tensor ok = ops::cross_entropy(logits, on_gpu({0, 3, 1}));
  EXPECT_NEAR(ops::sum(ok).item<float>(), 3 * std::log(4.0f), 1e-5);
}

// Uploads go through a ring of pinned buffers without waiting for the stream (HostStaging): more
// uploads than buffers, of growing sizes, each from a temporary that dies at once, with kernels
// queued between them, and one above the staging limit (64 MiB) that takes the plain path.
TEST(CudaBackend, UploadsArriveIntactThroughTheStagingRing) {
  if (!have_gpu()) GTEST_SKIP() << kNoGpu;
  const Device gpu = Device::cuda(0);
  std::vector<Tensor> up;
  for (int i = 0; i < 13; ++i) {
    const int64_t n = 1000 * (i + 1) * (i + 1);
    up.push_back(Tensor::full({n}, double(i + 1), DType::f64).to(gpu));
    up.back() = ops::mul(up.back(), up.back());  // a kernel between two uploads
  }
  for (int i = 0; i < 13; ++i) {
    const double n = 1000.0 * (i + 1) * (i + 1);
    EXPECT_EQ(ops::sum(up[i]).item<double>(), n * (i + 1) * (i + 1)) << "upload " << i;
  }
  const int64_t big = (int64_t(64) << 20) / 8 + 1;  // one double over the limit
  Tensor large = Tensor::arange(0, double(big), 1, DType::f64).to(gpu);
  std::vector<double> back = ops::narrow(large, 0, big - 3, 3).to_vector<double>();
  EXPECT_EQ(back, std::vector<double>({double(big - 3), double(big - 2), double(big - 1)}));
}

// Slab copies (cat, narrow) whose rows are over 2 GiB, past a 2-D copy's largest pitch: along dim
// 0 (one row) and along dim 1 (two rows of 2 GiB + 64 bytes each). 16 GiB of device memory;
// skipped where there is not that much.
TEST(CudaBackend, SlabCopiesWithRowsOver2GiB) {
  if (!have_gpu()) GTEST_SKIP() << kNoGpu;
  const Device gpu = Device::cuda(0);
  const int64_t n = (int64_t(1) << 29) + 16;  // floats per row
  try {
    Tensor a = Tensor::full({2, n}, 1.0, DType::f32, gpu), b = Tensor::full({2, n}, 2.0, DType::f32, gpu);
    auto at = [](const Tensor& t, int64_t row, int64_t col, int64_t len) {
      return ops::narrow(ops::narrow(t, 0, row, 1), 1, col, len).to_vector<float>();
    };
    Tensor wide = cat({a, b}, 1);  // [2, 2n]: rows of 4 GiB from rows of 2 GiB
    for (int64_t row : {0, 1}) EXPECT_EQ(at(wide, row, n - 2, 4), std::vector<float>({1, 1, 2, 2})) << "row " << row;
    EXPECT_EQ(at(wide, 1, 2 * n - 1, 1), std::vector<float>({2}));
    wide = Tensor();
    Tensor tall = cat({a, b}, 0);  // [4, n]: one row of 8 GiB
    EXPECT_EQ(at(tall, 1, n - 1, 1), std::vector<float>({1}));
    EXPECT_EQ(at(tall, 2, 0, 1), std::vector<float>({2}));
  } catch (const afd::Error& e) {
    if (std::string(e.what()).find("out of memory") == std::string::npos) throw;
    GTEST_SKIP() << "needs 16 GiB of device memory: " << e.what();
  }
}

// An index, label, pooling index or batch-norm statistic on the other device than the data is
// refused by name before any backend sees a pointer it cannot use.
TEST(CudaBackend, ArgumentsOnTheOtherDeviceAreRefused) {
  if (!have_gpu()) GTEST_SKIP() << kNoGpu;
  using afd::testing::expect_error;
  const Device gpu = Device::cuda(0), cpu = Device::cpu();
  Tensor table = Tensor::zeros({5, 2}, DType::f32, gpu);
  Tensor idx = Tensor::from_vector<int64_t>({0, 1}, {2});
  expect_error([&] { ops::index_select(table, idx); }, "index_select: index is on cpu, the data on cuda:0");
  expect_error([&] { ops::index_add({5, 2}, idx, Tensor::ones({2, 2}, DType::f32, gpu)); },
               "index_add: index is on cpu, the data on cuda:0");
  expect_error([&] { ops::gather(table, 1, Tensor::zeros({5, 2}, DType::i64)); }, "gather: index is on cpu, the data on cuda:0");
  expect_error([&] { ops::scatter_add({5, 2}, 1, Tensor::zeros({5, 2}, DType::i64), table); },
               "scatter_add: index is on cpu, the data on cuda:0");
  expect_error([&] { ops::cross_entropy(Tensor::zeros({2, 3}, DType::f32, gpu), idx); },
               "cross_entropy: labels is on cpu, the data on cuda:0");
  // The other way round: a GPU index with CPU data.
  expect_error([&] { ops::index_select(Tensor::zeros({5, 2}), idx.to(gpu)); }, "index_select: index is on cuda:0, the data on cpu");
  auto [pooled, where] = ops::max_pool2d(Tensor::zeros({1, 1, 4, 4}, DType::f32, gpu), Pool2dParams{.kernel = 2, .stride = 2});
  expect_error([&] { ops::max_pool2d_backward(pooled, where.to(cpu), {1, 1, 4, 4}); },
               "max_pool2d_backward: indices is on cpu, the data on cuda:0");
  Tensor x = Tensor::ones({2, 3, 2, 2}, DType::f32, gpu), gamma = Tensor::ones({3}, DType::f32, gpu);
  expect_error([&] { ops::batch_norm_apply(x, gamma, gamma, Tensor::zeros({3}), gamma); },
               "batch_norm: mean is on cpu, the data on cuda:0");
  auto [y, stats] = ops::batch_norm_train(x, gamma, gamma, 1e-5);
  stats.invstd = stats.invstd.to(cpu);
  expect_error([&] { ops::batch_norm_backward(y, x, gamma, stats, true, true, true); },
               "batch_norm_backward: invstd is on cpu, the data on cuda:0");
}

// Restores a global setting when a test ends, also when it fails by an exception.
template <class T>
struct Restore {
  T (*get)();
  void (*set)(T);
  T old = get();
  ~Restore() { set(old); }
};

TEST(CudaBackend, DeterministicModeRepeatsAConvolutionStepBitForBit) {
  if (!have_gpu()) GTEST_SKIP() << kNoGpu;
  const Device gpu = Device::cuda(0);
  Restore<bool> restore{deterministic, set_deterministic};
  set_deterministic(true);
  Generator g(3);
  Tensor x = rand({16, 8, 12, 12}, g, DType::f32, gpu), w = randn({16, 8, 3, 3}, g, DType::f32, gpu);
  auto run = [&] {
    Conv2dParams p{.stride = 1, .padding = 1};
    Tensor y = ops::conv2d(x, w, Tensor(), p);
    auto [pooled, idx] = ops::max_pool2d(ops::relu(y), Pool2dParams{.kernel = 3, .stride = 2, .padding = 1});
    Tensor dy = ops::max_pool2d_backward(pooled, idx, y.shape());  // overlapping windows
    auto [dw, db] = ops::conv2d_backward_filter(dy, x, w.shape(), p, false);
    Tensor dx = ops::conv2d_backward_data(dy, w, x.shape(), p);
    return std::vector<std::vector<float>>{dw.to_vector<float>(), dx.to_vector<float>(), ops::sum(dy, {0, 2, 3}).to_vector<float>()};
  };
  auto first = run(), second = run();
  for (size_t k = 0; k < first.size(); ++k) EXPECT_TRUE(first[k] == second[k]) << "result " << k << " differs";
}

// Benchmark mode (--cudnn-benchmark): the algorithms chosen by timing compute the same convolution,
// forward and both gradients, as the CPU in strict fp32 (the parity tests' tolerance, relative to
// the sum of |terms|), for a stride-1 and a stride-2 shape.
TEST(CudaBackend, ConvolutionAlgorithmsChosenByTimingAgreeWithTheCpu) {
  if (!have_gpu()) GTEST_SKIP() << kNoGpu;
  const Device gpu = Device::cuda(0);
  Restore<bool> restore_benchmark{conv_benchmark, set_conv_benchmark};
  Restore<Precision> restore_precision{precision, set_precision};
  set_conv_benchmark(true);
  set_precision(Precision::strict);
  Generator g(5);
  for (int64_t stride : {1, 2}) {
    const Conv2dParams p{.stride = stride, .padding = 1};
    const Tensor x = rand({8, 16, 14, 14}, g, DType::f32), w = randn({32, 16, 3, 3}, g, DType::f32);
    const Tensor y = ops::conv2d(x, w, Tensor(), p), dy = randn(y.shape(), g, DType::f32);
    const Tensor y_gpu = ops::conv2d(x.to(gpu), w.to(gpu), Tensor(), p);
    const Tensor dx_gpu = ops::conv2d_backward_data(dy.to(gpu), w.to(gpu), x.shape(), p);
    const Tensor dw_gpu = ops::conv2d_backward_filter(dy.to(gpu), x.to(gpu), w.shape(), p, false).first;
    // |terms| bounds: the same convolutions of |x|, |w|, |dy|.
    const Tensor ax = ops::abs(x), aw = ops::abs(w), ady = ops::abs(dy);
    const std::vector<std::tuple<const char*, Tensor, Tensor, Tensor>> checks{
        {"forward", y, y_gpu, ops::conv2d(ax, aw, Tensor(), p)},
        {"data gradient", ops::conv2d_backward_data(dy, w, x.shape(), p), dx_gpu,
         ops::conv2d_backward_data(ady, aw, x.shape(), p)},
        {"filter gradient", ops::conv2d_backward_filter(dy, x, w.shape(), p, false).first, dw_gpu,
         ops::conv2d_backward_filter(ady, ax, w.shape(), p, false).first}};
    for (const auto& [what, cpu, cuda, size] : checks) {
      const std::vector<float> a = cuda.to(Device::cpu()).to_vector<float>(), b = cpu.to_vector<float>();
      const std::vector<float> m = size.to_vector<float>();
      ASSERT_EQ(a.size(), b.size()) << what;
      int64_t bad = 0;
      for (size_t i = 0; i < a.size(); ++i) bad += !(std::fabs(a[i] - b[i]) <= 1e-6 + 1e-5 * m[i]);
      EXPECT_EQ(bad, 0) << what << ", stride " << stride << ": " << bad << " of " << a.size() << " values differ";
    }
  }
}

TEST(CudaBackend, PrecisionSettingSwitchesTf32) {
  if (!have_gpu()) GTEST_SKIP() << kNoGpu;
  const Device gpu = Device::cuda(0);
  Restore<Precision> restore{precision, set_precision};
  // A product whose exact value needs more than TF32's 10-bit mantissa: 1 + 2^-12 times 1, summed
  // 512 times. The shape is a large multiple of 16, which cuBLAS runs on tensor cores when allowed.
  Tensor a = Tensor::full({512, 512}, 1.0 + 1.0 / 4096, DType::f32, gpu), b = Tensor::ones({512, 512}, DType::f32, gpu);
  set_precision(Precision::strict);
  float strict = ops::matmul(a, b).to_vector<float>()[0];
  set_precision(Precision::tf32);
  float tf32 = ops::matmul(a, b).to_vector<float>()[0];
  EXPECT_FLOAT_EQ(strict, 512.0f * (1.0f + 1.0f / 4096));
  // TF32 keeps 10 mantissa bits: 1 + 2^-12 becomes 1 and the product 512. If this fails, the tf32
  // setting never reached cuBLAS, cuBLAS chose a non-tensor-core kernel, or the environment turns
  // TF32 off (NVIDIA_TF32_OVERRIDE=0).
  EXPECT_STREQ(precision_name(Precision::tf32), "tf32");
  EXPECT_EQ(parse_precision("strict"), Precision::strict);
  afd::testing::expect_error([] { parse_precision("fp16"); }, "precision 'fp16'");
  const char* override_tf32 = std::getenv("NVIDIA_TF32_OVERRIDE");
  if (override_tf32 != nullptr && std::string(override_tf32) == "0")
    GTEST_SKIP() << "NVIDIA_TF32_OVERRIDE=0 turns TF32 off in this process";
  EXPECT_FLOAT_EQ(tf32, 512.0f);
}
