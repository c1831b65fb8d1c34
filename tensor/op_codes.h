// The elementwise op codes of the backend interface (tensor/backend.h), and its other constants. A
// header of its own, with no other dependency, so the CUDA kernels (compiled by nvcc, which cannot
// take the fmt headers) switch on the same enumerators as the C++ side.
#pragma once
#include <cstdint>

namespace afd {

enum class UnaryOp : uint8_t {
  neg, exp, log, sqrt, abs, sign, relu, sigmoid, tanh, atanh,
  softplus,     // log(1 + exp(a x)) / a, linear where a x > b (PyTorch's beta = a, threshold = b)
  leaky_relu,   // x > 0 ? x : a x
  clamp,        // min(max(x, a), b)
  pow,          // x^a
  affine,       // a x + b
  gt_scalar,    // x > a ? 1 : 0
  in_range,     // a <= x <= b ? 1 : 0 (clamp's derivative mask, inclusive as in PyTorch)
  leaky_slope,  // x > 0 ? 1 : a     (leaky_relu's derivative)
  reciprocal,   // 1 / x
};

enum class BinaryOp : uint8_t {
  add, sub, mul, div, maximum, minimum, pow, gt, ge, lt, le, eq,
  relu_grad,  // y > 0 ? x : 0  (ReLU's backward in one pass: the gradient x where the input y is positive)
  add_relu,   // relu(x + y)    (a residual sum and its ReLU in one pass; NaN stays NaN as in relu)
};

// An SGD step (Backend::sgd_step) updates up to this many parameters in one launch on a GPU (the
// CUDA kernel takes their pointers as arguments); the op layer counts launches by it.
constexpr int kSgdTensorsPerLaunch = 32;

}  // namespace afd
