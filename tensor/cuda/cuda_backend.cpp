// The CUDA backend: allocator, copies, dispatch of the own kernels (kernels.cuh) and gemm
// through cuBLAS. Shapes and dtypes arrive checked by tensor/ops.cpp, as for the CPU backend;
// this file turns tensors into raw pointers and sizes.
#include "tensor/cuda/cuda_backend.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>

#include "tensor/broadcast.h"
#include "tensor/cpu/cpu_backend.h"
#include "tensor/cuda/check.h"
#include "tensor/cuda/cuda_info.h"
#include "tensor/cuda/kernels.cuh"

namespace afd::cuda {

static_assert(static_cast<int>(Dt::f32) == static_cast<int>(DType::f32) &&
              static_cast<int>(Dt::f64) == static_cast<int>(DType::f64) &&
              static_cast<int>(Dt::i64) == static_cast<int>(DType::i64) &&
              static_cast<int>(Dt::u8) == static_cast<int>(DType::u8));

namespace {
Dt dt(DType t) { return static_cast<Dt>(static_cast<int>(t)); }
using cpu::around;
using cpu::Around;
}  // namespace

// ---- allocator -----------------------------------------------------------------------------------
namespace {
constexpr size_t kMinBlock = 512;  // cudaMalloc's own alignment; small tensors share nothing

size_t size_class(size_t bytes) {
  bytes = std::max(bytes, kMinBlock);
  size_t step = std::max<size_t>(std::bit_floor(bytes) / 16, kMinBlock);
  return (bytes + step - 1) / step * step;
}
}  // namespace

void* DeviceAllocator::allocate(size_t bytes) {
  size_t cls = size_class(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* p = nullptr;
  auto it = free_.find(cls);
  if (it != free_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    stats_.cached_bytes -= cls;
  } else {
    cudaError_t status = cudaMalloc(&p, cls);
    if (status == cudaErrorMemoryAllocation && stats_.cached_bytes > 0) {
      cudaGetLastError();  // clear, give the cached blocks back and try once more
      release_cached();
      status = cudaMalloc(&p, cls);
    }
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      AFD_FAIL("cuda:{}: out of memory allocating {} bytes ({} in use by tensors): {}; use a smaller "
               "--batch-size", device_, bytes, stats_.in_use_bytes, cudaGetErrorString(status));
    }
    // Anything else is an earlier asynchronous error (a kernel that faulted) surfacing here:
    // report it as what it is, not as a lack of memory.
    if (status != cudaSuccess) throw_gpu_error("cudaMalloc", cudaGetErrorString(status), "CUDA", __FILE__, __LINE__);
    ++stats_.device_mallocs;
  }
  stats_.in_use_bytes += cls;
  stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.in_use_bytes);
  return p;
}

void DeviceAllocator::deallocate(void* ptr, size_t bytes) {
  size_t cls = size_class(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  free_[cls].push_back(ptr);
  stats_.in_use_bytes -= cls;
  stats_.cached_bytes += cls;
}

void DeviceAllocator::release_cached() {
  cudaDeviceSynchronize();  // blocks may still be in use by queued kernels
  for (auto& [cls, blocks] : free_)
    for (void* p : blocks) {
      cudaFree(p);
      ++stats_.device_frees;
    }
  free_.clear();
  stats_.cached_bytes = 0;
}

MemoryStats DeviceAllocator::stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void DeviceAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_bytes = stats_.in_use_bytes;
}

// ---- the backend object ----------------------------------------------------------------------------
CudaBackend::CudaBackend(int device) : device_(device), allocator_(device) {
  activate();
  AFD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  AFD_CUBLAS_CHECK(cublasCreate(&cublas_));
  AFD_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  AFD_CUDNN_CHECK(cudnnCreate(&cudnn_));
  AFD_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
  int max_pitch = 0;
  AFD_CUDA_CHECK(cudaDeviceGetAttribute(&max_pitch, cudaDevAttrMaxPitch, device_));
  max_pitch_ = static_cast<size_t>(max_pitch);
  AFD_CUDA_CHECK(cudaMalloc(&bad_index_, sizeof(BadIndex)));
  AFD_CUDA_CHECK(cudaMemsetAsync(bad_index_, 0xff, sizeof(BadIndex), stream_));  // key = kNoBadIndex
}

