#include "tensor/backend.h"

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cuda/cuda_info.h"

namespace afd {

namespace {
std::array<std::atomic<int64_t>, static_cast<size_t>(Kernel::count_)> g_kernel_calls{};
}

const char* kernel_name(Kernel k) {
  static const char* names[] = {
      "elementwise", "reduce", "gemm", "conv2d_forward", "conv2d_backward_data",
      "conv2d_backward_filter", "batch_norm_forward", "batch_norm_backward", "pool_forward",
      "pool_backward", "softmax", "cross_entropy", "index", "copy", "rng"};
  static_assert(sizeof(names) / sizeof(names[0]) == static_cast<size_t>(Kernel::count_));
  return names[static_cast<size_t>(k)];
}

int64_t kernel_calls(Kernel k) { return g_kernel_calls[static_cast<size_t>(k)].load(); }

void count_kernel(Kernel k) {
  g_kernel_calls[static_cast<size_t>(k)].fetch_add(1, std::memory_order_relaxed);
}

// ---- settings ----------------------------------------------------------------------------------
namespace {
std::atomic<Precision> g_precision{Precision::tf32};
std::atomic<bool> g_deterministic{false};
std::atomic<bool> g_conv_benchmark{false};
}  // namespace

void set_precision(Precision p) { g_precision = p; }
Precision precision() { return g_precision; }
const char* precision_name(Precision p) { return p == Precision::strict ? "strict" : "tf32"; }
Precision parse_precision(const std::string& text) {
  if (text == "strict") return Precision::strict;
  if (text == "tf32") return Precision::tf32;
  AFD_FAIL("precision '{}' is not one of strict, tf32", text);
}
void set_deterministic(bool on) { g_deterministic = on; }
bool deterministic() { return g_deterministic; }
void set_conv_benchmark(bool on) { g_conv_benchmark = on; }
bool conv_benchmark() { return g_conv_benchmark; }

// ---- devices -------------------------------------------------------------------------------------
namespace {
// Throws unless `device` is a visible CUDA device of a CUDA build.
void require_cuda(Device device) {
  AFD_CHECK(cuda::built_with_cuda(), "device {}: this build has no CUDA backend (meson -Dcuda=enabled)",
            device.str());
  int count = cuda::device_count();
  AFD_CHECK(device.index >= 0 && device.index < count, "device {}: {} CUDA device(s) visible", device.str(),
            count);
}
}  // namespace

bool backend_available(Device device) {
  if (device.is_cpu()) return true;
  return cuda::built_with_cuda() && device.index >= 0 && device.index < cuda::device_count();
}

Backend& backend(Device device) {
  if (device.is_cpu()) return cpu::cpu_backend();
  require_cuda(device);
  return cuda::device_backend(device.index);
}

MemoryStats memory_stats(Device device) {
  if (device.is_cpu()) return {};
  require_cuda(device);
  return cuda::memory_stats(device.index);
}

void reset_peak_memory(Device device) {
  if (device.is_cpu()) return;
  require_cuda(device);
  cuda::reset_peak_memory(device.index);
}

void synchronize(Device device) {
  if (device.is_cpu()) return;
  require_cuda(device);
  cuda::synchronize(device.index);
}

}  // namespace afd
