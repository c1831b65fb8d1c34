// Sparse L1 descent (Tramer and Boneh 2019, "SLIDE"; AdverTorch's SparseL1DescentAttack) with the
// box mask of Foolbox's version and the exact Duchi projection (specs/attacks.md, decision 6b).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "attacks/core.h"
#include "attacks/gradient_attacks.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::attacks {

SparseL1::SparseL1(AttackConfig config) : Attack(config) {
  AFD_CHECK(config.norm == Norm::l1, "sparse-l1: the norm must be l1, got {}", norm_name(config.norm));
}

namespace {

// The sparse direction of every row: e_j = sign(g_j) / k' on the kept coordinates, 0 elsewhere.
// Kept: |g_j| > 0, not pushing x_j past the box, and among the top k (ties: lower index first), or
// with quantile q > 0, |g_j| >= the q-quantile of |g| (linear interpolation, numpy's default).
std::vector<double> sparse_direction(const std::vector<double>& g, const std::vector<double>& x, int64_t n,
                                     int64_t d, double sparsity, double quantile) {
  std::vector<double> e(g.size(), 0.0);
  std::vector<double> a(static_cast<size_t>(d));
  std::vector<int64_t> order(static_cast<size_t>(d));
  const auto k = static_cast<int64_t>(std::nearbyint((1.0 - sparsity) * static_cast<double>(d)));
  for (int64_t i = 0; i < n; ++i) {
    const double* gi = g.data() + i * d;
    const double* xi = x.data() + i * d;
    for (int64_t j = 0; j < d; ++j) {
      bool blocked = (xi[j] <= 0 && gi[j] < 0) || (xi[j] >= 1 && gi[j] > 0);
      a[j] = blocked ? 0.0 : std::fabs(gi[j]);
    }
    std::vector<int64_t> keep;
    if (quantile > 0) {
      std::vector<double> sorted = a;
      std::sort(sorted.begin(), sorted.end());
      double pos = quantile * static_cast<double>(d - 1), lo = std::floor(pos);
      auto l = static_cast<size_t>(lo), h = std::min(l + 1, static_cast<size_t>(d - 1));
      double t = sorted[l] + (pos - lo) * (sorted[h] - sorted[l]);
      for (int64_t j = 0; j < d; ++j)
        if (a[j] > 0 && a[j] >= t) keep.push_back(j);
    } else if (k > 0) {
      std::iota(order.begin(), order.end(), 0);
      auto larger = [&a](int64_t u, int64_t v) { return a[u] > a[v] || (a[u] == a[v] && u < v); };
      std::nth_element(order.begin(), order.begin() + (std::min(k, d) - 1), order.end(), larger);
      for (int64_t j = 0; j < std::min(k, d); ++j)
        if (a[order[j]] > 0) keep.push_back(order[j]);
    }
    for (int64_t j : keep) e[i * d + j] = (gi[j] > 0 ? 1.0 : -1.0) / static_cast<double>(keep.size());
  }
  return e;
}

}  // namespace

Tensor SparseL1::run(const Problem& p, Generator& gen) {
  const std::vector<double> alpha = step_sizes(p);
  const int64_t n = p.x.size(0), d = n == 0 ? 0 : p.x.numel() / n;
  Tensor x = start_point(p, gen);
  for (int step = 0; step < config_.steps; ++step) {
    LossGrad lg = ascent(p, x);
    Tensor e = from_host_rows(
        sparse_direction(host_rows(lg.grad), host_rows(x), n, d, config_.sparsity, config_.quantile), x);
    Tensor delta = ops::add(ops::sub(x, p.x), ops::mul(e, as_rows(alpha, x)));
    x = clip_box(ops::add(p.x, duchi_l1_projection(delta, p.eps)));
  }
  return x;
}

}  // namespace afd::attacks