// Backends live until the process ends (device_backend never deletes them): tensors held in
// static objects may be freed after any static destructor ran, so this only runs if someone
// deletes a backend explicitly.
CudaBackend::~CudaBackend() {
  conv_plans_.clear();
  if (bad_index_) cudaFree(bad_index_);
  if (cudnn_) cudnnDestroy(cudnn_);
  if (cublas_) cublasDestroy(cublas_);
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaBackend::activate() {
  // Asked each time rather than cached per thread: other code on the thread (NCCL's setup, a
  // user's own CUDA calls) may switch the device, and a stale cache would launch this device's
  // work with another device current. cudaGetDevice costs tens of nanoseconds.
  int current = -1;
  AFD_CUDA_CHECK(cudaGetDevice(&current));
  if (current != device_) AFD_CUDA_CHECK(cudaSetDevice(device_));
}

void CudaBackend::synchronize() {
  activate();
  AFD_CUDA_CHECK(cudaStreamSynchronize(stream_));
  drain_index_checks();
}

void* CudaBackend::allocate(size_t bytes) {
  activate();
  return allocator_.allocate(bytes);
}

void CudaBackend::deallocate(void* ptr, size_t bytes) { allocator_.deallocate(ptr, bytes); }

Tensor CudaBackend::scratch(int64_t n) { return Tensor({std::max<int64_t>(n, 1)}, DType::f64, device()); }

// ---- index checks ----------------------------------------------------------------------------------
// An index outside its range must raise the CPU backend's error, but reading a verdict back on every
// cross_entropy or gather would stop the host until the stream drains, every step (DESIGN: no host
// syncs in a step). So a check only queues two small kernels that fold its verdict into one device
// word (kernels.cuh, BadIndex), the indexing kernels skip bad entries meanwhile, and the word is read
// where the host waits anyway: synchronize() and copies to the CPU. The error then comes at that
// point, as CUDA's own device-side asserts do, but it names the failing op, index, position and range.
namespace {
constexpr size_t kMaxQueuedChecks = size_t(1) << 16;  // then a drain; check numbers fit the key's 24 bits
}

void CudaBackend::check_indices(const Tensor& index, int64_t limit, const char* op) {
  int64_t n = index.numel();
  if (n == 0) return;
  AFD_CHECK(n < (int64_t(1) << kBadPositionBits), "{}: {} indices, more than the index check addresses", op, n);
  std::lock_guard<std::mutex> lock(index_mutex_);
  if (index_checks_.size() == kMaxQueuedChecks) drain_locked();
  launch_find_bad_index(index.data<int64_t>(), n, limit, index_checks_.size(), bad_index_, stream_);
  index_checks_.push_back({op, limit});
}

void CudaBackend::drain_index_checks() {
  std::lock_guard<std::mutex> lock(index_mutex_);
  drain_locked();
}

void CudaBackend::drain_locked() {
  if (index_checks_.empty()) return;
  BadIndex bad{};
  AFD_CUDA_CHECK(cudaMemcpyAsync(&bad, bad_index_, sizeof bad, cudaMemcpyDeviceToHost, stream_));
  AFD_CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (bad.key == kNoBadIndex) {
    index_checks_.clear();
    return;
  }
  AFD_CUDA_CHECK(cudaMemsetAsync(bad_index_, 0xff, sizeof(BadIndex), stream_));  // afresh for the next checks
  const uint64_t seq = bad.key >> kBadPositionBits, position = bad.key & ((uint64_t(1) << kBadPositionBits) - 1);
  const size_t queued = index_checks_.size();
  const IndexCheck failed = seq < queued ? index_checks_[seq] : IndexCheck{"index check", -1};
  index_checks_.clear();
  AFD_CHECK(seq < queued, "index check word {:#x} names check {} of {}", bad.key, seq, queued);
  AFD_FAIL("{}: index {} at position {} is out of range [0, {})", failed.op, bad.value, position, failed.limit);
}

// ---- copies and fills ------------------------------------------------------------------------------
HostStaging::~HostStaging() {  // no throwing from a destructor
  for (Slot& slot : slots_) {
    if (slot.done) {
      cudaEventSynchronize(slot.done);
      cudaEventDestroy(slot.done);
    }
    if (slot.host) cudaFreeHost(slot.host);
  }
}

bool HostStaging::upload(void* dst, const void* src, size_t n, cudaStream_t stream) {
  if (n > kMaxBytes) return false;
  if (n == 0) return true;
  std::lock_guard<std::mutex> lock(mutex_);
  Slot& slot = slots_[next_];
  next_ = (next_ + 1) % kSlots;
  if (slot.done)
    AFD_CUDA_CHECK(cudaEventSynchronize(slot.done));  // the slot's previous copy has finished
  else
    AFD_CUDA_CHECK(cudaEventCreateWithFlags(&slot.done, cudaEventDisableTiming));
  if (slot.capacity < n) {
    if (slot.host) AFD_CUDA_CHECK(cudaFreeHost(slot.host));
    slot.host = nullptr;
    slot.capacity = 0;
    const size_t capacity = std::max(n, size_t(1) << 20);  // small uploads share one 1 MiB buffer
    AFD_CUDA_CHECK(cudaHostAlloc(&slot.host, capacity, cudaHostAllocDefault));
    slot.capacity = capacity;
  }
  std::memcpy(slot.host, src, n);
  AFD_CUDA_CHECK(cudaMemcpyAsync(dst, slot.host, n, cudaMemcpyHostToDevice, stream));
  AFD_CUDA_CHECK(cudaEventRecord(slot.done, stream));
  return true;
}

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  activate();
  const Device sd = src.device(), dd = dst.device();
  if (sd.is_cpu()) {  // host -> this device: convert on the host first
    Tensor host = src.to(dst.dtype());
    if (staging_.upload(dst.raw_data(), host.raw_data(), dst.nbytes(), stream_)) return;
    // Too large to stage. From pageable memory CUDA "may" stage the bytes and return; where the
    // GPU reads host memory directly the copy can still run after the call. `host` (often a
    // temporary) dies on return, so wait for the copy.
    AFD_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), host.raw_data(), dst.nbytes(), cudaMemcpyHostToDevice, stream_));
    AFD_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return;
  }
  if (dd.is_cpu()) {  // this device -> host: convert on the device first
    Tensor same = src.to(dst.dtype());
    AFD_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), same.raw_data(), dst.nbytes(), cudaMemcpyDeviceToHost, stream_));
    AFD_CUDA_CHECK(cudaStreamSynchronize(stream_));
    drain_index_checks();  // a result read back may hold the zeros of a bad index
    return;
  }
  if (sd != dd) {  // device -> device: bytes first (unified addressing), then convert here
    Tensor moved(src.shape(), src.dtype(), dd);
    afd::synchronize(sd);  // the source device may still be writing src
    AFD_CUDA_CHECK(cudaMemcpyAsync(moved.raw_data(), src.raw_data(), src.nbytes(), cudaMemcpyDefault, stream_));
    // src's block returns to the source device's cache when the caller drops it, and that
    // device's stream may reuse it at once: the read must be over first.
    AFD_CUDA_CHECK(cudaStreamSynchronize(stream_));
    copy(moved, dst);
    return;
  }
  if (src.dtype() == dst.dtype())
    AFD_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), src.nbytes(), cudaMemcpyDeviceToDevice, stream_));
  else
    launch_convert(src.raw_data(), dt(src.dtype()), dst.raw_data(), dt(dst.dtype()), src.numel(), stream_);
}

