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
// Filter gradient (3x3 kernels, any stride and padding):
//   dw[k, c, r, s] = sum over n, p, q of dy[n, k, p, q] * xpad[n, c, p*st + r, q*st + s]
// is vectorised over 16 filters k, not over positions: the sum over positions then stays inside
// each lane, and a tile's accumulators stay in registers for all positions of all images (the
// positions-vectorised form needs a horizontal sum per (k, c, tap) and image chunk, and measured
// 1.1-3x slower than im2col). A tile covers KV vectors of 16 filters x JR rows (c, r) x the 3
// taps s; per position it loads KV vectors of dy and broadcasts 3 JR pixels:
//   acc[v][j, s] += dy^T[p*Q + q, k0 + 16 v .. + 16] * xpad_c[(p*st + r) Wp + q*st + s]
// dy is transposed once per image to dy^T [P*Q][Kp] (filters innermost, zero beyond K) and x
// copied into its zero-padded image, so no read needs a bounds check; JR rows (c, r) x 3 taps s
// are contiguous pixels at a per-row offset. Images go in groups whose copies fit in L2, the
// groups are shared among the threads, and the threads' sums are added in thread order at the end:
// the result repeats from run to run but, as with im2col's filter gradient, not across thread
// counts. (Sharing the tiles instead makes it independent of the thread count, but needs a
// barrier per group: it ran at a tenth of its speed while another process held the second vCPU.)
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

// The estimated time of a tile shape: its padded work, times the share by which its loads per
// step outrun its multiply-adds (two of each issue per cycle).
double tile_time(int64_t padded_work, double fmas, double loads) {
  return double(padded_work) * std::max(fmas, loads) / fmas;
}

// The entry of `tiles` with the least time(tile); the first one on ties.
template <class Tile, size_t N, class Time>
const Tile& cheapest(const Tile (&tiles)[N], Time time) {
  const Tile* best = &tiles[0];
  double best_time = time(tiles[0]);
  for (const Tile& t : tiles)
    if (double tt = time(t); tt < best_time) best = &t, best_time = tt;
  return *best;
}

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
  return cheapest(kForwardTiles, [&](const ForwardTile& t) {
    return tile_time(round_up(K, t.KT) * round_up(V, t.MV), t.KT * t.MV, t.KT + 2 * t.MV);
  });
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

// ---- filter gradient --------------------------------------------------------------------------

namespace {

constexpr int64_t kTaps = 3;               // S: the filter-gradient tiles are written for 3x3 kernels
constexpr int64_t kChunkBytes = 16 << 10;  // a third of L1
constexpr int64_t kTileBlock = 128;        // tiles of at most 1.5 KB of sums each: 192 KB

// One tile over the positions of a group of images: acc [KV][JR * 3][16] += the sum above for
// filters k0 + 16 v + lane, rows row_off[j] (c Hp Wp + r Wp) and taps s. Position i reads the
// padded images xs at pos[i] (image b's offset + p st Wp + q st) and dy^T row i: dyt points at
// the group's first image, column k0; the images' dy^T rows follow one another.
template <int KV, int JR>
AFD_AVX512 void filter_tile(const float* xs, const int64_t* pos, const float* dyt, int64_t positions, int64_t Kp,
                            const int64_t* row_off, float* acc_io) {
  __m512 acc[KV][JR * kTaps];
  for (int v = 0; v < KV; ++v)
    for (int i = 0; i < JR * kTaps; ++i) acc[v][i] = _mm512_loadu_ps(acc_io + (v * JR * kTaps + i) * kLanes);
  int64_t o[JR];
  for (int j = 0; j < JR; ++j) o[j] = row_off[j];
  for (int64_t i = 0; i < positions; ++i, dyt += Kp) {
    const float* xr = xs + pos[i];
    __m512 dv[KV];
    for (int v = 0; v < KV; ++v) dv[v] = _mm512_loadu_ps(dyt + kLanes * v);
    for (int j = 0; j < JR; ++j)
      for (int s = 0; s < kTaps; ++s) {
        __m512 xv = _mm512_set1_ps(xr[o[j] + s]);
        for (int v = 0; v < KV; ++v) acc[v][j * kTaps + s] = _mm512_fmadd_ps(dv[v], xv, acc[v][j * kTaps + s]);
      }
  }
  for (int v = 0; v < KV; ++v)
    for (int i = 0; i < JR * kTaps; ++i) _mm512_storeu_ps(acc_io + (v * JR * kTaps + i) * kLanes, acc[v][i]);
}

using FilterTileFn = void (*)(const float*, const int64_t*, const float*, int64_t, int64_t, const int64_t*, float*);
struct FilterTile {
  int KV, JR;  // KV * JR * 3 accumulators, KV dy vectors and one broadcast: at most 29 registers
  FilterTileFn fn;
};
const FilterTile kFilterTiles[] = {{4, 2, filter_tile<4, 2>}, {2, 4, filter_tile<2, 4>}, {3, 2, filter_tile<3, 2>},
                                   {1, 8, filter_tile<1, 8>}, {2, 2, filter_tile<2, 2>}, {1, 4, filter_tile<1, 4>}};

// The tile with the least estimated time, as forward_tile_for: padded work (filters up to 16 KV,
// rows up to JR) times the share by which the KV + 3 JR loads per position outrun its multiply-adds.
const FilterTile& filter_tile_for(int64_t K, int64_t rows) {
  return cheapest(kFilterTiles, [&](const FilterTile& t) {
    return tile_time(round_up(K, kLanes * t.KV) * round_up(rows, t.JR), t.KV * t.JR * kTaps, t.KV + kTaps * t.JR);
  });
}

}  // namespace

