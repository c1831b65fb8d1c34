// CUDA kernels: fills, conversions, elementwise ops with broadcasting, indexing and random numbers.
// Each mirrors the CPU backend's loop in tensor/cpu/elementwise.cpp (same formulas, same NaN rules).
#include "tensor/cuda/launch.cuh"
#include "tensor/philox.h"

namespace afd::cuda {

namespace {

// ---- fills and conversions -----------------------------------------------------------------------
template <class T>
__global__ void fill_kernel(T* out, int64_t n, T value) {
  AFD_GRID_LOOP(i, n) out[i] = value;
}

template <class T>
__global__ void arange_kernel(T* out, int64_t n, double start, double step) {
  AFD_GRID_LOOP(i, n) out[i] = static_cast<T>(start + step * static_cast<double>(i));
}

template <class S, class D>
__global__ void convert_kernel(const S* src, D* dst, int64_t n) {
  AFD_GRID_LOOP(i, n) dst[i] = static_cast<D>(src[i]);
}

// ---- elementwise ---------------------------------------------------------------------------------
template <class T>
__device__ inline T apply_unary(UnaryOp op, T v, T a, T b) {
  switch (op) {
    case UnaryOp::neg: return -v;
    case UnaryOp::exp: return exp(v);
    case UnaryOp::log: return log(v);
    case UnaryOp::sqrt: return sqrt(v);
    case UnaryOp::abs: return fabs(v);
    case UnaryOp::sign: return T((v > 0) - (v < 0));
    case UnaryOp::relu: return v > 0 || v != v ? v : T(0);  // NaN stays NaN
    case UnaryOp::sigmoid: return T(1) / (T(1) + exp(-v));
    case UnaryOp::tanh: return tanh(v);
    case UnaryOp::atanh: return atanh(v);
    case UnaryOp::softplus: {
      T z = a * v;
      return z > b ? v : ((z > T(0) ? z : T(0)) + log1p(exp(-fabs(z)))) / a;
    }
    case UnaryOp::leaky_relu: return v > 0 ? v : a * v;
    case UnaryOp::clamp: {  // std::min(std::max(v, a), b): NaN passes through
      T m = v < a ? a : v;
      return b < m ? b : m;
    }
    case UnaryOp::pow: return pow(v, a);
    case UnaryOp::affine: return a * v + b;
    case UnaryOp::gt_scalar: return T(v > a);
    case UnaryOp::in_range: return T(v >= a && v <= b);
    case UnaryOp::leaky_slope: return v > 0 ? T(1) : a;
    case UnaryOp::reciprocal: return T(1) / v;
  }
  return v;
}

// The op is a template parameter so each kernel is a straight loop without a switch per element.
template <class T, UnaryOp op>
__global__ void unary_kernel(const T* x, T* out, int64_t n, T a, T b) {
  AFD_GRID_LOOP(i, n) out[i] = apply_unary(op, x[i], a, b);
}

template <class T>
__device__ inline T apply_binary(BinaryOp op, T x, T y) {
  switch (op) {
    case BinaryOp::add: return x + y;
    case BinaryOp::sub: return x - y;
    case BinaryOp::mul: return x * y;
    case BinaryOp::div: return x / y;
    case BinaryOp::maximum: return x >= y ? x : y;
    case BinaryOp::minimum: return x <= y ? x : y;
    case BinaryOp::pow: return pow(x, y);
    case BinaryOp::gt: return T(x > y);
    case BinaryOp::ge: return T(x >= y);
    case BinaryOp::lt: return T(x < y);
    case BinaryOp::le: return T(x <= y);
    case BinaryOp::eq: return T(x == y);
    case BinaryOp::relu_grad: return y > T(0) ? x : T(0);
    case BinaryOp::add_relu: {
      const T s = x + y;
      return s > T(0) || s != s ? s : T(0);
    }
  }
  return x;
}

// Offsets of output element i in each of k operands.
template <int K>
__device__ inline void broadcast_offsets(const BroadcastGeometry& g, int64_t i, int64_t (&off)[K]) {
  for (int k = 0; k < K; ++k) off[k] = 0;
  if (g.fast) {  // i < 2^32: each coordinate by a multiply and a shift
    uint32_t rest = static_cast<uint32_t>(i), q, c;
    for (int d = g.rank - 1; d >= 0; --d) {
      g.by[d].divmod(rest, q, c);
      rest = q;
      for (int k = 0; k < K; ++k) off[k] += int64_t(c) * g.strides[k][d];
    }
    return;
  }
  for (int d = g.rank - 1; d >= 0; --d) {
    int64_t c = i % g.sizes[d];
    i /= g.sizes[d];
    for (int k = 0; k < K; ++k) off[k] += c * g.strides[k][d];
  }
}

template <class T, BinaryOp op>
__global__ void binary_same_kernel(const T* a, const T* b, T* out, int64_t n) {
  AFD_GRID_LOOP(i, n) out[i] = apply_binary(op, a[i], b[i]);
}

// The geometry's arrays are indexed at run time: __grid_constant__ reads them where the arguments
// lie instead of copying the whole struct to each thread's local memory first.
template <class T, BinaryOp op>
__global__ void binary_broadcast_kernel(const T* a, const T* b, T* out, int64_t n,
                                        const __grid_constant__ BroadcastGeometry g) {
  AFD_GRID_LOOP(i, n) {
    int64_t off[2];
    broadcast_offsets<2>(g, i, off);
    out[i] = apply_binary(op, a[off[0]], b[off[1]]);
  }
}

template <class C, class T>
__global__ void where_kernel(const C* cond, const T* a, const T* b, T* out, int64_t n,
                             const __grid_constant__ BroadcastGeometry g) {
  AFD_GRID_LOOP(i, n) {
    int64_t off[3];
    broadcast_offsets<3>(g, i, off);
    out[i] = cond[off[0]] != C(0) ? a[off[1]] : b[off[2]];
  }
}

// ---- indexing --------------------------------------------------------------------------------------
// Index checks without a host wait (cuda_backend.cpp, "index checks"): check number `seq` since the
// last drain keeps the smallest key = seq << kBadPositionBits | i over its bad positions i, so the
// word ends at the first bad position of the first failing check. Later checks cannot lower it.
__global__ void find_bad_index_kernel(const int64_t* idx, int64_t n, int64_t limit, uint64_t seq, BadIndex* bad) {
  AFD_GRID_LOOP(i, n) {
    if (idx[i] < 0 || idx[i] >= limit)
      atomicMin(&bad->key, static_cast<unsigned long long>((seq << kBadPositionBits) | static_cast<uint64_t>(i)));
  }
}

// One thread, after find_bad_index_kernel: if this check owns the key, keep the bad value itself
// (the index tensor may be freed before the host reads the word).
__global__ void record_bad_value_kernel(const int64_t* idx, uint64_t seq, BadIndex* bad) {
  if (bad->key != kNoBadIndex && (bad->key >> kBadPositionBits) == seq)
    bad->value = idx[bad->key & ((1ull << kBadPositionBits) - 1)];
}

// The kernels below may run before the host learns that an index is bad: they skip such entries
// (gather and index_select write zeros) instead of touching memory outside the tensor.
template <class T>
__global__ void gather_kernel(const T* x, const int64_t* idx, T* out, int64_t outer, int64_t x_n, int64_t idx_n,
                              int64_t inner) {
  AFD_GRID_LOOP(at, outer * idx_n * inner) {
    int64_t q = at % inner, o = at / (idx_n * inner), i = idx[at];
    out[at] = i >= 0 && i < x_n ? x[(o * x_n + i) * inner + q] : T(0);
  }
}

template <class T>
__global__ void scatter_add_kernel(T* out, const int64_t* idx, const T* src, int64_t outer, int64_t out_n,
                                   int64_t idx_n, int64_t inner) {
  AFD_GRID_LOOP(col, outer * inner) {
    int64_t o = col / inner, q = col % inner;
    for (int64_t r = 0; r < idx_n; ++r) {
      int64_t at = (o * idx_n + r) * inner + q, i = idx[at];
      if (i >= 0 && i < out_n) out[(o * out_n + i) * inner + q] += src[at];
    }
  }
}

__global__ void index_select_kernel(const char* table, int64_t table_rows, const int64_t* idx, char* out,
                                    int64_t rows, int64_t row_bytes) {
  AFD_GRID_LOOP(at, rows * row_bytes) {
    int64_t i = idx[at / row_bytes], b = at % row_bytes;
    out[at] = i >= 0 && i < table_rows ? table[i * row_bytes + b] : char(0);
  }
}

template <class T>
__global__ void index_add_kernel(T* out, int64_t out_rows, const int64_t* idx, const T* src, int64_t rows,
                                 int64_t row) {
  AFD_GRID_LOOP(j, row) {
    for (int64_t i = 0; i < rows; ++i)
      if (idx[i] >= 0 && idx[i] < out_rows) out[idx[i] * row + j] += src[i * row + j];
  }
}

// ---- optimizer update (ops::sgd_step_) ---------------------------------------------------------------
// Each product and sum rounded on its own (the _rn helpers of launch.cuh), as the CPU backend's
// loop and the separate ops round them.
// mul_scalar(x, a) is the affine op a x + 0 (the + 0 turns a product of -0 into +0).
template <class T>
__device__ inline T scaled(T a, T x) {
  return add_rn(mul_rn(a, x), T(0));
}

template <class T>
__global__ void update_running_stats_kernel(T* rm, T* rv, int64_t* count, const T* mu, const T* v, int64_t channels,
                                            T keep, T m, T f) {
  AFD_GRID_LOOP(c, channels) {
    rm[c] = add_rn(scaled(keep, rm[c]), scaled(m, mu[c]));
    rv[c] = add_rn(scaled(keep, rv[c]), scaled(f, v[c]));
  }
  if (count && blockIdx.x == 0 && threadIdx.x == 0) *count += 1;
}

// ---- eval-mode batch norm folded into a convolution (ops::bn_fold) ----------------------------------

// One thread per weight element i (channel k = i / per_k) computes a = gamma invstd again (four
// roundings, as the CPU's loop makes them); the first element of each channel also writes its
// shift and invstd.
template <class T>
__global__ void bn_fold_kernel(const T* w, const T* bias, const T* gamma, const T* beta, const T* mean, const T* var,
                               T eps, T* w_out, T* shift, T* invstd, int64_t n, int64_t per_k) {
  AFD_GRID_LOOP(i, n) {
    const int64_t k = i / per_k;
    const T inv = div_rn(T(1), sqrt_rn(add_rn(mul_rn(T(1), var[k]), eps)));
    const T a = mul_rn(gamma[k], inv);
    w_out[i] = mul_rn(w[i], a);
    if (i % per_k == 0) {
      invstd[k] = inv;
      T s = sub_rn(beta[k], mul_rn(a, mean[k]));
      shift[k] = bias ? add_rn(s, mul_rn(a, bias[k])) : s;
    }
  }
}

// Up to kSgdTensorsPerLaunch parameters, passed by value as kernel arguments (about 1 KiB, read in
// place: __grid_constant__): their elements laid end to end, end[t] = the elements of parameters 0..t.
template <class T>
struct SgdBatch {
  T* p[kSgdTensorsPerLaunch];
  const T* g[kSgdTensorsPerLaunch];
  T* buf[kSgdTensorsPerLaunch];
  int64_t end[kSgdTensorsPerLaunch];
  int count;
};

template <class T>
__global__ void sgd_step_kernel(const __grid_constant__ SgdBatch<T> b, T lr, T wd, T m, T keep, bool decay,
                                bool nesterov, bool first) {
  AFD_GRID_LOOP(e, b.end[b.count - 1]) {
    int t = 0, hi = b.count - 1;  // the parameter of element e: the first t with end[t] > e
    while (t < hi) {
      const int mid = (t + hi) / 2;
      if (b.end[mid] > e) hi = mid;
      else t = mid + 1;
    }
    const int64_t i = t > 0 ? e - b.end[t - 1] : e;
    T* p = b.p[t];
    T* buf = b.buf[t];
    T d = b.g[t][i];
    if (decay) d = add_rn(d, scaled(wd, p[i]));
    if (buf) {
      const T v = first ? d : add_rn(scaled(m, buf[i]), scaled(keep, d));
      buf[i] = v;
      d = nesterov ? add_rn(d, scaled(m, v)) : v;
    }
    p[i] = sub_rn(p[i], scaled(lr, d));
  }
}


// ---- attack step (ops::linf_sign_step) ----------------------------------------------------------------
template <class T>
__global__ void linf_sign_step_kernel(const T* x0, const T* x, const T* g, const T* alpha, const T* eps, T* out,
                                      int64_t n, int64_t per_row) {
  AFD_GRID_LOOP(i, n) {
    const int64_t r = i / per_row;
    const T s = T((g[i] > 0) - (g[i] < 0)), lo = -eps[r];
    const T d = sub_rn(add_rn(x[i], mul_rn(s, alpha[r])), x0[i]);
    const T kept = d >= lo ? d : lo;
    const T y = add_rn(x0[i], kept <= eps[r] ? kept : eps[r]);
    const T m = y < T(0) ? T(0) : y;  // clamp to [0, 1] as the clamp op compares
    out[i] = T(1) < m ? T(1) : m;
  }
}

// ---- random numbers (tensor/rng.h: block b = offset + j, lanes as the CPU backend uses them) ------
// The arithmetic uses round-to-nearest intrinsics so no multiply-add is fused: the uniform numbers
// are then bit for bit the CPU's.
__global__ void uniform_f32_kernel(float* out, int64_t n, uint64_t seed, uint64_t offset, float lo, float span) {
  AFD_GRID_LOOP(b, (n + 3) / 4) {
    PhiloxBlock r = philox_block(seed, offset + b);
    for (int k = 0; k < 4 && 4 * b + k < n; ++k)
      out[4 * b + k] = __fadd_rn(lo, __fmul_rn(span, float(r.v[k] >> 8) * (1.0f / 16777216.0f)));
  }
}

__global__ void uniform_f64_kernel(double* out, int64_t n, uint64_t seed, uint64_t offset, double lo, double span) {
  AFD_GRID_LOOP(b, (n + 1) / 2) {
    PhiloxBlock r = philox_block(seed, offset + b);
    for (int k = 0; k < 2 && 2 * b + k < n; ++k)
      out[2 * b + k] = __dadd_rn(lo, __dmul_rn(span, philox_u53(r.v[2 * k], r.v[2 * k + 1])));
  }
}

constexpr double kTwoPi = 6.283185307179586476925286766559;
constexpr double k2pow32inv = 1.0 / 4294967296.0;

// Box-Muller as the CPU does it; the transcendental functions may differ by an ulp or two.
__global__ void normal_f32_kernel(float* out, int64_t n, uint64_t seed, uint64_t offset, float mean, float std) {
  AFD_GRID_LOOP(b, (n + 3) / 4) {
    PhiloxBlock r = philox_block(seed, offset + b);
    float z[4];
    for (int k = 0; k < 4; k += 2) {
      float u1 = float((double(r.v[k]) + 1.0) * k2pow32inv), u2 = float(double(r.v[k + 1]) * k2pow32inv);
      float rad = sqrtf(-2.0f * logf(u1));
      z[k] = rad * cosf(float(kTwoPi) * u2);
      z[k + 1] = rad * sinf(float(kTwoPi) * u2);
    }
    for (int k = 0; k < 4 && 4 * b + k < n; ++k) out[4 * b + k] = mean + std * z[k];
  }
}

__global__ void normal_f64_kernel(double* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std) {
  AFD_GRID_LOOP(b, (n + 1) / 2) {
    PhiloxBlock r = philox_block(seed, offset + b);
    double u1 = 1.0 - philox_u53(r.v[0], r.v[1]), u2 = philox_u53(r.v[2], r.v[3]);
    double rad = sqrt(-2.0 * log(u1));
    double z[2] = {rad * cos(kTwoPi * u2), rad * sin(kTwoPi * u2)};
    for (int k = 0; k < 2 && 2 * b + k < n; ++k) out[2 * b + k] = mean + std * z[k];
  }
}

}  // namespace

// ---- launchers -------------------------------------------------------------------------------------
void launch_fill(void* out, Dt dt, int64_t n, double value, cudaStream_t stream) {
  dispatch_dt(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    fill_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(static_cast<T*>(out), n, static_cast<T>(value));
  });
  AFD_CUDA_CHECK_LAUNCH();
}

