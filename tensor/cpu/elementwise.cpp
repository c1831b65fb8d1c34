// CPU kernels: memory (a caching allocator), copies, elementwise ops with broadcasting,
// reductions, softmax and cross-entropy, indexing and random numbers.
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "tensor/broadcast.h"
#include "tensor/cpu/cpu_backend.h"
#include "tensor/philox.h"
#include "tensor/rng.h"

namespace afd::cpu {

Around around(const Shape& s, int dim) {
  Around a{1, s[dim], 1};
  for (int i = 0; i < dim; ++i) a.outer *= s[i];
  for (size_t i = dim + 1; i < s.size(); ++i) a.inner *= s[i];
  return a;
}

// ---- memory: a caching allocator for large blocks ------------------------------------------------
// A training step allocates the same large activations every iteration. Straight from malloc, a
// block of that size is a fresh mmap: every page faults and is zeroed by the kernel at first touch,
// and munmap tears it down again at free (about a fifth of a small-CNN step on one core). Blocks of
// at least kCacheMin bytes are therefore kept on free lists by size class and handed out again;
// smaller ones go to malloc, whose own bins already reuse them.
namespace {

constexpr size_t kAlignment = 64;            // vector loads and cache lines
constexpr size_t kCacheMin = size_t(1) << 16;  // 64 KiB
constexpr size_t kCacheMax = size_t(2) << 30;  // cached (free) bytes kept at most: 2 GiB

// Size class: rounded up to one of 16 steps between consecutive powers of two (<= 6% waste).
size_t size_class(size_t bytes) {
  size_t step = std::max<size_t>(std::bit_floor(bytes) / 16, kAlignment);
  return (bytes + step - 1) / step * step;
}

class BlockCache {
 public:
  void* take(size_t cls) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(cls);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_bytes_ -= cls;
    return p;
  }
  void give(void* p, size_t cls) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_bytes_ + cls > kCacheMax) release_all();  // shapes keep changing: start afresh
    free_[cls].push_back(p);
    cached_bytes_ += cls;
  }

 private:
  void release_all() {
    for (auto& [cls, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    cached_bytes_ = 0;
  }
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // size class -> free blocks
  size_t cached_bytes_ = 0;
};

// Never destroyed: tensors held in static objects may be freed after any static destructor ran.
BlockCache& block_cache() {
  static BlockCache* cache = new BlockCache;
  return *cache;
}

}  // namespace

// Under AddressSanitizer every block goes straight back to the system, so that a use after free
// is reported instead of landing in a recycled block.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kUseCache = false;
#else
constexpr bool kUseCache = true;
#endif

