// Square Attack as fra31/auto-attack's square.py runs it: specs/attacks.md, Appendix B section 4.
// The algorithm and the quirks kept are described in attacks/square.h.
//
// Windows are placed and images updated on host rows (f64); each candidate batch goes to the model
// as a tensor of x's dtype and device, and candidates are rounded to that dtype as they are made, so
// x_best is exactly the point the model judged.
#include "attacks/square.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "attacks/core.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::attacks {

namespace {

// eta_rectangles(a, b): [a, b] row-major; 1/(k+1)^2 added on the k-th concentric rectangle around
// (a/2, b/2) (clipped to the block), then unit Frobenius norm (an empty block stays empty).
std::vector<double> rectangles(int64_t a, int64_t b) {
  std::vector<double> m(static_cast<size_t>(a * b), 0.0);
  const int64_t ac = a / 2 + 1, bc = b / 2 + 1;
  int64_t r0 = ac - 1, c0 = bc - 1;
  for (int64_t k = 0; k < std::max(ac, bc); ++k) {
    const double v = 1.0 / static_cast<double>((k + 1) * (k + 1));
    for (int64_t r = std::max<int64_t>(r0, 0); r < std::min(r0 + 2 * k + 1, a); ++r)
      for (int64_t c = std::max<int64_t>(c0, 0); c < std::min(c0 + 2 * k + 1, b); ++c) m[r * b + c] += v;
    --r0;
    --c0;
  }
  double ss = 0;
  for (double v : m) ss += v * v;
  const double norm = std::sqrt(ss);
  for (double& v : m) v /= norm;
  return m;
}

// Python's round() on a non-negative double: half to even.
int64_t round_half_even(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

// random_int(lo, hi) = long(lo + (hi - lo) u): in [lo, hi - 1] (lo when hi == lo).
int64_t random_int(const UniformSource& uniform, int64_t lo, int64_t hi) {
  return static_cast<int64_t>(static_cast<double>(lo) + static_cast<double>(hi - lo) * uniform(1)[0]);
}

// random_choice: sign(2u - 1) for n draws (0 when u is exactly 1/2).
std::vector<double> random_signs(const UniformSource& uniform, int64_t n) {
  std::vector<double> s = uniform(n);
  for (double& v : s) {
    const double t = 2 * v - 1;
    v = t > 0 ? 1.0 : (t < 0 ? -1.0 : 0.0);
  }
  return s;
}

// eta(s) with its random transpose (one draw).
std::vector<double> eta_draw(const UniformSource& uniform, int64_t s) {
  std::vector<double> e = square_eta(s);
  if (uniform(1)[0] > 0.5) {
    std::vector<double> t(e.size());
    for (int64_t r = 0; r < s; ++r)
      for (int64_t c = 0; c < s; ++c) t[c * s + r] = e[r * s + c];
    e = std::move(t);
  }
  return e;
}

void round_to(std::vector<double>& v, DType dtype) {
  if (dtype == DType::f32)
    for (double& e : v) e = static_cast<double>(static_cast<float>(e));
}

double clamp01(double v) { return std::isnan(v) ? v : std::clamp(v, 0.0, 1.0); }

}  // namespace

double square_p(int it, int n_queries, double p_init, bool rescale_schedule) {
  if (rescale_schedule) it = static_cast<int>(static_cast<double>(it) / n_queries * 10000);
  if (it <= 10) return p_init;
  if (it <= 50) return p_init / 2;
  if (it <= 200) return p_init / 4;
  if (it <= 500) return p_init / 8;
  if (it <= 1000) return p_init / 16;
  if (it <= 2000) return p_init / 32;
  if (it <= 4000) return p_init / 64;
  if (it <= 6000) return p_init / 128;
  if (it <= 8000) return p_init / 256;
  return p_init / 512;
}

int64_t square_window(Norm norm, double p, int64_t height, int64_t width, int64_t channels) {
  AFD_CHECK(norm == Norm::linf || norm == Norm::l2, "square: no window rule for norm {}", norm_name(norm));
  AFD_CHECK(channels >= 1, "square_window: channels must be >= 1, got {}", channels);
  // The reference's sqrt(p * n_features / c), n_features = c h w.
  const double n_features = static_cast<double>(channels * height * width);
  int64_t s = round_half_even(std::sqrt(p * n_features / static_cast<double>(channels)));
  if (norm == Norm::linf) {
    s = std::max<int64_t>(s, 1);
  } else {
    s = std::max<int64_t>(s, 3);
    if (s % 2 == 0) ++s;
  }
  return std::min(s, std::min(height, width));
}

std::vector<double> square_eta(int64_t s) {
  AFD_CHECK(s >= 1, "square_eta: the window side must be >= 1, got {}", s);
  std::vector<double> e(static_cast<size_t>(s * s));
  const int64_t top = s / 2;
  std::vector<double> upper = rectangles(top, s), lower = rectangles(s - top, s);
  for (int64_t k = 0; k < top * s; ++k) e[k] = upper[k];
  for (int64_t k = 0; k < (s - top) * s; ++k) e[top * s + k] = -lower[k];
  double ss = 0;
  for (double v : e) ss += v * v;
  const double norm = std::sqrt(ss);
  for (double& v : e) v /= norm;
  return e;
}

UniformSource philox_source(Generator& gen) {
  return [&gen](int64_t n) {
    if (n == 0) return std::vector<double>();
    return rand({n}, gen, DType::f64).to_vector<double>();
  };
}

Square::Square(AttackConfig config) : Attack(config) {
  AFD_CHECK(config.norm == Norm::linf || config.norm == Norm::l2, "square: the norm must be linf or l2, got {}",
            norm_name(config.norm));
  AFD_CHECK(!config.targeted, "square: only the untargeted attack is implemented");
  AFD_CHECK(config.n_queries >= 0, "square: n_queries must be >= 0, got {}", config.n_queries);
  AFD_CHECK(config.p_init > 0 && config.p_init <= 1, "square: p_init must be in (0, 1], got {}", config.p_init);
}

SquareRun Square::single_run(nn::UnaryModule& model, const Tensor& x, const Tensor& y, const std::vector<double>& eps,
                             const UniformSource& uniform) const {
  AFD_CHECK(x.defined() && x.dim() == 4 && (x.dtype() == DType::f32 || x.dtype() == DType::f64),
            "square: expected a float batch x [N, C, H, W], got {}", x.defined() ? x.str() : "an undefined tensor");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), hw = h * w, D = c * hw;
  AFD_CHECK(y.defined() && y.dtype() == DType::i64 && y.dim() == 1 && y.size(0) == n,
            "square: expected labels i64 [{}], got {}", n, y.defined() ? y.str() : "undefined");
  AFD_CHECK(static_cast<int64_t>(eps.size()) == n, "square: {} budgets for {} points", eps.size(), n);
  const Norm norm = config_.norm;
  AFD_CHECK(norm == Norm::linf || h / 5 >= 1, "square: the L2 start needs images of at least 5 rows, got {}", x.str());
  EvalModeGuard eval_mode(model);
  const std::vector<int64_t> label = y.to(Device::cpu()).to_vector<int64_t>();
  const std::vector<double> x0 = host_rows(x);
  std::vector<double> x_best(x0.size());
  std::vector<double> margin_min(static_cast<size_t>(n)), loss_min;
  std::vector<int64_t> queries(static_cast<size_t>(n), 1);