void CudaBackend::fill(Tensor& out, double value) {
  activate();
  launch_fill(out.raw_data(), dt(out.dtype()), out.numel(), value, stream_);
}

void CudaBackend::arange(Tensor& out, double start, double step) {
  activate();
  launch_arange(out.raw_data(), dt(out.dtype()), out.numel(), start, step, stream_);
}

// ---- elementwise -----------------------------------------------------------------------------------
namespace {
BroadcastGeometry geometry_of(const Shape& out, std::initializer_list<const Tensor*> operands) {
  Strided s = coalesce(out, operands);
  AFD_CHECK(s.sizes.size() <= static_cast<size_t>(kMaxRank), "cuda: broadcasting over {} dims (at most {})",
            s.sizes.size(), kMaxRank);
  BroadcastGeometry g;
  g.rank = static_cast<int>(s.sizes.size());
  const int64_t n = shape_numel(out);
  g.fast = n > 0 && n <= int64_t(UINT32_MAX);  // then every size is a 32-bit divisor >= 1
  for (int d = 0; d < g.rank; ++d) {
    g.sizes[d] = s.sizes[d];
    for (int k = 0; k < 3; ++k) g.strides[k][d] = s.strides[d][k];
    if (g.fast) g.by[d] = FastDivmod(static_cast<uint32_t>(s.sizes[d]));
  }
  return g;
}
}  // namespace

