// Launchers of the CUDA backend's own kernels. They are defined in the .cu files (compiled by
// nvcc) and called from cuda_backend.cpp (compiled by the C++ compiler), so this header holds only
// plain types: raw device pointers, sizes and op codes, no Tensor (nvcc cannot take fmt).
//
// Every launcher queues its kernel on `stream` and checks the launch (AFD_CUDA_CHECK_LAUNCH).
// Every sum is accumulated in double in a fixed order (no atomics), so results repeat bit for bit.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "tensor/cuda/fast_divmod.h"
#include "tensor/op_codes.h"

namespace afd::cuda {

// Element types, numbered as afd::DType (cuda_backend.cpp checks that they agree).
enum class Dt : int { f32, f64, i64, u8 };

// Broadcasting over up to three operands in tensor/broadcast.h's coalesced form: output element i
// has coordinates in `sizes` (innermost last) and operand k sits at sum_d coord_d * strides[k][d].
// With `fast` (fewer than 2^32 output elements) the coordinates come from the dividers `by`
// (fast_divmod.h) instead of 64-bit divisions.
constexpr int kMaxRank = 8;
struct BroadcastGeometry {
  int rank = 0;
  bool fast = false;
  int64_t sizes[kMaxRank] = {};
  int64_t strides[3][kMaxRank] = {};
  FastDivmod by[kMaxRank];
};

// Pooling over planes [planes, H, W] -> [planes, P, Q].
struct PoolGeometry {
  int64_t planes, H, W, P, Q, kernel, stride, padding;
};

// ---- memory-shaped ops (elementwise.cu) ---------------------------------------------------------
void launch_fill(void* out, Dt dt, int64_t n, double value, cudaStream_t stream);
void launch_arange(void* out, Dt dt, int64_t n, double start, double step, cudaStream_t stream);
// dst[i] = static_cast<to>(src[i]).
void launch_convert(const void* src, Dt from, void* dst, Dt to, int64_t n, cudaStream_t stream);

template <class T>
void launch_unary(UnaryOp op, const T* x, T* out, int64_t n, T a, T b, cudaStream_t stream);
// geometry == nullptr: a, b and out have the same shape.
template <class T>
void launch_binary(BinaryOp op, const T* a, const T* b, T* out, int64_t n, const BroadcastGeometry* geometry,
                   cudaStream_t stream);
template <class T>
void launch_where(const void* cond, Dt cond_dt, const T* a, const T* b, T* out, int64_t n,
                  const BroadcastGeometry& geometry, cudaStream_t stream);

// The device word of the index checks (CudaBackend::check_indices). key = seq << kBadPositionBits |
// position of the first bad index of the first failing check since the last reset, kNoBadIndex
// when none failed (a reset writes 0xff bytes); value = that index.
struct BadIndex {
  unsigned long long key;
  long long value;
};
constexpr int kBadPositionBits = 40;
constexpr unsigned long long kNoBadIndex = ~0ull;
// Check number seq: lowers bad->key to seq << kBadPositionBits | i for the smallest i with idx[i]
// outside [0, limit), and records idx[i] if that made this check the first failing one.
void launch_find_bad_index(const int64_t* idx, int64_t n, int64_t limit, uint64_t seq, BadIndex* bad,
                           cudaStream_t stream);
// The indexing kernels below (and cross-entropy) may run before the host reads that word: an
// index outside its range is skipped (gather and index_select write 0, cross-entropy NaN).
// Along a dim seen as [outer, n, inner]: out[o, r, q] = x[o, idx[o, r, q], q] (idx shaped like out).
template <class T>
void launch_gather(const T* x, const int64_t* idx, T* out, int64_t outer, int64_t x_n, int64_t idx_n,
                   int64_t inner, cudaStream_t stream);
// out[o, idx[o, r, q], q] += src[o, r, q]; one thread per (o, q) walks r in order.
template <class T>
void launch_scatter_add(T* out, const int64_t* idx, const T* src, int64_t outer, int64_t out_n, int64_t idx_n,
                        int64_t inner, cudaStream_t stream);
// out row i = table row idx[i] (rows of row_bytes bytes).
void launch_index_select(const void* table, int64_t table_rows, const int64_t* idx, void* out, int64_t rows,
                         int64_t row_bytes, cudaStream_t stream);
// out[idx[i], j] += src[i, j]; one thread per j walks i in order.
template <class T>
void launch_index_add(T* out, int64_t out_rows, const int64_t* idx, const T* src, int64_t rows, int64_t row,
                      cudaStream_t stream);

// Batch norm's running statistics in place (ops::update_running_stats_), rounded as the CPU
// backend's loop; count (may be null) += 1.
template <class T>
void launch_update_running_stats(T* running_mean, T* running_var, int64_t* count, const T* mean, const T* var,
                                 int64_t channels, double momentum, double var_scale, cudaStream_t stream);

// An eval-mode batch norm folded into a convolution (ops::bn_fold), rounded as the CPU backend's
// loop: w, w_out [K, per_k]; bias (may be null), gamma, beta, mean, var, shift, invstd [K].
template <class T>
void launch_bn_fold(const T* w, const T* bias, const T* gamma, const T* beta, const T* mean, const T* var, double eps,
                    T* w_out, T* shift, T* invstd, int64_t K, int64_t per_k, cudaStream_t stream);

// One SGD step in place (ops::sgd_step_) for many parameters, kSgdTensorsPerLaunch per launch,
// rounded as the CPU backend's loop: buf is null when momentum is 0.
template <class T>
struct SgdPointers {
  T* p;
  const T* g;
  T* buf;
  int64_t n;
};
template <class T>
void launch_sgd_step(const std::vector<SgdPointers<T>>& tensors, double lr, double weight_decay, double momentum,
                     double dampening, bool nesterov, bool first, cudaStream_t stream);

// One projected sign step of Linf PGD (ops::linf_sign_step), rounded as the CPU backend's loop:
// x0, x, g, out [rows, n / rows]; steps [2, rows] (step sizes, then radii).
template <class T>
void launch_linf_sign_step(const T* x0, const T* x, const T* g, const T* steps, T* out, int64_t n, int64_t rows,
                           cudaStream_t stream);

// Philox streams laid out as tensor/rng.h documents, the same numbers as the CPU backend.
template <class T>
void launch_uniform(T* out, int64_t n, uint64_t seed, uint64_t offset, double low, double high,
                    cudaStream_t stream);
template <class T>
void launch_normal(T* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std,
                   cudaStream_t stream);

// ---- reductions (reduce.cu) ----------------------------------------------------------------------
// Doubles of scratch that launch_sum_middle needs for these sizes (0: none).
int64_t sum_middle_scratch(int64_t P, int64_t R, int64_t Q);
// out[p, q] = sum_r x[p, r, q].
template <class T>
void launch_sum_middle(const T* x, T* out, int64_t P, int64_t R, int64_t Q, double* scratch,
                       cudaStream_t stream);
// values, idx = max over n of x viewed as [outer, n, inner] (first maximum wins, NaN is a maximum).
template <class T>
void launch_max_dim(const T* x, T* values, int64_t* idx, int64_t outer, int64_t n, int64_t inner,
                    cudaStream_t stream);
template <class T>
void launch_softmax(const T* x, T* out, int64_t outer, int64_t n, int64_t inner, bool log, cudaStream_t stream);
// loss[n] = logsumexp(logits[n, :]) - logits[n, labels[n]] (NaN for a label outside [0, C)).
template <class T>
void launch_cross_entropy(const T* logits, const int64_t* labels, T* loss, int64_t N, int64_t C,
                          cudaStream_t stream);
// dlogits[n, c] = (softmax(logits[n, :])[c] - [c == labels[n]]) g[n] (ops::cross_entropy_backward).
template <class T>
void launch_cross_entropy_backward(const T* logits, const int64_t* labels, const T* g, T* dlogits, int64_t N,
                                   int64_t C, cudaStream_t stream);

// Batch norm over x viewed as [N, C, M] (tensor/cpu/norm_pool.cpp has the equations).
// Doubles of scratch the batch-norm launchers need.
int64_t batch_norm_scratch(int64_t N, int64_t C, int64_t M);
template <class T>
void launch_bn_stats(const T* x, int64_t N, int64_t C, int64_t M, double eps, T* mean, T* var, T* invstd,
                     double* scratch, cudaStream_t stream);
// y = (x - mean) invstd gamma + beta, then relu(y) with relu.
template <class T>
void launch_bn_apply(const T* x, const T* gamma, const T* beta, const T* mean, const T* invstd, T* y,
                     int64_t N, int64_t C, int64_t M, bool relu, cudaStream_t stream);
// Any of dx, dgamma, dbeta may be null.
template <class T>
void launch_bn_backward(const T* dy, const T* x, const T* gamma, const T* mean, const T* invstd, T* dx,
                        T* dgamma, T* dbeta, int64_t N, int64_t C, int64_t M, double* scratch,
                        cudaStream_t stream);

// ---- pooling (pool.cu) -----------------------------------------------------------------------------
template <class T>
void launch_max_pool_forward(const T* x, T* y, int64_t* idx, const PoolGeometry& g, cudaStream_t stream);
// dx = 0, then dx[plane, idx] += dy. `deterministic`: one thread per plane in order, else atomics
// (which can reorder the sums only where windows overlap).
template <class T>
void launch_max_pool_backward(const T* dy, const int64_t* idx, T* dx, int64_t planes, int64_t HW, int64_t PQ,
                              bool deterministic, cudaStream_t stream);
template <class T>
void launch_avg_pool_forward(const T* x, T* y, const PoolGeometry& g, cudaStream_t stream);
template <class T>
void launch_avg_pool_backward(const T* dy, T* dx, const PoolGeometry& g, cudaStream_t stream);

// ---- smoke test (fill.cu) --------------------------------------------------------------------------
// out[i] = value for i < n.
void launch_fill_f32(float* out, long long n, float value, cudaStream_t stream);

}  // namespace afd::cuda
