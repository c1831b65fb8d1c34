// Direct f32 convolution with AVX-512: no im2col, no gemm packing.
//
// "Wide planes". Each input channel is rewritten once per image so that every tap of the filter
// reads a contiguous run of it. With Hp x Wp the zero-padded map and st the stride, the plane
// holds st*st phases (row parity, column parity for stride 2; one phase for stride 1), each
// ph x pw = ceil(Hp / st) x ceil(Wp / st):
//   phase (a, b) [i, j] = xpad[i*st + a, j*st + b]
// Output pixel (p, q) gets the "wide" index m = p*pw + q, and tap (r, s) of it reads
//   plane[m + off(r, s)],   off(r, s) = phase (r % st, s % st)'s start + (r / st) pw + s / st
// so that for 16 consecutive m one tap is one unaligned vector load. The wide range has pw - Q
// junk columns per row (m with q >= Q), computed and thrown away: the price of contiguous loads
// (a 7x7 map with pad 1 keeps 49 of 61 positions, a 32x32 map 1024 of 1086).
//
// Forward: a tile of KT output channels x MV vectors of 16 wide positions keeps KT*MV
// accumulators in registers; per (c, tap) it loads MV input vectors and broadcasts KT weights:
//   acc[k][v] += w[k0 + k, c, tap] * plane_c[m0 + 16 v + off(tap) .. + 16]
// Weights are packed to wt [K / KT][C][R*S][KT] so the KT broadcasts are adjacent. K and the
// number of vectors are padded up to whole tiles (zero weights, junk positions); the tile shape
// is the one of kForwardTiles with the least estimated time (forward_tile_for). Groups of images
// run in parallel, one per thread; each output is one thread's fixed-order sum, so results do not
// depend on the thread count.
//
// Data gradient (stride 1): dx = conv(dy, w') with w'[c, k, r, s] = w[k, c, R-1-r, S-1-s] and
// padding R - 1 - pad, the forward kernel again.
//
// The filter gradient stays with im2col + gemm: vectorised over the wide positions it needs a
// horizontal sum per (k, c, tap) and image chunk, which on small maps costs as much as the
// multiply-adds (measured 1.1-3x slower than im2col on every layer of bench_cpu but one).
#include "tensor/cpu/conv_direct.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "tensor/tensor.h"

#define AFD_AVX512 __attribute__((target("avx512f")))

namespace afd::cpu::direct {

namespace {

constexpr int64_t kLanes = 16;  // floats per AVX-512 vector

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Where every tap reads in the wide planes of one image (see the top of the file).
struct Wide {
  int64_t ph, pw;            // rows and pitch of one phase
  int64_t V;                 // vectors covering the wide outputs m < (P - 1) pw + Q
  std::vector<int64_t> off;  // per tap r*S + s
  int64_t max_off = 0;
  int64_t phases = 0;        // st*st*ph*pw: the floats that hold pixels
  int64_t plane = 0;         // floats per channel plane: set by reserve() once the tile is chosen