void* CpuBackend::allocate(size_t bytes) {
  // aligned_alloc wants a size that is a multiple of the alignment.
  size_t rounded = std::max<size_t>(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  if (kUseCache && rounded >= kCacheMin) {
    rounded = size_class(rounded);
    if (void* p = block_cache().take(rounded)) return p;
  }
  void* p = std::aligned_alloc(kAlignment, rounded);
  AFD_CHECK(p != nullptr, "cpu: out of memory allocating {} bytes", bytes);
  return p;
}

void CpuBackend::deallocate(void* ptr, size_t bytes) {
  size_t rounded = std::max<size_t>(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  if (kUseCache && rounded >= kCacheMin)
    block_cache().give(ptr, size_class(rounded));
  else
    std::free(ptr);
}

void CpuBackend::copy(const Tensor& src, Tensor& dst) {
  AFD_CHECK(src.device().is_cpu() && dst.device().is_cpu(), "cpu copy: {} -> {} needs the CUDA backend",
            src.device().str(), dst.device().str());
  if (src.dtype() == dst.dtype()) {
    std::memcpy(dst.raw_data(), src.raw_data(), src.nbytes());
    return;
  }
  dispatch_all(src.dtype(), [&]<class S>() {
    dispatch_all(dst.dtype(), [&]<class D>() {
      const S* s = src.data<S>();
      D* d = dst.data<D>();
      int64_t n = src.numel();
#pragma omp parallel for if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<D>(s[i]);
    });
  });
}

void CpuBackend::fill(Tensor& out, double value) {
  dispatch_all(out.dtype(), [&]<class T>() {
    T* o = out.data<T>();
    std::fill(o, o + out.numel(), static_cast<T>(value));
  });
}

void CpuBackend::arange(Tensor& out, double start, double step) {
  dispatch_all(out.dtype(), [&]<class T>() {
    T* o = out.data<T>();
    for (int64_t i = 0; i < out.numel(); ++i) o[i] = static_cast<T>(start + step * static_cast<double>(i));
  });
}

// ---- elementwise -----------------------------------------------------------------------------
namespace {

template <class T, class F>
void map_unary(const Tensor& x, Tensor& out, F f) {
  const T* in = x.data<T>();
  T* o = out.data<T>();
  int64_t n = x.numel();
#pragma omp parallel for simd if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) o[i] = f(in[i]);
}

template <class T>
void unary_typed(UnaryOp op, const Tensor& x, Tensor& out, T a, T b) {
  switch (op) {
    case UnaryOp::neg: return map_unary<T>(x, out, [](T v) { return -v; });
    case UnaryOp::exp: return map_unary<T>(x, out, [](T v) { return std::exp(v); });
    case UnaryOp::log: return map_unary<T>(x, out, [](T v) { return std::log(v); });
    case UnaryOp::sqrt: return map_unary<T>(x, out, [](T v) { return std::sqrt(v); });
    case UnaryOp::abs: return map_unary<T>(x, out, [](T v) { return std::abs(v); });
    case UnaryOp::sign: return map_unary<T>(x, out, [](T v) { return T((v > 0) - (v < 0)); });
    case UnaryOp::relu: return map_unary<T>(x, out, [](T v) { return v > 0 || v != v ? v : T(0); });  // NaN stays NaN
    case UnaryOp::sigmoid: return map_unary<T>(x, out, [](T v) { return T(1) / (T(1) + std::exp(-v)); });
    case UnaryOp::tanh: return map_unary<T>(x, out, [](T v) { return std::tanh(v); });
    case UnaryOp::atanh: return map_unary<T>(x, out, [](T v) { return std::atanh(v); });
    case UnaryOp::softplus:
      // log1p(exp(a v)) / a, computed without overflow; linear above the threshold as in PyTorch.
      return map_unary<T>(x, out, [a, b](T v) {
        T z = a * v;
        return z > b ? v : (std::max(z, T(0)) + std::log1p(std::exp(-std::abs(z)))) / a;
      });
    case UnaryOp::leaky_relu: return map_unary<T>(x, out, [a](T v) { return v > 0 ? v : a * v; });
    case UnaryOp::clamp: return map_unary<T>(x, out, [a, b](T v) { return std::min(std::max(v, a), b); });
    case UnaryOp::pow: return map_unary<T>(x, out, [a](T v) { return std::pow(v, a); });
    case UnaryOp::affine: return map_unary<T>(x, out, [a, b](T v) { return a * v + b; });
    case UnaryOp::gt_scalar: return map_unary<T>(x, out, [a](T v) { return T(v > a); });
    case UnaryOp::in_range: return map_unary<T>(x, out, [a, b](T v) { return T(v >= a && v <= b); });
    case UnaryOp::leaky_slope: return map_unary<T>(x, out, [a](T v) { return v > 0 ? T(1) : a; });
    case UnaryOp::reciprocal: return map_unary<T>(x, out, [](T v) { return T(1) / v; });
  }
  AFD_FAIL("unary: unknown op {}", static_cast<int>(op));
}

// Calls row(offsets, n, strides of the innermost dim) for every innermost row of the output.
template <class Row>
void for_each_row(const Strided& s, size_t nops, Row row) {
  int rank = static_cast<int>(s.sizes.size());
  int64_t inner = s.sizes.back();
  int64_t rows = 1;
  for (int d = 0; d < rank - 1; ++d) rows *= s.sizes[d];
  const auto& in_strides = s.strides.back();
#pragma omp parallel for if (rows * inner > kParallelGrain && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    std::array<int64_t, 3> off{0, 0, 0};
    int64_t rem = r;
    for (int d = rank - 2; d >= 0; --d) {
      int64_t i = rem % s.sizes[d];
      rem /= s.sizes[d];
      for (size_t k = 0; k < nops; ++k) off[k] += i * s.strides[d][k];
    }
    row(off, r * inner, inner, in_strides);
  }
}

template <class T, class F>
void map_binary(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* po = out.data<T>();
  if (a.shape() == out.shape() && b.shape() == out.shape()) {
    int64_t n = out.numel();
#pragma omp parallel for simd if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[i]);
    return;
  }
  Strided s = coalesce(out.shape(), {&a, &b});
  for_each_row(s, 2, [&](const std::array<int64_t, 3>& off, int64_t o, int64_t n,
                         const std::array<int64_t, 3>& st) {
    const T* x = pa + off[0];
    const T* y = pb + off[1];
    T* z = po + o;
    // Specialised loops so the compiler vectorises the common stride patterns.
    if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) z[i] = f(x[i], y[i]);
    } else if (st[0] == 1 && st[1] == 0) {
      T yv = *y;
      for (int64_t i = 0; i < n; ++i) z[i] = f(x[i], yv);
    } else if (st[0] == 0 && st[1] == 1) {
      T xv = *x;
      for (int64_t i = 0; i < n; ++i) z[i] = f(xv, y[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) z[i] = f(x[i * st[0]], y[i * st[1]]);
    }
  });
}

template <class T>
void binary_typed(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  switch (op) {
    case BinaryOp::add: return map_binary<T>(a, b, out, [](T x, T y) { return x + y; });
    case BinaryOp::sub: return map_binary<T>(a, b, out, [](T x, T y) { return x - y; });
    case BinaryOp::mul: return map_binary<T>(a, b, out, [](T x, T y) { return x * y; });
    case BinaryOp::div: return map_binary<T>(a, b, out, [](T x, T y) { return x / y; });
    case BinaryOp::maximum: return map_binary<T>(a, b, out, [](T x, T y) { return x >= y ? x : y; });
    case BinaryOp::minimum: return map_binary<T>(a, b, out, [](T x, T y) { return x <= y ? x : y; });
    case BinaryOp::pow: return map_binary<T>(a, b, out, [](T x, T y) { return std::pow(x, y); });
    case BinaryOp::gt: return map_binary<T>(a, b, out, [](T x, T y) { return T(x > y); });
    case BinaryOp::ge: return map_binary<T>(a, b, out, [](T x, T y) { return T(x >= y); });
    case BinaryOp::lt: return map_binary<T>(a, b, out, [](T x, T y) { return T(x < y); });
    case BinaryOp::le: return map_binary<T>(a, b, out, [](T x, T y) { return T(x <= y); });
    case BinaryOp::eq: return map_binary<T>(a, b, out, [](T x, T y) { return T(x == y); });
    case BinaryOp::relu_grad: return map_binary<T>(a, b, out, [](T x, T y) { return y > 0 ? x : T(0); });
    case BinaryOp::add_relu:  // relu's test on the rounded sum, as relu(add(x, y))
      return map_binary<T>(a, b, out, [](T x, T y) {
        const T s = x + y;
        return s > 0 || s != s ? s : T(0);
      });
  }
  AFD_FAIL("binary: unknown op {}", static_cast<int>(op));
}

}  // namespace