void CudaBackend::unary(UnaryOp op, const Tensor& x, Tensor& out, double a, double b) {
  activate();
  dispatch_float(x.dtype(), "unary", [&]<class T>() {
    launch_unary<T>(op, x.data<T>(), out.data<T>(), x.numel(), T(a), T(b), stream_);
  });
}

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  activate();
  dispatch_float(a.dtype(), "binary", [&]<class T>() {
    if (a.shape() == out.shape() && b.shape() == out.shape()) {
      launch_binary<T>(op, a.data<T>(), b.data<T>(), out.data<T>(), out.numel(), nullptr, stream_);
    } else {
      BroadcastGeometry g = geometry_of(out.shape(), {&a, &b});
      launch_binary<T>(op, a.data<T>(), b.data<T>(), out.data<T>(), out.numel(), &g, stream_);
    }
  });
}

void CudaBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  activate();
  BroadcastGeometry g = geometry_of(out.shape(), {&cond, &a, &b});
  dispatch_float(a.dtype(), "where", [&]<class T>() {
    launch_where<T>(cond.raw_data(), dt(cond.dtype()), a.data<T>(), b.data<T>(), out.data<T>(), out.numel(), g,
                    stream_);
  });
}

// ---- reductions ------------------------------------------------------------------------------------
void CudaBackend::sum_to(const Tensor& x, Tensor& out) {
  activate();
  dispatch_float(x.dtype(), "sum", [&]<class T>() {
    std::vector<ReduceStep> plan = sum_to_plan(x.shape(), out.shape());
    if (plan.empty()) {  // nothing to reduce (only size-1 dims differ): plain copy
      AFD_CUDA_CHECK(cudaMemcpyAsync(out.raw_data(), x.raw_data(), x.nbytes(), cudaMemcpyDeviceToDevice, stream_));
      return;
    }
    Tensor cur = x;
    for (const ReduceStep& step : plan) {
      Tensor dst = step.last ? out : Tensor(step.result, x.dtype(), x.device());
      int64_t need = sum_middle_scratch(step.P, step.R, step.Q);
      Tensor work = need > 0 ? scratch(need) : Tensor();
      launch_sum_middle<T>(cur.data<T>(), dst.data<T>(), step.P, step.R, step.Q,
                           need > 0 ? work.data<double>() : nullptr, stream_);
      cur = dst;
    }
  });
}

void CudaBackend::max_dim(const Tensor& x, int dim, Tensor& values, Tensor& indices) {
  activate();
  Around a = around(x.shape(), dim);
  dispatch_float(x.dtype(), "max", [&]<class T>() {
    launch_max_dim<T>(x.data<T>(), values.data<T>(), indices.data<int64_t>(), a.outer, a.n, a.inner, stream_);
  });
}

void CudaBackend::softmax(const Tensor& x, int dim, bool log, Tensor& out) {
  activate();
  Around a = around(x.shape(), dim);
  dispatch_float(x.dtype(), "softmax", [&]<class T>() {
    launch_softmax<T>(x.data<T>(), out.data<T>(), a.outer, a.n, a.inner, log, stream_);
  });
}

void CudaBackend::cross_entropy(const Tensor& logits, const Tensor& labels, Tensor& loss) {
  activate();
  int64_t N = logits.size(0), C = logits.size(1);
  check_indices(labels, C, "cross_entropy (label)");
  dispatch_float(logits.dtype(), "cross_entropy", [&]<class T>() {
    launch_cross_entropy<T>(logits.data<T>(), labels.data<int64_t>(), loss.data<T>(), N, C, stream_);
  });
}

void CudaBackend::cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& g,
                                         Tensor& dlogits) {
  activate();
  dispatch_float(logits.dtype(), "cross_entropy_backward", [&]<class T>() {
    launch_cross_entropy_backward<T>(logits.data<T>(), labels.data<int64_t>(), g.data<T>(), dlogits.data<T>(),
                                     logits.size(0), logits.size(1), stream_);
  });
}

