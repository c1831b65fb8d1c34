// The device boundary: the small set of primitive kernels a backend implements.
//
// Everything above this interface (tensor/ops.h, autograd/, nn/, attacks/) is written against
// Tensor only. A backend receives tensors whose shapes and dtypes the caller (tensor/ops.cpp)
// has already checked and whose outputs it has already allocated, and it fills the outputs.
// tensor/cpu/ implements it with loops and OpenBLAS; tensor/cuda/ will implement it with own
// kernels, cuBLAS and cuDNN. All tensors are contiguous and row-major.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "tensor/op_codes.h"
#include "tensor/tensor.h"

namespace afd {

struct Conv2dParams {
  int64_t stride = 1, padding = 0;
  bool relu = false;  // forward only: y = relu(conv + bias), the ReLU in the bias's pass
};

struct Pool2dParams {
  int64_t kernel = 2, stride = 2, padding = 0;
};

// Every kernel launch the op layer makes, counted per kind. Tests use these counts to prove that
// work nobody asked for is skipped (for example no weight gradient during an attack).
enum class Kernel : uint8_t {
  elementwise, reduce, gemm, conv2d_forward, conv2d_backward_data, conv2d_backward_filter,
  batch_norm_forward, batch_norm_backward, pool_forward, pool_backward, softmax, cross_entropy,
  index, copy, rng, count_
};
const char* kernel_name(Kernel k);
int64_t kernel_calls(Kernel k);
void count_kernel(Kernel k);

// One SGD update (torch.optim.SGD's rule; ops::sgd_step_ documents it).
struct SgdStep {
  double lr = 0, weight_decay = 0, momentum = 0, dampening = 0;
  bool nesterov = false;
  bool first = false;  // the momentum buffer is not initialised yet: it becomes d
};
// One parameter of an SGD step: handles to its storage, its gradient and its momentum buffer
// (undefined when the momentum is 0), all updated in place.
struct SgdTensors {
  Tensor param, grad, momentum_buffer;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  // dst = src (same numel) with dtype conversion. src may live on another device for copies
  // between host and device; the backend of the non-CPU side does the transfer.
  virtual void copy(const Tensor& src, Tensor& dst) = 0;
  virtual void fill(Tensor& out, double value) = 0;
  virtual void arange(Tensor& out, double start, double step) = 0;

  virtual void unary(UnaryOp op, const Tensor& x, Tensor& out, double a, double b) = 0;
  // out = a (op) b with NumPy broadcasting: a and b have out's rank (size-1 dims broadcast).
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // out = cond != 0 ? a : b, broadcasting as binary().
  virtual void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) = 0;

  // out = x summed over every dim where out has size 1 and x does not (same rank).
  virtual void sum_to(const Tensor& x, Tensor& out) = 0;
  // values, indices = max of x over dim (shapes of x with that dim removed; first max wins).
  virtual void max_dim(const Tensor& x, int dim, Tensor& values, Tensor& indices) = 0;

