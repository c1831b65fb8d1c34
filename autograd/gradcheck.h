// gradcheck: compares the tape's Jacobian with float64 central differences.
//
//   auto r = gradcheck([](const std::vector<Var>& in) { return tanh(in[0]) * in[1]; },
//                      {Tensor::from_vector<double>({0.1, 0.2}, {2}),
//                       Tensor::from_vector<double>({3.0, 4.0}, {2})});
//   EXPECT_TRUE(r.ok) << r.message;
//
// For every input element j: numeric column = (f(x + eps e_j) - f(x - eps e_j)) / (2 eps).
// For every output element k: analytic row = grad(f_k, inputs). Each Jacobian entry must satisfy
// |analytic - numeric| <= atol + rtol |numeric| (PyTorch's defaults below).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "autograd/var.h"

namespace afd {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
};

struct GradcheckResult {
  bool ok = true;
  std::string message;     // the worst entry: input, element, output, both values
  double max_abs_error = 0;
  int64_t entries = 0;     // Jacobian entries compared
};

using VarFunction = std::function<Var(const std::vector<Var>&)>;

// Inputs must be f64; each becomes a leaf that requires a gradient. They may live on a GPU: the
// perturbation is written into a host copy that is moved to the input's device before each call of
// f (so f must keep its constants on that device too).
GradcheckResult gradcheck(const VarFunction& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

// Checks the gradient of the gradient: the function x -> sum(seed * grad(f(x), x)) with
// create_graph, by gradcheck. Only for ops whose backward is differentiable.
GradcheckResult gradgradcheck(const VarFunction& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options = {});

}  // namespace afd
