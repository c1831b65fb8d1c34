// FAB (Croce and Hein 2020) as fra31/auto-attack runs it: specs/attacks.md, Appendix B section 3.
// The algorithm, its projections and the quirks kept are described in attacks/fab.h.
//
// The projections sort, so one FAB iteration works on host rows (f64): the model's logits and
// input gradients come back to the host, the hyperplane, both projections and the step are
// computed there, and the new iterate goes back to the model as a tensor of x's dtype and device.
// Iterates are rounded to x's dtype as they are made, so the point returned is exactly the point
// the model judged.
#include "attacks/fab.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "attacks/core.h"
#include "autograd/var.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::attacks {

namespace {

// torch.min / torch.max / clamp_min propagate NaN; std::min / std::max would not.
double nan_min(double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : std::min(a, b); }
double nan_max(double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b); }

// ceil(log2 n): the number of halvings of every binary search (math.ceil(math.log2(n))).
int search_steps(int64_t n) {
  int k = 0;
  while ((int64_t{1} << k) < n) ++k;
  return k;
}

// Indices of v sorted ascending; equal values keep index order (the reference's torch.argsort is
// unstable: see fab.h).
std::vector<int64_t> argsort(const std::vector<double>& v) {
  std::vector<int64_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&v](int64_t a, int64_t b) { return v[a] < v[b]; });
  return idx;
}

double dot(const double* a, const double* b, int64_t n) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += a[j] * b[j];
  return s;
}

// ---- one row of each projection: t, w [D], offset b -> d [D] ---------------------------------
// Names follow the reference's where it helps to read them side by side.

void projection_linf_row(const double* t, const double* w_in, double b, int64_t D, double* d) {
  std::vector<double> w(w_in, w_in + D);
  // Flip (w, b) so that c = <w, t> - b >= 0: the constraint value has to decrease.
  const double sign = dot(w.data(), t, D) - b >= 0 ? 1.0 : -1.0;
  for (double& v : w) v *= sign;
  b *= sign;
  // a_j = 1 where increasing z_j decreases <w, z> (w_j < 0): coordinate j moves toward a_j, at most
  // to the corner d_j = a_j - t_j, a distance p_j = |a_j - t_j|.
  std::vector<double> a(D), p(D);
  for (int64_t j = 0; j < D; ++j) {
    a[j] = w[j] < 0 ? 1.0 : 0.0;
    d[j] = (a[j] - t[j]) * (w[j] != 0 ? 1.0 : 0.0);
    p[j] = a[j] - t[j] * (2 * a[j] - 1);
  }
  const std::vector<int64_t> indp = argsort(p);
  const double target = b - dot(w.data(), t, D);  // the change needed: -c <= 0
  const double b0 = dot(w.data(), d, D);          // the change at the corner
  // Over coordinates in descending p: s_k = sum_{m <= k} |w|, sb_k = b0 - sum_{m <= k} w d. At
  // lambda = p of descending position k the change is sb_k - s_k lambda (the first k + 1 coordinates
  // still move by lambda, the others sit at their corner).
  std::vector<double> s(D), sb(D);
  double s_acc = 0, sb_acc = 0;
  for (int64_t k = 0; k < D; ++k) {
    const int64_t j = indp[D - 1 - k];
    s_acc += std::fabs(w[j]);
    sb_acc += -w[j] * d[j];
    s[k] = s_acc;
    sb[k] = sb_acc + b0;
  }
  // c_l: even lambda = the smallest p overshoots, so no coordinate reaches its corner.
  const bool c_l = target - (sb[D - 1] - s[D - 1] * p[indp[0]]) > 0;
  // c2: the corner overshoots, so some lambda lands exactly on the hyperplane.
  const bool c2 = target - b0 > 0 && !c_l;
  if (c_l) {
    const double lambda = nan_max((target - sb[D - 1]) / (-s[D - 1]), 0.0);
    for (int64_t j = 0; j < D; ++j) d[j] = (2 * a[j] - 1) * lambda;
  } else if (c2) {
    // The last descending position whose lambda still overshoots.
    int64_t lb = 0, ub = D - 1;
    for (int step = 0, steps = search_steps(D); step < steps; ++step) {
      const int64_t mid = (lb + ub) / 2;
      const double change = sb[mid] - s[mid] * p[indp[D - 1 - mid]];
      if (target - change > 0) lb = mid;
      else ub = mid;
    }
    const double lambda = nan_max((target - sb[lb]) / (-s[lb]), 0.0);
    for (int64_t j = 0; j < D; ++j) d[j] = nan_min(lambda, d[j]) * a[j] + nan_max(-lambda, d[j]) * (1 - a[j]);
  }
  // else infeasible: d stays the corner.
  for (int64_t j = 0; j < D; ++j) d[j] *= w[j] != 0 ? 1.0 : 0.0;
}

