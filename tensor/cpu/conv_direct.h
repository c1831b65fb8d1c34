// Internal to the CPU backend: the geometry of a 2-D convolution (conv.cpp) and the direct
// AVX-512 kernels that compute it without im2col (conv_direct.cpp).
#pragma once
#include <cstdint>
#include <vector>

namespace afd::cpu {

// x [N, C, H, W], w [K, C, R, S], y [N, K, P, Q]; the same stride and zero padding on both axes.
struct ConvGeometry {
  int64_t N, C, H, W, K, R, S, P, Q, stride, pad;
  int64_t crs() const { return C * R * S; }
  int64_t pq() const { return P * Q; }
  int64_t chw() const { return C * H * W; }
  int64_t kpq() const { return K * P * Q; }
  int64_t padded_h() const { return H + 2 * pad; }
  int64_t padded_w() const { return W + 2 * pad; }
  // A 1x1 stride-1 unpadded convolution needs no im2col: col is the image itself.
  bool is_pointwise() const { return R == 1 && S == 1 && stride == 1 && pad == 0; }
};

// Per-thread scratch memory, reused from call to call: OpenMP keeps its worker threads, so each
// keeps its buffers, and a convolution allocates nothing per group of images (a fresh block of
// this size would be a new mmap whose pages fault in). Slots name buffers in use at the same time:
// im2col's padded image, col, gemm output and dense map (conv.cpp); the direct kernels' wide
// planes, wide outputs, packed filter and flipped filter, and the filter gradient's padded images
// and transposed dy in the planes and wide slots (conv_direct.cpp).
enum class Scratch { padded, col, out, dense, planes, wide, packed, flipped, count };
template <class T>
T* scratch(Scratch slot, int64_t n) {
  thread_local std::vector<T> buffers[static_cast<int>(Scratch::count)];
  std::vector<T>& b = buffers[static_cast<int>(slot)];
  if (static_cast<int64_t>(b.size()) < n) b.resize(n);
  return b.data();
}

namespace direct {

// Whether this CPU has AVX-512F (checked at run time: the binaries are built for any x86-64).
bool supported();
// The data gradient runs as the forward convolution of dy by the flipped, transposed filter,
// which needs stride 1 and padding of at most R - 1 and S - 1.
bool backward_data_applies(const ConvGeometry& g);

// The filter gradient's tiles are written for 3x3 kernels (any stride and padding).
bool backward_filter_applies(const ConvGeometry& g);

// f32 only; every pointer is a dense tensor in the layout above. bias may be null.
void forward(const float* x, const float* w, const float* bias, const ConvGeometry& g, float* y);
void backward_data(const float* dy, const float* w, const ConvGeometry& g, float* dx);
// dw [K, C, R, S] = the filter gradient, overwritten (the bias gradient is the caller's).
void backward_filter(const float* dy, const float* x, const ConvGeometry& g, float* dw);

}  // namespace direct
}  // namespace afd::cpu
