// The CPU backend: plain loops parallelised with OpenMP, gemm from OpenBLAS (called single-
// threaded: the backend parallelises over images or row blocks itself, which suits the small
// matrices of per-image convolutions better than OpenBLAS's own threads).
//
// Files: elementwise.cpp (copies, elementwise, reductions, softmax, indexing, RNG),
// conv.cpp (gemm, im2col convolution and the choice of algorithm), conv_direct.cpp (direct AVX-512
// convolution kernels), norm_pool.cpp (batch norm, pooling).
#pragma once
#include "tensor/backend.h"

namespace afd::cpu {

class CpuBackend final : public Backend {
 public:
  CpuBackend();
  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;
  void copy(const Tensor& src, Tensor& dst) override;
  void fill(Tensor& out, double value) override;
  void arange(Tensor& out, double start, double step) override;
  void unary(UnaryOp op, const Tensor& x, Tensor& out, double a, double b) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) override;
  void sum_to(const Tensor& x, Tensor& out) override;
  void max_dim(const Tensor& x, int dim, Tensor& values, Tensor& indices) override;
  void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b, double beta,
            Tensor& c) override;
  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
                      Tensor& y) override;
  void conv2d_backward_data(const Tensor& dy, const Tensor& w, const Conv2dParams& p,
                            Tensor& dx) override;
  void conv2d_backward_filter(const Tensor& dy, const Tensor& x, const Conv2dParams& p, Tensor& dw,
                              Tensor& dbias) override;
  void batch_norm_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, bool relu,
                        Tensor& y, Tensor& mean, Tensor& var, Tensor& invstd) override;
  void batch_norm_apply(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                        const Tensor& mean, const Tensor& invstd, Tensor& y) override;
  void batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                           const Tensor& mean, const Tensor& invstd, Tensor& dx, Tensor& dgamma,
                           Tensor& dbeta) override;
  void bn_fold(const Tensor& w, const Tensor& conv_bias, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
               const Tensor& var, double eps, Tensor& w_out, Tensor& shift, Tensor& invstd) override;
  void max_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor& y,
                          Tensor& indices) override;
  void max_pool2d_backward(const Tensor& dy, const Tensor& indices, Tensor& dx) override;
  void avg_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor& y) override;
  void avg_pool2d_backward(const Tensor& dy, const Pool2dParams& p, Tensor& dx) override;
  void softmax(const Tensor& x, int dim, bool log, Tensor& out) override;
  void cross_entropy(const Tensor& logits, const Tensor& labels, Tensor& loss) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& g, Tensor& dlogits) override;
  void gather(const Tensor& x, int dim, const Tensor& index, Tensor& out) override;
  void scatter_add(Tensor& out, int dim, const Tensor& index, const Tensor& src) override;
  void index_select(const Tensor& table, const Tensor& index, Tensor& out) override;
  void index_add(Tensor& out, const Tensor& index, const Tensor& src) override;
  void copy_slab(const Tensor& src, int64_t src_start, Tensor& dst, int64_t dst_start, int dim,
                 int64_t len) override;
  void sgd_step(const std::vector<SgdTensors>& tensors, const SgdStep& s) override;
  void linf_sign_step(const Tensor& x0, const Tensor& x, const Tensor& g, const Tensor& steps, Tensor& out) override;
  void update_running_stats(Tensor& running_mean, Tensor& running_var, Tensor& count, const Tensor& mean,
                            const Tensor& var, double momentum, double var_scale) override;
  void uniform(Tensor& out, uint64_t seed, uint64_t offset, double low, double high) override;
  void normal(Tensor& out, uint64_t seed, uint64_t offset, double mean, double std) override;

 private:
  // conv2d_forward without the fused ReLU
  void conv2d_forward_linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
                             Tensor& y);
};

Backend& cpu_backend();

// Whether the convolution of x [N, C, H, W] by w [K, C, R, S] runs as one dense matrix over the
// batch (small maps, conv.cpp) rather than as im2col + gemm: tests cover both paths with it.
bool conv2d_uses_dense_map(const Shape& x, const Shape& w, const Conv2dParams& p);

// Which convolution kernels run. automatic: the dense matrix on tiny maps, the direct AVX-512
// kernels (conv_direct.cpp: f32, CPUs with AVX-512F) where they measured faster, im2col + gemm
// elsewhere. im2col forces im2col + gemm everywhere; direct forces the direct kernels wherever they
// apply. Tests and benchmarks compare them; the setting is process-wide.
enum class ConvAlgorithm { automatic, im2col, direct };
void set_conv_algorithm(ConvAlgorithm a);
ConvAlgorithm conv_algorithm();
// Whether this CPU can run the direct kernels at all (AVX-512F).
bool conv2d_direct_supported();
enum class ConvPass { forward, backward_data, backward_filter };
// Whether the given pass of this f32 convolution runs the direct kernels under the current setting.
bool conv2d_uses_direct(const Shape& x, const Shape& w, const Conv2dParams& p, ConvPass pass);

// Sizes of x viewed as [outer, dim, inner] around `dim`.
struct Around {
  int64_t outer, n, inner;
};
Around around(const Shape& s, int dim);

// Work below this many elements runs on one thread (thread start-up costs more).
constexpr int64_t kParallelGrain = 1 << 15;

}  // namespace afd::cpu
