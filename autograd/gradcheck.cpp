#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/ops.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

namespace afd {

namespace {
Tensor evaluate(const VarFunction& f, const std::vector<Tensor>& inputs) {
  NoGradGuard no_grad;
  std::vector<Var> vars;
  for (const Tensor& t : inputs) vars.emplace_back(t);
  return f(vars).data().clone();
}
}  // namespace

GradcheckResult gradcheck(const VarFunction& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  // x: the inputs f sees, each on its own device. host: the copies the perturbation writes into;
  // on the CPU they are x itself (shared storage), on a GPU a host copy that is sent back to the
  // device after every write.
  std::vector<Tensor> x, host;
  for (const Tensor& t : inputs) {
    AFD_CHECK(t.dtype() == DType::f64, "gradcheck: inputs must be f64, got {}", t.str());
    x.push_back(t.clone());
    host.push_back(t.device().is_cpu() ? x.back() : t.to(Device::cpu()));
  }
  auto set_element = [&](size_t i, int64_t j, double value) {
    host[i].data<double>()[j] = value;
    if (!x[i].device().is_cpu()) x[i] = host[i].to(inputs[i].device());
  };
  // Numeric Jacobian, one column per input element.
  int64_t out_numel = evaluate(f, x).numel();
  std::vector<std::vector<std::vector<double>>> numeric(x.size());  // [input][element][output]
  for (size_t i = 0; i < x.size(); ++i) {
    const double* p = host[i].data<double>();
    for (int64_t j = 0; j < x[i].numel(); ++j) {
      double saved = p[j];
      set_element(i, j, saved + options.eps);
      std::vector<double> plus = evaluate(f, x).to_vector<double>();
      set_element(i, j, saved - options.eps);
      std::vector<double> minus = evaluate(f, x).to_vector<double>();
      set_element(i, j, saved);
      std::vector<double> col(out_numel);
      for (int64_t k = 0; k < out_numel; ++k) col[k] = (plus[k] - minus[k]) / (2 * options.eps);
      numeric[i].push_back(std::move(col));
    }
  }
  // Analytic Jacobian, one row per output element, from one recorded tape.
  std::vector<Var> vars;
  for (const Tensor& t : x) vars.emplace_back(t, true);
  Var out = f(vars);
  // An output with no tape (for example the constant gradient of a linear op in gradgradcheck)
  // has an all-zero analytic Jacobian.
  GradcheckResult r;
  double worst = -1;
  for (int64_t k = 0; k < out_numel; ++k) {
    Tensor seed = Tensor::zeros(out.shape(), DType::f64);
    seed.data<double>()[k] = 1;
    seed = seed.to(out.device());  // no copy on the CPU
    std::vector<Var> g = out.requires_grad() ? grad({out}, vars, {seed}, /*retain_graph=*/true)
                                             : std::vector<Var>(vars.size());
    for (size_t i = 0; i < x.size(); ++i) {
      std::vector<double> row = g[i].defined() ? g[i].data().to_vector<double>()
                                               : std::vector<double>(x[i].numel(), 0.0);
      for (int64_t j = 0; j < x[i].numel(); ++j) {
        double a = row[j], n = numeric[i][j][k], diff = std::fabs(a - n);
        double excess = diff - (options.atol + options.rtol * std::fabs(n));
        ++r.entries;
        r.max_abs_error = std::max(r.max_abs_error, diff);
        if (!(excess <= 0)) r.ok = false;
        if (!(excess <= worst)) {
          worst = std::isnan(excess) ? INFINITY : excess;
          r.message = fmt::format("input {} element {} output {}: analytic {:.10g} numeric {:.10g} "
                                  "(|diff| {:.3g}, allowed {:.3g})",
                                  i, j, k, a, n, diff, options.atol + options.rtol * std::fabs(n));
        }
      }
    }
  }
  if (r.ok) r.message = fmt::format("{} Jacobian entries within tolerance (max |diff| {:.3g})", r.entries, r.max_abs_error);
  return r;
}

GradcheckResult gradgradcheck(const VarFunction& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options) {
  // A fixed random seed direction makes the first-order gradient a vector function of x.
  Generator gen(1234);
  Tensor seed;
  {
    NoGradGuard no_grad;
    std::vector<Var> vars;
    for (const Tensor& t : inputs) vars.emplace_back(t);
    Var y = f(vars);
    seed = randn(y.shape(), gen, DType::f64).to(y.device());  // drawn on the CPU on every device
  }
  VarFunction first_order = [&](const std::vector<Var>& in) {
    // Differentiable result in the analytic pass (grad mode on); plain numbers in the numeric pass.
    bool create_graph = grad_mode_enabled();
    GradModeGuard record_first_order(true);
    std::vector<Var> leaves;
    for (const Var& v : in) leaves.push_back(v.requires_grad() ? v : Var(v.data(), true));
    Var y = f(leaves);
    std::vector<Var> g = grad({y}, leaves, {seed}, /*retain_graph=*/true, /*create_graph=*/create_graph);
    std::vector<Var> flat;
    for (size_t i = 0; i < g.size(); ++i)
      flat.push_back(g[i].defined() ? reshape(g[i], {-1}) : Var(Tensor::zeros({leaves[i].numel()}, DType::f64, leaves[i].device())));
    return cat(flat, 0);
  };
  return gradcheck(first_order, inputs, options);
}

}  // namespace afd
