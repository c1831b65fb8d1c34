// CPU gemm (OpenBLAS) and 2-D convolution as im2col + gemm, as one dense matrix on tiny maps (see
// "Small maps" below), or with the direct AVX-512 kernels of conv_direct.cpp (see "Choosing the
// algorithm").
//
// For one image x_n [C, H, W] and weights w [K, C, R, S] (output y_n [K, P, Q]):
//   col [C*R*S, P*Q]:  col[(c, r, s), (p, q)] = x_n[c, p*stride - pad + r, q*stride - pad + s] (0 outside)
//   forward:           y_n [K, P*Q]       = w [K, C*R*S] . col
//   backward data:     dcol [C*R*S, P*Q]  = w^T . dy_n;   dx_n = col2im(dcol) (sum of overlaps)
//   backward filter:   dw [K, C*R*S]     += dy_n . col^T; dbias[k] += sum_(p,q) dy_n[k, p, q]
// Images are processed in groups of B side by side, one OpenMP thread per group and a
// single-threaded gemm: the group's col is [C*R*S, B*P*Q] (column (b, p, q)) and its gemm produces
// [K, B*P*Q], copied out to the B images. B is 1 for maps of more than kGroupColumns / 2 pixels
// (a gemm per image is already wide there: putting images side by side measured no faster once
// im2col was cheap) and grows as the maps shrink, so that the 7x7, 4x4, 2x2 and 1x1 maps of the
// MNIST ResNet18 make gemms of about kGroupColumns columns instead of 49, 16, 4 or 1 (where
// OpenBLAS spends its time packing). B depends on the layer's geometry only, never on the thread
// count, so the forward and data-gradient results do not change with the number of threads (the
// filter gradient's per-thread partial sums do). im2col and col2im work on a zero-padded copy of
// the image, so their inner loops are plain strided copies (unrolled for short rows).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <type_traits>
#include <vector>

#include "tensor/cpu/conv_direct.h"
#include "tensor/cpu/cpu_backend.h"
#include "tensor/ops.h"

extern "C" void openblas_set_num_threads(int num_threads);

namespace afd::cpu {

CpuBackend::CpuBackend() {
  // The backend parallelises around gemm calls itself; OpenBLAS threads inside would oversubscribe.
  openblas_set_num_threads(1);
}

Backend& cpu_backend() {
  static CpuBackend instance;
  return instance;
}

namespace {

// Row-major gemm on raw pointers: C[m, n] = alpha op(A) op(B) + beta C, with leading dimensions
// given (a sub-block of a larger matrix keeps its parent's leading dimension).
inline void gemm_ld(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
              alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void gemm_ld(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                    int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
              alpha, a, lda, b, ldb, beta, c, ldc);
}
// Whole, dense matrices.
template <class T>
void gemm_raw(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, const T* b,
              T beta, T* c) {
  gemm_ld(ta, tb, m, n, k, alpha, a, ta ? m : k, b, tb ? k : n, beta, c, n);
}

ConvGeometry geometry(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p) {
  return {x[0], x[1], x[2], x[3], w[0], w[2], w[3], y[2], y[3], p.stride, p.padding};
}

// Images per gemm (B, see the top of the file): enough for about kGroupColumns gemm columns, at
// most kMaxGroup so that a batch still splits into several groups for the threads.
constexpr int64_t kGroupColumns = 128;
constexpr int64_t kMaxGroup = 32;
int64_t images_per_gemm(const ConvGeometry& g) { return std::clamp<int64_t>(kGroupColumns / g.pq(), 1, kMaxGroup); }

// A group: images n0 .. n0 + nb - 1; its gemms have nb * P * Q columns.
struct Group {
  int64_t n0, nb;
  int64_t cols(const ConvGeometry& g) const { return nb * g.pq(); }
};

// Runs body(group, thread) for the groups of B images that cover the batch, in parallel. The
// schedule is static, so thread t always gets the same groups (the filter gradient's per-thread
// partial sums depend on it).
template <class Body>
void for_each_group(const ConvGeometry& g, Body body) {
  int64_t B = images_per_gemm(g), groups = (g.N + B - 1) / B;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < groups; ++i) body(Group{i * B, std::min(B, g.N - i * B)}, omp_get_thread_num());
}

// xp [C, H + 2 pad, W + 2 pad] = x_n [C, H, W] inside a border of zeros, so that im2col and
// col2im need no bounds checks. Without padding x_n itself serves.
template <class T>
const T* padded_image(const T* x, const ConvGeometry& g) {
  if (g.pad == 0) return x;
  int64_t Hp = g.padded_h(), Wp = g.padded_w();
  T* xp = scratch<T>(Scratch::padded, g.C * Hp * Wp);
  std::fill(xp, xp + g.C * Hp * Wp, T(0));
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t h = 0; h < g.H; ++h)
      std::copy(x + (c * g.H + h) * g.W, x + (c * g.H + h + 1) * g.W, xp + (c * Hp + h + g.pad) * Wp + g.pad);
  return xp;
}

