// CUDA max and average pooling over planes [planes, H, W] -> [planes, P, Q], one thread per
// output (forward) or per input element (average-pooling backward, which gathers the windows
// that cover it instead of scattering, so it needs no atomics).
#include "tensor/cuda/launch.cuh"

namespace afd::cuda {

namespace {

// Same scan as the CPU: window row by row, the first maximum wins, a NaN is taken (and ends its
// window row).
template <class T>
__global__ void max_pool_forward_kernel(const T* x, T* y, int64_t* idx, PoolGeometry g) {
  AFD_GRID_LOOP(t, g.planes * g.P * g.Q) {
    int64_t j = t % g.Q, i = (t / g.Q) % g.P, pl = t / (g.P * g.Q);
    const T* in = x + pl * g.H * g.W;
    T best = -INFINITY;
    int64_t arg = -1;
    for (int64_t r = 0; r < g.kernel; ++r) {
      int64_t h = i * g.stride - g.padding + r;
      if (h < 0 || h >= g.H) continue;
      for (int64_t s = 0; s < g.kernel; ++s) {
        int64_t w = j * g.stride - g.padding + s;
        if (w < 0 || w >= g.W) continue;
        T v = in[h * g.W + w];
        if (arg < 0 || v > best || v != v) {
          best = v;
          arg = h * g.W + w;
          if (v != v) break;
        }
      }
    }
    y[t] = best;
    idx[t] = arg;
  }
}

template <class T>
__global__ void max_pool_backward_atomic_kernel(const T* dy, const int64_t* idx, T* dx, int64_t planes, int64_t HW,
                                                int64_t PQ) {
  AFD_GRID_LOOP(t, planes * PQ) atomicAdd(dx + (t / PQ) * HW + idx[t], dy[t]);
}

template <class T>
__global__ void max_pool_backward_plane_kernel(const T* dy, const int64_t* idx, T* dx, int64_t planes, int64_t HW,
                                               int64_t PQ) {
  AFD_GRID_LOOP(pl, planes) {
    for (int64_t k = 0; k < PQ; ++k) dx[pl * HW + idx[pl * PQ + k]] += dy[pl * PQ + k];
  }
}

template <class T>
__global__ void avg_pool_forward_kernel(const T* x, T* y, PoolGeometry g) {
  T inv = T(1) / T(g.kernel * g.kernel);  // padding counts in the divisor
  AFD_GRID_LOOP(t, g.planes * g.P * g.Q) {
    int64_t j = t % g.Q, i = (t / g.Q) % g.P, pl = t / (g.P * g.Q);
    const T* in = x + pl * g.H * g.W;
    T s = 0;
    for (int64_t r = 0; r < g.kernel; ++r) {
      int64_t h = i * g.stride - g.padding + r;
      if (h < 0 || h >= g.H) continue;
      for (int64_t c = 0; c < g.kernel; ++c) {
        int64_t w = j * g.stride - g.padding + c;
        if (w >= 0 && w < g.W) s += in[h * g.W + w];
      }
    }
    y[t] = s * inv;
  }
}

// Output rows i whose window [i stride - padding, i stride - padding + kernel) holds h.
__device__ inline void covering(int64_t h, int64_t stride, int64_t padding, int64_t kernel, int64_t P,
                                int64_t& first, int64_t& last) {
  int64_t top = h + padding;  // i stride <= top and i stride > top - kernel
  first = top - kernel + 1 <= 0 ? 0 : (top - kernel + 1 + stride - 1) / stride;
  last = min(P - 1, top / stride);
}

template <class T>
__global__ void avg_pool_backward_kernel(const T* dy, T* dx, PoolGeometry g) {
  T inv = T(1) / T(g.kernel * g.kernel);
  AFD_GRID_LOOP(t, g.planes * g.H * g.W) {
    int64_t w = t % g.W, h = (t / g.W) % g.H, pl = t / (g.H * g.W);
    int64_t i0, i1, j0, j1;
    covering(h, g.stride, g.padding, g.kernel, g.P, i0, i1);
    covering(w, g.stride, g.padding, g.kernel, g.Q, j0, j1);
    T s = 0;
    for (int64_t i = i0; i <= i1; ++i)
      for (int64_t j = j0; j <= j1; ++j) s += dy[(pl * g.P + i) * g.Q + j] * inv;
    dx[t] = s;
  }
}

}  // namespace

template <class T>
void launch_max_pool_forward(const T* x, T* y, int64_t* idx, const PoolGeometry& g, cudaStream_t stream) {
  max_pool_forward_kernel<T><<<grid_for(g.planes * g.P * g.Q), kBlock, 0, stream>>>(x, y, idx, g);
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_max_pool_backward(const T* dy, const int64_t* idx, T* dx, int64_t planes, int64_t HW, int64_t PQ,
                              bool deterministic, cudaStream_t stream) {
  AFD_CUDA_CHECK(cudaMemsetAsync(dx, 0, planes * HW * sizeof(T), stream));
  if (deterministic)
    max_pool_backward_plane_kernel<T><<<grid_for(planes), kBlock, 0, stream>>>(dy, idx, dx, planes, HW, PQ);
  else
    max_pool_backward_atomic_kernel<T><<<grid_for(planes * PQ), kBlock, 0, stream>>>(dy, idx, dx, planes, HW, PQ);
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_avg_pool_forward(const T* x, T* y, const PoolGeometry& g, cudaStream_t stream) {
  avg_pool_forward_kernel<T><<<grid_for(g.planes * g.P * g.Q), kBlock, 0, stream>>>(x, y, g);
  AFD_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_avg_pool_backward(const T* dy, T* dx, const PoolGeometry& g, cudaStream_t stream) {
  avg_pool_backward_kernel<T><<<grid_for(g.planes * g.H * g.W), kBlock, 0, stream>>>(dy, dx, g);
  AFD_CUDA_CHECK_LAUNCH();
}

#define AFD_INSTANTIATE(T)                                                                                  \
  template void launch_max_pool_forward<T>(const T*, T*, int64_t*, const PoolGeometry&, cudaStream_t);      \
  template void launch_max_pool_backward<T>(const T*, const int64_t*, T*, int64_t, int64_t, int64_t, bool,  \
                                            cudaStream_t);                                                  \
  template void launch_avg_pool_forward<T>(const T*, T*, const PoolGeometry&, cudaStream_t);                \
  template void launch_avg_pool_backward<T>(const T*, T*, const PoolGeometry&, cudaStream_t);
AFD_INSTANTIATE(float)
AFD_INSTANTIATE(double)
#undef AFD_INSTANTIATE

}  // namespace afd::cuda
