// Elementwise fill: the first kernel of the CUDA backend.
#include "tensor/cuda/check.h"
#include "tensor/cuda/kernels.cuh"

namespace afd::cuda {

namespace {
__global__ void fill_f32(float* out, long long n, float value) {
  long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = value;
}
}  // namespace

void launch_fill_f32(float* out, long long n, float value, cudaStream_t stream) {
  if (n == 0) return;
  int block = 256;
  long long grid = (n + block - 1) / block;
  fill_f32<<<static_cast<unsigned>(grid), block, 0, stream>>>(out, n, value);
  AFD_CUDA_CHECK_LAUNCH();
}

}  // namespace afd::cuda
