// CUDA reductions: sums over a middle dim, max over a dim, softmax, cross-entropy and batch norm.
// Sums accumulate in double; large sums split into partial sums (one per block) that a second
// kernel adds up in index order, so every result is deterministic.
#include "tensor/cuda/launch.cuh"

namespace afd::cuda {

namespace {

// ---- out[p, q] = sum_r x[p, r, q] -----------------------------------------------------------------
// Three shapes of work:
//   rows:    Q == 1 and R long: block (p, s) sums slice s of row p; S slices per row
//   columns: otherwise: thread (p, q, s) walks slice s of column (p, q) (reads coalesced across q)
// and when S > 1 a second kernel adds the S partial sums of each output in order.
struct SumPlan {
  bool rows;
  int64_t S;  // slices per output
};

SumPlan sum_plan(int64_t P, int64_t R, int64_t Q) {
  if (Q == 1 && R > 64) {
    int64_t S = P >= 256 ? 1 : std::clamp<int64_t>((R + 8191) / 8192, 1, 1024);
    return {true, S};
  }
  int64_t outputs = std::max<int64_t>(P * Q, 1);
  int64_t S = std::clamp<int64_t>((65536 + outputs - 1) / outputs, 1, std::max<int64_t>(1, (R + 15) / 16));
  return {false, S};
}

template <class T>
__global__ void sum_rows_kernel(const T* x, T* out, double* partial, int64_t R, int64_t S) {
  int64_t p = blockIdx.x / S, s = blockIdx.x % S;
  int64_t chunk = (R + S - 1) / S, begin = s * chunk, end = min(R, begin + chunk);
  double acc = 0;
  for (int64_t r = begin + threadIdx.x; r < end; r += blockDim.x) acc += x[p * R + r];
  acc = block_sum(acc);
  if (threadIdx.x == 0) {
    if (S == 1)
      out[p] = static_cast<T>(acc);
    else
      partial[p * S + s] = acc;
  }
}

template <class T>
__global__ void sum_columns_kernel(const T* x, T* out, double* partial, int64_t P, int64_t R, int64_t Q, int64_t S) {
  AFD_GRID_LOOP(t, P * Q * S) {
    int64_t q = t % Q, s = (t / Q) % S, p = t / (Q * S);
    int64_t chunk = (R + S - 1) / S, begin = s * chunk, end = min(R, begin + chunk);
    double acc = 0;
    for (int64_t r = begin; r < end; ++r) acc += x[(p * R + r) * Q + q];
    if (S == 1)
      out[p * Q + q] = static_cast<T>(acc);
    else
      partial[(p * Q + q) * S + s] = acc;  // the S slices of one output side by side
  }
}

template <class T>
__global__ void add_partials_kernel(const double* partial, T* out, int64_t outputs, int64_t S) {
  AFD_GRID_LOOP(i, outputs) {
    double acc = 0;
    for (int64_t s = 0; s < S; ++s) acc += partial[i * S + s];
    out[i] = static_cast<T>(acc);
  }
}

// ---- max, softmax, cross-entropy: one thread per row --------------------------------------------
template <class T>
__global__ void max_dim_kernel(const T* x, T* values, int64_t* idx, int64_t outer, int64_t n, int64_t inner) {
  AFD_GRID_LOOP(t, outer * inner) {
    int64_t o = t / inner, q = t % inner;
    const T* base = x + o * n * inner + q;
    T best = base[0];
    int64_t arg = 0;
    for (int64_t r = 1; r < n; ++r) {
      T v = base[r * inner];
      if (v > best || (v != v && best == best)) {  // NaN propagates as the maximum
        best = v;
        arg = r;
      }
    }
    values[t] = best;
    idx[t] = arg;
  }
}

template <class T>
__global__ void softmax_kernel(const T* x, T* out, int64_t outer, int64_t n, int64_t inner, bool log_out) {
  AFD_GRID_LOOP(t, outer * inner) {
    int64_t o = t / inner, q = t % inner;
    const T* in = x + o * n * inner + q;
    T* dst = out + o * n * inner + q;
    T m = -INFINITY;
    for (int64_t r = 0; r < n; ++r) m = max(m, in[r * inner]);
    double s = 0;
    for (int64_t r = 0; r < n; ++r) s += exp(double(in[r * inner] - m));
    if (log_out) {
      T log_s = static_cast<T>(log(s));
      for (int64_t r = 0; r < n; ++r) dst[r * inner] = (in[r * inner] - m) - log_s;
    } else {
      T inv = static_cast<T>(1.0 / s);
      for (int64_t r = 0; r < n; ++r) dst[r * inner] = exp(in[r * inner] - m) * inv;
    }
  }
}

template <class T>
__global__ void cross_entropy_kernel(const T* logits, const int64_t* labels, T* loss, int64_t N, int64_t C) {
  AFD_GRID_LOOP(n, N) {
    const T* row = logits + n * C;
    T m = row[0];
    for (int64_t c = 1; c < C; ++c) m = max(m, row[c]);
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += exp(double(row[c] - m));
    int64_t label = labels[n];
    loss[n] = label >= 0 && label < C ? static_cast<T>(log(s)) - (row[label] - m) : static_cast<T>(NAN);
  }
}

// dlogits[n, c] = (softmax(logits_n)[c] - [c == label_n]) g[n]: softmax_kernel's arithmetic, then
// the subtraction and the product rounded on their own, as the separate ops (softmax, sub of the
// one-hot row, mul) rounded them. A label out of range subtracts nothing (the forward flagged it).
template <class T>
__global__ void cross_entropy_backward_kernel(const T* logits, const int64_t* labels, const T* g, T* dlogits,
                                              int64_t N, int64_t C) {
  AFD_GRID_LOOP(n, N) {
    const T* row = logits + n * C;
    T* out = dlogits + n * C;
    T m = -INFINITY;
    for (int64_t c = 0; c < C; ++c) m = max(m, row[c]);
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += exp(double(row[c] - m));
    const T inv = static_cast<T>(1.0 / s);
    for (int64_t c = 0; c < C; ++c) {
      const T p = mul_rn(T(exp(row[c] - m)), inv);
      out[c] = mul_rn(c == labels[n] ? sub_rn(p, T(1)) : p, g[n]);
    }
  }
}

// ---- batch norm over [N, C, M] --------------------------------------------------------------------
// Channel c's N*M values split into S slices; block (c, s) sums its slice.
int64_t bn_slices(int64_t N, int64_t C, int64_t M) {
  int64_t per_channel = N * M;
  int64_t S = std::clamp<int64_t>((per_channel + 16383) / 16384, 1, 64);
  while (S > 1 && C * S > 4096) S /= 2;
  return S;
}

enum class ChannelSum { x, squared_deviation, dy_and_dy_deviation };

// Where element e of [N, C, M] (or of channel c's [N, M]) lies, with the dividers of fast_divmod.h
// when the tensor has fewer than 2^32 elements, else by 64-bit division.
struct ChannelIndex {
  int64_t C, M;
  bool fast;
  FastDivmod by_m, by_c;
  ChannelIndex(int64_t N, int64_t C, int64_t M) : C(C), M(M), fast(N * C * M <= int64_t(UINT32_MAX)) {
    if (fast) by_m = FastDivmod(static_cast<uint32_t>(M)), by_c = FastDivmod(static_cast<uint32_t>(C));
  }
  // e -> (e / M, e % M), for e in [0, N M)
  __device__ void split(int64_t e, int64_t& n, int64_t& m) const {
    if (!fast) {
      n = e / M, m = e % M;
      return;
    }
    uint32_t q, r;
    by_m.divmod(static_cast<uint32_t>(e), q, r);
    n = q, m = r;
  }
  // the channel of element i of [N, C, M]: (i / M) % C
  __device__ int64_t channel(int64_t i) const {
    if (!fast) return (i / M) % C;
    uint32_t q, c;
    by_c.divmod(by_m.div(static_cast<uint32_t>(i)), q, c);
    return c;
  }
};

__device__ inline double sum_slices(const double* partial, int64_t c, int64_t S) {
  double acc = 0;
  for (int64_t s = 0; s < S; ++s) acc += partial[c * S + s];
  return acc;
}

// partial1[c, s] (and partial2 for the backward) = sums over slice s of channel c:
//   x:                    sum x
//   squared_deviation:    sum (x - mean_d)^2, mean_d = the channel's sums of the x pass
//                         (x_sums [C, S]) added up in slice order, over N M
//   dy_and_dy_deviation:  sum dy and sum dy (x - mean[c])
template <class T, ChannelSum kind>
__global__ void channel_sums_kernel(const T* x, const T* dy, const double* x_sums, const T* mean, int64_t N,
                                    ChannelIndex at_of, int64_t S, double* partial1, double* partial2) {
  const int64_t C = at_of.C, M = at_of.M;
  int64_t c = blockIdx.x / S, s = blockIdx.x % S;
  int64_t total = N * M, chunk = (total + S - 1) / S, begin = s * chunk, end = min(total, begin + chunk);
  double acc1 = 0, acc2 = 0;
  double mu = kind == ChannelSum::squared_deviation ? sum_slices(x_sums, c, S) / double(total)
              : kind == ChannelSum::dy_and_dy_deviation ? double(mean[c]) : 0.0;
  for (int64_t e = begin + threadIdx.x; e < end; e += blockDim.x) {
    int64_t n, m;
    at_of.split(e, n, m);
    int64_t at = (n * C + c) * M + m;
    if constexpr (kind == ChannelSum::x) {
      acc1 += x[at];
    } else if constexpr (kind == ChannelSum::squared_deviation) {
      double d = double(x[at]) - mu;
      acc1 += d * d;
    } else {
      acc1 += dy[at];
      acc2 += double(dy[at]) * (double(x[at]) - mu);
    }
  }
  acc1 = block_sum(acc1);
  if constexpr (kind == ChannelSum::dy_and_dy_deviation) acc2 = block_sum(acc2);
  if (threadIdx.x == 0) {
    partial1[c * S + s] = acc1;
    if constexpr (kind == ChannelSum::dy_and_dy_deviation) partial2[c * S + s] = acc2;
  }
}

template <class T>
__global__ void bn_finish_stats_kernel(const double* x_sums, const double* partial, int64_t C, int64_t S,
                                       double count, double eps, T* mean, T* var, T* invstd) {
  AFD_GRID_LOOP(c, C) {
    double variance = sum_slices(partial, c, S) / count;
    mean[c] = T(sum_slices(x_sums, c, S) / count);  // the mean the deviation pass used
    var[c] = T(variance);
    invstd[c] = T(1.0 / sqrt(variance + eps));
  }
}

template <class T>
__global__ void bn_apply_kernel(const T* x, const T* gamma, const T* beta, const T* mean, const T* invstd, T* y,
                                int64_t n, ChannelIndex at, bool relu) {
  AFD_GRID_LOOP(i, n) {
    int64_t c = at.channel(i);
    T scale = invstd[c] * gamma[c], shift = beta[c] - mean[c] * invstd[c] * gamma[c];
    const T v = x[i] * scale + shift;
    y[i] = !relu || v > T(0) || v != v ? v : T(0);  // relu as the relu op: NaN stays NaN
  }
}

// Per channel: dbeta = sum dy, dgamma = invstd sum dy (x - mean), and the coefficients of
// dx = k dy - k_mean_dy - k_slope (x - mean) (tensor/cpu/norm_pool.cpp) into coef[3c..3c+2].
template <class T>
__global__ void bn_backward_finish_kernel(const double* partial1, const double* partial2, const T* gamma,
                                          const T* invstd, int64_t C, int64_t S, double count, T* dgamma,
                                          T* dbeta, double* coef) {
  AFD_GRID_LOOP(c, C) {
    double sum_dy = sum_slices(partial1, c, S), inv = invstd[c], g = gamma[c];
    double sum_dy_xhat = sum_slices(partial2, c, S) * inv;
    if (dbeta) dbeta[c] = T(sum_dy);
    if (dgamma) dgamma[c] = T(sum_dy_xhat);
    coef[3 * c] = g * inv;
    coef[3 * c + 1] = g * inv * sum_dy / count;
    coef[3 * c + 2] = g * inv * inv * sum_dy_xhat / count;
  }
}

template <class T>
__global__ void bn_dx_kernel(const T* dy, const T* x, const T* mean, const double* coef, T* dx, int64_t n,
                             ChannelIndex at) {
  AFD_GRID_LOOP(i, n) {
    int64_t c = at.channel(i);
    T k = T(coef[3 * c]), k_mean_dy = T(coef[3 * c + 1]), k_slope = T(coef[3 * c + 2]);
    dx[i] = k * dy[i] - k_mean_dy - k_slope * (x[i] - mean[c]);
  }
}

}  // namespace

// ---- launchers -------------------------------------------------------------------------------------
int64_t sum_middle_scratch(int64_t P, int64_t R, int64_t Q) {
  SumPlan plan = sum_plan(P, R, Q);
  return plan.S > 1 ? P * Q * plan.S : 0;
}

template <class T>
void launch_sum_middle(const T* x, T* out, int64_t P, int64_t R, int64_t Q, double* scratch, cudaStream_t stream) {
  if (P * Q == 0) return;
  SumPlan plan = sum_plan(P, R, Q);
  if (plan.rows)
    sum_rows_kernel<T><<<static_cast<unsigned>(P * plan.S), kBlock, 0, stream>>>(x, out, scratch, R, plan.S);
  else
    sum_columns_kernel<T><<<grid_for(P * Q * plan.S), kBlock, 0, stream>>>(x, out, scratch, P, R, Q, plan.S);
  AFD_CUDA_CHECK_LAUNCH();
  if (plan.S > 1) {
    add_partials_kernel<T><<<grid_for(P * Q), kBlock, 0, stream>>>(scratch, out, P * Q, plan.S);
    AFD_CUDA_CHECK_LAUNCH();
  }
}

template <class T>
void launch_max_dim(const T* x, T* values, int64_t* idx, int64_t outer, int64_t n, int64_t inner,
                    cudaStream_t stream) {
  max_dim_kernel<T><<<grid_for(outer * inner), kBlock, 0, stream>>>(x, values, idx, outer, n, inner);
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_softmax(const T* x, T* out, int64_t outer, int64_t n, int64_t inner, bool log, cudaStream_t stream) {
  softmax_kernel<T><<<grid_for(outer * inner), kBlock, 0, stream>>>(x, out, outer, n, inner, log);
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_cross_entropy(const T* logits, const int64_t* labels, T* loss, int64_t N, int64_t C,
                          cudaStream_t stream) {
  cross_entropy_kernel<T><<<grid_for(N), kBlock, 0, stream>>>(logits, labels, loss, N, C);
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_cross_entropy_backward(const T* logits, const int64_t* labels, const T* g, T* dlogits, int64_t N,
                                   int64_t C, cudaStream_t stream) {
  cross_entropy_backward_kernel<T><<<grid_for(N), kBlock, 0, stream>>>(logits, labels, g, dlogits, N, C);
  AFD_CUDA_CHECK_LAUNCH();
}

int64_t batch_norm_scratch(int64_t N, int64_t C, int64_t M) { return 2 * C * bn_slices(N, C, M) + 3 * C; }

template <class T>
void launch_bn_stats(const T* x, int64_t N, int64_t C, int64_t M, double eps, T* mean, T* var, T* invstd,
                     double* scratch, cudaStream_t stream) {
  int64_t S = bn_slices(N, C, M);
  double count = static_cast<double>(N * M);
  double *x_sums = scratch, *dev_sums = scratch + C * S;
  unsigned blocks = static_cast<unsigned>(C * S);
  // Two passes (mean, then squared deviations) so the variance does not cancel. Each block of the
  // second adds up its channel's first-pass sums itself (S <= 64 numbers): no kernel in between.
  const ChannelIndex at(N, C, M);
  channel_sums_kernel<T, ChannelSum::x><<<blocks, kBlock, 0, stream>>>(x, nullptr, nullptr, nullptr, N, at, S,
                                                                       x_sums, nullptr);
  AFD_CUDA_CHECK_LAUNCH();
  channel_sums_kernel<T, ChannelSum::squared_deviation><<<blocks, kBlock, 0, stream>>>(
      x, nullptr, x_sums, nullptr, N, at, S, dev_sums, nullptr);
  AFD_CUDA_CHECK_LAUNCH();
  bn_finish_stats_kernel<T><<<grid_for(C), kBlock, 0, stream>>>(x_sums, dev_sums, C, S, count, eps, mean, var,
                                                                invstd);
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_bn_apply(const T* x, const T* gamma, const T* beta, const T* mean, const T* invstd, T* y, int64_t N,
                     int64_t C, int64_t M, bool relu, cudaStream_t stream) {
  int64_t n = N * C * M;
  bn_apply_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(x, gamma, beta, mean, invstd, y, n, ChannelIndex(N, C, M),
                                                         relu);
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_bn_backward(const T* dy, const T* x, const T* gamma, const T* mean, const T* invstd, T* dx, T* dgamma,
                        T* dbeta, int64_t N, int64_t C, int64_t M, double* scratch, cudaStream_t stream) {
  int64_t S = bn_slices(N, C, M);
  double count = static_cast<double>(N * M);
  double *partial1 = scratch, *partial2 = scratch + C * S, *coef = scratch + 2 * C * S;
  const ChannelIndex at(N, C, M);
  channel_sums_kernel<T, ChannelSum::dy_and_dy_deviation><<<static_cast<unsigned>(C * S), kBlock, 0, stream>>>(
      x, dy, nullptr, mean, N, at, S, partial1, partial2);
  AFD_CUDA_CHECK_LAUNCH();
  bn_backward_finish_kernel<T><<<grid_for(C), kBlock, 0, stream>>>(partial1, partial2, gamma, invstd, C, S, count,
                                                                    dgamma, dbeta, coef);
  AFD_CUDA_CHECK_LAUNCH();
  if (dx) {
    int64_t n = N * C * M;
    bn_dx_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(dy, x, mean, coef, dx, n, at);
    AFD_CUDA_CHECK_LAUNCH();
  }
}

#define AFD_INSTANTIATE(T)                                                                                    \
  template void launch_sum_middle<T>(const T*, T*, int64_t, int64_t, int64_t, double*, cudaStream_t);         \
  template void launch_max_dim<T>(const T*, T*, int64_t*, int64_t, int64_t, int64_t, cudaStream_t);           \
  template void launch_softmax<T>(const T*, T*, int64_t, int64_t, int64_t, bool, cudaStream_t);               \
  template void launch_cross_entropy<T>(const T*, const int64_t*, T*, int64_t, int64_t, cudaStream_t);        \
  template void launch_cross_entropy_backward<T>(const T*, const int64_t*, const T*, T*, int64_t, int64_t,      \
                                                 cudaStream_t);                                                 \
  template void launch_bn_stats<T>(const T*, int64_t, int64_t, int64_t, double, T*, T*, T*, double*,          \
                                   cudaStream_t);                                                             \
  template void launch_bn_apply<T>(const T*, const T*, const T*, const T*, const T*, T*, int64_t, int64_t,    \
                                   int64_t, bool, cudaStream_t);                                              \
  template void launch_bn_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, int64_t,  \
                                      int64_t, int64_t, double*, cudaStream_t);
AFD_INSTANTIATE(float)
AFD_INSTANTIATE(double)
#undef AFD_INSTANTIATE

}  // namespace afd::cuda
