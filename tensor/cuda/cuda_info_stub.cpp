// Built when the project is configured without CUDA.
#include "tensor/backend.h"
#include "tensor/cuda/cuda_info.h"
#include "tensor/error.h"

namespace afd::cuda {
bool built_with_cuda() { return false; }
int device_count() { return 0; }
std::string library_versions() { return ""; }
std::string smoke_test(int, float, float*) { AFD_FAIL("this build has no CUDA backend"); }
std::string device_name(int) { AFD_FAIL("this build has no CUDA backend"); }
void profiler_start() {}
void profiler_stop() {}
Backend& device_backend(int index) { AFD_FAIL("cuda:{}: this build has no CUDA backend", index); }
MemoryStats memory_stats(int index) { AFD_FAIL("cuda:{}: this build has no CUDA backend", index); }
void reset_peak_memory(int index) { AFD_FAIL("cuda:{}: this build has no CUDA backend", index); }
void synchronize(int index) { AFD_FAIL("cuda:{}: this build has no CUDA backend", index); }
}  // namespace afd::cuda
