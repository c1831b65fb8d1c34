// Launchers of the CUDA backend's own kernels (defined in .cu files, called from .cpp files).
#pragma once
#include <cuda_runtime.h>

namespace afd::cuda {

// out[i] = value for i < n.
void launch_fill_f32(float* out, long long n, float value, cudaStream_t stream);

}  // namespace afd::cuda