  // Room for tiles covering padded_vectors >= V vectors: the last one reads up to vector
  // padded_vectors - 1 at the largest offset.
  void reserve(int64_t padded_vectors) {
    plane = round_up(std::max(phases, padded_vectors * kLanes + max_off), kLanes);
  }
};

Wide wide_layout(const ConvGeometry& g) {
  Wide L;
  int64_t st = g.stride;
  L.ph = ceil_div(g.padded_h(), st);
  L.pw = ceil_div(g.padded_w(), st);
  L.V = ceil_div((g.P - 1) * L.pw + g.Q, kLanes);
  int64_t phase = L.ph * L.pw;
  L.phases = st * st * phase;
  for (int64_t r = 0; r < g.R; ++r)
    for (int64_t s = 0; s < g.S; ++s) {
      int64_t o = ((r % st) * st + s % st) * phase + (r / st) * L.pw + s / st;
      L.off.push_back(o);
      L.max_off = std::max(L.max_off, o);
    }
  return L;
}

// Image x_n [C, H, W] -> its wide planes [C][L.plane], zero where no pixel lands.
void fill_planes(const float* x, const ConvGeometry& g, const Wide& L, float* out) {
  std::fill_n(out, g.C * L.plane, 0.0f);
  int64_t st = g.stride, phase = L.ph * L.pw;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t h = 0; h < g.H; ++h) {
      const float* src = x + (c * g.H + h) * g.W;
      int64_t hp = h + g.pad;
      float* row = out + c * L.plane + (hp % st) * st * phase + (hp / st) * L.pw;
      if (st == 1) {
        std::copy(src, src + g.W, row + g.pad);
        continue;
      }
      // Padded column wp = w + pad goes to phase wp % st, column wp / st (counted, not divided).
      for (int64_t w = 0, a = g.pad % st, j = g.pad / st; w < g.W; ++w) {
        row[a * phase + j] = src[w];
        if (++a == st) a = 0, ++j;
      }
    }
}

// ---- forward ----------------------------------------------------------------------------------

// One tile: out[k, 16 v + i] (k < KT, v < MV) = bias[k] + sum over c, tap of
// wt[c, tap, k] * in[c * plane + off[tap] + 16 v + i]. in starts at the tile's first position.
template <int KT, int MV>
AFD_AVX512 void forward_tile(const float* in, int64_t plane, int64_t C, const int64_t* off, int64_t taps,
                             const float* wt, const float* bias, float* out, int64_t out_pitch) {
  __m512 acc[KT][MV];
  for (int k = 0; k < KT; ++k) {
    __m512 b = bias ? _mm512_set1_ps(bias[k]) : _mm512_setzero_ps();
    for (int v = 0; v < MV; ++v) acc[k][v] = b;
  }
  for (int64_t c = 0; c < C; ++c, in += plane)
    for (int64_t t = 0; t < taps; ++t, wt += KT) {
      const float* x = in + off[t];
      __m512 xv[MV];
      for (int v = 0; v < MV; ++v) xv[v] = _mm512_loadu_ps(x + kLanes * v);
      for (int k = 0; k < KT; ++k) {
        __m512 wk = _mm512_set1_ps(wt[k]);
        for (int v = 0; v < MV; ++v) acc[k][v] = _mm512_fmadd_ps(wk, xv[v], acc[k][v]);
      }
    }
  for (int k = 0; k < KT; ++k)
    for (int v = 0; v < MV; ++v) _mm512_storeu_ps(out + k * out_pitch + kLanes * v, acc[k][v]);
}

using ForwardTileFn = void (*)(const float*, int64_t, int64_t, const int64_t*, int64_t, const float*,
                               const float*, float*, int64_t);
struct ForwardTile {
  int KT, MV;  // KT * MV accumulators (at most 24 of the 32 vector registers)
  ForwardTileFn fn;
};
// In order of preference where two shapes waste the same: the most accumulators first.
const ForwardTile kForwardTiles[] = {
    {8, 3, forward_tile<8, 3>},   {4, 6, forward_tile<4, 6>}, {12, 2, forward_tile<12, 2>},
    {6, 4, forward_tile<6, 4>},   {2, 12, forward_tile<2, 12>}, {1, 24, forward_tile<1, 24>},
    {16, 1, forward_tile<16, 1>}, {8, 2, forward_tile<8, 2>}, {1, 16, forward_tile<1, 16>}};

constexpr int64_t kGroupBytes = int64_t{1} << 19;  // a group's planes: a quarter of L2
constexpr int64_t kMaxGroup = 8;

// The tile shape with the least estimated time: the padded work Kp * Vp, times the share by which
// loads outrun the KT*MV multiply-adds per (c, tap). Those are KT broadcasts and MV unaligned
// vector loads, which mostly straddle two cache lines and so count twice; two loads and two
// fused multiply-adds issue per cycle. (bench_cpu: 16 x 1 tiles ran 15% slower than 8 x 2 on
// the CIFAR 32x32 layer, which pads nothing with either.)
const ForwardTile& forward_tile_for(int64_t K, int64_t V) {
  const ForwardTile* best = &kForwardTiles[0];
  double best_time = -1;
  for (const ForwardTile& t : kForwardTiles) {
    double fmas = t.KT * t.MV, loads = t.KT + 2 * t.MV;
    double time = double(round_up(K, t.KT) * round_up(V, t.MV)) * std::max(fmas, loads) / fmas;
    if (best_time < 0 || time < best_time) best = &t, best_time = time;
  }
  return *best;
}

}  // namespace

