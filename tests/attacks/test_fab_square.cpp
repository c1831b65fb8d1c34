// FAB (FAB-T and untargeted; Linf, L2, L1) and Square (Linf, L2), specs/attacks.md Appendix B
// sections 3 and 4:
// - each FAB projection against independent brute-force solutions (bisection on the multiplier for
//   the L2 QP, bisection on the radius for the Linf LP, vertex enumeration for the L1 LP) on random
//   and degenerate (t, w, b), and against the reference's own projections (fab_refs.safetensors,
//   made by tests/fixtures/attacks/make_fab_refs.py from fra31/auto-attack) within 1e-10;
// - FAB-T and FAB iterate by iterate against the reference run in float64 within 1e-6, and a
//   closed form on linear models;
// - Square's p schedule, window sizes and eta(s) against the spec's table and the reference, and a
//   whole Square run against the reference with its recorded random stream replayed;
// - properties of both (bounds, eps = 0, input untouched, success = the model's verdict, ...).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "attacks/attack.h"
#include "attacks/core.h"
#include "attacks/fab.h"
#include "attacks/square.h"
#include "nn/layers.h"
#include "nn/safetensors.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/attacks/reference_model.h"
#include "tests/attacks/tiny_models.h"
#include "tests/support/checks.h"

namespace afd::attacks {
namespace {

using afd::testing::expect_close;
using afd::testing::expect_error;

// ---- brute-force solutions of the projection problems ------------------------------------------
// min ||d||_p  s.t.  <w, t + d> = b,  0 <= t + d <= 1. Each returns false when the box misses the
// hyperplane.

double dotv(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t j = 0; j < a.size(); ++j) s += a[j] * b[j];
  return s;
}

// The range of <w, z> over z in the box intersected with |z - t|_inf <= r.
std::pair<double, double> reachable(const std::vector<double>& t, const std::vector<double>& w, double r) {
  double lo = 0, hi = 0;
  for (size_t j = 0; j < t.size(); ++j) {
    const double a = std::max(0.0, t[j] - r), b = std::min(1.0, t[j] + r);
    lo += std::min(w[j] * a, w[j] * b);
    hi += std::max(w[j] * a, w[j] * b);
  }
  return {lo, hi};
}

// Linf: the smallest radius r whose box-clipped cube reaches b (bisection on r; monotone).
bool brute_linf_radius(const std::vector<double>& t, const std::vector<double>& w, double b, double& radius) {
  auto [lo1, hi1] = reachable(t, w, 1.0);
  if (b < lo1 || b > hi1) return false;
  double lo = 0, hi = 1;
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    auto [a, c] = reachable(t, w, mid);
    if (a <= b && b <= c) hi = mid;
    else lo = mid;
  }
  radius = hi;
  return true;
}

// L2: the KKT point d_j = clip(-mu w_j, -t_j, 1 - t_j); <w, t + d(mu)> decreases in mu, so mu is
// found by bracketing and bisection.
bool brute_l2(const std::vector<double>& t, const std::vector<double>& w, double b, std::vector<double>& d) {
  const size_t n = t.size();
  auto value = [&](double mu, std::vector<double>* out) {
    double s = 0;
    for (size_t j = 0; j < n; ++j) {
      const double dj = std::min(std::max(-mu * w[j], -t[j]), 1 - t[j]);
      if (out) (*out)[j] = dj;
      s += w[j] * (t[j] + dj);
    }
    return s;
  };
  auto [lo_all, hi_all] = reachable(t, w, 1.0);
  if (b < lo_all || b > hi_all) return false;
  double lo = -1, hi = 1;
  while (value(lo, nullptr) < b) lo *= 2;
  while (value(hi, nullptr) > b) hi *= 2;
  for (int it = 0; it < 400; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (value(mid, nullptr) > b) lo = mid;
    else hi = mid;
  }
  d.assign(n, 0);
  value(0.5 * (lo + hi), &d);
  return true;
}

// L1: an optimal vertex has every coordinate at t_j, 0 or 1 except at most one; enumerate them all.
bool brute_l1(const std::vector<double>& t, const std::vector<double>& w, double b, double& best) {
  const int n = static_cast<int>(t.size());
  best = INFINITY;
  int combos = 1;
  for (int j = 0; j < n - 1; ++j) combos *= 3;
  for (int f = 0; f < n; ++f) {
    if (w[f] == 0) continue;
    for (int code = 0; code < combos; ++code) {
      double cost = 0, rest = 0;
      int c = code;
      for (int j = 0; j < n; ++j) {
        if (j == f) continue;
        const int choice = c % 3;
        c /= 3;
        const double z = choice == 0 ? t[j] : (choice == 1 ? 0.0 : 1.0);
        cost += std::fabs(z - t[j]);
        rest += w[j] * z;
      }
      const double zf = (b - rest) / w[f];
      if (zf < -1e-12 || zf > 1 + 1e-12) continue;
      best = std::min(best, cost + std::fabs(zf - t[f]));
    }
  }
  return std::isfinite(best);
}

// The infeasible answer of all three: every coordinate with w != 0 at the box bound that moves
// <w, .> toward b.
std::vector<double> toward_corner(const std::vector<double>& t, const std::vector<double>& w, double b) {
  const bool decrease = dotv(w, t) - b >= 0;
  std::vector<double> d(t.size(), 0);
  for (size_t j = 0; j < t.size(); ++j) {
    if (w[j] == 0) continue;
    const bool up = decrease ? w[j] < 0 : w[j] > 0;
    d[j] = (up ? 1.0 : 0.0) - t[j];
  }
  return d;
}