bool backward_filter_applies(const ConvGeometry& g) { return g.R == kTaps && g.S == kTaps; }

void backward_filter(const float* dy, const float* x, const ConvGeometry& g, float* dw) {
  const FilterTile& tile = filter_tile_for(g.K, g.C * g.R);
  const int64_t Kv = kLanes * tile.KV, Kp = round_up(g.K, Kv);
  const int64_t rows = g.C * g.R, rows_p = round_up(rows, tile.JR);
  const int64_t Hp = g.padded_h(), Wp = g.padded_w();
  const int64_t image_x = g.C * Hp * Wp, image_dy = g.pq() * Kp;
  // Row offsets c Hp Wp + r Wp; rows past the last read row 0 and are thrown away.
  std::vector<int64_t> row_off(rows_p, 0);
  for (int64_t i = 0; i < rows; ++i) row_off[i] = (i / g.R) * Hp * Wp + (i % g.R) * Wp;
  const int64_t B = std::clamp<int64_t>(kGroupBytes / (4 * (image_x + image_dy)), 1, kMaxGroup);
  std::vector<int64_t> pos(B * g.pq());  // where position (b, p, q) of a group reads its images
  for (int64_t b = 0, i = 0; b < B; ++b)
    for (int64_t p = 0; p < g.P; ++p)
      for (int64_t q = 0; q < g.Q; ++q) pos[i++] = b * image_x + (p * Wp + q) * g.stride;
  // Per-thread sums acc [Kp / Kv][rows_p / JR] tiles of [KV][JR * 3][16], added in thread order at
  // the end (as conv.cpp's im2col filter gradient: the result depends on the thread count, but not
  // on the run). Groups of images are shared among the threads, so there is no barrier per group.
  const int64_t tiles_k = Kp / Kv, tiles_r = rows_p / tile.JR, tiles = tiles_k * tiles_r;
  const int64_t tile_floats = Kv * tile.JR * kTaps, groups = ceil_div(g.N, B);
  std::vector<std::vector<float>> acc(omp_get_max_threads());
#pragma omp parallel
  {
    std::vector<float>& sums = acc[omp_get_thread_num()];
    sums.assign(tiles * tile_floats, 0.0f);
    float* xs = scratch<float>(Scratch::planes, B * image_x);
    float* dyts = scratch<float>(Scratch::wide, B * image_dy);
#pragma omp for schedule(static)
    for (int64_t grp = 0; grp < groups; ++grp) {
      const int64_t n0 = grp * B, nb = std::min(B, g.N - n0);
      // xs[b] = image n0 + b zero-padded; dyts[b] [P*Q][Kp] = its dy transposed (zero beyond K),
      // in blocks of 16 positions so that each k reads one line.
      std::fill_n(xs, nb * image_x, 0.0f);
      for (int64_t bc = 0; bc < nb * g.C; ++bc)
        for (int64_t h = 0; h < g.H; ++h)
          std::copy_n(x + n0 * g.chw() + (bc * g.H + h) * g.W, g.W, xs + (bc * Hp + h + g.pad) * Wp + g.pad);
      std::fill_n(dyts, nb * image_dy, 0.0f);
      for (int64_t b = 0; b < nb; ++b)
        for (int64_t i0 = 0; i0 < g.pq(); i0 += kLanes)
          for (int64_t k = 0; k < g.K; ++k)
            for (int64_t i = i0; i < std::min(i0 + kLanes, g.pq()); ++i)
              dyts[b * image_dy + i * Kp + k] = dy[(n0 + b) * g.kpq() + k * g.pq() + i];
      // The tiles in blocks of kTileBlock whose sums stay in L2. A block runs chunk by chunk of
      // positions, so that a chunk's dy^T columns (kChunkBytes) stay in L1 for all its tiles of
      // one filter block.
      const int64_t positions = nb * g.pq(), chunk = std::max<int64_t>(1, kChunkBytes / (4 * Kv));
      for (int64_t tb = 0; tb < tiles; tb += kTileBlock)
        for (int64_t i0 = 0; i0 < positions; i0 += chunk)
          for (int64_t t = tb; t < std::min(tb + kTileBlock, tiles); ++t) {
            const int64_t tk = t / tiles_r, tr = t % tiles_r;
            tile.fn(xs, pos.data() + i0, dyts + i0 * Kp + tk * Kv, std::min(chunk, positions - i0), Kp,
                    row_off.data() + tr * tile.JR, sums.data() + t * tile_floats);
          }
    }
  }
  for (size_t th = 1; th < acc.size(); ++th)
    if (!acc[th].empty())
      for (int64_t i = 0; i < tiles * tile_floats; ++i) acc[0][i] += acc[th][i];
  // acc element (tile (tk, tr), v, j * 3 + s, lane) is dw[tk Kv + 16 v + lane, row tr JR + j, s].
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t tk = t / tiles_r, tr = t % tiles_r;
    for (int64_t v = 0; v < tile.KV; ++v)
      for (int64_t j = 0; j < tile.JR; ++j)
        for (int64_t s = 0; s < kTaps; ++s)
          for (int64_t lane = 0; lane < kLanes; ++lane) {
            const int64_t k = tk * Kv + v * kLanes + lane, row = tr * tile.JR + j;
            if (k < g.K && row < rows)
              dw[(k * rows + row) * kTaps + s] =
                  acc[0][t * tile_floats + ((v * tile.JR + j) * kTaps + s) * kLanes + lane];
          }
  }
}

}  // namespace afd::cpu::direct
