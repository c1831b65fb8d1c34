// Helpers shared by the .cu files: launch sizes, grid-stride loops and dtype dispatch.
#pragma once
#include <algorithm>
#include <cstdint>

#include "tensor/cuda/check.h"
#include "tensor/cuda/kernels.cuh"

namespace afd::cuda {

constexpr int kBlock = 256;

// Blocks for n threads of kBlock (at least 1; capped, the kernels loop over the rest).
inline unsigned grid_for(int64_t n) {
  int64_t g = (n + kBlock - 1) / kBlock;
  return static_cast<unsigned>(std::clamp<int64_t>(g, 1, int64_t(1) << 20));
}

// for (i = this thread; i < n; i += all threads)
#define AFD_GRID_LOOP(i, n)                                                        \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < int64_t(n); \
       i += int64_t(gridDim.x) * blockDim.x)

// Arithmetic rounded step by step, as the CPU backend's loops (built with -ffp-contract=off) round
// it: nvcc fuses a * b + c into one multiply-add by default, but never these intrinsics. The
// fused kernels that promise the separate ops' bits (sgd_step, bn_fold, ...) use them.
__device__ inline float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ inline float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ inline double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ inline float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ inline double sub_rn(double a, double b) { return __dsub_rn(a, b); }
__device__ inline float sqrt_rn(float a) { return __fsqrt_rn(a); }
__device__ inline double sqrt_rn(double a) { return __dsqrt_rn(a); }
__device__ inline float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ inline double div_rn(double a, double b) { return __ddiv_rn(a, b); }

template <class T>
struct Tag {
  using type = T;
};

// f(Tag<C++ type of dt>{}).
template <class F>
void dispatch_dt(Dt dt, F&& f) {
  switch (dt) {
    case Dt::f32: return f(Tag<float>{});
    case Dt::f64: return f(Tag<double>{});
    case Dt::i64: return f(Tag<int64_t>{});
    case Dt::u8: return f(Tag<uint8_t>{});
  }
}

// Sum of one double per thread over the block (blockDim.x a multiple of 32, at most 1024), in a
// fixed order; the result is valid in thread 0.
__device__ inline double block_sum(double v) {
  __shared__ double warp_sums[32];
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // warp_sums may still be read by a previous call
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < int(blockDim.x / 32) ? warp_sums[lane] : 0.0;
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  }
  return v;
}

}  // namespace afd::cuda
