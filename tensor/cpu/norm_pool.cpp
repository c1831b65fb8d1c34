// CPU batch norm and pooling.
//
// Batch norm views x [N, C, ...] as [N, C, M] and normalises each channel c over N*M values:
//   mean = sum x / NM,  var = sum (x - mean)^2 / NM (biased),  invstd = 1 / sqrt(var + eps)
//   y = (x - mean) invstd gamma + beta
// Backward (xhat = (x - mean) invstd):
//   dbeta = sum dy,  dgamma = sum dy xhat,  dx = gamma invstd / NM (NM dy - dbeta - xhat dgamma)
#include <omp.h>

#include <cmath>
#include <limits>

#include "tensor/cpu/cpu_backend.h"

namespace afd::cpu {

namespace {
struct ChannelView {
  int64_t N, C, M;
};
ChannelView channels(const Tensor& x) { return {x.size(0), x.size(1), x.numel() / (x.size(0) * x.size(1))}; }
}  // namespace

void CpuBackend::batch_norm_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                  double eps, Tensor& y, Tensor& mean, Tensor& var, Tensor& invstd) {
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
      double s = 0;
      for (int64_t n = 0; n < v.N; ++n) {
        const T* row = px + (n * v.C + c) * v.M;
        for (int64_t m = 0; m < v.M; ++m) s += row[m];
      }
      double mu = s / count, ss = 0;
      for (int64_t n = 0; n < v.N; ++n) {
        const T* row = px + (n * v.C + c) * v.M;
        for (int64_t m = 0; m < v.M; ++m) ss += (row[m] - mu) * (row[m] - mu);
      }
      double variance = ss / count, inv = 1.0 / std::sqrt(variance + eps);
      pm[c] = T(mu);
      pv[c] = T(variance);
      pi[c] = T(inv);
      T scale = T(inv * pg[c]), shift = T(pb[c] - mu * inv * pg[c]);
      for (int64_t n = 0; n < v.N; ++n) {
        const T* row = px + (n * v.C + c) * v.M;
        T* out = py + (n * v.C + c) * v.M;
        for (int64_t m = 0; m < v.M; ++m) out[m] = row[m] * scale + shift;
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
      double sum_dy = 0, sum_dy_xhat = 0;
      T mu = pm[c], inv = pi[c];
      for (int64_t n = 0; n < v.N; ++n) {
        const T* row = px + (n * v.C + c) * v.M;
        const T* g = pdy + (n * v.C + c) * v.M;
        for (int64_t m = 0; m < v.M; ++m) {
          sum_dy += g[m];
          sum_dy_xhat += g[m] * (row[m] - mu) * inv;
        }
      }
      if (dbeta.defined()) dbeta.data<T>()[c] = T(sum_dy);
      if (dgamma.defined()) dgamma.data<T>()[c] = T(sum_dy_xhat);
      if (!dx.defined()) continue;
      T k = T(pg[c] * inv), mean_dy = T(sum_dy / count), mean_dy_xhat = T(sum_dy_xhat / count);
      for (int64_t n = 0; n < v.N; ++n) {
        const T* row = px + (n * v.C + c) * v.M;
        const T* g = pdy + (n * v.C + c) * v.M;
        T* out = dx.data<T>() + (n * v.C + c) * v.M;
        for (int64_t m = 0; m < v.M; ++m) out[m] = k * (g[m] - mean_dy - (row[m] - mu) * inv * mean_dy_xhat);
      }
    }
  });
}

// ---- pooling: planes [N*C] of H x W -> P x Q ------------------------------------------------------
void CpuBackend::max_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor& y,
                                    Tensor& indices) {
  int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3), P = y.size(2), Q = y.size(3);
  dispatch_float(x.dtype(), "max_pool2d", [&]<class T>() {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    int64_t* pidx = indices.data<int64_t>();
#pragma omp parallel for if (x.numel() > kParallelGrain)
    for (int64_t pl = 0; pl < planes; ++pl) {
      const T* in = px + pl * H * W;
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