  // Margins z_y - max_{j != y} z_j of the rows `rows` (of the batch) stored in pts [rows.size(), D].
  auto margins = [&](const std::vector<double>& pts, const std::vector<int64_t>& rows) {
    const auto m = static_cast<int64_t>(rows.size());
    Tensor batch = Tensor::from_vector<double>(pts, {m, c, h, w}).to(x.dtype()).to(x.device());
    Tensor logits = logits_of(model, batch);
    const int64_t K = logits.size(1);
    std::vector<double> z = host_rows(logits), out(static_cast<size_t>(m));
    for (int64_t r = 0; r < m; ++r) {
      const int64_t yr = label[rows[r]];
      AFD_CHECK(yr >= 0 && yr < K, "square: label {} of row {} is not a class of the model's {}", yr, rows[r], K);
      double other = -INFINITY;
      for (int64_t k = 0; k < K; ++k)
        if (k != yr) other = std::max(other, z[r * K + k]);
      out[r] = z[r * K + yr] - other;
    }
    return out;
  };
  std::vector<int64_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[i] = i;
  // Rescales each row of delta to norm eps and adds it to x0 (L2): clip01(x0 + eps delta / (||delta|| + 1e-12)).
  auto l2_point = [&](const std::vector<double>& delta, const std::vector<int64_t>& rows) {
    std::vector<double> pts(delta.size());
    for (size_t r = 0; r < rows.size(); ++r) {
      const double* dr = delta.data() + r * D;
      double ss = 0;
      for (int64_t j = 0; j < D; ++j) ss += dr[j] * dr[j];
      const double norm2 = std::sqrt(ss);
      for (int64_t j = 0; j < D; ++j)
        pts[r * D + j] = clamp01(x0[rows[r] * D + j] + dr[j] / (norm2 + 1e-12) * eps[rows[r]]);
    }
    round_to(pts, x.dtype());
    return pts;
  };