// im2col reads the image and writes col; col2im reads col and adds onto the image.
template <class T, bool kAdd>
using ImagePtr = std::conditional_t<kAdd, T*, const T*>;
template <class T, bool kAdd>
using ColPtr = std::conditional_t<kAdd, const T*, T*>;

// One (c, r, s) row of one image's im2col: P runs of Q values, the padded image stepping row_step
// (stride padded rows) per run and stride values within it. kAdd = false copies image -> col
// (im2col); kAdd = true adds col back onto the image (col2im, its adjoint). kStride and kQ, where
// not 0, are the layer's stride and Q fixed at compile time: the short runs of small maps (Q = 1
// to 14) then unroll instead of paying a loop's overhead for every 1 to 7 values.
template <class T, bool kAdd, int64_t kStride, int64_t kQ>
void col_runs(ImagePtr<T, kAdd> img, int64_t row_step, int64_t P, int64_t Q, int64_t stride, ColPtr<T, kAdd> col) {
  if constexpr (kStride != 0) stride = kStride;
  if constexpr (kQ != 0) Q = kQ;
  for (int64_t p = 0; p < P; ++p, img += row_step, col += Q)
    for (int64_t q = 0; q < Q; ++q) {
      if constexpr (kAdd)
        img[q * stride] += col[q];
      else
        col[q] = img[q * stride];
    }
}

template <class T, bool kAdd>
using RunsFn = void (*)(ImagePtr<T, kAdd>, int64_t, int64_t, int64_t, int64_t, ColPtr<T, kAdd>);

template <class T, bool kAdd, int64_t kStride>
RunsFn<T, kAdd> runs_for_q(int64_t Q) {
  switch (Q) {
    case 1: return col_runs<T, kAdd, kStride, 1>;
    case 2: return col_runs<T, kAdd, kStride, 2>;
    case 4: return col_runs<T, kAdd, kStride, 4>;
    case 7: return col_runs<T, kAdd, kStride, 7>;
    case 14: return col_runs<T, kAdd, kStride, 14>;
    default: return col_runs<T, kAdd, kStride, 0>;
  }
}
template <class T, bool kAdd>
RunsFn<T, kAdd> runs_for(const ConvGeometry& g) {
  if (g.stride == 1) return runs_for_q<T, kAdd, 1>(g.Q);
  if (g.stride == 2) return runs_for_q<T, kAdd, 2>(g.Q);
  return col_runs<T, kAdd, 0, 0>;
}

// One image's columns of a group's col, whose rows are ld long (ld = nb * P * Q):
// col[(c, r, s), (p, q)] = xp[c, p*stride + r, q*stride + s] (xp: the padded image)
template <class T>
void im2col(const T* xp, const ConvGeometry& g, T* col, int64_t ld) {
  int64_t Hp = g.padded_h(), Wp = g.padded_w();
  RunsFn<T, false> runs = runs_for<T, false>(g);
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t r = 0; r < g.R; ++r)
      for (int64_t s = 0; s < g.S; ++s)
        runs(xp + (c * Hp + r) * Wp + s, g.stride * Wp, g.P, g.Q, g.stride, col + ((c * g.R + r) * g.S + s) * ld);
}

