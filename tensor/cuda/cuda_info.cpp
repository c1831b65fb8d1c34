// Device discovery, library versions and a launch smoke test (built only with CUDA).
#include "tensor/cuda/cuda_info.h"

#include <cuda_profiler_api.h>

#include "tensor/cuda/check.h"
#include "tensor/cuda/kernels.cuh"
#include "tensor/error.h"

namespace afd::cuda {

void throw_gpu_error(const char* call, const char* message, const char* library, const char* file,
                     int line) {
  throw_error(fmt::format("{} failed: {} ({})", call, message, library), file, line);
}

bool built_with_cuda() { return true; }

int device_count() {
  // Asked once: the set of visible devices does not change while the process runs. No driver or
  // no device both mean "no GPU here": report 0 rather than throw.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // clear the error so later calls do not see it
      return 0;
    }
    return n;
  }();
  return count;
}

std::string device_name(int index) {
  AFD_CHECK(index >= 0 && index < device_count(), "cuda:{}: {} CUDA device(s) visible", index, device_count());
  cudaDeviceProp prop{};
  AFD_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return prop.name;
}

void profiler_start() { AFD_CUDA_CHECK(cudaProfilerStart()); }
void profiler_stop() { AFD_CUDA_CHECK(cudaProfilerStop()); }

std::string library_versions() {
  int runtime = 0, nccl = 0, major = 0, minor = 0, patch = 0;
  cudaRuntimeGetVersion(&runtime);
  cublasGetProperty(MAJOR_VERSION, &major);
  cublasGetProperty(MINOR_VERSION, &minor);
  cublasGetProperty(PATCH_LEVEL, &patch);
  ncclGetVersion(&nccl);
  return fmt::format("CUDA runtime {}, cuBLAS {}.{}.{}, cuDNN {}, NCCL {}", runtime, major, minor, patch,
                     cudnnGetVersion(), nccl);
}

std::string smoke_test(int n, float value, float* out) {
  AFD_CHECK(device_count() > 0, "smoke_test: no CUDA device is visible");
  float* d = nullptr;
  AFD_CUDA_CHECK(cudaMalloc(&d, n * sizeof(float)));
  try {
    launch_fill_f32(d, n, value, nullptr);
    AFD_CUDA_CHECK(cudaMemcpy(out, d, n * sizeof(float), cudaMemcpyDeviceToHost));
  } catch (...) {
    cudaFree(d);
    throw;
  }
  AFD_CUDA_CHECK(cudaFree(d));
  return device_name(0);
}

}  // namespace afd::cuda