void CpuBackend::unary(UnaryOp op, const Tensor& x, Tensor& out, double a, double b) {
  dispatch_float(x.dtype(), "unary", [&]<class T>() { unary_typed<T>(op, x, out, T(a), T(b)); });
}

void CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  dispatch_float(a.dtype(), "binary", [&]<class T>() { binary_typed<T>(op, a, b, out); });
}

void CpuBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  dispatch_all(cond.dtype(), [&]<class C>() {
    dispatch_float(a.dtype(), "where", [&]<class T>() {
      const C* pc = cond.data<C>();
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      T* po = out.data<T>();
      Strided s = coalesce(out.shape(), {&cond, &a, &b});
      for_each_row(s, 3, [&](const std::array<int64_t, 3>& off, int64_t o, int64_t n,
                             const std::array<int64_t, 3>& st) {
        for (int64_t i = 0; i < n; ++i)
          po[o + i] = pc[off[0] + i * st[0]] != C(0) ? pa[off[1] + i * st[1]] : pb[off[2] + i * st[2]];
      });
    });
  });
}

// ---- reductions ------------------------------------------------------------------------------
namespace {

// out[p, q] = sum_r x[p, r, q], accumulated in double.
template <class T>
void reduce_middle(const T* x, T* out, int64_t P, int64_t R, int64_t Q) {
  if (Q == 1) {
    if (P == 1) {
      // A full sum: per-thread partials, combined in a fixed order (deterministic).
      int nt = omp_get_max_threads();
      std::vector<double> partial(nt, 0.0);
#pragma omp parallel if (R > kParallelGrain)
      {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int64_t begin = R * t / n, end = R * (t + 1) / n;
        double acc = 0;
        for (int64_t r = begin; r < end; ++r) acc += x[r];
        partial[t] = acc;
      }
      double total = 0;
      for (double v : partial) total += v;
      out[0] = static_cast<T>(total);
      return;
    }
#pragma omp parallel for if (P * R > kParallelGrain)
    for (int64_t p = 0; p < P; ++p) {
      double acc = 0;
      const T* row = x + p * R;
      for (int64_t r = 0; r < R; ++r) acc += row[r];
      out[p] = static_cast<T>(acc);
    }
    return;
  }
#pragma omp parallel if (P * R * Q > kParallelGrain)
  {
    std::vector<double> acc(Q);
    // Parallel over p when there are enough rows, else over column blocks of q.
    int t = omp_get_thread_num(), n = omp_get_num_threads();
    bool over_p = P >= n;
    int64_t p0 = over_p ? P * t / n : 0, p1 = over_p ? P * (t + 1) / n : P;
    int64_t q0 = over_p ? 0 : Q * t / n, q1 = over_p ? Q : Q * (t + 1) / n;
    for (int64_t p = p0; p < p1; ++p) {
      std::fill(acc.begin() + q0, acc.begin() + q1, 0.0);
      for (int64_t r = 0; r < R; ++r) {
        const T* row = x + (p * R + r) * Q;
        for (int64_t q = q0; q < q1; ++q) acc[q] += row[q];
      }
      for (int64_t q = q0; q < q1; ++q) out[p * Q + q] = static_cast<T>(acc[q]);
    }
  }
}

}  // namespace