// col [C*R*S, nb*P*Q] for a group (one image's im2col after another), or the image itself for a
// pointwise convolution of a single image.
template <class T>
const T* group_col(const T* x, const ConvGeometry& g, const Group& grp) {
  if (grp.nb == 1 && g.is_pointwise()) return x + grp.n0 * g.chw();
  T* col = scratch<T>(Scratch::col, g.crs() * grp.cols(g));
  for (int64_t b = 0; b < grp.nb; ++b)
    im2col(padded_image(x + (grp.n0 + b) * g.chw(), g), g, col + b * g.pq(), grp.cols(g));
  return col;
}

// dx_n = col2im(col), the adjoint of im2col: every col entry (one image's columns of a group's
// col, rows ld long) is added back to the input pixel it was copied from (overlapping windows
// sum). Accumulated in a padded plane, whose interior is dx_n.
template <class T>
void col2im(const T* col, int64_t ld, const ConvGeometry& g, T* dx) {
  int64_t Hp = g.padded_h(), Wp = g.padded_w();
  T* dxp = g.pad == 0 ? dx : scratch<T>(Scratch::padded, g.C * Hp * Wp);
  std::fill(dxp, dxp + g.C * Hp * Wp, T(0));
  RunsFn<T, true> runs = runs_for<T, true>(g);
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t r = 0; r < g.R; ++r)
      for (int64_t s = 0; s < g.S; ++s)
        runs(dxp + (c * Hp + r) * Wp + s, g.stride * Wp, g.P, g.Q, g.stride, col + ((c * g.R + r) * g.S + s) * ld);
  if (g.pad == 0) return;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t h = 0; h < g.H; ++h) {
      const T* row = dxp + (c * Hp + h + g.pad) * Wp + g.pad;
      std::copy(row, row + g.W, dx + (c * g.H + h) * g.W);
    }
}

// The output side of a group: y [N, K, P*Q] holds image n's rows at n * K*P*Q, while the group's
// gemm works on [K, nb*P*Q] (row k = image 0's P*Q values, then image 1's, ...). A single image
// needs no copy: its block of y is already [K, P*Q].
template <class T>
T* group_rows(T* y, const ConvGeometry& g, const Group& grp) {
  return grp.nb == 1 ? y + grp.n0 * g.kpq() : scratch<T>(Scratch::out, g.K * grp.cols(g));
}
// rows [K, nb*P*Q] -> the group's images in y (a no-op when rows is y's own block).
template <class T>
void scatter_rows(const T* rows, const ConvGeometry& g, const Group& grp, T* y) {
  if (grp.nb == 1) return;
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t b = 0; b < grp.nb; ++b) {
      const T* src = rows + k * grp.cols(g) + b * g.pq();
      std::copy(src, src + g.pq(), y + (grp.n0 + b) * g.kpq() + k * g.pq());
    }
}
// The group's images in dy -> rows [K, nb*P*Q] (dy's own block for a single image).
template <class T>
const T* gather_rows(const T* dy, const ConvGeometry& g, const Group& grp) {
  if (grp.nb == 1) return dy + grp.n0 * g.kpq();
  T* rows = scratch<T>(Scratch::out, g.K * grp.cols(g));
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t b = 0; b < grp.nb; ++b) {
      const T* src = dy + (grp.n0 + b) * g.kpq() + k * g.pq();
      std::copy(src, src + g.pq(), rows + k * grp.cols(g) + b * g.pq());
    }
  return rows;
}

