// CPU batch norm and pooling.
//
// Batch norm views x [N, C, ...] as [N, C, M] and normalises each channel c over N*M values:
//   mean = sum x / NM,  var = sum (x - mean)^2 / NM (biased),  invstd = 1 / sqrt(var + eps)
//   y = (x - mean) invstd gamma + beta
// Backward (xhat = (x - mean) invstd):
//   dbeta = sum dy,  dgamma = sum dy xhat,  dx = gamma invstd / NM (NM dy - dbeta - xhat dgamma)
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/cpu/cpu_backend.h"

namespace afd::cpu {

namespace {
struct ChannelView {
  int64_t N, C, M;
};
ChannelView channels(const Tensor& x) { return {x.size(0), x.size(1), x.numel() / (x.size(0) * x.size(1))}; }

// Sums over one row of a channel, in T with several vector lanes (the compiler may reorder the
// additions); callers add the row sums up in double. Rows are at most a plane (H*W values), so the
// float rounding stays at the level of the inputs' own.
template <class T>
T row_sum(const T* x, int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return s;
}
template <class T>
T row_sum_sq_dev(const T* x, int64_t n, T mu) {  // sum (x - mu)^2
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += (x[i] - mu) * (x[i] - mu);
  return s;
}
template <class T>
T row_dot_dev(const T* g, const T* x, int64_t n, T mu) {  // sum g (x - mu)
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += g[i] * (x[i] - mu);
  return s;
}

}  // namespace

void CpuBackend::batch_norm_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                  double eps, bool relu, Tensor& y, Tensor& mean, Tensor& var, Tensor& invstd) {
  ChannelView v = channels(x);
  dispatch_float(x.dtype(), "batch_norm", [&]<class T>() {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const T* pg = gamma.data<T>();
    const T* pb = beta.data<T>();
    T *pm = mean.data<T>(), *pv = var.data<T>(), *pi = invstd.data<T>();
    double count = static_cast<double>(v.N * v.M);
#pragma omp parallel for if (x.numel() > kParallelGrain)
    for (int64_t c = 0; c < v.C; ++c) {
      // Two passes (mean, then squared deviations) so the variance does not cancel.
      double s = 0;
      for (int64_t n = 0; n < v.N; ++n) s += row_sum(px + (n * v.C + c) * v.M, v.M);
      double mu = s / count, ss = 0;
      for (int64_t n = 0; n < v.N; ++n) ss += row_sum_sq_dev(px + (n * v.C + c) * v.M, v.M, T(mu));
      double variance = ss / count, inv = 1.0 / std::sqrt(variance + eps);
      pm[c] = T(mu);
      pv[c] = T(variance);
      pi[c] = T(inv);
      T scale = T(inv * pg[c]), shift = T(pb[c] - mu * inv * pg[c]);
      for (int64_t n = 0; n < v.N; ++n) {
        const T* row = px + (n * v.C + c) * v.M;
        T* out = py + (n * v.C + c) * v.M;
        for (int64_t m = 0; m < v.M; ++m) out[m] = row[m] * scale + shift;
        if (relu)  // as the relu op: NaN stays NaN
          for (int64_t m = 0; m < v.M; ++m) out[m] = out[m] > 0 || out[m] != out[m] ? out[m] : T(0);
      }
    }
  });
}

void CpuBackend::batch_norm_apply(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                  const Tensor& mean, const Tensor& invstd, Tensor& y) {
  ChannelView v = channels(x);
  dispatch_float(x.dtype(), "batch_norm", [&]<class T>() {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const T *pg = gamma.data<T>(), *pb = beta.data<T>(), *pm = mean.data<T>(), *pi = invstd.data<T>();
#pragma omp parallel for collapse(2) if (x.numel() > kParallelGrain)
    for (int64_t n = 0; n < v.N; ++n)
      for (int64_t c = 0; c < v.C; ++c) {
        T scale = pi[c] * pg[c], shift = pb[c] - pm[c] * pi[c] * pg[c];
        const T* row = px + (n * v.C + c) * v.M;
        T* out = py + (n * v.C + c) * v.M;
        for (int64_t m = 0; m < v.M; ++m) out[m] = row[m] * scale + shift;
      }
  });
}