void CpuBackend::sum_to(const Tensor& x, Tensor& out) {
  dispatch_float(x.dtype(), "sum", [&]<class T>() {
    std::vector<ReduceStep> plan = sum_to_plan(x.shape(), out.shape());
    if (plan.empty()) {  // nothing to reduce (only size-1 dims differ): plain copy
      std::memcpy(out.raw_data(), x.raw_data(), x.nbytes());
      return;
    }
    Tensor cur = x;
    for (const ReduceStep& step : plan) {
      Tensor dst = step.last ? out : Tensor(step.result, x.dtype(), x.device());
      reduce_middle<T>(cur.data<T>(), dst.data<T>(), step.P, step.R, step.Q);
      cur = dst;
    }
  });
}

void CpuBackend::max_dim(const Tensor& x, int dim, Tensor& values, Tensor& indices) {
  Around a = around(x.shape(), dim);
  dispatch_float(x.dtype(), "max", [&]<class T>() {
    const T* px = x.data<T>();
    T* pv = values.data<T>();
    int64_t* pi = indices.data<int64_t>();
#pragma omp parallel for if (x.numel() > kParallelGrain)
    for (int64_t o = 0; o < a.outer; ++o)
      for (int64_t q = 0; q < a.inner; ++q) {
        const T* base = px + o * a.n * a.inner + q;
        T best = base[0];
        int64_t arg = 0;
        for (int64_t r = 1; r < a.n; ++r) {
          T v = base[r * a.inner];
          // NaN propagates as the maximum, as in PyTorch.
          if (v > best || (std::isnan(v) && !std::isnan(best))) {
            best = v;
            arg = r;
          }
        }
        pv[o * a.inner + q] = best;
        pi[o * a.inner + q] = arg;
      }
  });
}

// ---- softmax and cross-entropy ---------------------------------------------------------------
void CpuBackend::softmax(const Tensor& x, int dim, bool log, Tensor& out) {
  Around a = around(x.shape(), dim);
  dispatch_float(x.dtype(), "softmax", [&]<class T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
#pragma omp parallel for if (x.numel() > kParallelGrain)
    for (int64_t o = 0; o < a.outer; ++o)
      for (int64_t q = 0; q < a.inner; ++q) {
        const T* in = px + o * a.n * a.inner + q;
        T* dst = po + o * a.n * a.inner + q;
        T m = -std::numeric_limits<T>::infinity();
        for (int64_t r = 0; r < a.n; ++r) m = std::max(m, in[r * a.inner]);
        double s = 0;
        for (int64_t r = 0; r < a.n; ++r) s += std::exp(double(in[r * a.inner] - m));
        if (log) {
          // (x - m) - log s: subtracting m first keeps the result exact for large logits.
          T log_s = static_cast<T>(std::log(s));
          for (int64_t r = 0; r < a.n; ++r) dst[r * a.inner] = (in[r * a.inner] - m) - log_s;
        } else {
          T inv = static_cast<T>(1.0 / s);
          for (int64_t r = 0; r < a.n; ++r) dst[r * a.inner] = std::exp(in[r * a.inner] - m) * inv;
        }
      }
  });
}

