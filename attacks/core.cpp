#include "attacks/core.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "autograd/ops.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::attacks {

// ---- per-row tensors -------------------------------------------------------------------------
Tensor row_norms(const Tensor& d, Norm p) {
  AFD_CHECK(d.dim() >= 1, "row_norms: expected a batch [n, ...], got {}", d.str());
  Tensor flat = d.reshape({d.size(0), -1});
  switch (p) {
    case Norm::linf: return ops::max(ops::abs(flat), 1).first;
    case Norm::l2: return ops::sqrt(ops::sum(ops::mul(flat, flat), {1}));
    case Norm::l1: return ops::sum(ops::abs(flat), {1});
  }
  AFD_FAIL("row_norms: unknown norm");
}

Tensor as_rows(const Tensor& v, const Tensor& like) {
  Shape s(like.dim(), 1);
  s[0] = like.size(0);
  AFD_CHECK(v.numel() == like.size(0), "as_rows: {} values for a batch of {}", v.numel(), like.size(0));
  return v.to(like.dtype()).to(like.device()).reshape(s);
}

Tensor as_rows(const std::vector<double>& v, const Tensor& like) {
  return as_rows(Tensor::from_vector<double>(v, {static_cast<int64_t>(v.size())}), like);
}

Tensor scale_rows(const Tensor& x, const Tensor& s) { return ops::mul(x, as_rows(s, x)); }

Tensor normalize_rows(const Tensor& g, Norm p, double floor) {
  Tensor n = ops::unary(UnaryOp::clamp, row_norms(g, p), floor, INFINITY);
  return ops::div(g, as_rows(n, g));
}

Tensor clip_box(const Tensor& x) { return ops::clamp(x, 0.0, 1.0); }

Tensor sign_steps(const std::vector<double>& alpha, const std::vector<double>& eps, const Tensor& like) {
  const int64_t n = like.size(0);
  AFD_CHECK(static_cast<int64_t>(alpha.size()) == n && static_cast<int64_t>(eps.size()) == n,
            "sign_step: {} step sizes and {} radii for a batch of {}", alpha.size(), eps.size(), n);
  std::vector<double> steps(alpha);
  steps.insert(steps.end(), eps.begin(), eps.end());
  // [2, n]: one upload, converted to x's dtype on the host as as_rows converts
  return Tensor::from_vector<double>(steps, {2, n}).to(like.dtype()).to(like.device());
}

Tensor sign_step(const Tensor& x0, const Tensor& x, const Tensor& g, const Tensor& steps) {
  return ops::linf_sign_step(x0, x, g, steps);
}

Tensor sign_step(const Tensor& x0, const Tensor& x, const Tensor& g, const std::vector<double>& alpha,
                 const std::vector<double>& eps) {
  return sign_step(x0, x, g, sign_steps(alpha, eps, x));
}

Tensor project_ball(const Tensor& x0, const Tensor& x, const std::vector<double>& eps, Norm p) {
  Tensor d = ops::sub(x, x0);
  if (p == Norm::linf) {
    Tensor e = as_rows(eps, x);
    return ops::add(x0, ops::minimum(ops::maximum(d, ops::neg(e)), e));
  }
  // factor_i = min(1, eps_i / max(||d_i||, floor)), computed on the host ([n] values).
  std::vector<double> norms = row_norms(d, p).to_vector<double>();
  for (size_t i = 0; i < norms.size(); ++i) norms[i] = std::min(1.0, eps[i] / std::max(norms[i], kNormFloor));
  return ops::add(x0, ops::mul(d, as_rows(norms, d)));
}

std::vector<double> host_rows(const Tensor& x) { return x.to(Device::cpu()).to_vector<double>(); }

Tensor from_host_rows(const std::vector<double>& v, const Tensor& like) {
  return Tensor::from_vector<double>(v, like.shape()).to(like.dtype()).to(like.device());
}

Tensor duchi_l1_projection(const Tensor& d, const std::vector<double>& eps) {
  const int64_t n = d.size(0), dim = n == 0 ? 0 : d.numel() / n;
  AFD_CHECK(static_cast<int64_t>(eps.size()) == n, "duchi_l1_projection: {} radii for {} rows", eps.size(), n);
  std::vector<double> v = host_rows(d);
  std::vector<double> u(static_cast<size_t>(dim));
  for (int64_t i = 0; i < n; ++i) {
    double* row = v.data() + i * dim;
    double l1 = 0;
    for (int64_t j = 0; j < dim; ++j) l1 += std::fabs(row[j]);
    if (l1 <= eps[i]) continue;  // inside the ball: unchanged
    for (int64_t j = 0; j < dim; ++j) u[j] = std::fabs(row[j]);
    std::sort(u.begin(), u.end(), std::greater<>());
    // theta from the last index rho where u_rho > (cumsum_rho - eps) / (rho + 1).
    double cumsum = 0, theta = 0;
    for (int64_t j = 0; j < dim; ++j) {
      cumsum += u[j];
      double t = (cumsum - eps[i]) / static_cast<double>(j + 1);
      if (u[j] > t) theta = t;
    }
    for (int64_t j = 0; j < dim; ++j) {
      double m = std::max(std::fabs(row[j]) - theta, 0.0);
      row[j] = row[j] > 0 ? m : (row[j] < 0 ? -m : 0.0);
    }
  }
  return from_host_rows(v, d);
}