double lpn(const std::vector<double>& d, Norm p) {
  double s = 0;
  for (double v : d) s = p == Norm::linf ? std::max(s, std::fabs(v)) : (p == Norm::l2 ? s + v * v : s + std::fabs(v));
  return p == Norm::l2 ? std::sqrt(s) : s;
}

struct ProjectionCase {
  std::vector<double> t, w;
  double b;
};

// Random cases of dimension n: feasible, infeasible, t on the box faces, zeros in w, all-zero w,
// equal |w|, c = 0.
std::vector<ProjectionCase> projection_cases(int n, int count, Generator& gen) {
  std::vector<ProjectionCase> out;
  for (int k = 0; k < count; ++k) {
    std::vector<double> t = rand({n}, gen, DType::f64).to_vector<double>();
    std::vector<double> w = randn({n}, gen, DType::f64).to_vector<double>();
    std::vector<double> u = rand({n}, gen, DType::f64).to_vector<double>();
    const int kind = k % 8;
    if (kind == 2 || kind == 3)
      for (int j = 0; j < n; ++j) t[j] = u[j] < 0.3 ? 0.0 : (u[j] > 0.7 ? 1.0 : t[j]);
    if (kind == 3 || kind == 4)
      for (int j = 0; j < n; ++j) w[j] = u[j] < 0.4 ? 0.0 : w[j];
    if (kind == 5)
      for (int j = 0; j < n; ++j) w[j] = u[j] < 0.5 ? -0.7 : 0.7;
    if (kind == 7) std::fill(w.begin(), w.end(), 0.0);
    auto [lo, hi] = reachable(t, w, 1.0);
    std::vector<double> z = rand({n}, gen, DType::f64).to_vector<double>();
    double b = dotv(w, z);                         // feasible
    if (kind == 1) b = k % 16 == 1 ? hi + 0.3 : lo - 0.3;  // infeasible
    if (kind == 6) b = dotv(w, t);                 // t on the hyperplane
    if (kind == 7) b = k % 16 == 7 ? 0.0 : 0.4;    // all-zero w: nothing to do, or infeasible
    out.push_back({t, w, b});
  }
  return out;
}

Tensor rows_tensor(const std::vector<ProjectionCase>& cs, bool w) {
  std::vector<double> v;
  for (const ProjectionCase& c : cs) v.insert(v.end(), (w ? c.w : c.t).begin(), (w ? c.w : c.t).end());
  return Tensor::from_vector<double>(v, {static_cast<int64_t>(cs.size()), static_cast<int64_t>(cs[0].t.size())});
}

void check_projection_against_brute_force(Norm p) {
  Generator gen(4100 + static_cast<int>(p));
  int feasible = 0, infeasible = 0;
  for (int n : {1, 2, 3, 4, 5, 6, 8}) {
    std::vector<ProjectionCase> cs = projection_cases(n, 64, gen);
    std::vector<double> bs;
    for (const ProjectionCase& c : cs) bs.push_back(c.b);
    Tensor d_all = fab_projection(p, rows_tensor(cs, false), rows_tensor(cs, true),
                                  Tensor::from_vector<double>(bs, {static_cast<int64_t>(bs.size())}));
    ASSERT_EQ(d_all.dtype(), DType::f64);
    std::vector<double> dv = d_all.to_vector<double>();
    for (size_t k = 0; k < cs.size(); ++k) {
      const ProjectionCase& c = cs[k];
      SCOPED_TRACE("n " + std::to_string(n) + " case " + std::to_string(k));
      std::vector<double> d(dv.begin() + k * n, dv.begin() + (k + 1) * n), z(n);
      for (int j = 0; j < n; ++j) {
        z[j] = c.t[j] + d[j];
        ASSERT_GE(z[j], -1e-12);
        ASSERT_LE(z[j], 1 + 1e-12);
        if (c.w[j] == 0) {
          EXPECT_EQ(d[j], 0.0) << "a coordinate with w = 0 moved";
        }
      }
      double radius = 0, l1 = 0;
      std::vector<double> d_l2;
      bool ok = p == Norm::linf ? brute_linf_radius(c.t, c.w, c.b, radius)
                                : (p == Norm::l2 ? brute_l2(c.t, c.w, c.b, d_l2) : brute_l1(c.t, c.w, c.b, l1));
      if (p == Norm::l1 && std::all_of(c.w.begin(), c.w.end(), [](double v) { return v == 0; }))
        ok = c.b == 0;  // (the enumeration needs a free coordinate with w != 0)
      if (!ok) {
        ++infeasible;
        std::vector<double> corner = toward_corner(c.t, c.w, c.b);
        for (int j = 0; j < n; ++j) EXPECT_NEAR(d[j], corner[j], 1e-12) << "infeasible: the corner, coordinate " << j;
        continue;
      }
      ++feasible;
      EXPECT_NEAR(dotv(c.w, z), c.b, 1e-10) << "not on the hyperplane";
      if (p == Norm::linf) {
        EXPECT_NEAR(lpn(d, Norm::linf), radius, 1e-10) << "not the smallest Linf norm";
      }
      if (p == Norm::l1 && l1 < INFINITY) {
        EXPECT_NEAR(lpn(d, Norm::l1), l1, 1e-10) << "not the smallest L1 norm";
      }
      if (p == Norm::l1 && c.b == 0 && lpn(c.w, Norm::l1) == 0) {
        EXPECT_EQ(lpn(d, Norm::l1), 0.0);
      }
      if (p == Norm::l2) {
        for (int j = 0; j < n; ++j) EXPECT_NEAR(d[j], d_l2[j], 1e-9) << "not the L2 minimiser, coordinate " << j;
      }
    }
  }
  EXPECT_GT(feasible, 200);
  EXPECT_GT(infeasible, 30);
}

