// One error-check family for CUDA, cuBLAS, cuDNN and NCCL calls: each throws afd::Error with
// the call text, the library's message and file:line.
//
//   AFD_CUDA_CHECK(cudaMalloc(&p, bytes));
//   kernel<<<grid, block, 0, stream>>>(...); AFD_CUDA_CHECK_LAUNCH();
//
// This header has no fmt dependency so .cu files (compiled by nvcc) can use it; the message is
// formatted in check.cpp.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <nccl.h>

namespace afd::cuda {

[[noreturn]] void throw_gpu_error(const char* call, const char* message, const char* library,
                                  const char* file, int line);

inline const char* status_text(cudaError_t s) { return cudaGetErrorString(s); }
inline const char* status_text(cublasStatus_t s) { return cublasGetStatusString(s); }
inline const char* status_text(cudnnStatus_t s) { return cudnnGetErrorString(s); }
inline const char* status_text(ncclResult_t s) { return ncclGetErrorString(s); }
inline bool ok(cudaError_t s) { return s == cudaSuccess; }
inline bool ok(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS; }
inline bool ok(cudnnStatus_t s) { return s == CUDNN_STATUS_SUCCESS; }
inline bool ok(ncclResult_t s) { return s == ncclSuccess; }

}  // namespace afd::cuda

#define AFD_GPU_CHECK_IMPL(call, lib)                                                            \
  do {                                                                                           \
    auto afd_status_ = (call);                                                                   \
    if (!::afd::cuda::ok(afd_status_))                                                           \
      ::afd::cuda::throw_gpu_error(#call, ::afd::cuda::status_text(afd_status_), lib, __FILE__, \
                                   __LINE__);                                                    \
  } while (0)

#define AFD_CUDA_CHECK(call) AFD_GPU_CHECK_IMPL(call, "CUDA")
#define AFD_CUBLAS_CHECK(call) AFD_GPU_CHECK_IMPL(call, "cuBLAS")
#define AFD_CUDNN_CHECK(call) AFD_GPU_CHECK_IMPL(call, "cuDNN")
#define AFD_NCCL_CHECK(call) AFD_GPU_CHECK_IMPL(call, "NCCL")
#define AFD_CUDA_CHECK_LAUNCH() AFD_CUDA_CHECK(cudaGetLastError())