// ---- gemm (cuBLAS) ---------------------------------------------------------------------------------
// cuBLAS is column-major; a row-major matrix is its transpose in column-major. So the row-major
// C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T: swap the operands and
// keep each one's transpose flag.
void CudaBackend::gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b, double beta,
                       Tensor& c) {
  activate();
  int64_t m = c.size(0), n = c.size(1), k = trans_a ? a.size(0) : a.size(1);
  AFD_CHECK(m < INT32_MAX && n < INT32_MAX && k < INT32_MAX, "cuda gemm: sizes {} x {} x {} exceed int32", m, n, k);
  if (m == 0 || n == 0) return;
  int lda = static_cast<int>(trans_a ? m : k), ldb = static_cast<int>(trans_b ? k : n);
  cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (c.dtype() == DType::f32) {
    AFD_CUBLAS_CHECK(cublasSetMathMode(
        cublas_, precision() == Precision::tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    float al = float(alpha), be = float(beta);
    AFD_CUBLAS_CHECK(cublasSgemm(cublas_, op_b, op_a, int(n), int(m), int(k), &al, b.data<float>(), ldb,
                                 a.data<float>(), lda, &be, c.data<float>(), int(n)));
  } else {
    AFD_CHECK(c.dtype() == DType::f64, "gemm: dtype {} is not f32 or f64", dtype_name(c.dtype()));
    AFD_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
    AFD_CUBLAS_CHECK(cublasDgemm(cublas_, op_b, op_a, int(n), int(m), int(k), &alpha, b.data<double>(), ldb,
                                 a.data<double>(), lda, &beta, c.data<double>(), int(n)));
  }
}

// ---- batch norm and pooling ------------------------------------------------------------------------
namespace {
struct Channels {
  int64_t N, C, M;
};
Channels channels(const Tensor& x) { return {x.size(0), x.size(1), x.numel() / (x.size(0) * x.size(1))}; }
template <class T>
T* ptr_or_null(Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
PoolGeometry pool_geometry(const Tensor& x, const Tensor& y, const Pool2dParams& p) {
  return {x.size(0) * x.size(1), x.size(2), x.size(3), y.size(2), y.size(3), p.kernel, p.stride, p.padding};
}
}  // namespace

void CudaBackend::batch_norm_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, bool relu,
                                   Tensor& y, Tensor& mean, Tensor& var, Tensor& invstd) {
  activate();
  Channels v = channels(x);
  Tensor work = scratch(batch_norm_scratch(v.N, v.C, v.M));
  dispatch_float(x.dtype(), "batch_norm", [&]<class T>() {
    launch_bn_stats<T>(x.data<T>(), v.N, v.C, v.M, eps, mean.data<T>(), var.data<T>(), invstd.data<T>(),
                       work.data<double>(), stream_);
    launch_bn_apply<T>(x.data<T>(), gamma.data<T>(), beta.data<T>(), mean.data<T>(), invstd.data<T>(), y.data<T>(),
                       v.N, v.C, v.M, relu, stream_);
  });
}

void CudaBackend::batch_norm_apply(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                                   const Tensor& invstd, Tensor& y) {
  activate();
  Channels v = channels(x);
  dispatch_float(x.dtype(), "batch_norm", [&]<class T>() {
    launch_bn_apply<T>(x.data<T>(), gamma.data<T>(), beta.data<T>(), mean.data<T>(), invstd.data<T>(), y.data<T>(),
                       v.N, v.C, v.M, /*relu=*/false, stream_);
  });
}

void CudaBackend::batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                      const Tensor& invstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  activate();
  Channels v = channels(x);
  Tensor work = scratch(batch_norm_scratch(v.N, v.C, v.M));
  dispatch_float(x.dtype(), "batch_norm_backward", [&]<class T>() {
    launch_bn_backward<T>(dy.data<T>(), x.data<T>(), gamma.data<T>(), mean.data<T>(), invstd.data<T>(),
                          ptr_or_null<T>(dx), ptr_or_null<T>(dgamma), ptr_or_null<T>(dbeta), v.N, v.C, v.M,
                          work.data<double>(), stream_);
  });
}

void CudaBackend::bn_fold(const Tensor& w, const Tensor& conv_bias, const Tensor& gamma, const Tensor& beta,
                          const Tensor& mean, const Tensor& var, double eps, Tensor& w_out, Tensor& shift,
                          Tensor& invstd) {
  activate();
  dispatch_float(w.dtype(), "bn_fold", [&]<class T>() {
    const T* bias = conv_bias.defined() ? conv_bias.data<T>() : nullptr;
    launch_bn_fold<T>(w.data<T>(), bias, gamma.data<T>(), beta.data<T>(), mean.data<T>(), var.data<T>(), eps,
                      w_out.data<T>(), shift.data<T>(), invstd.data<T>(), w.size(0), w.numel() / w.size(0), stream_);
  });
}

void CudaBackend::max_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor& y, Tensor& indices) {
  activate();
  PoolGeometry g = pool_geometry(x, y, p);
  dispatch_float(x.dtype(), "max_pool2d", [&]<class T>() {
    launch_max_pool_forward<T>(x.data<T>(), y.data<T>(), indices.data<int64_t>(), g, stream_);
  });
}