  // C = alpha op(A) op(B) + beta C with op(X) = X or X^T; A, B, C 2-D.
  virtual void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b,
                    double beta, Tensor& c) = 0;

  // x [N, C, H, W], w [K, C, R, S], bias [K] or undefined, y [N, K, P, Q].
  virtual void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias,
                              const Conv2dParams& p, Tensor& y) = 0;
  virtual void conv2d_backward_data(const Tensor& dy, const Tensor& w, const Conv2dParams& p,
                                    Tensor& dx) = 0;
  // dw = sum over the batch; dbias (if defined) = dy summed over N, P, Q.
  virtual void conv2d_backward_filter(const Tensor& dy, const Tensor& x, const Conv2dParams& p,
                                      Tensor& dw, Tensor& dbias) = 0;

  // Batch norm over every dim but 1 of x [N, C, ...]. Train mode: batch statistics; writes
  // mean [C], the biased variance var [C] and invstd [C] = 1 / sqrt(var + eps). With relu,
  // y = relu(batch norm) in the same pass.
  virtual void batch_norm_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                double eps, bool relu, Tensor& y, Tensor& mean, Tensor& var,
                                Tensor& invstd) = 0;
  // Eval mode: y = (x - mean) * invstd * gamma + beta with the given statistics.
  virtual void batch_norm_apply(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                const Tensor& mean, const Tensor& invstd, Tensor& y) = 0;
  // Train-mode backward; any of dx, dgamma, dbeta may be undefined (not computed).
  virtual void batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                   const Tensor& mean, const Tensor& invstd, Tensor& dx,
                                   Tensor& dgamma, Tensor& dbeta) = 0;
  // An eval-mode batch norm folded into the convolution before it (ops::bn_fold documents the
  // formula and its rounding): w, w_out [K, ...]; conv_bias (or undefined), gamma, beta, mean,
  // var, shift, invstd [K].
  virtual void bn_fold(const Tensor& w, const Tensor& conv_bias, const Tensor& gamma, const Tensor& beta,
                       const Tensor& mean, const Tensor& var, double eps, Tensor& w_out, Tensor& shift,
                       Tensor& invstd) = 0;

  // Max pooling writes the flat index (within the H*W plane) of each maximum.
  virtual void max_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor& y,
                                  Tensor& indices) = 0;
  virtual void max_pool2d_backward(const Tensor& dy, const Tensor& indices, Tensor& dx) = 0;
  // Average pooling, padding counted in the divisor (PyTorch's count_include_pad=True).
  virtual void avg_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor& y) = 0;
  virtual void avg_pool2d_backward(const Tensor& dy, const Pool2dParams& p, Tensor& dx) = 0;

  // Softmax or log-softmax of x over dim, numerically stable (max subtracted).
  virtual void softmax(const Tensor& x, int dim, bool log, Tensor& out) = 0;
  // loss[n] = logsumexp(logits[n, :]) - logits[n, labels[n]]; logits [N, C], labels i64 [N].
  virtual void cross_entropy(const Tensor& logits, const Tensor& labels, Tensor& loss) = 0;
  // dlogits [N, C] = (softmax(logits) - onehot(labels)) g[n] per row; g [N] (ops::cross_entropy_backward).
  virtual void cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& g,
                                      Tensor& dlogits) = 0;

  // out[.., i, ..] = x[.., index[.., i, ..], ..] along dim (index i64, out shaped like index).
  virtual void gather(const Tensor& x, int dim, const Tensor& index, Tensor& out) = 0;
  // out[.., index[.., i, ..], ..] += src[.., i, ..] along dim.
  virtual void scatter_add(Tensor& out, int dim, const Tensor& index, const Tensor& src) = 0;
  // out[i, ...] = table[index[i], ...]; index i64 1-D.
  virtual void index_select(const Tensor& table, const Tensor& index, Tensor& out) = 0;
  // out[index[i], ...] += src[i, ...].
  virtual void index_add(Tensor& out, const Tensor& index, const Tensor& src) = 0;
  // dst[.., dst_start + j, ..] = src[.., src_start + j, ..] along dim for j < len.
  virtual void copy_slab(const Tensor& src, int64_t src_start, Tensor& dst, int64_t dst_start,
                         int dim, int64_t len) = 0;

  // running_mean = (1 - momentum) running_mean + momentum mean and running_var = (1 - momentum)
  // running_var + var_scale var ([C], one dtype and device); count (i64, 0-d, or undefined) += 1.
  virtual void update_running_stats(Tensor& running_mean, Tensor& running_var, Tensor& count, const Tensor& mean,
                                    const Tensor& var, double momentum, double var_scale) = 0;
  // One projected sign step of Linf PGD (ops::linf_sign_step): x0, x, g, out [N, ...] of one
  // shape; steps [2, N] (row 0 the step sizes, row 1 the radii).
  virtual void linf_sign_step(const Tensor& x0, const Tensor& x, const Tensor& g, const Tensor& steps,
                              Tensor& out) = 0;
  // Each parameter's param, grad and momentum_buffer (undefined when s.momentum == 0) share a
  // shape; all share one dtype and this device; none is empty.
  virtual void sgd_step(const std::vector<SgdTensors>& tensors, const SgdStep& s) = 0;

  // Philox 4x32-10 streams (tensor/rng.h documents the counter layout).
  virtual void uniform(Tensor& out, uint64_t seed, uint64_t offset, double low, double high) = 0;
  virtual void normal(Tensor& out, uint64_t seed, uint64_t offset, double mean, double std) = 0;
};