// ---- Small maps: the convolution as one dense matrix ----
// On a map of a few pixels a convolution is a small linear map from an image's C*H*W inputs to its
// K*P*Q outputs, M [K*P*Q, C*H*W]:
//   M[(k, p, q), (c, h, w)] = w[k, c, r, s]  where h = p*stride - pad + r, w = q*stride - pad + s
// (0 where no tap lands). The batch is then one gemm in the tensors' own layout, x [N, C*H*W] and
// y [N, K*P*Q], with no im2col, col2im, padding or copies:
//   forward:          y  = x . M^T  (+ bias[k] on every (p, q))
//   backward data:    dx = dy . M
//   backward filter:  dM = dy^T . x;  dw[k, c, r, s] = sum over the (p, q) where tap (r, s) lands
// M costs H*W / (R*S) times the im2col gemm's multiplications (zero-padding taps are never
// computed), so it is used where the input map has at most 2 R*S pixels and the output at most
// R*S (for 3x3 kernels: the 4x4 -> 2x2, 2x2 -> 1x1, 2x2 and 1x1 layers of the MNIST ResNet18; the
// im2col path spent most of its time there copying and packing) and M stays small.
constexpr int64_t kDenseMaxEntries = int64_t{1} << 22;  // 16 MiB of f32
// Rows (images, or dM rows) per gemm call: fixed, so results do not depend on the thread count.
constexpr int64_t kDenseRowBlock = 32;

bool use_dense_map(const ConvGeometry& g) {
  int64_t taps = g.R * g.S;
  return g.pq() <= taps && g.H * g.W <= 2 * taps && g.kpq() * g.chw() <= kDenseMaxEntries;
}

// body(pq, rs, hw) for every output pixel (p, q) and tap (r, s) that lands inside the input map,
// at input pixel (h, w); pq = p Q + q, rs = r S + s, hw = h W + w.
template <class Body>
void for_each_tap(const ConvGeometry& g, Body body) {
  for (int64_t p = 0; p < g.P; ++p)
    for (int64_t q = 0; q < g.Q; ++q)
      for (int64_t r = 0; r < g.R; ++r)
        for (int64_t s = 0; s < g.S; ++s) {
          int64_t h = p * g.stride - g.pad + r, w = q * g.stride - g.pad + s;
          if (h >= 0 && h < g.H && w >= 0 && w < g.W) body(p * g.Q + q, r * g.S + s, h * g.W + w);
        }
}

// body(i, j) for every nonzero entry of M: its flat index i in M [K*P*Q, C*H*W] and the flat index
// j in w [K, C, R, S] of the weight it holds (several entries hold the same weight).
template <class Body>
void for_each_entry(const ConvGeometry& g, Body body) {
  int64_t HW = g.H * g.W, RS = g.R * g.S;
  for_each_tap(g, [&](int64_t pq, int64_t rs, int64_t hw) {
    for (int64_t k = 0; k < g.K; ++k)
      for (int64_t c = 0; c < g.C; ++c) body((k * g.pq() + pq) * g.chw() + c * HW + hw, (k * g.C + c) * RS + rs);
  });
}

// M [K*P*Q, C*H*W] from w [K, C, R, S], in the calling thread's scratch (read by all threads).
template <class T>
const T* dense_map(const T* w, const ConvGeometry& g) {
  T* m = scratch<T>(Scratch::dense, g.kpq() * g.chw());
  std::fill_n(m, g.kpq() * g.chw(), T(0));
  for_each_entry(g, [&](int64_t i, int64_t j) { m[i] = w[j]; });
  return m;
}

// C [m, n] = op(A) op(B) + beta C, its rows in blocks of kDenseRowBlock, one block per OpenMP
// iteration and a single-threaded gemm each. A is [m, k] row-major, or [k, m] when transposed.
template <class T>
void gemm_row_blocks(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, const T* b, T beta,
                     T* c) {
  int64_t blocks = (m + kDenseRowBlock - 1) / kDenseRowBlock;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < blocks; ++i) {
    int64_t r0 = i * kDenseRowBlock, rows = std::min(kDenseRowBlock, m - r0);
    gemm_ld(ta, tb, rows, n, k, T(1), ta ? a + r0 : a + r0 * k, ta ? m : k, b, tb ? k : n, beta, c + r0 * n, n);
  }
}