namespace {
void check_index_range(const Tensor& index, int64_t limit, const char* op) {
  const int64_t* p = index.data<int64_t>();
  for (int64_t i = 0; i < index.numel(); ++i)
    AFD_CHECK(p[i] >= 0 && p[i] < limit, "{}: index {} at position {} is out of range [0, {})", op, p[i],
              i, limit);
}
}  // namespace

void CpuBackend::cross_entropy(const Tensor& logits, const Tensor& labels, Tensor& loss) {
  int64_t N = logits.size(0), C = logits.size(1);
  check_index_range(labels, C, "cross_entropy (label)");
  dispatch_float(logits.dtype(), "cross_entropy", [&]<class T>() {
    const T* px = logits.data<T>();
    const int64_t* py = labels.data<int64_t>();
    T* pl = loss.data<T>();
#pragma omp parallel for if (logits.numel() > kParallelGrain)
    for (int64_t n = 0; n < N; ++n) {
      const T* row = px + n * C;
      T m = *std::max_element(row, row + C);
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += std::exp(double(row[c] - m));
      pl[n] = static_cast<T>(std::log(s)) - (row[py[n]] - m);
    }
  });
}

// softmax()'s arithmetic for each row, then the one-hot subtraction and the product by g[n], each
// rounded on its own as the separate ops (softmax, sub, mul) rounded them.
void CpuBackend::cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& g,
                                        Tensor& dlogits) {
  const int64_t N = logits.size(0), C = logits.size(1);
  check_index_range(labels, C, "cross_entropy (label)");
  dispatch_float(logits.dtype(), "cross_entropy_backward", [&]<class T>() {
    const T *px = logits.data<T>(), *pg = g.data<T>();
    const int64_t* py = labels.data<int64_t>();
    T* po = dlogits.data<T>();
#pragma omp parallel for if (logits.numel() > kParallelGrain)
    for (int64_t n = 0; n < N; ++n) {
      const T* row = px + n * C;
      T* out = po + n * C;
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t c = 0; c < C; ++c) m = std::max(m, row[c]);
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += std::exp(double(row[c] - m));
      const T inv = static_cast<T>(1.0 / s);
      for (int64_t c = 0; c < C; ++c) {
        const T p = std::exp(row[c] - m) * inv;
        out[c] = (c == py[n] ? p - T(1) : p) * pg[n];
      }
    }
  });
}

// ---- indexing --------------------------------------------------------------------------------
void CpuBackend::gather(const Tensor& x, int dim, const Tensor& index, Tensor& out) {
  Around ax = around(x.shape(), dim), ai = around(index.shape(), dim);
  check_index_range(index, ax.n, "gather");
  dispatch_float(x.dtype(), "gather", [&]<class T>() {
    const T* px = x.data<T>();
    const int64_t* pi = index.data<int64_t>();
    T* po = out.data<T>();
    for (int64_t o = 0; o < ai.outer; ++o)
      for (int64_t r = 0; r < ai.n; ++r)
        for (int64_t q = 0; q < ai.inner; ++q) {
          int64_t at = (o * ai.n + r) * ai.inner + q;
          po[at] = px[(o * ax.n + pi[at]) * ax.inner + q];
        }
  });
}

void CpuBackend::scatter_add(Tensor& out, int dim, const Tensor& index, const Tensor& src) {
  Around ao = around(out.shape(), dim), ai = around(index.shape(), dim);
  check_index_range(index, ao.n, "scatter_add");
  dispatch_float(src.dtype(), "scatter_add", [&]<class T>() {
    T* po = out.data<T>();
    const int64_t* pi = index.data<int64_t>();
    const T* ps = src.data<T>();
    for (int64_t o = 0; o < ai.outer; ++o)
      for (int64_t r = 0; r < ai.n; ++r)
        for (int64_t q = 0; q < ai.inner; ++q) {
          int64_t at = (o * ai.n + r) * ai.inner + q;
          po[(o * ao.n + pi[at]) * ao.inner + q] += ps[at];
        }
  });
}