TEST(FabProjections, LinfEqualsTheBruteForceLp) { check_projection_against_brute_force(Norm::linf); }
TEST(FabProjections, L2EqualsTheBruteForceQp) { check_projection_against_brute_force(Norm::l2); }
TEST(FabProjections, L1EqualsTheBruteForceLp) { check_projection_against_brute_force(Norm::l1); }

TEST(FabProjections, TinyNormalEntriesAreIgnoredByL2AndL1) {
  // |w_j| < 1e-8 counts as 0 in L2 and L1 (the coordinate never moves); Linf masks only w_j == 0.
  Tensor t = Tensor::from_vector<double>({0.5, 0.5, 0.5}, {1, 3});
  Tensor w = Tensor::from_vector<double>({1.0, 1e-9, -1.0}, {1, 3});
  Tensor b = Tensor::from_vector<double>({0.2}, {1});
  for (Norm p : {Norm::l2, Norm::l1}) EXPECT_EQ(fab_projection(p, t, w, b).to_vector<double>()[1], 0.0);
  EXPECT_NE(projection_linf(t, w, b).to_vector<double>()[1], 0.0);
  expect_error([&] { projection_l2(t, w.reshape({3, 1}), b); }, "projection_l2: expected t, w [n, D] and b [n]");
}

// ---- reference agreement -----------------------------------------------------------------------
struct FabFixture {
  nlohmann::json spec;
  SafetensorsFile file;
};

FabFixture load_fab_fixture() {
  const std::string dir = std::string(AFD_SOURCE_DIR) + "/tests/fixtures/attacks/";
  FabFixture f;
  std::ifstream in(dir + "fab_refs.json");
  f.spec = nlohmann::json::parse(in);
  f.file = read_safetensors(dir + "fab_refs.safetensors");
  return f;
}

Norm norm_of(const std::string& s) { return s == "Linf" ? Norm::linf : (s == "L2" ? Norm::l2 : Norm::l1); }