template <class T>
void dense_forward(const T* x, const T* w, const T* bias, const ConvGeometry& g, T* y) {
  const T* m = dense_map(w, g);
  if (bias)
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t k = 0; k < g.K; ++k) std::fill_n(y + n * g.kpq() + k * g.pq(), g.pq(), bias[k]);
  gemm_row_blocks(false, true, g.N, g.kpq(), g.chw(), x, m, bias ? T(1) : T(0), y);  // y = x . M^T
}

template <class T>
void dense_backward_data(const T* dy, const T* w, const ConvGeometry& g, T* dx) {
  gemm_row_blocks(false, false, g.N, g.chw(), g.kpq(), dy, dense_map(w, g), T(0), dx);  // dx = dy . M
}

template <class T>
void dense_backward_filter(const T* dy, const T* x, const ConvGeometry& g, T* dw) {
  T* dm = scratch<T>(Scratch::dense, g.kpq() * g.chw());
  gemm_row_blocks(true, false, g.kpq(), g.chw(), g.N, dy, x, T(0), dm);  // dM = dy^T . x
  std::fill_n(dw, g.K * g.crs(), T(0));
  for_each_entry(g, [&](int64_t i, int64_t j) { dw[j] += dm[i]; });  // the adjoint of dense_map
}

// ---- Choosing the algorithm ----
std::atomic<ConvAlgorithm> algorithm_setting{ConvAlgorithm::automatic};

// Where automatic runs the direct kernels (conv_direct.cpp), from per-layer timings of one
// process alternating the two algorithms call by call (docs/benchmarks.md): stride 1, at least
// 16 channels in and out (with one input channel im2col is a plain copy and ran 2x faster), maps
// of at least 6x6 (on a 4x4 map with padding 1 half of the direct kernel's vector lanes hold
// junk positions: it ran 0.86-1.0x im2col) and at most 128 x 128 channels (wider layers stream
// the packed weights from memory for every group of images; gemm blocks them better: 256
// channels on 8x8 maps ran at 0.7-0.83x). The data gradient is the same kernel with the
// channel counts swapped, and it computes all H x W taps of dx where im2col's gemm computes
// P x Q columns: "valid" convolutions (pad 0) make it do (H W) / (P Q) times the work (the
// SmallCNN's 12x12 -> 10x10 layer: 1.44x, and it ran at 0.8x im2col; its 26x26 -> 24x24 layer,
// 1.17x, still ran 1.06x faster).
//
// The filter gradient has no junk positions, so any map size and stride pays, with 16 to 128
// channels in and out: 1.1-1.8x im2col there (scnn2-4, the MNIST ResNet18's 7x7, 4x4 and stride-2
// layers, the CIFAR ResNet18's 32x32 and 16x16 ones). With one input channel the transposition of
// dy outweighs its few multiply-adds (0.5-0.7x), and with 256 or 512 channels on 8x8 and 4x4 maps
// it ran at 0.8-0.9x the gemm.
bool direct_pays(const ConvGeometry& g, ConvPass pass) {
  if (pass == ConvPass::backward_filter) return g.C >= 16 && g.K >= 16 && g.C * g.K <= 128 * 128;
  int64_t in = pass == ConvPass::forward ? g.C : g.K, out = pass == ConvPass::forward ? g.K : g.C;
  bool extra_work = pass == ConvPass::backward_data && 4 * g.H * g.W > 5 * g.pq();
  return g.stride == 1 && in >= 16 && out >= 16 && in * out <= 128 * 128 && g.pq() >= 36 && !extra_work;
}

bool use_dense(const ConvGeometry& g) {
  return algorithm_setting.load() != ConvAlgorithm::im2col && use_dense_map(g);
}

// f32 only (the caller checks the type).
bool use_direct(const ConvGeometry& g, ConvPass pass) {
  ConvAlgorithm a = algorithm_setting.load();
  if (a == ConvAlgorithm::im2col || !direct::supported()) return false;
  if (pass == ConvPass::backward_data && !direct::backward_data_applies(g)) return false;
  if (pass == ConvPass::backward_filter && !direct::backward_filter_applies(g)) return false;
  return a == ConvAlgorithm::direct || (!use_dense_map(g) && direct_pays(g, pass));
}

