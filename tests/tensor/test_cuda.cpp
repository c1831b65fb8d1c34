// The CUDA side of the build: libraries link, and on a machine with a GPU a kernel launches.
#include <gtest/gtest.h>

#include "tensor/backend.h"
#include "tensor/cuda/cuda_info.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/support/checks.h"

using namespace afd;

TEST(Cuda, LibrariesLinkAndReportVersions) {
  if (!cuda::built_with_cuda()) GTEST_SKIP() << "built without CUDA (meson -Dcuda=disabled or no nvcc)";
  std::string versions = cuda::library_versions();
  EXPECT_NE(versions.find("cuDNN"), std::string::npos);
  EXPECT_NE(versions.find("NCCL"), std::string::npos);
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

TEST(CudaBackend, IndexOutOfRangeIsNamedAsOnTheCpu) {
  if (!have_gpu()) GTEST_SKIP() << kNoGpu;
  const Device gpu = Device::cuda(0);
  Tensor logits = Tensor::zeros({3, 4}, DType::f32, gpu);
  Tensor labels = Tensor::from_vector<int64_t>({0, 7, 1}, {3}).to(gpu);
  afd::testing::expect_error([&] { ops::cross_entropy(logits, labels); }, "index 7 at position 1 is out of range [0, 4)");
  Tensor table = Tensor::zeros({5, 2}, DType::f32, gpu);
  Tensor bad = Tensor::from_vector<int64_t>({4, -1}, {2}).to(gpu);
  afd::testing::expect_error([&] { ops::index_select(table, bad); }, "index -1 at position 1");
}

TEST(CudaBackend, DeterministicModeRepeatsAConvolutionStepBitForBit) {
  if (!have_gpu()) GTEST_SKIP() << kNoGpu;
  const Device gpu = Device::cuda(0);
  bool old = deterministic();
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
  set_deterministic(old);
  for (size_t k = 0; k < first.size(); ++k) EXPECT_TRUE(first[k] == second[k]) << "result " << k << " differs";
}

TEST(CudaBackend, PrecisionSettingSwitchesTf32) {
  if (!have_gpu()) GTEST_SKIP() << kNoGpu;
  const Device gpu = Device::cuda(0);
  Precision old = precision();
  Generator g(4);
  // A product whose exact value needs more than TF32's 10-bit mantissa: 1 + 2^-12 times 1.
  Tensor a = Tensor::full({64, 256}, 1.0 + 1.0 / 4096, DType::f32, gpu), b = Tensor::ones({256, 64}, DType::f32, gpu);
  set_precision(Precision::strict);
  float strict = ops::matmul(a, b).to_vector<float>()[0];
  set_precision(Precision::tf32);
  float tf32 = ops::matmul(a, b).to_vector<float>()[0];
  set_precision(old);
  EXPECT_FLOAT_EQ(strict, 256.0f * (1.0f + 1.0f / 4096));
  // TF32 keeps 10 mantissa bits: 1 + 2^-12 becomes 1 and the product 256 (if this fails, the tf32
  // setting never reached cuBLAS, or cuBLAS chose a non-tensor-core kernel for this shape).
  EXPECT_FLOAT_EQ(tf32, 256.0f);
  EXPECT_STREQ(precision_name(Precision::tf32), "tf32");
  EXPECT_EQ(parse_precision("strict"), Precision::strict);
  afd::testing::expect_error([] { parse_precision("fp16"); }, "precision 'fp16'");
}
