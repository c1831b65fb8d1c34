// What the CUDA side of the build can see. Compiled as tensor/cuda/cuda_info.cu when the build
// has CUDA (meson -Dcuda=enabled|auto with nvcc present) and as cuda_info_stub.cpp otherwise.
#pragma once
#include <string>

namespace afd::cuda {

bool built_with_cuda();
// Number of visible CUDA devices; 0 when none (or no driver), never throws.
int device_count();
// Versions of the runtime and the linked libraries, e.g. "CUDA runtime 13000, cuBLAS 130000,
// cuDNN 90800, NCCL 22703"; empty without CUDA.
std::string library_versions();
// Runs a tiny kernel on device 0 that fills n floats with `value` and copies them back; returns
// the values read back. Throws when no device is visible. Proves compile, link and launch work.
std::string smoke_test(int n, float value, float* out);

}  // namespace afd::cuda