// Sum over the batch and the map of dy [N, K, P, Q] per filter, in double.
template <class T>
void bias_gradient(const T* dy, const ConvGeometry& g, T* dbias) {
  for (int64_t k = 0; k < g.K; ++k) {
    double s = 0;
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t i = 0; i < g.pq(); ++i) s += dy[n * g.kpq() + k * g.pq() + i];
    dbias[k] = static_cast<T>(s);
  }
}

}  // namespace

void set_conv_algorithm(ConvAlgorithm a) { algorithm_setting.store(a); }
ConvAlgorithm conv_algorithm() { return algorithm_setting.load(); }
bool conv2d_direct_supported() { return direct::supported(); }

bool conv2d_uses_direct(const Shape& x, const Shape& w, const Conv2dParams& p, ConvPass pass) {
  return use_direct(geometry(x, w, ops::conv2d_output_shape(x, w, p), p), pass);
}

bool conv2d_uses_dense_map(const Shape& x, const Shape& w, const Conv2dParams& p) {
  return use_dense_map(geometry(x, w, ops::conv2d_output_shape(x, w, p), p));
}

void CpuBackend::gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b,
                      double beta, Tensor& c) {
  int64_t m = c.size(0), n = c.size(1), k = trans_a ? a.size(0) : a.size(1);
  dispatch_float(a.dtype(), "gemm", [&]<class T>() {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* pc = c.data<T>();
    // Split the rows of C across threads when the product is big enough to pay for it.
    int threads = (m * n * k > (1 << 18) && m >= 2 * omp_get_max_threads()) ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(threads)
    {
      int t = omp_get_thread_num(), nt = omp_get_num_threads();
      int64_t r0 = m * t / nt, r1 = m * (t + 1) / nt;
      // Rows r0..r1 of op(A): rows of A [m, k], or columns of A [k, m] when transposed.
      const T* a_rows = trans_a ? pa + r0 : pa + r0 * k;
      if (r1 > r0)
        gemm_ld(trans_a, trans_b, r1 - r0, n, k, T(alpha), a_rows, trans_a ? m : k, pb, trans_b ? k : n,
                T(beta), pc + r0 * n, n);
    }
  });
}

void CpuBackend::conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias,
                                const Conv2dParams& p, Tensor& y) {
  conv2d_forward_linear(x, w, bias, p, y);
  if (p.relu) unary(UnaryOp::relu, y, y, 0, 0);  // in place, as the relu op computes it
}

void CpuBackend::conv2d_forward_linear(const Tensor& x, const Tensor& w, const Tensor& bias,
                                       const Conv2dParams& p, Tensor& y) {
  ConvGeometry g = geometry(x.shape(), w.shape(), y.shape(), p);
  dispatch_float(x.dtype(), "conv2d", [&]<class T>() {
    const T* pw = w.data<T>();
    const T* pb = bias.defined() ? bias.data<T>() : nullptr;
    T* py = y.data<T>();
    if constexpr (std::is_same_v<T, float>)
      if (use_direct(g, ConvPass::forward)) return direct::forward(x.data<T>(), pw, pb, g, py);
    if (use_dense(g)) return dense_forward(x.data<T>(), pw, pb, g, py);
    for_each_group(g, [&](const Group& grp, int) {
      const T* col = group_col(x.data<T>(), g, grp);
      // rows [K, cols] = w [K, CRS] . col [CRS, cols] (+ bias, pre-filled, with beta = 1)
      T* rows = group_rows(py, g, grp);
      int64_t cols = grp.cols(g);
      if (pb)
        for (int64_t k = 0; k < g.K; ++k) std::fill(rows + k * cols, rows + (k + 1) * cols, pb[k]);
      gemm_raw(false, false, g.K, cols, g.crs(), T(1), pw, col, pb ? T(1) : T(0), rows);
      scatter_rows(rows, g, grp, py);
    });
  });
}

