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

// The CUDA tensor backend (kernels, cuBLAS, cuDNN) is the next piece of work; until it lands,
// CUDA devices are visible to the build but cannot hold tensors.
constexpr bool kCudaTensorBackend = false;

bool backend_available(Device device) {
  if (device.is_cpu()) return true;
  return kCudaTensorBackend && cuda::built_with_cuda() && device.index < cuda::device_count();
}

Backend& backend(Device device) {
  if (device.is_cpu()) return cpu::cpu_backend();
  AFD_CHECK(cuda::built_with_cuda(), "device {}: this build has no CUDA backend (meson -Dcuda=enabled)",
            device.str());
  int count = cuda::device_count();
  AFD_CHECK(device.index < count, "device {}: {} CUDA device(s) visible", device.str(), count);
  AFD_FAIL("device {}: the CUDA tensor backend is not implemented yet", device.str());
}

}  // namespace afd
