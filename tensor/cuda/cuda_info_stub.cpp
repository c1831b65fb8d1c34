// Built when the project is configured without CUDA.
#include "tensor/cuda/cuda_info.h"
#include "tensor/error.h"

namespace afd::cuda {
bool built_with_cuda() { return false; }
int device_count() { return 0; }
std::string library_versions() { return ""; }
std::string smoke_test(int, float, float*) { AFD_FAIL("this build has no CUDA backend"); }
}  // namespace afd::cuda