void projection_l2_row(const double* t, const double* w_in, double b, int64_t D, double* d) {
  std::vector<double> w(w_in, w_in + D);
  double c = dot(w.data(), t, D) - b;
  const double sign = c >= 0 ? 1.0 : -1.0;
  for (double& v : w) v *= sign;
  c *= sign;
  // d_j(lambda) = clip(-lambda w_j, -t_j, 1 - t_j) saturates at lambda = r_j.
  std::vector<double> r(D);
  for (int64_t j = 0; j < D; ++j) {
    const double v = nan_max(t[j] / w[j], (t[j] - 1) / w[j]);
    r[j] = std::isnan(v) ? v : std::clamp(v, -1e12, 1e12);
    if (std::fabs(w[j]) < 1e-8) r[j] = 1e12;  // (a NaN |w| compares false and keeps r)
    if (r[j] == -1e12) r[j] = 1e12;
  }
  const std::vector<int64_t> indr = argsort(r);
  // Sorted breakpoints rs and their successors rs2 (0 after the last); breakpoints of 1e12 count
  // as 0 (the reference's masked_fill, applied after rs2 is taken).
  std::vector<double> rs(D), rs2(D), ws(D);
  for (int64_t k = 0; k < D; ++k) rs[k] = r[indr[k]];
  for (int64_t k = 0; k < D; ++k) rs2[k] = k + 1 < D ? rs[k + 1] : 0.0;
  for (int64_t k = 0; k < D; ++k) {
    if (rs[k] == 1e12) rs[k] = 0;
    if (rs2[k] == 1e12) rs2[k] = 0;
  }
  // ws_k = sum of w^2 over the coordinates after sorted position k (still moving).
  double w5 = 0;
  for (int64_t k = 0; k < D; ++k) w5 += w[indr[k]] * w[indr[k]];
  double cum = 0;
  for (int64_t k = 0; k < D; ++k) {
    cum += w[indr[k]] * w[indr[k]];
    ws[k] = w5 - cum;
  }
  for (int64_t j = 0; j < D; ++j) d[j] = -(r[j] * w[j]) * (std::fabs(w[j]) > 1e-8 ? 1.0 : 0.0);
  // s_k: the change of <w, .> at lambda = rs_k, k = 0 .. D (s_D repeats s_{D-1}).
  std::vector<double> s(D + 1);
  s[0] = -w5 * rs[0];
  double acc = 0;
  for (int64_t k = 0; k < D; ++k) {
    acc += (-rs2[k] + rs[k]) * ws[k];
    s[k + 1] = acc - w5 * rs[0];
  }
  const bool c4 = s[0] + c < 0;                       // nothing saturates
  const bool c3 = dot(d, w.data(), D) + c > 0;        // even all saturated is not enough: infeasible
  if (c4) {
    const double alpha = c / w5;
    for (int64_t j = 0; j < D; ++j) d[j] = -alpha * w[j];
  } else if (!c3) {
    int64_t lb = 0, ub = D - 1;
    for (int step = 0, steps = search_steps(D); step < steps; ++step) {
      const int64_t mid = (lb + ub) / 2;
      if (s[mid] + c > 0) lb = mid;
      else ub = mid;
    }
    double alpha = (s[lb] + c) / ws[lb] + rs[lb];
    if (ws[lb] == 0) alpha = 0;
    for (int64_t j = 0; j < D; ++j) {
      const double saturated = alpha > r[j] ? 1.0 : 0.0;
      d[j] = d[j] * saturated - alpha * w[j] * (1 - saturated);
    }
  }
  // else infeasible: d stays -r w, every coordinate at its bound.
  for (int64_t j = 0; j < D; ++j) d[j] *= std::fabs(w[j]) > 1e-8 ? 1.0 : 0.0;
}