void CpuBackend::batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                     const Tensor& mean, const Tensor& invstd, Tensor& dx,
                                     Tensor& dgamma, Tensor& dbeta) {
  ChannelView v = channels(x);
  dispatch_float(x.dtype(), "batch_norm_backward", [&]<class T>() {
    const T *px = x.data<T>(), *pdy = dy.data<T>(), *pg = gamma.data<T>();
    const T *pm = mean.data<T>(), *pi = invstd.data<T>();
    double count = static_cast<double>(v.N * v.M);
#pragma omp parallel for if (x.numel() > kParallelGrain)
    for (int64_t c = 0; c < v.C; ++c) {
      // sum_dy_xhat = invstd sum dy (x - mean)
      double sum_dy = 0, sum_dy_dev = 0;
      T mu = pm[c], inv = pi[c];
      for (int64_t n = 0; n < v.N; ++n) {
        const T* row = px + (n * v.C + c) * v.M;
        const T* g = pdy + (n * v.C + c) * v.M;
        sum_dy += row_sum(g, v.M);
        sum_dy_dev += row_dot_dev(g, row, v.M, mu);
      }
      double sum_dy_xhat = sum_dy_dev * inv;
      if (dbeta.defined()) dbeta.data<T>()[c] = T(sum_dy);
      if (dgamma.defined()) dgamma.data<T>()[c] = T(sum_dy_xhat);
      if (!dx.defined()) continue;
      // dx = k (dy - mean_dy - xhat mean_dy_xhat) with k = gamma invstd, xhat = (x - mean) invstd
      T k = T(pg[c] * inv), k_mean_dy = T(pg[c] * inv * sum_dy / count);
      T k_slope = T(pg[c] * inv * inv * sum_dy_xhat / count);  // k invstd mean_dy_xhat
      for (int64_t n = 0; n < v.N; ++n) {
        const T* row = px + (n * v.C + c) * v.M;
        const T* g = pdy + (n * v.C + c) * v.M;
        T* out = dx.data<T>() + (n * v.C + c) * v.M;
        for (int64_t m = 0; m < v.M; ++m) out[m] = k * g[m] - k_mean_dy - k_slope * (row[m] - mu);
      }
    }
  });
}

// Each step rounded in T as the separate ops round it (ops::bn_fold): add_scalar is the affine
// op 1 v + eps, sqrt and 1 / v are correctly rounded, and nothing is fused (-ffp-contract=off).
void CpuBackend::bn_fold(const Tensor& w, const Tensor& conv_bias, const Tensor& gamma, const Tensor& beta,
                         const Tensor& mean, const Tensor& var, double eps, Tensor& w_out, Tensor& shift,
                         Tensor& invstd) {
  dispatch_float(w.dtype(), "bn_fold", [&]<class T>() {
    const int64_t K = w.size(0), per_k = w.numel() / K;
    const T *pw = w.data<T>(), *pg = gamma.data<T>(), *pb = beta.data<T>(), *pm = mean.data<T>();
    const T *pv = var.data<T>(), *bias = conv_bias.defined() ? conv_bias.data<T>() : nullptr;
    T *po = w_out.data<T>(), *ps = shift.data<T>(), *pi = invstd.data<T>();
    const T one = T(1), e = T(eps);
    for (int64_t k = 0; k < K; ++k) {
      pi[k] = one / std::sqrt(one * pv[k] + e);
      const T a = pg[k] * pi[k];
      ps[k] = pb[k] - a * pm[k];
      if (bias) ps[k] = ps[k] + a * bias[k];
      for (int64_t i = k * per_k; i < (k + 1) * per_k; ++i) po[i] = pw[i] * a;
    }
  });
}

// ---- pooling: planes [N*C] of H x W -> P x Q ------------------------------------------------------
namespace {

// The common 2x2 window, stride 2, no padding (every window lies inside the plane), for a plane
// without NaN: the same result as the general loop below, where a starts and only a strictly
// larger value replaces the best, so the index is that of the first maximum in the order a, b, c, d.
// Written without data-dependent branches (max, and 0/1 comparison results in integer
// arithmetic): on real data such branches are coin flips, and mispredicting them cost more than
// the rest of the pooling. One plane in [H, W] -> out and idx [P, Q]. Returns false when a window
// holds a NaN; the caller then redoes the plane with the general loop, which knows the NaN rule.
template <class T>
bool max_pool_2x2(const T* in, int64_t W, int64_t P, int64_t Q, T* out, int64_t* idx) {
  bool nan = false;
  for (int64_t i = 0; i < P; ++i) {
    const T* row0 = in + 2 * i * W;  // window rows 2i and 2i + 1
    const T* row1 = row0 + W;
    for (int64_t j = 0; j < Q; ++j) {
      T a = row0[2 * j], b = row0[2 * j + 1], c = row1[2 * j], d = row1[2 * j + 1];
      nan |= (a != a) | (b != b) | (c != c) | (d != d);
      T best = std::max(std::max(a, b), std::max(c, d));
      // Position of the first maximum: 0 = a, 1 = b, 2 = c, 3 = d.
      int64_t not_a = a != best, not_b = b != best, not_c = c != best;
      int64_t k = not_a * (1 + not_b * (1 + not_c));
      out[i * Q + j] = best;
      idx[i * Q + j] = (2 * i + k / 2) * W + 2 * j + k % 2;
    }
  }
  return !nan;
}

}  // namespace