// The backend that owns tensors on `device`. Throws for a CUDA device when the project was
// built without CUDA or no such device is visible.
Backend& backend(Device device);
// Whether backend(device) would succeed: tests of device code skip (with the reason) when not.
bool backend_available(Device device);

// ---- GPU settings, memory and timing (no effect on the CPU backend) -----------------------------
// strict: f32 convolutions and gemm in full fp32 with TF32 off (the parity tests use it);
// tf32:   TF32 tensor cores for f32 convolutions and gemm (10-bit mantissa products, fp32 sums),
//         the default, as PyTorch does for convolutions. f64 is never affected.
enum class Precision : uint8_t { strict, tf32 };
void set_precision(Precision p);
Precision precision();
const char* precision_name(Precision p);
Precision parse_precision(const std::string& text);  // "strict" or "tf32"; throws naming the text
// Deterministic mode: only deterministic cuDNN algorithms (every reduction kernel of the CUDA
// backend is deterministic already: fixed-order sums, no atomics), so a run repeats bit for bit.
void set_deterministic(bool on);
bool deterministic();
// Benchmark mode: each convolution shape's cuDNN algorithms chosen by timing them once
// (cudnnFind*, as torch.backends.cudnn.benchmark = True) instead of from cuDNN's heuristics. The
// first step of each shape is slower, and two runs may choose differently (timings vary), so
// deterministic mode ignores it. Off by default.
void set_conv_benchmark(bool on);
bool conv_benchmark();

// Device memory through the caching allocator (a block freed by a tensor is kept for the next
// request of its size class instead of going back to cudaFree).
struct MemoryStats {
  int64_t in_use_bytes = 0;    // held by live tensors (rounded to the size class)
  int64_t peak_bytes = 0;      // highest in_use_bytes since the last reset_peak_memory
  int64_t cached_bytes = 0;    // freed blocks kept for reuse
  int64_t device_mallocs = 0;  // cudaMalloc calls since the process started
  int64_t device_frees = 0;    // cudaFree calls (only when the cache is released)
};
// Zeros for the CPU. Throws like backend() for an unavailable CUDA device.
MemoryStats memory_stats(Device device);
void reset_peak_memory(Device device);
// Waits until all work queued on the device has finished (for timing). No-op on the CPU.
void synchronize(Device device);

// Threads the CPU backend uses (OpenMP); defaults to the number of cores.
void set_num_threads(int n);
int num_threads();

// The BLAS under the CPU backend and the kernel set it runs, for logs and reports:
// "OpenBLAS 0.3.21, SkylakeX kernels".
std::string cpu_blas_info();

// Settings that the CPU runtime libraries read once, when they load: a program that wants them
// restarts itself first thing in main (execv of /proc/self/exe with the same argv), so they hold
// from the first instruction on. Variables the user has set are left as they are.
//   OPENBLAS_CORETYPE: set to SkylakeX (AVX-512) or Haswell (AVX2 + FMA) when OpenBLAS did not know
//     this CPU and fell back to its SSE3 "Prescott" kernels. Debian 12's OpenBLAS 0.3.21 does so on
//     Intel Emerald Rapids (family 6, model 207), where its gemm then runs about 3x slower.
//   OMP_WAIT_POLICY=passive, when omp_passive: OpenMP threads that spin at barriers lose most of
//     their time when another process holds a core.
// Returns when nothing needed changing, or when execv failed (the program then runs as it is).
void restart_with_runtime_settings(char** argv, bool omp_passive);

}  // namespace afd