  // ---- start point ----
  if (n > 0) {
    if (norm == Norm::linf) {
      // One sign per (image, channel, column): vertical stripes of height H.
      std::vector<double> sign = random_signs(uniform, n * c * w);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t r = 0; r < h; ++r)
            for (int64_t col = 0; col < w; ++col) {
              const int64_t j = i * D + ch * hw + r * w + col;
              x_best[j] = clamp01(x0[j] + eps[i] * sign[(i * c + ch) * w + col]);
            }
      round_to(x_best, x.dtype());
    } else {
      // A grid of s0-windows from (sp, sp), each eta(s0) times a sign per (image, channel). Windows
      // past the image edge are cut (the reference adds nothing there when the cut leaves 0 rows).
      std::vector<double> delta(x0.size(), 0.0);
      const int64_t s0 = h / 5, sp = (h - 5 * s0) / 2;
      for (int64_t a = 0, vh = sp; a < h / s0; ++a, vh += s0) {
        for (int64_t b = 0, vw = sp; b < w / s0; ++b, vw += s0) {
          const std::vector<double> e = eta_draw(uniform, s0);
          const std::vector<double> sign = random_signs(uniform, n * c);
          for (int64_t i = 0; i < n; ++i)
            for (int64_t ch = 0; ch < c; ++ch)
              for (int64_t r = vh; r < std::min(vh + s0, h); ++r)
                for (int64_t col = vw; col < std::min(vw + s0, w); ++col)
                  delta[i * D + ch * hw + r * w + col] += e[(r - vh) * s0 + (col - vw)] * sign[i * c + ch];
        }
      }
      x_best = l2_point(delta, all);
    }
    margin_min = margins(x_best, all);
  }
  loss_min = margin_min;  // the margin loss
  bool all_fooled = true;
  for (double m : margin_min) all_fooled = all_fooled && m < 0;  // strict here, as the reference

  for (int it = 0; !all_fooled && it < config_.n_queries; ++it) {
    std::vector<int64_t> active;
    for (int64_t i = 0; i < n; ++i)
      if (margin_min[i] > 0) active.push_back(i);
    if (active.empty()) break;  // the reference evaluates an empty batch and then stops
    const auto m = static_cast<int64_t>(active.size());
    const double p = square_p(it, config_.n_queries, config_.p_init);
    const int64_t s = square_window(norm, p, h, w, c);
    std::vector<double> x_new(static_cast<size_t>(m * D));

    if (norm == Norm::linf) {
      const int64_t vh = random_int(uniform, 0, h - s), vw = random_int(uniform, 0, w - s);
      const std::vector<double> sign = random_signs(uniform, c);  // one per channel, whole batch
      for (int64_t r = 0; r < m; ++r) {
        const int64_t i = active[r];
        const double e = eps[i];
        double* xn = x_new.data() + r * D;
        std::copy(x_best.begin() + i * D, x_best.begin() + (i + 1) * D, xn);
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t row = vh; row < vh + s; ++row)
            for (int64_t col = vw; col < vw + s; ++col) xn[ch * hw + row * w + col] += 2 * e * sign[ch];
        for (int64_t j = 0; j < D; ++j) {
          const double x0j = x0[i * D + j];
          xn[j] = clamp01(std::min(std::max(xn[j], x0j - e), x0j + e));
        }
      }
      round_to(x_new, x.dtype());
    } else {
      const int64_t vh = random_int(uniform, 0, h - s), vw = random_int(uniform, 0, w - s);
      const int64_t vh2 = random_int(uniform, 0, h - s), vw2 = random_int(uniform, 0, w - s);
      auto in_w1 = [&](int64_t row, int64_t col) { return row >= vh && row < vh + s && col >= vw && col < vw + s; };
      auto in_w2 = [&](int64_t row, int64_t col) {
        return row >= vh2 && row < vh2 + s && col >= vw2 && col < vw2 + s;
      };
      const std::vector<double> e = eta_draw(uniform, s);
      const std::vector<double> sign = random_signs(uniform, m * c);
      std::vector<double> delta(static_cast<size_t>(m * D)), block(static_cast<size_t>(s * s));
      for (int64_t r = 0; r < m; ++r) {
        const int64_t i = active[r];
        double* dr = delta.data() + r * D;
        double ss = 0;
        for (int64_t j = 0; j < D; ++j) {
          dr[j] = x_best[i * D + j] - x0[i * D + j];
          ss += dr[j] * dr[j];
        }
        const double norm_image = std::sqrt(ss);
        for (int64_t ch = 0; ch < c; ++ch) {
          double* dc = dr + ch * hw;
          // Per-channel norms of delta on W1 and on W1 u W2.
          double s1 = 0, s12 = 0;
          for (int64_t row = 0; row < h; ++row)
            for (int64_t col = 0; col < w; ++col) {
              const double v = dc[row * w + col];
              if (in_w1(row, col)) s1 += v * v;
              if (in_w1(row, col) || in_w2(row, col)) s12 += v * v;
            }
          const double norm_w1 = std::sqrt(s1), norm_windows = std::sqrt(s12);
          // New window content: eta sign + the old content normalised, rescaled so that the mass of
          // W1 u W2 plus this channel's share of the unused budget is kept.
          double sb = 0;
          for (int64_t a = 0; a < s; ++a)
            for (int64_t b = 0; b < s; ++b) {
              const double v = e[a * s + b] * sign[r * c + ch] + dc[(vh + a) * w + vw + b] / (1e-12 + norm_w1);
              block[a * s + b] = v;
              sb += v * v;
            }
          const double norm_block = std::sqrt(sb);
          const double budget = std::sqrt(
              std::max(eps[i] * eps[i] - norm_image * norm_image, 0.0) / static_cast<double>(c) +
              norm_windows * norm_windows);
          for (int64_t row = vh2; row < vh2 + s; ++row)
            for (int64_t col = vw2; col < vw2 + s; ++col) dc[row * w + col] = 0;
          for (int64_t a = 0; a < s; ++a)
            for (int64_t b = 0; b < s; ++b)
              dc[(vh + a) * w + vw + b] = block[a * s + b] / (1e-12 + norm_block) * budget;
        }
      }
      x_new = l2_point(delta, active);
    }

    // Accept a lower loss (strict) or a misclassification.
    const std::vector<double> margin = margins(x_new, active);
    all_fooled = true;
    for (int64_t r = 0; r < m; ++r) {
      const int64_t i = active[r];
      const double loss = margin[r];
      bool improved = loss < loss_min[i];
      if (improved) loss_min[i] = loss;
      improved = improved || margin[r] <= 0;
      if (improved) {
        margin_min[i] = margin[r];
        std::copy(x_new.begin() + r * D, x_new.begin() + (r + 1) * D, x_best.begin() + i * D);
      }
      ++queries[i];
    }
    for (double v : margin_min) all_fooled = all_fooled && v <= 0;
  }

  SquareRun out;
  out.x_best = Tensor::from_vector<double>(x_best, x.shape()).to(x.dtype()).to(x.device());
  out.margin = Tensor::from_vector<double>(margin_min, {n});
  out.queries = Tensor::from_vector<int64_t>(queries, {n});
  return out;
}

