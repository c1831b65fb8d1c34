// AFD_HOST_DEVICE marks an inline function that both the C++ compiler (CPU code, tests) and nvcc
// (CUDA kernels) compile: __host__ __device__ under nvcc, nothing elsewhere.
#pragma once

#if defined(__CUDACC__)
#define AFD_HOST_DEVICE __host__ __device__
#else
#define AFD_HOST_DEVICE
#endif
