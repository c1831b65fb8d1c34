// The CUDA backend: one instance per device, each with its own stream, cuBLAS and cuDNN handles
// and caching allocator. Every kernel of a device runs on its one stream, in order, so a block
// freed by a tensor can be handed to the next allocation at once (stream order makes the reuse
// safe) and host code only waits where it reads results back (copies to the CPU, synchronize()).
//
// Files: cuda_backend.cpp (allocator, copies, elementwise and reduction dispatch, gemm through
// cuBLAS), conv.cpp (convolutions through cuDNN), elementwise.cu / reduce.cu / pool.cu (own
// kernels, declared in kernels.cuh).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <memory>
#include <string>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "tensor/backend.h"

namespace afd::cuda {

// Size-class caching allocator (the CPU backend's scheme: 16 classes between powers of two).
// cudaMalloc only on a miss; cached blocks go back to cudaFree only when a cudaMalloc fails.
class DeviceAllocator {
 public:
  explicit DeviceAllocator(int device) : device_(device) {}
  void* allocate(size_t bytes);
  void deallocate(void* ptr, size_t bytes);
  MemoryStats stats();
  void reset_peak();

 private:
  void release_cached();  // caller holds mutex_
  int device_;
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // size class -> free blocks
  MemoryStats stats_;
};

// Pinned host buffers for uploads. copy() from the CPU puts the bytes into one (a host memcpy),
// queues the copy to the device from there and records an event that marks the buffer free
// again, so an upload returns without waiting for the stream, and the pageable source (often a
// temporary) may die at once. A ring of kSlots buffers; a slot is reused after its last copy has
// finished (long done in a training step: three uploads have been queued since), and grows with
// cudaHostAlloc only when an upload outgrows it. Uploads above kMaxBytes take the plain path.
class HostStaging {
 public:
  HostStaging() = default;
  HostStaging(const HostStaging&) = delete;
  HostStaging& operator=(const HostStaging&) = delete;
  ~HostStaging();
  // Queues the copy of [src, src + n) to the device pointer dst on `stream`; false (nothing
  // queued) when n is above kMaxBytes. The device of `stream` must be current.
  bool upload(void* dst, const void* src, size_t n, cudaStream_t stream);

 private:
  static constexpr int kSlots = 4;
  static constexpr size_t kMaxBytes = size_t(64) << 20;
  struct Slot {
    void* host = nullptr;  // pinned, `capacity` bytes
    size_t capacity = 0;
    cudaEvent_t done = nullptr;  // recorded after the slot's last copy
  };
  std::mutex mutex_;
  Slot slots_[kSlots];
  int next_ = 0;
};

struct BadIndex;  // kernels.cuh: the device word of the index checks
struct ConvPlan;  // conv.cpp: descriptors and chosen algorithms for one convolution shape
struct ConvPlanDeleter {
  void operator()(ConvPlan* plan) const;  // conv.cpp, where ConvPlan is complete
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;

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
  void conv2d_backward_data(const Tensor& dy, const Tensor& w, const Conv2dParams& p, Tensor& dx) override;
  void conv2d_backward_filter(const Tensor& dy, const Tensor& x, const Conv2dParams& p, Tensor& dw,
                              Tensor& dbias) override;
  void batch_norm_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, bool relu, Tensor& y,
                        Tensor& mean, Tensor& var, Tensor& invstd) override;
  void batch_norm_apply(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                        const Tensor& invstd, Tensor& y) override;
  void batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                           const Tensor& invstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta) override;
  void bn_fold(const Tensor& w, const Tensor& conv_bias, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
               const Tensor& var, double eps, Tensor& w_out, Tensor& shift, Tensor& invstd) override;
  void max_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor& y, Tensor& indices) override;
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

  MemoryStats memory_stats() { return allocator_.stats(); }
  void reset_peak_memory() { allocator_.reset_peak(); }
  void synchronize();

 private:
  void activate();  // makes this device current on the calling thread
  Device device() const { return Device::cuda(device_); }
  // Queues a device-side check that every index lies in [0, limit), with no host wait; the next
  // synchronisation (drain_index_checks) throws the CPU backend's message for the first failure.
  void check_indices(const Tensor& index, int64_t limit, const char* op);
  // Reads the index-check word and throws if a queued check failed; forgets the queued checks.
  void drain_index_checks();
  void drain_locked();  // the same, index_mutex_ held
  // A scratch tensor of n doubles (from the caching allocator).
  Tensor scratch(int64_t n);
  ConvPlan& conv_plan(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dParams& p);

  int device_;
  DeviceAllocator allocator_;
  HostStaging staging_;
  cudaStream_t stream_ = nullptr;
  size_t max_pitch_ = 0;  // cudaDevAttrMaxPitch: the largest pitch of a 2-D copy
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  BadIndex* bad_index_ = nullptr;  // device word of the queued index checks (kernels.cuh)
  struct IndexCheck {
    const char* op;
    int64_t limit;
  };
  std::vector<IndexCheck> index_checks_;  // queued since the last drain; check k has seq k
  std::mutex index_mutex_;                // a loader thread may copy to the CPU while the main thread checks
  std::unordered_map<std::string, std::unique_ptr<ConvPlan, ConvPlanDeleter>> conv_plans_;
};

}  // namespace afd::cuda