void launch_arange(void* out, Dt dt, int64_t n, double start, double step, cudaStream_t stream) {
  dispatch_dt(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    arange_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(static_cast<T*>(out), n, start, step);
  });
  AFD_CUDA_CHECK_LAUNCH();
}

void launch_convert(const void* src, Dt from, void* dst, Dt to, int64_t n, cudaStream_t stream) {
  dispatch_dt(from, [&](auto s_tag) {
    dispatch_dt(to, [&](auto d_tag) {
      using S = typename decltype(s_tag)::type;
      using D = typename decltype(d_tag)::type;
      convert_kernel<S, D><<<grid_for(n), kBlock, 0, stream>>>(static_cast<const S*>(src), static_cast<D*>(dst), n);
    });
  });
  AFD_CUDA_CHECK_LAUNCH();
}

namespace {
// Calls f(std::integral_constant<UnaryOp, op>) for the runtime op.
template <class F>
void dispatch_unary(UnaryOp op, F&& f) {
  switch (op) {
#define AFD_CASE(name) \
  case UnaryOp::name: return f(std::integral_constant<UnaryOp, UnaryOp::name>{});
    AFD_CASE(neg) AFD_CASE(exp) AFD_CASE(log) AFD_CASE(sqrt) AFD_CASE(abs) AFD_CASE(sign) AFD_CASE(relu)
    AFD_CASE(sigmoid) AFD_CASE(tanh) AFD_CASE(atanh) AFD_CASE(softplus) AFD_CASE(leaky_relu) AFD_CASE(clamp)
    AFD_CASE(pow) AFD_CASE(affine) AFD_CASE(gt_scalar) AFD_CASE(in_range) AFD_CASE(leaky_slope)
    AFD_CASE(reciprocal)
#undef AFD_CASE
  }
  // An op missing from the list would launch nothing and leave its output unset: fail instead.
  throw_gpu_error("dispatch_unary", "no CUDA kernel for this UnaryOp: add it to dispatch_unary's AFD_CASE list",
                  "afd", __FILE__, __LINE__);
}
template <class F>
void dispatch_binary(BinaryOp op, F&& f) {
  switch (op) {
#define AFD_CASE(name) \
  case BinaryOp::name: return f(std::integral_constant<BinaryOp, BinaryOp::name>{});
    AFD_CASE(add) AFD_CASE(sub) AFD_CASE(mul) AFD_CASE(div) AFD_CASE(maximum) AFD_CASE(minimum) AFD_CASE(pow)
    AFD_CASE(gt) AFD_CASE(ge) AFD_CASE(lt) AFD_CASE(le) AFD_CASE(eq) AFD_CASE(relu_grad) AFD_CASE(add_relu)
#undef AFD_CASE
  }
  throw_gpu_error("dispatch_binary", "no CUDA kernel for this BinaryOp: add it to dispatch_binary's AFD_CASE list",
                  "afd", __FILE__, __LINE__);
}
}  // namespace