// ---- losses ----------------------------------------------------------------------------------
namespace {

// Column indices of each row's logits sorted ascending (ties keep the lower index first).
std::vector<std::vector<int64_t>> ascending_order(const Tensor& logits) {
  const int64_t n = logits.size(0), k = logits.size(1);
  std::vector<double> z = host_rows(logits);
  std::vector<std::vector<int64_t>> order(static_cast<size_t>(n), std::vector<int64_t>(k));
  for (int64_t i = 0; i < n; ++i) {
    auto& o = order[i];
    std::iota(o.begin(), o.end(), 0);
    const double* row = z.data() + i * k;
    std::stable_sort(o.begin(), o.end(), [row](int64_t a, int64_t b) { return row[a] < row[b]; });
  }
  return order;
}

// z[i, index[i]] as [n].
Var pick(const Var& logits, const std::vector<int64_t>& index) {
  const int64_t n = logits.size(0);
  Tensor idx = Tensor::from_vector<int64_t>(index, {n, 1}).to(logits.device());
  return reshape(gather(logits, 1, idx), {n});
}

std::vector<int64_t> labels_of(const Tensor* t, const char* what, int64_t n) {
  AFD_CHECK(t && t->defined(), "attack loss: {} labels are required", what);
  AFD_CHECK(t->dtype() == DType::i64 && t->dim() == 1 && t->size(0) == n,
            "attack loss: expected {} labels i64 [{}], got {}", what, n, t->str());
  return t->to(Device::cpu()).to_vector<int64_t>();
}

}  // namespace

Var per_sample_loss(LossKind kind, const Var& logits, const LossInputs& in, bool targeted) {
  AFD_CHECK(logits.dim() == 2, "attack loss: expected logits [n, K], got {}", logits.data().str());
  const int64_t n = logits.size(0), k = logits.size(1);
  const Tensor* labels = targeted ? in.target : in.y;
  const char* which = targeted ? "target" : "true";
  switch (kind) {
    case LossKind::ce: {
      labels_of(labels, which, n);  // validates
      return cross_entropy(logits, *labels, Reduction::none);
    }
    case LossKind::cw: {
      // max_{j != y} z_j - z_y: ascending it pushes z_y below another class.
      std::vector<int64_t> y = labels_of(labels, which, n), other(static_cast<size_t>(n));
      auto order = ascending_order(logits.data());
      for (int64_t i = 0; i < n; ++i) other[i] = order[i][k - 1] == y[i] ? order[i][k - 2] : order[i][k - 1];
      return sub(pick(logits, other), pick(logits, y));
    }
    case LossKind::dlr: {
      // -(z_y - max_{j != y} z_j) / (z_(1) - z_(3) + 1e-12), z_(1) >= z_(2) >= ... the sorted logits.
      AFD_CHECK(k >= 3, "dlr loss needs at least 3 classes, the model has {}", k);
      std::vector<int64_t> y = labels_of(in.y, "true", n), other(n), top1(n), top3(n);
      auto order = ascending_order(logits.data());
      for (int64_t i = 0; i < n; ++i) {
        top1[i] = order[i][k - 1];
        top3[i] = order[i][k - 3];
        other[i] = top1[i] == y[i] ? order[i][k - 2] : top1[i];
      }
      Var denom = pick(logits, top1) - pick(logits, top3) + 1e-12;
      return neg(div(pick(logits, y) - pick(logits, other), denom));
    }
    case LossKind::dlr_targeted: {
      // -(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2 + 1e-12)
      AFD_CHECK(k >= 4, "targeted dlr loss needs at least 4 classes, the model has {}", k);
      std::vector<int64_t> y = labels_of(in.y, "true", n), t = labels_of(in.target, "target", n);
      std::vector<int64_t> top1(n), top3(n), top4(n);
      auto order = ascending_order(logits.data());
      for (int64_t i = 0; i < n; ++i) {
        top1[i] = order[i][k - 1];
        top3[i] = order[i][k - 3];
        top4[i] = order[i][k - 4];
      }
      Var denom = pick(logits, top1) - (pick(logits, top3) + pick(logits, top4)) * 0.5 + 1e-12;
      return neg(div(pick(logits, y) - pick(logits, t), denom));
    }
    case LossKind::kl: {
      AFD_CHECK(in.clean_logits && in.clean_logits->defined() && in.clean_logits->shape() == logits.shape(),
                "kl loss needs the clean logits [{}, {}]", n, k);
      return kl_div(Var(*in.clean_logits), logits, Reduction::none);
    }
  }
  AFD_FAIL("attack loss: unknown loss kind");
}