TEST(FabReference, ProjectionsEqualTheReferenceWithin1e10) {
  FabFixture f = load_fab_fixture();
  int checked = 0;
  int tied_rows = 0;
  double worst = 0;
  for (const nlohmann::json& e : f.spec["projections"]) {
    const std::vector<std::string> in = e["inputs"];
    const Norm p = parse_norm(e["norm"]);
    const Tensor t = f.file.get(in[0]), w = f.file.get(in[1]), b = f.file.get(in[2]);
    const Tensor ref = f.file.get(e["output"]);
    Tensor d = fab_projection(p, t, w, b);
    SCOPED_TRACE(std::string(e["function"]) + " D " + std::to_string(int(e["D"])));
    const std::vector<int64_t> tied = e["rows_with_tied_abs_w"];
    if (p != Norm::l1 || e["D"] <= 16) {  // torch sorts rows of up to 16 stably: ties break alike
      expect_close(d, ref, 0, 1e-10);
      worst = std::max(worst, ops::allclose(d, ref, 0, 0).max_abs_diff);
    } else {
      // torch.argsort's order among equal |w| is not index order here: those rows may pick another
      // of the equally short solutions. They must still satisfy the constraint as the reference's
      // does and have its L1 norm; every other row is equal.
      const int64_t D = t.size(1);
      std::vector<double> dv = d.to_vector<double>(), rv = ref.to_vector<double>(), tv = t.to_vector<double>(),
                          wv = w.to_vector<double>();
      for (int64_t i = 0; i < t.size(0); ++i) {
        const bool is_tied = std::find(tied.begin(), tied.end(), i) != tied.end();
        tied_rows += is_tied;
        double ours_c = 0, ref_c = 0, ours_n = 0, ref_n = 0, row_worst = 0;
        for (int64_t j = 0; j < D; ++j) {
          ours_c += wv[i * D + j] * (tv[i * D + j] + dv[i * D + j]);
          ref_c += wv[i * D + j] * (tv[i * D + j] + rv[i * D + j]);
          ours_n += std::fabs(dv[i * D + j]);
          ref_n += std::fabs(rv[i * D + j]);
          row_worst = std::max(row_worst, std::fabs(dv[i * D + j] - rv[i * D + j]));
        }
        if (is_tied) {
          EXPECT_NEAR(ours_c, ref_c, 1e-10) << "row " << i;
          EXPECT_NEAR(ours_n, ref_n, 1e-10) << "row " << i;
        } else {
          EXPECT_LE(row_worst, 1e-10) << "row " << i;
          worst = std::max(worst, row_worst);
        }
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, 21);
  EXPECT_EQ(tied_rows, 4);
  std::printf("projections: max |ours - reference| %.3g (rows with tied |w| in L1, D > 16, by norm and "
              "constraint)\n", worst);
}

AttackConfig fab_config(const nlohmann::json& e) {
  AttackConfig cfg;
  cfg.norm = norm_of(e["norm"]);
  cfg.eps = e["eps"];
  cfg.steps = e["params"]["n_iter"];
  cfg.n_target_classes = e["params"]["n_target_classes"];
  cfg.fab_alpha_max = e["params"]["alpha_max"];
  cfg.fab_eta = e["params"]["eta"];
  cfg.fab_beta = e["params"]["beta"];
  cfg.restarts = e["params"]["n_restarts"];
  return cfg;
}

TEST(FabReference, IteratesAndOutputsEqualTheReferenceWithin1e6) {
  ReferenceFixture base = load_reference_fixture();
  FabFixture f = load_fab_fixture();
  Tensor x = base.file.get("x_box"), y = f.file.get("y");
  int iterates = 0, runs = 0;
  for (const nlohmann::json& e : f.spec["fab"]) {
    const std::string name = e["name"];
    SCOPED_TRACE(name);
    AttackConfig cfg = fab_config(e);
    const bool targeted = e["targeted"];
    FAB fab(cfg, targeted);
    double worst_iterate = 0, worst_output = 0;
    for (const nlohmann::json& run : e["single_runs"]) {
      Tensor rows = f.file.get(run["rows"]);
      Tensor xs = ops::index_select(x, rows);
      std::vector<int64_t> yall = y.to_vector<int64_t>(), ys;
      for (int64_t r : rows.to_vector<int64_t>()) ys.push_back(yall[r]);
      const auto m = static_cast<int64_t>(ys.size());
      Tensor target = targeted ? f.file.get(run["targets"]) : Tensor();
      FABRun res = fab.single_run(*base.model, xs, Tensor::from_vector<int64_t>(ys, {m}), target,
                                  std::vector<double>(ys.size(), cfg.eps), false, nullptr, true);
      ASSERT_EQ(static_cast<int>(res.iterates.size()), cfg.steps + 1);
      if (run.contains("iterates")) {
        Tensor ref = f.file.get(run["iterates"]);
        for (int k = 0; k < cfg.steps; ++k) {
          SCOPED_TRACE("iterate " + std::to_string(k));
          expect_close(res.iterates[k], ref.select(k), 0, 1e-6);
          worst_iterate = std::max(worst_iterate, ops::allclose(res.iterates[k], ref.select(k), 0, 0).max_abs_diff);
          ++iterates;
        }
      } else {
        const Tensor last = f.file.get(run["last_iterate"]);
        expect_close(res.iterates[cfg.steps - 1], last, 0, 1e-6);
        worst_iterate = std::max(worst_iterate, ops::allclose(res.iterates[cfg.steps - 1], last, 0, 0).max_abs_diff);
        ++iterates;
      }
      expect_close(res.x_adv, f.file.get(run["adv"]), 0, 1e-6);
      worst_output = std::max(worst_output, ops::allclose(res.x_adv, f.file.get(run["adv"]), 0, 0).max_abs_diff);
      ++runs;
    }
    // The whole attack: our own targets, restarts and eps acceptance.
    AttackResult r = make_attack(targeted ? "fab-t" : "fab", cfg)->perturb(*base.model, x, y);
    expect_close(r.x_adv, f.file.get(e["x_adv"]), 0, 1e-6);
    worst_output = std::max(worst_output, ops::allclose(r.x_adv, f.file.get(e["x_adv"]), 0, 0).max_abs_diff);
    std::printf("%s: max |ours - reference| over iterates %.3g, over outputs %.3g\n", name.c_str(), worst_iterate,
                worst_output);
    EXPECT_EQ(r.success_count(), int(e["broken"]));
    EXPECT_GT(r.success_count(), 0);
    EXPECT_LT(r.success_count(), 8);
  }
  EXPECT_EQ(runs, 8);
  EXPECT_EQ(iterates, 2 * 10 + 6);
}

// Replays a recorded stream: each request must have the size of the reference's next torch.rand.
struct Replay {
  std::vector<double> values;
  std::vector<int64_t> sizes;
  size_t next_value = 0, next_call = 0;
  UniformSource source() {
    return [this](int64_t n) {
      EXPECT_LT(next_call, sizes.size()) << "more draws than the reference made";
      if (next_call < sizes.size()) {
        EXPECT_EQ(n, sizes[next_call]) << "draw " << next_call;
      }
      ++next_call;
      std::vector<double> out(values.begin() + static_cast<int64_t>(next_value),
                              values.begin() + static_cast<int64_t>(std::min(next_value + n, values.size())));
      out.resize(static_cast<size_t>(n), 0.5);
      next_value += static_cast<size_t>(n);
      return out;
    };
  }
};

// The fixture's 3-channel CNN (cnn3): conv 3 -> 4 (3x3, pad 1), ReLU, maxpool 2, flatten, 320 -> 10.
std::shared_ptr<nn::Sequential> load_cnn3(const SafetensorsFile& file) {
  Generator gen(0);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Conv2d>(3, 4, 3, 1, 1, true, gen));
  net->add(std::make_shared<nn::ReLU>());
  net->add(std::make_shared<nn::MaxPool2d>(2));
  net->add(std::make_shared<nn::Flatten>());
  net->add(std::make_shared<nn::Linear>(320, 10, gen));
  net->to(DType::f64);
  nn::NamedTensors weights;
  for (auto& [name, t] : net->state_dict()) weights.emplace_back(name, file.get("cnn3." + name));
  net->load_state_dict(weights);
  net->eval();
  return net;
}

TEST(SquareReference, RunWithTheReferenceStreamEqualsTheReference) {
  ReferenceFixture base = load_reference_fixture();
  FabFixture f = load_fab_fixture();
  std::shared_ptr<nn::Sequential> cnn3 = load_cnn3(f.file);
  int checked = 0;
  for (const nlohmann::json& e : f.spec["square"]) {
    SCOPED_TRACE(std::string(e["name"]));
    const bool three = e["model"] == "cnn3";
    nn::UnaryModule& model = three ? static_cast<nn::UnaryModule&>(*cnn3) : *base.model;
    Tensor x = three ? f.file.get("x3") : base.file.get("x_box"), y = f.file.get(e["labels"]);
    const int64_t n = x.size(0);
    AttackConfig cfg;
    cfg.norm = norm_of(e["norm"]);
    cfg.eps = e["eps"];
    cfg.n_queries = e["params"]["n_queries"];
    cfg.p_init = e["params"]["p_init"];
    Square sq(cfg);
    Replay replay{f.file.get(e["uniforms"]).to_vector<double>(), f.file.get(e["draw_sizes"]).to_vector<int64_t>()};
    SquareRun r = sq.single_run(model, x, y, std::vector<double>(static_cast<size_t>(n), cfg.eps), replay.source());
    EXPECT_EQ(replay.next_call, replay.sizes.size()) << "every recorded draw is used";
    EXPECT_EQ(r.queries.to_vector<int64_t>(), f.file.get(e["n_queries"]).to_vector<int64_t>());
    expect_close(r.x_best, f.file.get(e["x_best"]), 0, 1e-12);
    std::printf("%s: max |ours - reference| over x_best %.3g\n", std::string(e["name"]).c_str(),
                ops::allclose(r.x_best, f.file.get(e["x_best"]), 0, 0).max_abs_diff);
    // perturb's rule: x_best where the model is fooled, else x.
    std::vector<int64_t> pred = ops::argmax(logits_of(model, r.x_best), 1).to_vector<int64_t>();
    std::vector<int64_t> yv = y.to_vector<int64_t>();
    Tensor expected = x.clone();
    int fooled = 0;
    for (int64_t i = 0; i < n; ++i)
      if (pred[i] != yv[i]) {
        expected.select(i).copy_(r.x_best.select(i));
        ++fooled;
      }
    expect_close(expected, f.file.get(e["x_adv"]), 0, 1e-12);
    EXPECT_EQ(fooled, int(e["broken"]));
    EXPECT_GT(fooled, 0);
    EXPECT_LT(fooled, n);
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

TEST(SquareReference, ScheduleAndEtaEqualTheReference) {
  FabFixture f = load_fab_fixture();
  const nlohmann::json& ps = f.spec["p_selection"];
  std::vector<int64_t> its = f.file.get(ps["iterations"]).to_vector<int64_t>();
  struct Variant {
    std::string key;
    bool rescale;
    int n_queries;
  };
  for (const Variant& v : {Variant{"plain5000", false, 5000}, Variant{"rescaled5000", true, 5000},
                           Variant{"rescaled1000", true, 1000}}) {
    std::vector<double> ref = f.file.get(ps[v.key]).to_vector<double>();
    for (size_t k = 0; k < its.size(); ++k)
      EXPECT_EQ(square_p(static_cast<int>(its[k]), v.n_queries, 0.8, v.rescale), ref[k]) << v.key << " it " << its[k];
  }
  for (int s : f.spec["eta"]["sizes"]) {
    std::vector<double> e = square_eta(s), ref = f.file.get("eta.s" + std::to_string(s)).to_vector<double>();
    ASSERT_EQ(e.size(), ref.size());
    for (size_t k = 0; k < e.size(); ++k) EXPECT_NEAR(e[k], ref[k], 1e-14) << "s " << s << " entry " << k;
  }
}

// ---- Square: schedule and windows (the spec's table) ---------------------------------------------
TEST(SquareSchedule, PAndWindowSizesFollowTheTable) {
  const double p0 = 0.8;
  // Iteration ranges of the table and their p.
  const std::vector<std::pair<int, double>> first_of_range = {{0, p0},          {11, p0 / 2},    {51, p0 / 4},
                                                              {201, p0 / 8},    {501, p0 / 16},  {1001, p0 / 32},
                                                              {2001, p0 / 64},  {4001, p0 / 128}, {6001, p0 / 256},
                                                              {8001, p0 / 512}};
  for (auto [it, p] : first_of_range) {
    EXPECT_EQ(square_p(it, 5000, p0), p) << it;
    if (it > 0) {
      EXPECT_EQ(square_p(it - 1, 5000, p0), 2 * p) << it - 1;  // the range's last is the previous p
  }
  EXPECT_EQ(square_p(10, 5000, p0), p0);
    }
  EXPECT_EQ(square_p(50, 5000, p0), p0 / 2);
  EXPECT_EQ(square_p(100000, 5000, p0), p0 / 512);
  // rescale: it -> int(it / n_queries * 10000); 1000 queries: iteration 2 acts as 20.
  EXPECT_EQ(square_p(2, 1000, p0, true), p0 / 2);
  EXPECT_EQ(square_p(2, 1000, p0, false), p0);

  // 32 x 32 over a 5000-query run: s = 29, 20, 14, 10, 7, 5, 4, 3 (Linf).
  const std::vector<int> starts = {0, 11, 51, 201, 501, 1001, 2001, 4001};
  const std::vector<int64_t> linf32 = {29, 20, 14, 10, 7, 5, 4, 3}, l2_32 = {29, 21, 15, 11, 7, 5, 5, 3};
  for (size_t k = 0; k < starts.size(); ++k) {
    const double p = square_p(starts[k], 5000, p0);
    EXPECT_EQ(square_window(Norm::linf, p, 32, 32), linf32[k]) << starts[k];
    EXPECT_EQ(square_window(Norm::l2, p, 32, 32), l2_32[k]) << starts[k];
  }
  // 28 x 28 (MNIST): 25, 18, 13, 9, 6, 4, 3, 2; L2 at least 3 and odd.
  const std::vector<int64_t> linf28 = {25, 18, 13, 9, 6, 4, 3, 2}, l2_28 = {25, 19, 13, 9, 7, 5, 3, 3};
  for (size_t k = 0; k < starts.size(); ++k) {
    const double p = square_p(starts[k], 5000, p0);
    EXPECT_EQ(square_window(Norm::linf, p, 28, 28), linf28[k]) << starts[k];
    EXPECT_EQ(square_window(Norm::l2, p, 28, 28), l2_28[k]) << starts[k];
  }
  // round() is half to even: sqrt(p H W) = 2.5 -> 2, 3.5 -> 4; the side never exceeds min(H, W).
  EXPECT_EQ(square_window(Norm::linf, 0.0625, 10, 10), 2);
  EXPECT_EQ(square_window(Norm::linf, 0.1225, 10, 10), 4);
  EXPECT_EQ(square_window(Norm::linf, 1e-6, 10, 10), 1);
  EXPECT_EQ(square_window(Norm::linf, 1.0, 6, 9), 6);
  EXPECT_EQ(square_window(Norm::l2, 1.0, 4, 9), 4);  // 7 -> capped at min(H, W) = 4 (even)
  EXPECT_EQ(square_window(Norm::linf, square_p(51, 5000, p0), 32, 32, 3), 14);  // (p C H W) / C
}

TEST(SquareSchedule, EtaIsAUnitSplitPattern) {
  for (int64_t s : {1, 2, 3, 5, 8, 29}) {
    std::vector<double> e = square_eta(s);
    double ss = 0;
    for (double v : e) ss += v * v;
    EXPECT_NEAR(ss, 1.0, 1e-12) << s;
    // The top s/2 rows positive, the rest negative.
    for (int64_t r = 0; r < s; ++r)
      for (int64_t c = 0; c < s; ++c) EXPECT_EQ(e[r * s + c] > 0, r < s / 2) << s << " " << r << " " << c;
  }
  // R(2, 5) is symmetric around its centre column and peaks at the centre (row 1, column 2), the
  // rectangle of every ring.
  std::vector<double> e = square_eta(5);
  EXPECT_NEAR(e[0 * 5 + 0], e[0 * 5 + 4], 1e-15);
  EXPECT_GT(e[1 * 5 + 2], e[1 * 5 + 1]);
  EXPECT_GT(e[1 * 5 + 1], e[1 * 5 + 0]);
}

// ---- properties on small models ------------------------------------------------------------------
constexpr int64_t kClasses = 5;

using Case = TinyCase;

// tiny_case, except that row 1 gets a wrong label (a point the attacks must leave alone).
Case make_case(int64_t n, uint64_t seed) {
  Case c = tiny_case(/*cnn=*/true, kClasses, n, seed);
  std::vector<int64_t> y = c.y.to_vector<int64_t>();
  y[1] = (y[1] + 1) % kClasses;
  c.y = Tensor::from_vector<int64_t>(y, {n});
  return c;
}

struct Named {
  std::string attack;
  Norm norm;
  double eps;
};

std::vector<Named> property_attacks() {
  return {{"fab-t", Norm::linf, 0.1}, {"fab-t", Norm::l2, 0.6},   {"fab-t", Norm::l1, 2.0}, {"fab", Norm::linf, 0.1},
          {"fab", Norm::l2, 0.6},     {"square", Norm::linf, 0.1}, {"square", Norm::l2, 0.6}};
}

AttackConfig property_config(const Named& a) {
  AttackConfig cfg;
  cfg.norm = a.norm;
  cfg.eps = a.eps;
  cfg.steps = 10;
  cfg.n_target_classes = 3;
  cfg.n_queries = 60;
  cfg.seed = 5;
  return cfg;
}

TEST(FabSquareProperties, BoundsNormsVerdictAndUntouchedPoints) {
  for (DType dtype : {DType::f64, DType::f32}) {
    Case c = make_case(8, 11);
    c.model->to(dtype);
    c.x = c.x.to(dtype);
    const bool f32 = dtype == DType::f32;
    const Tensor x_copy = c.x.clone();
    const std::vector<double> x0 = c.x.to_vector<double>();
    const std::vector<int64_t> y = c.y.to_vector<int64_t>();
    for (const Named& a : property_attacks()) {
      SCOPED_TRACE(a.attack + " " + norm_name(a.norm) + (f32 ? " f32" : " f64"));
      AttackConfig cfg = property_config(a);
      auto atk = make_attack(a.attack, cfg);
      AttackResult r = atk->perturb(*c.model, c.x, c.y);
      EXPECT_EQ(ops::allclose(c.x, x_copy, 0, 0).max_abs_diff, 0.0) << "input modified";
      std::vector<double> xa = r.x_adv.to_vector<double>(), norms = r.norms.to_vector<double>();
      std::vector<uint8_t> success = r.success.to_vector<uint8_t>();
      std::vector<int64_t> pred = ops::argmax(logits_of(*c.model, r.x_adv), 1).to_vector<int64_t>();
      int broken = 0;
      for (int64_t i = 0; i < 8; ++i) {
        std::vector<double> d(64);
        bool moved = false;
        for (int64_t j = 0; j < 64; ++j) {
          ASSERT_GE(xa[i * 64 + j], 0.0);
          ASSERT_LE(xa[i * 64 + j], 1.0);
          d[j] = xa[i * 64 + j] - x0[i * 64 + j];
          moved = moved || d[j] != 0;
        }
        // (f32: the box and ball bounds hold up to the rounding of x +- eps)
        EXPECT_LE(lpn(d, a.norm), a.eps * (1 + (f32 ? 1e-6 : 1e-12))) << "row " << i;
        EXPECT_NEAR(norms[i], lpn(d, a.norm), f32 ? 1e-6 : 1e-12) << "row " << i;
        EXPECT_EQ(success[i], pred[i] != y[i]) << "success is the model's verdict, row " << i;
        // Points not fooled (and the misclassified row 1, never attacked) come back exactly as x.
        if (!success[i] || i == 1) {
          EXPECT_FALSE(moved) << "row " << i;
        }
        if (success[i] && i != 1) ++broken;
      }
      EXPECT_EQ(success[1], 1);
      EXPECT_GT(broken, 0) << "the budgets are large enough to break some points";
      EXPECT_EQ(r.x_adv.dtype(), dtype);
    }
  }
}

TEST(FabSquareProperties, ZeroEpsReturnsTheInput) {
  Case c = make_case(6, 12);
  for (const Named& a : property_attacks()) {
    SCOPED_TRACE(a.attack + " " + norm_name(a.norm));
    AttackConfig cfg = property_config(a);
    cfg.eps = 0;
    AttackResult r = make_attack(a.attack, cfg)->perturb(*c.model, c.x, c.y);
    EXPECT_EQ(ops::allclose(r.x_adv, c.x, 0, 0).max_abs_diff, 0.0);
    EXPECT_EQ(r.success_count(), 1);  // only row 1, misclassified from the start
  }
}

TEST(FabSquareProperties, FabTUsesNoRandomnessAndRestartsOnlyAdd) {
  Case c = make_case(8, 13);
  AttackConfig cfg = property_config({"fab-t", Norm::l2, 0.3});
  cfg.seed = 1;
  AttackResult a = make_attack("fab-t", cfg)->perturb(*c.model, c.x, c.y);
  cfg.seed = 99;
  AttackResult b = make_attack("fab-t", cfg)->perturb(*c.model, c.x, c.y);
  EXPECT_EQ(ops::allclose(a.x_adv, b.x_adv, 0, 0).max_abs_diff, 0.0) << "restarts 1: no random start";
  // Batch consistency: FAB-T with restarts 1 is deterministic per point.
  AttackResult one = make_attack("fab-t", cfg)->perturb(*c.model, c.x.slice(3, 4), c.y.slice(3, 4));
  expect_close(one.x_adv, a.x_adv.slice(3, 4), 0, 1e-12);
  cfg.restarts = 3;
  AttackResult more = make_attack("fab-t", cfg)->perturb(*c.model, c.x, c.y);
  std::vector<uint8_t> s1 = a.success.to_vector<uint8_t>(), s3 = more.success.to_vector<uint8_t>();
  for (size_t i = 0; i < s1.size(); ++i) EXPECT_GE(s3[i], s1[i]) << i;
}

TEST(FabSquareProperties, SquareIsReproducibleAndCountsQueries) {
  Case c = make_case(8, 14);
  for (Norm p : {Norm::linf, Norm::l2}) {
    AttackConfig cfg = property_config({"square", p, p == Norm::linf ? 0.1 : 0.6});
    AttackResult a = make_attack("square", cfg)->perturb(*c.model, c.x, c.y);
    AttackResult b = make_attack("square", cfg)->perturb(*c.model, c.x, c.y);
    EXPECT_EQ(ops::allclose(a.x_adv, b.x_adv, 0, 0).max_abs_diff, 0.0) << "same seed, same result";
    Square sq(cfg);
    Generator gen(cfg.seed);
    Tensor rows = ops::index_select(c.x, Tensor::from_vector<int64_t>({0, 2, 3, 4}, {4}));
    std::vector<int64_t> yall = c.y.to_vector<int64_t>();
    Tensor ys = Tensor::from_vector<int64_t>({yall[0], yall[2], yall[3], yall[4]}, {4});
    SquareRun r = sq.single_run(*c.model, rows, ys, std::vector<double>(4, cfg.eps), philox_source(gen));
    std::vector<int64_t> q = r.queries.to_vector<int64_t>();
    std::vector<double> m = r.margin.to_vector<double>();
    std::vector<double> check = host_rows(logits_of(*c.model, r.x_best));
    std::vector<int64_t> yv = ys.to_vector<int64_t>();
    for (int64_t i = 0; i < 4; ++i) {
      EXPECT_GE(q[i], 1);
      EXPECT_LE(q[i], cfg.n_queries + 1);
      if (m[i] > 0) {
        EXPECT_EQ(q[i], cfg.n_queries + 1) << "an unfooled point is queried every iteration";
      }
      double other = -INFINITY;
      for (int64_t k = 0; k < kClasses; ++k)
        if (k != yv[i]) other = std::max(other, check[i * kClasses + k]);
      EXPECT_NEAR(m[i], check[i * kClasses + yv[i]] - other, 1e-12) << "the margin belongs to x_best";
    }
  }
}

TEST(FabSquareProperties, SquareStartPoints) {
  // n_queries = 0: only the start. Linf: x + eps times one sign per (image, channel, column);
  // L2: ||delta|| = eps when the box does not clip.
  Case c = make_case(3, 15);
  Tensor x = ops::add_scalar(ops::mul_scalar(c.x, 0.5), 0.25);  // in [0.25, 0.75]
  for (Norm p : {Norm::linf, Norm::l2}) {
    AttackConfig cfg;
    cfg.norm = p;
    cfg.eps = p == Norm::linf ? 0.1 : 0.5;
    cfg.n_queries = 0;
    Square sq(cfg);
    Generator gen(3);
    SquareRun r = sq.single_run(*c.model, x, c.y, std::vector<double>(3, cfg.eps), philox_source(gen));
    std::vector<double> d = host_rows(ops::sub(r.x_best, x));
    for (int64_t i = 0; i < 3; ++i) {
      std::vector<double> row(d.begin() + i * 64, d.begin() + (i + 1) * 64);
      if (p == Norm::l2) {
        EXPECT_NEAR(lpn(row, Norm::l2), cfg.eps, 1e-9);
        continue;
      }
      for (int64_t col = 0; col < 8; ++col)
        for (int64_t rr = 0; rr < 8; ++rr) {
          EXPECT_NEAR(std::fabs(row[rr * 8 + col]), cfg.eps, 1e-12);
          EXPECT_EQ(row[rr * 8 + col] > 0, row[col] > 0) << "one sign per column";
        }
    }
    EXPECT_EQ(r.queries.to_vector<int64_t>(), std::vector<int64_t>(3, 1));
  }
}

// ---- FAB closed form: linear two-class models -----------------------------------------------------
// f(x) = W x + c with two classes: the boundary is the hyperplane <w1 - w0, x> + c1 - c0 = 0, so the
// smallest perturbation has norm |f1 - f0| / ||w1 - w0||_q (q dual to p) when the box does not bind.
// FAB's projection is exact there: it overshoots by eta, steps back by beta, and closes in.
TEST(FabClosedForm, LinearModelDistanceIsReached) {
  Generator gen(77);
  auto net = std::make_shared<nn::Sequential>();
  auto linear = std::make_shared<nn::Linear>(16, 2, gen);
  net->add(std::make_shared<nn::Flatten>());
  net->add(linear);
  net->to(DType::f64);
  std::vector<double> W = linear->weight.data().to_vector<double>();
  std::vector<double> dw(16);
  for (int j = 0; j < 16; ++j) dw[j] = W[16 + j] - W[j];
  // Points in [0.4, 0.6] moved 90% of the way to the boundary (along dw), so that the minimal
  // perturbation of every norm stays inside the box.
  const int64_t n = 4;
  std::vector<double> xv = ops::add_scalar(ops::mul_scalar(rand({n, 1, 4, 4}, gen, DType::f64), 0.2), 0.4)
                               .to_vector<double>();
  const double bias_diff = linear->bias.data().to_vector<double>()[1] - linear->bias.data().to_vector<double>()[0];
  for (int64_t i = 0; i < n; ++i) {
    double f = bias_diff;
    for (int j = 0; j < 16; ++j) f += dw[j] * xv[i * 16 + j];
    const double step = 0.9 * f / dotv(dw, dw);
    for (int j = 0; j < 16; ++j) xv[i * 16 + j] -= step * dw[j];
  }
  Tensor x = Tensor::from_vector<double>(xv, {n, 1, 4, 4});
  std::vector<int64_t> y = ops::argmax(logits_of(*net, x), 1).to_vector<int64_t>();
  Tensor yt = Tensor::from_vector<int64_t>(y, {n});
  Tensor z = logits_of(*net, x);
  std::vector<double> zv = z.to_vector<double>();
  for (Norm p : {Norm::linf, Norm::l2, Norm::l1}) {
    SCOPED_TRACE(norm_name(p));
    const double q = p == Norm::linf ? lpn(dw, Norm::l1) : (p == Norm::l2 ? lpn(dw, Norm::l2) : lpn(dw, Norm::linf));
    AttackConfig cfg;
    cfg.norm = p;
    cfg.eps = 10;
    cfg.steps = 30;
    cfg.n_target_classes = 1;
    FAB fab_t(cfg, true), fab(cfg, false);
    std::vector<int64_t> t(n);
    for (int64_t i = 0; i < n; ++i) t[i] = 1 - y[i];
    FABRun rt = fab_t.single_run(*net, x, yt, Tensor::from_vector<int64_t>(t, {n}), std::vector<double>(n, cfg.eps));
    FABRun ru = fab.single_run(*net, x, yt, Tensor(), std::vector<double>(n, cfg.eps));
    // Two classes: the untargeted hyperplane is FAB-T's (one gradient vs a difference of two).
    expect_close(ru.x_adv, rt.x_adv, 0, 1e-12);
    std::vector<double> best = rt.best_norm.to_vector<double>();
    for (int64_t i = 0; i < n; ++i) {
      const double dist = std::fabs(zv[i * 2 + 1] - zv[i * 2]) / q;
      ASSERT_LT(dist * (p == Norm::l1 ? 1.0 : 1.05), 0.2) << "the box must not bind";
      EXPECT_GE(best[i], dist * (1 - 1e-9)) << "no adversarial closer than the boundary";
      EXPECT_LE(best[i], dist * 1.01) << "within 1% of the minimal distance after 30 iterations";
    }
  }
}

// ---- errors ---------------------------------------------------------------------------------------
TEST(FabSquareErrors, BadConfigurationsAreNamed) {
  AttackConfig cfg;
  cfg.targeted = true;
  expect_error([&] { make_attack("fab-t", cfg); }, "fab-t: config.targeted must be false");
  cfg.targeted = false;
  cfg.fab_alpha_max = 2;
  expect_error([&] { make_attack("fab", cfg); }, "fab_alpha_max must be in [0, 1]");
  cfg.fab_alpha_max = 0.1;
  cfg.norm = Norm::l1;
  expect_error([&] { make_attack("square", cfg); }, "square: the norm must be linf or l2");
  cfg.norm = Norm::linf;
  cfg.p_init = 0;
  expect_error([&] { make_attack("square", cfg); }, "p_init must be in (0, 1]");
  Case c = make_case(2, 16);
  cfg.p_init = 0.8;
  cfg.n_target_classes = kClasses;
  expect_error([&] { make_attack("fab-t", cfg)->perturb(*c.model, c.x, c.y); }, "n_target_classes + 1 = 6 exceeds");
  cfg.norm = Norm::l2;
  expect_error([&] { make_attack("square", cfg)->perturb(*c.model, c.x.reshape({2, 1, 2, 32}), c.y); },
               "at least 5 rows");
  EXPECT_EQ(make_attack("fab-t", AttackConfig())->name(), "fab-t");
  EXPECT_EQ(make_attack("fab", AttackConfig())->name(), "fab");
  EXPECT_EQ(make_attack("square", AttackConfig())->name(), "square");
}

}  // namespace
}  // namespace afd::attacks
