// Index plans shared by the CPU and CUDA backends: broadcasting with coalesced dimensions, and the
// order in which sum_to reduces runs of dimensions.
#pragma once
#include <array>
#include <initializer_list>
#include <vector>

#include "tensor/tensor.h"

namespace afd {

// Broadcast iteration over up to three operands that have the output's rank. Dimensions are
// coalesced where every operand is contiguous across them, so [N, C, H, W] + [1, C, 1, 1]
// becomes rows of H*W elements with the second operand constant along each row.
struct Strided {
  std::vector<int64_t> sizes;                   // coalesced output sizes, innermost last
  std::vector<std::array<int64_t, 3>> strides;  // per dim, per operand (0 = broadcast)
};
Strided coalesce(const Shape& out, std::initializer_list<const Tensor*> ops);

// sum_to(x, target) as a sequence of reductions out[p, q] = sum_r x[p, r, q], one per run of
// consecutive reduced dims, innermost run first; `result` is each step's shape (the last step's
// is target's). Empty when nothing is reduced (x and target hold the same elements).
struct ReduceStep {
  int64_t P, R, Q;
  Shape result;
  bool last;
};
std::vector<ReduceStep> sum_to_plan(const Shape& x, const Shape& target);

}  // namespace afd