template <class T>
void launch_unary(UnaryOp op, const T* x, T* out, int64_t n, T a, T b, cudaStream_t stream) {
  dispatch_unary(op, [&](auto code) {
    unary_kernel<T, decltype(code)::value><<<grid_for(n), kBlock, 0, stream>>>(x, out, n, a, b);
  });
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_binary(BinaryOp op, const T* a, const T* b, T* out, int64_t n, const BroadcastGeometry* geometry,
                   cudaStream_t stream) {
  dispatch_binary(op, [&](auto code) {
    constexpr BinaryOp kOp = decltype(code)::value;
    if (geometry == nullptr)
      binary_same_kernel<T, kOp><<<grid_for(n), kBlock, 0, stream>>>(a, b, out, n);
    else
      binary_broadcast_kernel<T, kOp><<<grid_for(n), kBlock, 0, stream>>>(a, b, out, n, *geometry);
  });
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_where(const void* cond, Dt cond_dt, const T* a, const T* b, T* out, int64_t n,
                  const BroadcastGeometry& geometry, cudaStream_t stream) {
  dispatch_dt(cond_dt, [&](auto tag) {
    using C = typename decltype(tag)::type;
    where_kernel<C, T><<<grid_for(n), kBlock, 0, stream>>>(static_cast<const C*>(cond), a, b, out, n, geometry);
  });
  AFD_CUDA_CHECK_LAUNCH();
}

void launch_find_bad_index(const int64_t* idx, int64_t n, int64_t limit, uint64_t seq, BadIndex* bad,
                           cudaStream_t stream) {
  find_bad_index_kernel<<<grid_for(n), kBlock, 0, stream>>>(idx, n, limit, seq, bad);
  AFD_CUDA_CHECK_LAUNCH();
  record_bad_value_kernel<<<1, 1, 0, stream>>>(idx, seq, bad);
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_gather(const T* x, const int64_t* idx, T* out, int64_t outer, int64_t x_n, int64_t idx_n,
                   int64_t inner, cudaStream_t stream) {
  gather_kernel<T><<<grid_for(outer * idx_n * inner), kBlock, 0, stream>>>(x, idx, out, outer, x_n, idx_n, inner);
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_scatter_add(T* out, const int64_t* idx, const T* src, int64_t outer, int64_t out_n, int64_t idx_n,
                        int64_t inner, cudaStream_t stream) {
  scatter_add_kernel<T><<<grid_for(outer * inner), kBlock, 0, stream>>>(out, idx, src, outer, out_n, idx_n, inner);
  AFD_CUDA_CHECK_LAUNCH();
}

void launch_index_select(const void* table, int64_t table_rows, const int64_t* idx, void* out, int64_t rows,
                         int64_t row_bytes, cudaStream_t stream) {
  index_select_kernel<<<grid_for(rows * row_bytes), kBlock, 0, stream>>>(
      static_cast<const char*>(table), table_rows, idx, static_cast<char*>(out), rows, row_bytes);
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_index_add(T* out, int64_t out_rows, const int64_t* idx, const T* src, int64_t rows, int64_t row,
                      cudaStream_t stream) {
  index_add_kernel<T><<<grid_for(row), kBlock, 0, stream>>>(out, out_rows, idx, src, rows, row);
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_update_running_stats(T* running_mean, T* running_var, int64_t* count, const T* mean, const T* var,
                                 int64_t channels, double momentum, double var_scale, cudaStream_t stream) {
  update_running_stats_kernel<T><<<grid_for(channels), kBlock, 0, stream>>>(
      running_mean, running_var, count, mean, var, channels, T(1 - momentum), T(momentum), T(var_scale));
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_bn_fold(const T* w, const T* bias, const T* gamma, const T* beta, const T* mean, const T* var, double eps,
                    T* w_out, T* shift, T* invstd, int64_t K, int64_t per_k, cudaStream_t stream) {
  const int64_t n = K * per_k;
  bn_fold_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(w, bias, gamma, beta, mean, var, T(eps), w_out, shift, invstd,
                                                         n, per_k);
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_sgd_step(const std::vector<SgdPointers<T>>& tensors, double lr, double weight_decay, double momentum,
                     double dampening, bool nesterov, bool first, cudaStream_t stream) {
  for (size_t start = 0; start < tensors.size(); start += kSgdTensorsPerLaunch) {
    SgdBatch<T> b{};
    int64_t total = 0;
    for (size_t t = start; t < tensors.size() && t < start + kSgdTensorsPerLaunch; ++t, ++b.count) {
      const SgdPointers<T>& x = tensors[t];
      b.p[b.count] = x.p;
      b.g[b.count] = x.g;
      b.buf[b.count] = momentum != 0 ? x.buf : nullptr;
      b.end[b.count] = total += x.n;
    }
    sgd_step_kernel<T><<<grid_for(total), kBlock, 0, stream>>>(b, T(lr), T(weight_decay), T(momentum),
                                                              T(1 - dampening), weight_decay != 0, nesterov, first);
    AFD_CUDA_CHECK_LAUNCH();
  }
}

template <class T>
void launch_linf_sign_step(const T* x0, const T* x, const T* g, const T* steps, T* out, int64_t n, int64_t rows,
                           cudaStream_t stream) {
  linf_sign_step_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(x0, x, g, steps, steps + rows, out, n, n / rows);
  AFD_CUDA_CHECK_LAUNCH();
}

template <>
void launch_uniform<float>(float* out, int64_t n, uint64_t seed, uint64_t offset, double low, double high,
                           cudaStream_t stream) {
  uniform_f32_kernel<<<grid_for((n + 3) / 4), kBlock, 0, stream>>>(out, n, seed, offset, float(low),
                                                                    float(high - low));
  AFD_CUDA_CHECK_LAUNCH();
}
template <>
void launch_uniform<double>(double* out, int64_t n, uint64_t seed, uint64_t offset, double low, double high,
                            cudaStream_t stream) {
  uniform_f64_kernel<<<grid_for((n + 1) / 2), kBlock, 0, stream>>>(out, n, seed, offset, low, high - low);
  AFD_CUDA_CHECK_LAUNCH();
}
template <>
void launch_normal<float>(float* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std,
                          cudaStream_t stream) {
  normal_f32_kernel<<<grid_for((n + 3) / 4), kBlock, 0, stream>>>(out, n, seed, offset, float(mean), float(std));
  AFD_CUDA_CHECK_LAUNCH();
}
template <>
void launch_normal<double>(double* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std,
                           cudaStream_t stream) {
  normal_f64_kernel<<<grid_for((n + 1) / 2), kBlock, 0, stream>>>(out, n, seed, offset, mean, std);
  AFD_CUDA_CHECK_LAUNCH();
}

#define AFD_INSTANTIATE(T)                                                                                  \
  template void launch_unary<T>(UnaryOp, const T*, T*, int64_t, T, T, cudaStream_t);                        \
  template void launch_binary<T>(BinaryOp, const T*, const T*, T*, int64_t, const BroadcastGeometry*,       \
                                 cudaStream_t);                                                             \
  template void launch_where<T>(const void*, Dt, const T*, const T*, T*, int64_t, const BroadcastGeometry&, \
                                cudaStream_t);                                                              \
  template void launch_gather<T>(const T*, const int64_t*, T*, int64_t, int64_t, int64_t, int64_t, cudaStream_t); \
  template void launch_scatter_add<T>(T*, const int64_t*, const T*, int64_t, int64_t, int64_t, int64_t,      \
                                      cudaStream_t);                                                        \
  template void launch_index_add<T>(T*, int64_t, const int64_t*, const T*, int64_t, int64_t, cudaStream_t); \
  template void launch_sgd_step<T>(const std::vector<SgdPointers<T>>&, double, double, double, double, bool, bool, \
                                   cudaStream_t);                                                           \
  template void launch_update_running_stats<T>(T*, T*, int64_t*, const T*, const T*, int64_t, double, double,   \
                                               cudaStream_t);                                               \
  template void launch_linf_sign_step<T>(const T*, const T*, const T*, const T*, T*, int64_t, int64_t,         \
                                         cudaStream_t);                                                         \
  template void launch_bn_fold<T>(const T*, const T*, const T*, const T*, const T*, const T*, double, T*, T*, T*,   \
                                  int64_t, int64_t, cudaStream_t);
AFD_INSTANTIATE(float)
AFD_INSTANTIATE(double)
#undef AFD_INSTANTIATE

}  // namespace afd::cuda