void CpuBackend::max_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor& y,
                                    Tensor& indices) {
  int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3), P = y.size(2), Q = y.size(3);
  bool two_by_two = p.kernel == 2 && p.stride == 2 && p.padding == 0;
  dispatch_float(x.dtype(), "max_pool2d", [&]<class T>() {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    int64_t* pidx = indices.data<int64_t>();
#pragma omp parallel for if (x.numel() > kParallelGrain)
    for (int64_t pl = 0; pl < planes; ++pl) {
      const T* in = px + pl * H * W;
      if (two_by_two && max_pool_2x2(in, W, P, Q, py + pl * P * Q, pidx + pl * P * Q)) continue;
      for (int64_t i = 0; i < P; ++i)
        for (int64_t j = 0; j < Q; ++j) {
          T best = -std::numeric_limits<T>::infinity();
          int64_t arg = -1;
          for (int64_t r = 0; r < p.kernel; ++r) {
            int64_t h = i * p.stride - p.padding + r;
            if (h < 0 || h >= H) continue;
            for (int64_t s = 0; s < p.kernel; ++s) {
              int64_t w = j * p.stride - p.padding + s;
              if (w < 0 || w >= W) continue;
              T v = in[h * W + w];
              if (arg < 0 || v > best || std::isnan(v)) {
                best = v;
                arg = h * W + w;
                if (std::isnan(v)) break;
              }
            }
          }
          py[(pl * P + i) * Q + j] = best;
          pidx[(pl * P + i) * Q + j] = arg;
        }
    }
  });
}

void CpuBackend::max_pool2d_backward(const Tensor& dy, const Tensor& indices, Tensor& dx) {
  int64_t planes = dx.size(0) * dx.size(1), HW = dx.size(2) * dx.size(3), PQ = dy.size(2) * dy.size(3);
  dispatch_float(dy.dtype(), "max_pool2d_backward", [&]<class T>() {
    const T* pdy = dy.data<T>();
    const int64_t* pidx = indices.data<int64_t>();
    T* pdx = dx.data<T>();
#pragma omp parallel for if (dx.numel() > kParallelGrain)
    for (int64_t pl = 0; pl < planes; ++pl) {
      T* out = pdx + pl * HW;
      std::fill(out, out + HW, T(0));
      for (int64_t k = 0; k < PQ; ++k) out[pidx[pl * PQ + k]] += pdy[pl * PQ + k];
    }
  });
}

void CpuBackend::avg_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor& y) {
  int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3), P = y.size(2), Q = y.size(3);
  dispatch_float(x.dtype(), "avg_pool2d", [&]<class T>() {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    T inv = T(1) / T(p.kernel * p.kernel);  // padding counts in the divisor
#pragma omp parallel for if (x.numel() > kParallelGrain)
    for (int64_t pl = 0; pl < planes; ++pl) {
      const T* in = px + pl * H * W;
      for (int64_t i = 0; i < P; ++i)
        for (int64_t j = 0; j < Q; ++j) {
          T s = 0;
          for (int64_t r = 0; r < p.kernel; ++r) {
            int64_t h = i * p.stride - p.padding + r;
            if (h < 0 || h >= H) continue;
            for (int64_t t = 0; t < p.kernel; ++t) {
              int64_t w = j * p.stride - p.padding + t;
              if (w >= 0 && w < W) s += in[h * W + w];
            }
          }
          py[(pl * P + i) * Q + j] = s * inv;
        }
    }
  });
}

void CpuBackend::avg_pool2d_backward(const Tensor& dy, const Pool2dParams& p, Tensor& dx) {
  int64_t planes = dx.size(0) * dx.size(1), H = dx.size(2), W = dx.size(3), P = dy.size(2), Q = dy.size(3);
  dispatch_float(dy.dtype(), "avg_pool2d_backward", [&]<class T>() {
    const T* pdy = dy.data<T>();
    T* pdx = dx.data<T>();
    T inv = T(1) / T(p.kernel * p.kernel);
#pragma omp parallel for if (dx.numel() > kParallelGrain)
    for (int64_t pl = 0; pl < planes; ++pl) {
      T* out = pdx + pl * H * W;
      std::fill(out, out + H * W, T(0));
      for (int64_t i = 0; i < P; ++i)
        for (int64_t j = 0; j < Q; ++j) {
          T g = pdy[(pl * P + i) * Q + j] * inv;
          for (int64_t r = 0; r < p.kernel; ++r) {
            int64_t h = i * p.stride - p.padding + r;
            if (h < 0 || h >= H) continue;
            for (int64_t t = 0; t < p.kernel; ++t) {
              int64_t w = j * p.stride - p.padding + t;
              if (w >= 0 && w < W) out[h * W + w] += g;
            }
          }
        }
    }
  });
}

}  // namespace afd::cpu