void projection_l1_row(const double* t, const double* w_in, double b, int64_t D, double* d) {
  std::vector<double> w(w_in, w_in + D);
  double c = dot(w.data(), t, D) - b;
  const double sign = c >= 0 ? 1.0 : -1.0;
  for (double& v : w) v *= sign;
  c *= sign;
  // Cheapest first: the coordinate with the largest |w| changes <w, .> most per unit of L1 norm.
  std::vector<double> r(D);
  for (int64_t j = 0; j < D; ++j) {
    const double v = std::fabs(1 / w[j]);
    r[j] = std::isnan(v) ? v : std::min(v, 1e12);
  }
  const std::vector<int64_t> indr = argsort(r);
  std::vector<int64_t> rank(D);
  for (int64_t k = 0; k < D; ++k) rank[indr[k]] = k;
  for (int64_t j = 0; j < D; ++j) d[j] = (-t[j] + (w[j] < 0 ? 1.0 : 0.0)) * (w[j] != 0 ? 1.0 : 0.0);
  // s_k = c + (the change of the first k coordinates, each taken to its bound), k = 0 .. D.
  std::vector<double> s(D + 1);
  s[0] = c;
  for (int64_t k = 0; k < D; ++k) {
    const int64_t j = indr[k];
    s[k + 1] = s[k] + nan_min(-w[j] * t[j], w[j] * (1 - t[j]));
  }
  if (s[D] < 0) {  // feasible
    // The last k with s_k > 0 (the reference's search starts with ub = D + 1).
    int64_t lb = 0, ub = D + 1;
    for (int step = 0, steps = search_steps(D); step < steps; ++step) {
      const int64_t mid = (lb + ub) / 2;
      if (s[mid] > 0) lb = mid;
      else ub = mid;
    }
    AFD_CHECK(lb < D, "projection_l1: binary search ended at {} of {}", lb, D);  // s_D < 0 rules it out
    const int64_t critical = indr[lb];
    const double alpha = -s[lb] / w[critical];
    for (int64_t j = 0; j < D; ++j) d[j] *= rank[j] < lb ? 1.0 : 0.0;
    d[critical] = alpha;
  }
  // else infeasible: every coordinate at its bound.
  for (int64_t j = 0; j < D; ++j) d[j] *= std::fabs(w[j]) > 1e-8 ? 1.0 : 0.0;
}

void projection_row(Norm p, const double* t, const double* w, double b, int64_t D, double* d) {
  switch (p) {
    case Norm::linf: return projection_linf_row(t, w, b, D, d);
    case Norm::l2: return projection_l2_row(t, w, b, D, d);
    case Norm::l1: return projection_l1_row(t, w, b, D, d);
  }
}

Tensor project_rows(Norm p, const char* what, const Tensor& t, const Tensor& w, const Tensor& b) {
  AFD_CHECK(t.defined() && w.defined() && b.defined() && t.dim() == 2 && t.shape() == w.shape() && b.dim() == 1 &&
                b.size(0) == t.size(0),
            "{}: expected t, w [n, D] and b [n], got {}, {}, {}", what, t.defined() ? t.str() : "undefined",
            w.defined() ? w.str() : "undefined", b.defined() ? b.str() : "undefined");
  const int64_t n = t.size(0), D = t.size(1);
  AFD_CHECK(D >= 1, "{}: rows must have at least one coordinate, got {}", what, t.str());
  std::vector<double> th = host_rows(t), wh = host_rows(w), bh = host_rows(b), d(th.size());
  for (int64_t i = 0; i < n; ++i) projection_row(p, th.data() + i * D, wh.data() + i * D, bh[i], D, d.data() + i * D);
  return Tensor::from_vector<double>(d, {n, D});
}