LossGrad loss_and_grad(nn::UnaryModule& model, const Tensor& x, LossKind kind, const LossInputs& in,
                       bool targeted, double sign) {
  GradModeGuard grad_on(true);
  Var xv(x, /*requires_grad=*/true);
  Var logits = model.forward(xv);
  Var loss = per_sample_loss(kind, logits, in, targeted);
  Var total = sign == 1 ? sum(loss) : sum(loss) * sign;
  std::vector<Var> g = grad({total}, {xv});
  LossGrad out;
  out.loss = loss.data();
  out.grad = g[0].defined() ? g[0].data() : Tensor::zeros(x.shape(), x.dtype(), x.device());
  out.logits = logits.data();
  return out;
}

Tensor logits_of(nn::UnaryModule& model, const Tensor& x) {
  NoGradGuard no_grad;
  return model.forward(Var(x)).data();
}

Tensor success_mask(const Tensor& logits, const Tensor& y, const Tensor& target, bool targeted) {
  const int64_t n = logits.size(0);
  std::vector<int64_t> pred = ops::argmax(logits, 1).to(Device::cpu()).to_vector<int64_t>();
  std::vector<int64_t> ref = labels_of(targeted ? &target : &y, targeted ? "target" : "true", n);
  std::vector<uint8_t> ok(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ok[i] = targeted ? pred[i] == ref[i] : pred[i] != ref[i];
  return Tensor::from_vector<uint8_t>(ok, {n});
}

// ---- random starts ---------------------------------------------------------------------------
Tensor random_in_ball(const Tensor& like, const std::vector<double>& eps, Norm p, Generator& gen) {
  const int64_t n = like.size(0), d = n == 0 ? 0 : like.numel() / n;
  switch (p) {
    case Norm::linf: {
      Tensor u = rand(like.shape(), gen, like.dtype(), like.device(), -1.0, 1.0);
      return ops::mul(u, as_rows(eps, like));
    }
    case Norm::l2: {
      // Uniform in the d-ball: drop 2 coordinates of a uniform point on the (d+1)-sphere.
      Tensor z = randn({n, d + 2}, gen, like.dtype(), like.device());
      Tensor r = ops::narrow(normalize_rows(z, Norm::l2), 1, 0, d).reshape(like.shape());
      return ops::mul(r, as_rows(eps, like));
    }
    case Norm::l1: {
      // Sorted U(0,1) values v_(1) <= ... <= v_(d); the spacings v_(j) - v_(j-1) (v_(0) = 0) are
      // uniform on the simplex {s >= 0, sum s <= 1}; random signs spread them over the L1 ball.
      std::vector<double> u = host_rows(rand({n, d}, gen, DType::f64));
      std::vector<double> s = host_rows(rand({n, d}, gen, DType::f64));
      for (int64_t i = 0; i < n; ++i) {
        double* row = u.data() + i * d;
        std::sort(row, row + d);
        for (int64_t j = d - 1; j > 0; --j) row[j] -= row[j - 1];
        for (int64_t j = 0; j < d; ++j) row[j] *= (s[i * d + j] < 0.5 ? -1.0 : 1.0) * eps[i];
      }
      return from_host_rows(u, like);
    }
  }
  AFD_FAIL("random_in_ball: unknown norm");
}

Tensor take_rows(const Tensor& t, const std::vector<int64_t>& idx) {
  if (!t.defined()) return t;
  const auto m = static_cast<int64_t>(idx.size());
  if (is_floating(t.dtype())) return ops::index_select(t, Tensor::from_vector<int64_t>(idx, {m}).to(t.device()));
  // Integer rows (labels, targets; index_select takes floats): gathered on the host, so that a
  // device tensor costs one copy each way rather than one per row.
  const Tensor host = t.to(Device::cpu());  // contiguous, as every tensor
  Shape s = t.shape();
  s[0] = m;
  Tensor out(s, t.dtype(), Device::cpu());
  const size_t row_bytes = size_t(host.numel() / std::max<int64_t>(host.size(0), 1)) * dtype_size(t.dtype());
  for (int64_t j = 0; j < m; ++j)
    std::memcpy(static_cast<char*>(out.raw_data()) + size_t(j) * row_bytes,
                static_cast<const char*>(host.raw_data()) + size_t(idx[size_t(j)]) * row_bytes, row_bytes);
  return out.to(t.device());
}

Tensor put_rows(const Tensor& dst, const std::vector<int64_t>& idx, const Tensor& src) {
  AFD_CHECK(is_floating(dst.dtype()) && src.dtype() == dst.dtype() && src.size(0) == int64_t(idx.size()),
            "put_rows: {} rows of {} into {}", idx.size(), src.str(), dst.str());
  Tensor index = Tensor::from_vector<int64_t>(idx, {static_cast<int64_t>(idx.size())}).to(dst.device());
  std::vector<double> chosen(size_t(dst.size(0)), 0.0);
  for (int64_t i : idx) chosen[size_t(i)] = 1;
  // Row idx[j] of the sum is src's row j alone (distinct idx); the mask keeps dst elsewhere.
  return ops::where(as_rows(chosen, dst), ops::index_add(dst.shape(), index, src), dst);
}

}  // namespace afd::attacks