Tensor Square::run(const Problem& p, Generator& gen) {
  const int64_t n = p.x.size(0);
  Tensor out = p.x.clone();  // the clean image for every point not fooled
  if (n == 0) return out;
  // Only the points the model classifies correctly are attacked.
  const std::vector<int64_t> y = p.y.to(Device::cpu()).to_vector<int64_t>();
  const std::vector<int64_t> pred = ops::argmax(logits_of(*p.model, p.x), 1).to(Device::cpu()).to_vector<int64_t>();
  std::vector<int64_t> idx, labels;
  std::vector<double> eps;
  for (int64_t i = 0; i < n; ++i)
    if (pred[i] == y[i]) {
      idx.push_back(i);
      labels.push_back(y[i]);
      eps.push_back(p.eps[i]);
    }
  if (idx.empty()) return out;
  const auto m = static_cast<int64_t>(idx.size());
  Tensor rows = ops::index_select(p.x, Tensor::from_vector<int64_t>(idx, {m}).to(p.x.device()));
  SquareRun res = single_run(*p.model, rows, Tensor::from_vector<int64_t>(labels, {m}).to(p.y.device()), eps,
                             philox_source(gen));
  // Re-evaluated once more: only misclassified points keep their x_best.
  const std::vector<int64_t> adv_pred =
      ops::argmax(logits_of(*p.model, res.x_best), 1).to(Device::cpu()).to_vector<int64_t>();
  for (int64_t r = 0; r < m; ++r)
    if (adv_pred[r] != labels[r]) out.select(idx[r]).copy_(res.x_best.select(r));
  return out;
}

}  // namespace afd::attacks