// ---- FAB helpers -----------------------------------------------------------------------------
double lp_norm(const double* v, int64_t n, Norm p) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double a = std::fabs(v[j]);
    s = p == Norm::linf ? nan_max(s, a) : (p == Norm::l2 ? s + a * a : s + a);
  }
  return p == Norm::l2 ? std::sqrt(s) : s;
}

// The dual norm ||g||_q that turns |f| / ||g||_q into the distance to the hyperplane in ||.||_p.
double dual_norm(const double* g, int64_t n, Norm p) {
  switch (p) {
    case Norm::linf: return lp_norm(g, n, Norm::l1);
    case Norm::l2: return lp_norm(g, n, Norm::l2);
    case Norm::l1: return lp_norm(g, n, Norm::linf);
  }
  return NAN;
}

// Values as the working dtype stores them (the iterate the model sees).
void round_to(std::vector<double>& v, DType dtype) {
  if (dtype == DType::f32)
    for (double& e : v) e = static_cast<double>(static_cast<float>(e));
}

std::vector<int64_t> argmax_rows(const Tensor& logits) {
  return ops::argmax(logits, 1).to(Device::cpu()).to_vector<int64_t>();
}

// The logits [n, K] at x and the input gradients FAB needs, from one forward and one input-only
// backward per hyperplane: FAB-T (target given) the gradient of z_t - z_y; untargeted the gradient
// of every logit z_k (the rows of the Jacobian, K backwards).
struct Jacobian {
  int64_t classes = 0;
  std::vector<double> logits;              // [n, K]
  std::vector<std::vector<double>> grads;  // FAB-T: one [n, D]; untargeted: one [n, D] per class
};

Jacobian logits_and_grads(nn::UnaryModule& model, const Tensor& x, const std::vector<int64_t>& y,
                          const std::vector<int64_t>* target) {
  GradModeGuard grad_on(true);
  Var xv(x, /*requires_grad=*/true);
  Var logits = model.forward(xv);
  const int64_t n = x.size(0);
  AFD_CHECK(logits.dim() == 2 && logits.size(0) == n, "fab: expected logits [{}, K], got {}", n, logits.data().str());
  Jacobian out;
  out.classes = logits.size(1);
  out.logits = host_rows(logits.data());
  for (int64_t i = 0; i < n; ++i) {
    AFD_CHECK(y[i] >= 0 && y[i] < out.classes, "fab: label {} of row {} is not a class of the model's {}", y[i], i,
              out.classes);
    AFD_CHECK(!target || ((*target)[i] >= 0 && (*target)[i] < out.classes),
              "fab: target {} of row {} is not a class of the model's {}", target ? (*target)[i] : 0, i, out.classes);
  }
  // Seeds [n, K]: the backward of sum_i <seed_i, z_i>.
  std::vector<std::vector<double>> seeds;
  const int64_t K = out.classes;
  if (target) {
    std::vector<double> s(static_cast<size_t>(n * K), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      s[i * K + (*target)[i]] += 1;
      s[i * K + y[i]] -= 1;
    }
    seeds.push_back(std::move(s));
  } else {
    for (int64_t k = 0; k < K; ++k) {
      std::vector<double> s(static_cast<size_t>(n * K), 0.0);
      for (int64_t i = 0; i < n; ++i) s[i * K + k] = 1;
      seeds.push_back(std::move(s));
    }
  }
  for (size_t k = 0; k < seeds.size(); ++k) {
    Tensor seed = from_host_rows(seeds[k], logits.data());
    std::vector<Var> g = grad({logits}, {xv}, {seed}, /*retain_graph=*/k + 1 < seeds.size());
    out.grads.push_back(g[0].defined() ? host_rows(g[0].data())
                                       : std::vector<double>(static_cast<size_t>(x.numel()), 0.0));
  }
  return out;
}

}  // namespace