void CpuBackend::index_select(const Tensor& table, const Tensor& index, Tensor& out) {
  check_index_range(index, table.size(0), "index_select");
  int64_t row_bytes = table.nbytes() / std::max<int64_t>(table.size(0), 1);
  const char* src = static_cast<const char*>(table.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  const int64_t* pi = index.data<int64_t>();
  for (int64_t i = 0; i < index.size(0); ++i) std::memcpy(dst + i * row_bytes, src + pi[i] * row_bytes, row_bytes);
}

void CpuBackend::index_add(Tensor& out, const Tensor& index, const Tensor& src) {
  check_index_range(index, out.size(0), "index_add");
  int64_t row = out.numel() / std::max<int64_t>(out.size(0), 1);
  dispatch_float(src.dtype(), "index_add", [&]<class T>() {
    T* po = out.data<T>();
    const T* ps = src.data<T>();
    const int64_t* pi = index.data<int64_t>();
    for (int64_t i = 0; i < index.size(0); ++i)
      for (int64_t j = 0; j < row; ++j) po[pi[i] * row + j] += ps[i * row + j];
  });
}

void CpuBackend::copy_slab(const Tensor& src, int64_t src_start, Tensor& dst, int64_t dst_start,
                           int dim, int64_t len) {
  Around as = around(src.shape(), dim), ad = around(dst.shape(), dim);
  size_t esize = dtype_size(src.dtype());
  const char* ps = static_cast<const char*>(src.raw_data());
  char* pd = static_cast<char*>(dst.raw_data());
  for (int64_t o = 0; o < as.outer; ++o)
    std::memcpy(pd + ((o * ad.n + dst_start) * ad.inner) * esize,
                ps + ((o * as.n + src_start) * as.inner) * esize, len * as.inner * esize);
}

// ---- optimizer update -----------------------------------------------------------------------------
namespace {
// The separate ops' rounding, step by step (ops::sgd_step_): mul_scalar(x, a) is the affine op
// a x + 0, whose + 0 turns a product of -0 into +0, so it stays; add and sub round once.
template <class T>
void sgd_step_typed(T* p, const T* g, T* buf, int64_t n, const SgdStep& s) {
  const T lr = T(s.lr), wd = T(s.weight_decay), m = T(s.momentum), keep = T(1 - s.dampening), zero = T(0);
  const bool decay = s.weight_decay != 0, momentum = s.momentum != 0, first = s.first, nesterov = s.nesterov;
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i];
    if (decay) d = d + (wd * p[i] + zero);
    if (momentum) {
      buf[i] = first ? d : (m * buf[i] + zero) + (keep * d + zero);
      d = nesterov ? d + (m * buf[i] + zero) : buf[i];
    }
    p[i] = p[i] - (lr * d + zero);
  }
}
}  // namespace

void CpuBackend::update_running_stats(Tensor& running_mean, Tensor& running_var, Tensor& count, const Tensor& mean,
                                      const Tensor& var, double momentum, double var_scale) {
  dispatch_float(running_mean.dtype(), "update_running_stats", [&]<class T>() {
    // mul_scalar(x, a) = a x + 0 (the + 0 kept, as in sgd_step_typed), then add.
    const T keep = T(1 - momentum), m = T(momentum), f = T(var_scale), zero = T(0);
    T* rm = running_mean.data<T>();
    T* rv = running_var.data<T>();
    const T* mu = mean.data<T>();
    const T* v = var.data<T>();
    for (int64_t c = 0; c < running_mean.numel(); ++c) {
      rm[c] = (keep * rm[c] + zero) + (m * mu[c] + zero);
      rv[c] = (keep * rv[c] + zero) + (f * v[c] + zero);
    }
  });
  if (count.defined()) ++*count.data<int64_t>();
}

void CpuBackend::sgd_step(const std::vector<SgdTensors>& tensors, const SgdStep& s) {
  for (const SgdTensors& t : tensors)
    dispatch_float(t.param.dtype(), "sgd_step", [&]<class T>() {
      sgd_step_typed<T>(t.param.data<T>(), t.grad.data<T>(), s.momentum != 0 ? t.momentum_buffer.data<T>() : nullptr,
                        t.param.numel(), s);
    });
}