void CudaBackend::max_pool2d_backward(const Tensor& dy, const Tensor& indices, Tensor& dx) {
  activate();
  int64_t planes = dx.size(0) * dx.size(1), HW = dx.size(2) * dx.size(3), PQ = dy.size(2) * dy.size(3);
  dispatch_float(dy.dtype(), "max_pool2d_backward", [&]<class T>() {
    launch_max_pool_backward<T>(dy.data<T>(), indices.data<int64_t>(), dx.data<T>(), planes, HW, PQ,
                                deterministic(), stream_);
  });
}

void CudaBackend::avg_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor& y) {
  activate();
  PoolGeometry g = pool_geometry(x, y, p);
  dispatch_float(x.dtype(), "avg_pool2d", [&]<class T>() { launch_avg_pool_forward<T>(x.data<T>(), y.data<T>(), g, stream_); });
}

void CudaBackend::avg_pool2d_backward(const Tensor& dy, const Pool2dParams& p, Tensor& dx) {
  activate();
  PoolGeometry g = pool_geometry(dx, dy, p);
  dispatch_float(dy.dtype(), "avg_pool2d_backward", [&]<class T>() {
    launch_avg_pool_backward<T>(dy.data<T>(), dx.data<T>(), g, stream_);
  });
}

// ---- indexing --------------------------------------------------------------------------------------
void CudaBackend::gather(const Tensor& x, int dim, const Tensor& index, Tensor& out) {
  activate();
  Around ax = around(x.shape(), dim), ai = around(index.shape(), dim);
  check_indices(index, ax.n, "gather");
  dispatch_float(x.dtype(), "gather", [&]<class T>() {
    launch_gather<T>(x.data<T>(), index.data<int64_t>(), out.data<T>(), ai.outer, ax.n, ai.n, ai.inner, stream_);
  });
}

void CudaBackend::scatter_add(Tensor& out, int dim, const Tensor& index, const Tensor& src) {
  activate();
  Around ao = around(out.shape(), dim), ai = around(index.shape(), dim);
  check_indices(index, ao.n, "scatter_add");
  dispatch_float(src.dtype(), "scatter_add", [&]<class T>() {
    launch_scatter_add<T>(out.data<T>(), index.data<int64_t>(), src.data<T>(), ai.outer, ao.n, ai.n, ai.inner,
                          stream_);
  });
}

void CudaBackend::index_select(const Tensor& table, const Tensor& index, Tensor& out) {
  activate();
  check_indices(index, table.size(0), "index_select");
  int64_t row_bytes = table.nbytes() / std::max<int64_t>(table.size(0), 1);
  launch_index_select(table.raw_data(), table.size(0), index.data<int64_t>(), out.raw_data(), index.size(0),
                      row_bytes, stream_);
}

void CudaBackend::index_add(Tensor& out, const Tensor& index, const Tensor& src) {
  activate();
  check_indices(index, out.size(0), "index_add");
  int64_t row = out.numel() / std::max<int64_t>(out.size(0), 1);
  dispatch_float(src.dtype(), "index_add", [&]<class T>() {
    launch_index_add<T>(out.data<T>(), out.size(0), index.data<int64_t>(), src.data<T>(), index.size(0), row, stream_);
  });
}