Tensor projection_linf(const Tensor& t, const Tensor& w, const Tensor& b) {
  return project_rows(Norm::linf, "projection_linf", t, w, b);
}
Tensor projection_l2(const Tensor& t, const Tensor& w, const Tensor& b) {
  return project_rows(Norm::l2, "projection_l2", t, w, b);
}
Tensor projection_l1(const Tensor& t, const Tensor& w, const Tensor& b) {
  return project_rows(Norm::l1, "projection_l1", t, w, b);
}
Tensor fab_projection(Norm p, const Tensor& t, const Tensor& w, const Tensor& b) {
  return project_rows(p, "fab_projection", t, w, b);
}

// ---- FAB -------------------------------------------------------------------------------------
FAB::FAB(AttackConfig config, bool targeted) : Attack(config), targeted_(targeted) {
  const char* n = targeted ? "fab-t" : "fab";
  AFD_CHECK(!config.targeted, "{}: config.targeted must be false (FAB-T picks its own targets and succeeds on any "
            "misclassification; target labels may be passed to perturb)", n);
  AFD_CHECK(std::isfinite(config.fab_eta) && config.fab_eta > 0, "{}: fab_eta must be finite and > 0, got {}", n,
            config.fab_eta);
  AFD_CHECK(config.fab_alpha_max >= 0 && config.fab_alpha_max <= 1, "{}: fab_alpha_max must be in [0, 1], got {}", n,
            config.fab_alpha_max);
  AFD_CHECK(config.fab_beta >= 0 && config.fab_beta <= 1, "{}: fab_beta must be in [0, 1], got {}", n,
            config.fab_beta);
}