// ---- attack step -----------------------------------------------------------------------------------
// The separate ops' steps (ops::linf_sign_step): sign, mul, add, sub, maximum with -eps, minimum
// with eps, add, clamp to [0, 1], with their own comparisons so NaN and -0 come out as theirs do.
void CpuBackend::linf_sign_step(const Tensor& x0, const Tensor& x, const Tensor& g, const Tensor& steps,
                                Tensor& out) {
  const int64_t rows = x.size(0), per_row = x.numel() / rows;
  dispatch_float(x.dtype(), "linf_sign_step", [&]<class T>() {
    const T *p0 = x0.data<T>(), *px = x.data<T>(), *pg = g.data<T>(), *alpha = steps.data<T>();
    const T* eps = alpha + rows;
    T* po = out.data<T>();
#pragma omp parallel for if (x.numel() > kParallelGrain)
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t r = i / per_row;
      const T s = T((pg[i] > 0) - (pg[i] < 0)), lo = -eps[r];
      const T d = (px[i] + s * alpha[r]) - p0[i];
      const T kept = d >= lo ? d : lo;
      const T y = p0[i] + (kept <= eps[r] ? kept : eps[r]);
      po[i] = std::min(std::max(y, T(0)), T(1));
    }
  });
}

// ---- random numbers (layout documented in tensor/rng.h) ----------------------------------------
namespace {
constexpr double k2pow32inv = 1.0 / 4294967296.0;
inline double u53(uint32_t hi, uint32_t lo) { return philox_u53(hi, lo); }
}  // namespace

void CpuBackend::uniform(Tensor& out, uint64_t seed, uint64_t offset, double low, double high) {
  int64_t n = out.numel();
  if (out.dtype() == DType::f32) {
    float* o = out.data<float>();
    float lo = float(low), span = float(high - low);
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t b = 0; b < (n + 3) / 4; ++b) {
      auto r = philox4x32(seed, offset + b);
      for (int k = 0; k < 4 && 4 * b + k < n; ++k)
        o[4 * b + k] = lo + span * (float(r[k] >> 8) * (1.0f / 16777216.0f));
    }
  } else {
    AFD_CHECK(out.dtype() == DType::f64, "uniform: dtype {} is not f32 or f64", dtype_name(out.dtype()));
    double* o = out.data<double>();
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t b = 0; b < (n + 1) / 2; ++b) {
      auto r = philox4x32(seed, offset + b);
      for (int k = 0; k < 2 && 2 * b + k < n; ++k) o[2 * b + k] = low + (high - low) * u53(r[2 * k], r[2 * k + 1]);
    }
  }
}

void CpuBackend::normal(Tensor& out, uint64_t seed, uint64_t offset, double mean, double std) {
  int64_t n = out.numel();
  constexpr double two_pi = 6.283185307179586476925286766559;
  if (out.dtype() == DType::f32) {
    float* o = out.data<float>();
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t b = 0; b < (n + 3) / 4; ++b) {
      auto r = philox4x32(seed, offset + b);
      float z[4];
      for (int k = 0; k < 4; k += 2) {
        // Box-Muller: u1 in (0, 1] keeps log finite.
        float u1 = float((double(r[k]) + 1.0) * k2pow32inv), u2 = float(double(r[k + 1]) * k2pow32inv);
        float rad = std::sqrt(-2.0f * std::log(u1));
        z[k] = rad * std::cos(float(two_pi) * u2);
        z[k + 1] = rad * std::sin(float(two_pi) * u2);
      }
      for (int k = 0; k < 4 && 4 * b + k < n; ++k) o[4 * b + k] = float(mean) + float(std) * z[k];
    }
  } else {
    AFD_CHECK(out.dtype() == DType::f64, "normal: dtype {} is not f32 or f64", dtype_name(out.dtype()));
    double* o = out.data<double>();
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t b = 0; b < (n + 1) / 2; ++b) {
      auto r = philox4x32(seed, offset + b);
      double u1 = 1.0 - u53(r[0], r[1]), u2 = u53(r[2], r[3]);  // u1 in (0, 1]
      double rad = std::sqrt(-2.0 * std::log(u1));
      double z[2] = {rad * std::cos(two_pi * u2), rad * std::sin(two_pi * u2)};
      for (int k = 0; k < 2 && 2 * b + k < n; ++k) o[2 * b + k] = mean + std * z[k];
    }
  }
}

}  // namespace afd::cpu