void CpuBackend::conv2d_backward_data(const Tensor& dy, const Tensor& w, const Conv2dParams& p,
                                      Tensor& dx) {
  ConvGeometry g = geometry(dx.shape(), w.shape(), dy.shape(), p);
  dispatch_float(dy.dtype(), "conv2d_backward_data", [&]<class T>() {
    const T* pw = w.data<T>();
    T* pdx = dx.data<T>();
    if constexpr (std::is_same_v<T, float>)
      if (use_direct(g, ConvPass::backward_data)) return direct::backward_data(dy.data<T>(), pw, g, pdx);
    if (use_dense(g)) return dense_backward_data(dy.data<T>(), pw, g, pdx);
    for_each_group(g, [&](const Group& grp, int) {
      const T* rows = gather_rows(dy.data<T>(), g, grp);
      int64_t cols = grp.cols(g);
      if (grp.nb == 1 && g.is_pointwise()) {  // dx_n [C, PQ] = w^T . dy_n, no col2im
        gemm_raw(true, false, g.C, cols, g.K, T(1), pw, rows, T(0), pdx + grp.n0 * g.chw());
        return;
      }
      // dcol [CRS, cols] = w^T . rows [K, cols], then dx_n = col2im(image n's columns)
      T* col = scratch<T>(Scratch::col, g.crs() * cols);
      gemm_raw(true, false, g.crs(), cols, g.K, T(1), pw, rows, T(0), col);
      for (int64_t b = 0; b < grp.nb; ++b) col2im(col + b * g.pq(), cols, g, pdx + (grp.n0 + b) * g.chw());
    });
  });
}

void CpuBackend::conv2d_backward_filter(const Tensor& dy, const Tensor& x, const Conv2dParams& p,
                                        Tensor& dw, Tensor& dbias) {
  ConvGeometry g = geometry(x.shape(), dw.shape(), dy.shape(), p);
  dispatch_float(dy.dtype(), "conv2d_backward_filter", [&]<class T>() {
    if constexpr (std::is_same_v<T, float>)
      if (use_direct(g, ConvPass::backward_filter)) {
        direct::backward_filter(dy.data<T>(), x.data<T>(), g, dw.data<T>());
        if (dbias.defined()) bias_gradient(dy.data<T>(), g, dbias.data<T>());
        return;
      }
    if (use_dense(g)) {
      dense_backward_filter(dy.data<T>(), x.data<T>(), g, dw.data<T>());
      if (dbias.defined()) bias_gradient(dy.data<T>(), g, dbias.data<T>());
      return;
    }
    int nt = omp_get_max_threads();
    // Per-thread partial sums, combined in thread order afterwards (deterministic).
    std::vector<std::vector<T>> partial_w(nt, std::vector<T>(g.K * g.crs(), T(0)));
    std::vector<std::vector<double>> partial_b(nt, std::vector<double>(dbias.defined() ? g.K : 0, 0.0));
    for_each_group(g, [&](const Group& grp, int t) {
      const T* col = group_col(x.data<T>(), g, grp);
      const T* rows = gather_rows(dy.data<T>(), g, grp);
      int64_t cols = grp.cols(g);
      // partial_w [K, CRS] += rows [K, cols] . col^T [cols, CRS]
      gemm_raw(false, true, g.K, g.crs(), cols, T(1), rows, col, T(1), partial_w[t].data());
      for (size_t k = 0; k < partial_b[t].size(); ++k) {
        double s = 0;
        for (int64_t i = 0; i < cols; ++i) s += rows[k * cols + i];
        partial_b[t][k] += s;
      }
    });
    T* pdw = dw.data<T>();
    std::copy(partial_w[0].begin(), partial_w[0].end(), pdw);
    for (int t = 1; t < nt; ++t)
      for (int64_t i = 0; i < g.K * g.crs(); ++i) pdw[i] += partial_w[t][i];
    if (dbias.defined()) {
      T* pdb = dbias.data<T>();
      for (int64_t k = 0; k < g.K; ++k) {
        double s = 0;
        for (int t = 0; t < nt; ++t) s += partial_b[t][k];
        pdb[k] = static_cast<T>(s);
      }
    }
  });
}

}  // namespace afd::cpu