FABRun FAB::single_run(nn::UnaryModule& model, const Tensor& x, const Tensor& y, const Tensor& target,
                       const std::vector<double>& eps, bool random_start, Generator* gen,
                       bool record_iterates) const {
  AFD_CHECK(x.defined() && x.dim() >= 2 && (x.dtype() == DType::f32 || x.dtype() == DType::f64),
            "{}: expected a float batch x [N, ...], got {}", name(), x.defined() ? x.str() : "an undefined tensor");
  const int64_t n = x.size(0), D = n == 0 ? 0 : x.numel() / n;
  AFD_CHECK(y.defined() && y.dtype() == DType::i64 && y.dim() == 1 && y.size(0) == n,
            "{}: expected labels i64 [{}], got {}", name(), n, y.defined() ? y.str() : "undefined");
  const bool target_ok =
      target.defined() && target.dtype() == DType::i64 && target.dim() == 1 && target.size(0) == n;
  AFD_CHECK(!targeted_ || target_ok, "{}: expected target labels i64 [{}], got {}", name(), n,
            target.defined() ? target.str() : "undefined");
  AFD_CHECK(static_cast<int64_t>(eps.size()) == n, "{}: {} budgets for {} points", name(), eps.size(), n);
  AFD_CHECK(!random_start || gen != nullptr, "{}: a random start needs a generator", name());
  EvalModeGuard eval_mode(model);
  const Norm norm = config_.norm;
  const std::vector<int64_t> la = y.to(Device::cpu()).to_vector<int64_t>();
  const std::vector<int64_t> la_t = targeted_ ? target.to(Device::cpu()).to_vector<int64_t>() : std::vector<int64_t>();

  FABRun out;
  std::vector<double> x0 = host_rows(x), x1 = x0, adv = x0, res(static_cast<size_t>(n), 1e10);
  if (n == 0) {
    out.x_adv = x.clone();
    out.best_norm = Tensor::from_vector<double>(res, {0});
    out.found = Tensor::from_vector<uint8_t>({}, {0});
    return out;
  }
  if (random_start) {
    // x1 = clip01(x0 + 0.5 min(res, eps) t / ||t||_p), res = 1e10 here.
    Tensor t = norm == Norm::linf ? rand(x.shape(), *gen, DType::f64, Device::cpu(), -1.0, 1.0)
                                  : randn(x.shape(), *gen, DType::f64);
    std::vector<double> th = host_rows(t);
    for (int64_t i = 0; i < n; ++i) {
      const double* ti = th.data() + i * D;
      const double tn = lp_norm(ti, D, norm);
      for (int64_t j = 0; j < D; ++j) {
        const double v = norm == Norm::l1 ? x0[i * D + j] + std::min(res[i], eps[i]) * ti[j] / tn / 2
                                          : x0[i * D + j] + std::min(res[i], eps[i]) * ti[j] / tn * 0.5;
        x1[i * D + j] = std::clamp(v, 0.0, 1.0);
      }
    }
    round_to(x1, x.dtype());
  }

  std::vector<double> w(D), g(D), d1(D), d2(D);
  for (int iter = 0; iter < config_.steps; ++iter) {
    Tensor x1_t = from_host_rows(x1, x);
    if (record_iterates) out.iterates.push_back(x1_t.clone());
    const Jacobian jac = logits_and_grads(model, x1_t, la, targeted_ ? &la_t : nullptr);
    const int64_t K = jac.classes;
    for (int64_t i = 0; i < n; ++i) {
      const double* z = jac.logits.data() + i * K;
      double* xi = x1.data() + i * D;
      const double* x0i = x0.data() + i * D;
      // The hyperplane {<w, z> = b} of the linearised boundary f = 0: FAB-T f = z_t - z_y; untargeted
      // the class k whose boundary is closest, |f_k| / (1e-12 + ||grad f_k||_q) (the first minimum,
      // as torch's min(dim=1); f_y = 1e10 keeps the label out).
      double f;
      if (targeted_) {
        f = z[la_t[i]] - z[la[i]];
        std::copy(jac.grads[0].begin() + i * D, jac.grads[0].begin() + (i + 1) * D, w.begin());
      } else {
        const double* gy = jac.grads[la[i]].data() + i * D;
        double best_dist = INFINITY;
        int64_t best = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double* gk = jac.grads[k].data() + i * D;
          for (int64_t j = 0; j < D; ++j) g[j] = gk[j] - gy[j];
          const double fk = k == la[i] ? 1e10 : z[k] - z[la[i]];
          const double dist = std::fabs(fk) / (1e-12 + dual_norm(g.data(), D, norm));
          if (k == 0 || dist < best_dist) {
            best = k;
            best_dist = dist;
          }
        }
        f = best == la[i] ? 1e10 : z[best] - z[la[i]];
        const double* gb = jac.grads[best].data() + i * D;
        for (int64_t j = 0; j < D; ++j) w[j] = gb[j] - gy[j];
      }
      const double b = -f + dot(w.data(), xi, D);
      // Project the iterate and the clean point onto {<w, z> = b} within the box.
      projection_row(norm, xi, w.data(), b, D, d1.data());
      projection_row(norm, x0i, w.data(), b, D, d2.data());
      const double a1 = nan_max(lp_norm(d1.data(), D, norm), 1e-8);
      const double a2 = nan_max(lp_norm(d2.data(), D, norm), 1e-8);
      const double alpha = nan_min(nan_max(a1 / (a1 + a2), 0.0), config_.fab_alpha_max);
      const double eta = config_.fab_eta;
      for (int64_t j = 0; j < D; ++j) {
        const double v = (xi[j] + eta * d1[j]) * (1 - alpha) + (x0i[j] + d2[j] * eta) * alpha;
        xi[j] = nan_min(nan_max(v, 0.0), 1.0);
      }
    }
    round_to(x1, x.dtype());

    // Misclassified iterates: keep the closest, then step back toward x0.
    std::vector<int64_t> pred = argmax_rows(logits_of(model, from_host_rows(x1, x)));
    for (int64_t i = 0; i < n; ++i) {
      if (pred[i] == la[i]) continue;
      double* xi = x1.data() + i * D;
      const double* x0i = x0.data() + i * D;
      std::vector<double> delta(xi, xi + D);
      for (int64_t j = 0; j < D; ++j) delta[j] -= x0i[j];
      const double t = lp_norm(delta.data(), D, norm);
      if (t < res[i]) {
        std::copy(xi, xi + D, adv.data() + i * D);
        res[i] = t;
      }
      for (int64_t j = 0; j < D; ++j) xi[j] = x0i[j] + (xi[j] - x0i[j]) * config_.fab_beta;
    }
    round_to(x1, x.dtype());
  }
  if (record_iterates) out.iterates.push_back(from_host_rows(x1, x));

  std::vector<uint8_t> found(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) found[i] = res[i] < 1e10;
  out.x_adv = from_host_rows(adv, x);
  out.best_norm = Tensor::from_vector<double>(res, {n});
  out.found = Tensor::from_vector<uint8_t>(found, {n});
  return out;
}