// One strided 2-D copy: `outer` rows of len * inner elements, each row at its own pitch.
void CudaBackend::copy_slab(const Tensor& src, int64_t src_start, Tensor& dst, int64_t dst_start, int dim,
                            int64_t len) {
  activate();
  Around as = around(src.shape(), dim), ad = around(dst.shape(), dim);
  size_t es = dtype_size(src.dtype());
  const char* ps = static_cast<const char*>(src.raw_data()) + src_start * as.inner * es;
  char* pd = static_cast<char*>(dst.raw_data()) + dst_start * ad.inner * es;
  size_t width = len * as.inner * es;
  if (width == 0 || as.outer == 0) return;
  const size_t src_pitch = as.n * as.inner * es, dst_pitch = ad.n * ad.inner * es;
  // A 2-D copy refuses pitches over the device's cudaDevAttrMaxPitch (2 GiB): such rows are few
  // (each over 2 GiB), so they go one plain copy per row.
  if (as.outer == 1 || std::max(src_pitch, dst_pitch) > max_pitch_) {
    for (int64_t r = 0; r < as.outer; ++r)
      AFD_CUDA_CHECK(cudaMemcpyAsync(pd + r * dst_pitch, ps + r * src_pitch, width, cudaMemcpyDeviceToDevice, stream_));
    return;
  }
  AFD_CUDA_CHECK(cudaMemcpy2DAsync(pd, dst_pitch, ps, src_pitch, width, as.outer, cudaMemcpyDeviceToDevice, stream_));
}

// ---- optimizer update -------------------------------------------------------------------------------
void CudaBackend::update_running_stats(Tensor& running_mean, Tensor& running_var, Tensor& count, const Tensor& mean,
                                       const Tensor& var, double momentum, double var_scale) {
  activate();
  dispatch_float(running_mean.dtype(), "update_running_stats", [&]<class T>() {
    launch_update_running_stats<T>(running_mean.data<T>(), running_var.data<T>(),
                                   count.defined() ? count.data<int64_t>() : nullptr, mean.data<T>(), var.data<T>(),
                                   running_mean.numel(), momentum, var_scale, stream_);
  });
}

void CudaBackend::sgd_step(const std::vector<SgdTensors>& tensors, const SgdStep& s) {
  activate();
  dispatch_float(tensors.at(0).param.dtype(), "sgd_step", [&]<class T>() {
    std::vector<SgdPointers<T>> ptrs;
    for (const SgdTensors& t : tensors)
      ptrs.push_back({t.param.data<T>(), t.grad.data<T>(),
                      s.momentum != 0 ? t.momentum_buffer.data<T>() : nullptr, t.param.numel()});
    launch_sgd_step<T>(ptrs, s.lr, s.weight_decay, s.momentum, s.dampening, s.nesterov, s.first, stream_);
  });
}

// ---- attack step ------------------------------------------------------------------------------------
void CudaBackend::linf_sign_step(const Tensor& x0, const Tensor& x, const Tensor& g, const Tensor& steps,
                                 Tensor& out) {
  activate();
  dispatch_float(x.dtype(), "linf_sign_step", [&]<class T>() {
    launch_linf_sign_step<T>(x0.data<T>(), x.data<T>(), g.data<T>(), steps.data<T>(), out.data<T>(), x.numel(),
                             x.size(0), stream_);
  });
}

// ---- random numbers --------------------------------------------------------------------------------
void CudaBackend::uniform(Tensor& out, uint64_t seed, uint64_t offset, double low, double high) {
  activate();
  dispatch_float(out.dtype(), "uniform", [&]<class T>() {
    launch_uniform<T>(out.data<T>(), out.numel(), seed, offset, low, high, stream_);
  });
}

void CudaBackend::normal(Tensor& out, uint64_t seed, uint64_t offset, double mean, double std) {
  activate();
  dispatch_float(out.dtype(), "normal", [&]<class T>() {
    launch_normal<T>(out.data<T>(), out.numel(), seed, offset, mean, std, stream_);
  });
}

// ---- entry points (tensor/cuda/cuda_info.h) --------------------------------------------------------
namespace {
constexpr int kMaxDevices = 64;
std::atomic<CudaBackend*> g_backends[kMaxDevices];  // created on first use, never destroyed

CudaBackend& instance(int index) {
  if (index >= 0 && index < kMaxDevices)
    if (CudaBackend* b = g_backends[index].load(std::memory_order_acquire)) return *b;
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  int count = device_count();
  AFD_CHECK(index >= 0 && index < count && index < kMaxDevices, "cuda:{}: {} CUDA device(s) visible", index, count);
  if (g_backends[index].load() == nullptr) g_backends[index].store(new CudaBackend(index), std::memory_order_release);
  return *g_backends[index].load();
}
}  // namespace

Backend& device_backend(int index) { return instance(index); }
MemoryStats memory_stats(int index) { return instance(index).memory_stats(); }
void reset_peak_memory(int index) { instance(index).reset_peak_memory(); }
void synchronize(int index) { instance(index).synchronize(); }

}  // namespace afd::cuda