bool supported() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}

bool backward_data_applies(const ConvGeometry& g) { return g.stride == 1 && g.R == g.S && g.pad <= g.R - 1; }

void forward(const float* x, const float* w, const float* bias, const ConvGeometry& g, float* y) {
  int64_t taps = g.R * g.S;
  Wide L = wide_layout(g);
  const ForwardTile& tile = forward_tile_for(g.K, L.V);
  int64_t Kp = round_up(g.K, tile.KT), Vp = round_up(L.V, tile.MV);
  L.reserve(Vp);

  // wt [Kp / KT][C][taps][KT] and the bias padded to Kp, zero beyond K.
  float* wt = scratch<float>(Scratch::packed, Kp * g.C * taps);
  std::fill_n(wt, Kp * g.C * taps, 0.0f);
  std::vector<float> bp(bias ? Kp : 0, 0.0f);
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t t = 0; t < taps; ++t)
        wt[((k / tile.KT * g.C + c) * taps + t) * tile.KT + k % tile.KT] = w[(k * g.C + c) * taps + t];
  if (bias) std::copy(bias, bias + g.K, bp.begin());

  // Images in groups of B: a group's planes stay in L2 while each KT-filter slice of wt is used on
  // all of them (one image at a time would stream all of wt from memory per image on wide layers).
  int64_t pitch = Vp * kLanes;  // out [Kp][pitch]: wide outputs of one image
  int64_t B = std::clamp<int64_t>(kGroupBytes / (4 * g.C * L.plane), 1, kMaxGroup);
  int64_t groups = ceil_div(g.N, B);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < groups; ++i) {
    int64_t n0 = i * B, nb = std::min(B, g.N - n0);
    float* in = scratch<float>(Scratch::planes, nb * g.C * L.plane);
    float* out = scratch<float>(Scratch::wide, nb * Kp * pitch);
    for (int64_t b = 0; b < nb; ++b) fill_planes(x + (n0 + b) * g.chw(), g, L, in + b * g.C * L.plane);
    for (int64_t k0 = 0; k0 < Kp; k0 += tile.KT)
      for (int64_t b = 0; b < nb; ++b)
        for (int64_t v0 = 0; v0 < Vp; v0 += tile.MV)
          tile.fn(in + b * g.C * L.plane + v0 * kLanes, L.plane, g.C, L.off.data(), taps,
                  wt + k0 * g.C * taps, bias ? bp.data() + k0 : nullptr,
                  out + (b * Kp + k0) * pitch + v0 * kLanes, pitch);
    for (int64_t b = 0; b < nb; ++b) {
      float* yn = y + (n0 + b) * g.kpq();
      for (int64_t k = 0; k < g.K; ++k)
        for (int64_t p = 0; p < g.P; ++p)
          std::copy_n(out + (b * Kp + k) * pitch + p * L.pw, g.Q, yn + (k * g.P + p) * g.Q);
    }
  }
}

void backward_data(const float* dy, const float* w, const ConvGeometry& g, float* dx) {
  // dx = conv(dy, w') (see the top of the file): channels K -> C, maps P x Q -> H x W.
  ConvGeometry t{g.N, g.K, g.P, g.Q, g.C, g.R, g.S, g.H, g.W, 1, g.R - 1 - g.pad};
  float* wt = scratch<float>(Scratch::flipped, g.C * g.K * g.R * g.S);
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t r = 0; r < g.R; ++r)
        for (int64_t s = 0; s < g.S; ++s)
          wt[((c * g.K + k) * g.R + (g.R - 1 - r)) * g.S + (g.S - 1 - s)] = w[((k * g.C + c) * g.R + r) * g.S + s];
  forward(dy, wt, nullptr, t, dx);
}

}  // namespace afd::cpu::direct