Tensor FAB::run(const Problem& p, Generator& gen) {
  const int64_t n = p.x.size(0);
  Tensor out = p.x.clone();  // the clean image for every point not broken
  if (n == 0) return out;
  // Only the points the model classifies correctly are attacked.
  Tensor clean_logits = logits_of(*p.model, p.x);
  const int64_t classes = clean_logits.size(1);
  const std::vector<int64_t> y = p.y.to(Device::cpu()).to_vector<int64_t>();
  std::vector<int64_t> pred = argmax_rows(clean_logits);
  std::vector<uint8_t> done(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) done[i] = pred[i] != y[i];

  // FAB-T's targets: the given labels, or the tc-th largest clean logit, tc = 2 .. n_target_classes + 1.
  std::vector<Tensor> targets;
  if (!targeted_) {
    targets.emplace_back();
  } else if (p.target.defined()) {
    AFD_CHECK(p.target.dtype() == DType::i64 && p.target.dim() == 1 && p.target.size(0) == n,
              "{}: expected target labels i64 [{}], got {}", name(), n, p.target.str());
    targets.push_back(p.target);
  } else {
    AFD_CHECK(config_.n_target_classes + 1 <= classes, "{}: n_target_classes + 1 = {} exceeds the model's {} classes",
              name(), config_.n_target_classes + 1, classes);
    std::vector<double> z = host_rows(clean_logits);
    std::vector<std::vector<int64_t>> by_rank(static_cast<size_t>(config_.n_target_classes),
                                              std::vector<int64_t>(static_cast<size_t>(n)));
    std::vector<int64_t> order(static_cast<size_t>(classes));
    for (int64_t i = 0; i < n; ++i) {
      const double* zi = z.data() + i * classes;
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [zi](int64_t a, int64_t b) { return zi[a] < zi[b]; });
      for (int tc = 2; tc <= config_.n_target_classes + 1; ++tc) by_rank[tc - 2][i] = order[classes - tc];
    }
    for (const auto& t : by_rank) targets.push_back(Tensor::from_vector<int64_t>(t, {n}));
  }

  for (const Tensor& target : targets) {
    for (int r = 0; r < config_.restarts; ++r) {
      std::vector<int64_t> idx;
      for (int64_t i = 0; i < n; ++i)
        if (!done[i]) idx.push_back(i);
      if (idx.empty()) return out;
      Tensor xs = take_rows(p.x, idx);
      std::vector<double> eps;
      for (int64_t i : idx) eps.push_back(p.eps[i]);
      FABRun res = single_run(*p.model, xs, take_rows(p.y, idx), take_rows(target, idx), eps, r > 0, &gen);
      // Accepted: misclassified AND within eps (FAB itself is not bounded by eps).
      std::vector<int64_t> adv_pred = argmax_rows(logits_of(*p.model, res.x_adv));
      std::vector<double> norms = host_rows(row_norms(ops::sub(res.x_adv, xs), config_.norm));
      for (size_t j = 0; j < idx.size(); ++j) {
        const int64_t i = idx[j];
        if (adv_pred[j] == y[i] || norms[j] > p.eps[i]) continue;
        out.select(i).copy_(res.x_adv.select(static_cast<int64_t>(j)));
        done[i] = 1;
      }
    }
  }
  return out;
}

}  // namespace afd::attacks
