#include "tensor/broadcast.h"

namespace afd {

Strided coalesce(const Shape& out, std::initializer_list<const Tensor*> ops) {
  Strided s;
  int rank = static_cast<int>(out.size());
  std::array<int64_t, 3> running{1, 1, 1};
  std::vector<std::array<int64_t, 3>> strides(rank);
  for (int d = rank - 1; d >= 0; --d) {
    int k = 0;
    for (const Tensor* t : ops) {
      bool broadcast = t->shape()[d] == 1 && out[d] != 1;
      strides[d][k] = broadcast ? 0 : running[k];
      running[k] *= t->shape()[d];
      ++k;
    }
  }
  for (int d = 0; d < rank; ++d) {
    if (out[d] == 1) continue;
    if (!s.sizes.empty()) {
      auto& prev = s.strides.back();
      bool merge = true;
      for (size_t k = 0; k < ops.size(); ++k) merge &= prev[k] == strides[d][k] * out[d];
      if (merge) {
        s.sizes.back() *= out[d];
        prev = strides[d];
        continue;
      }
    }
    s.sizes.push_back(out[d]);
    s.strides.push_back(strides[d]);
  }
  if (s.sizes.empty()) {
    s.sizes.push_back(1);
    s.strides.push_back({1, 1, 1});
  }
  return s;
}

std::vector<ReduceStep> sum_to_plan(const Shape& x, const Shape& target) {
  std::vector<ReduceStep> plan;
  Shape shape = x;
  int rank = static_cast<int>(shape.size());
  int d = rank - 1;
  while (true) {
    while (d >= 0 && !(target[d] == 1 && shape[d] != 1)) --d;
    if (d < 0) break;
    int end = d;  // inclusive run [start, end] of dims to reduce
    while (d >= 0 && (shape[d] == 1 || target[d] == 1)) --d;
    int start = d + 1;
    ReduceStep step{1, 1, 1, shape, true};
    for (int i = 0; i < start; ++i) step.P *= shape[i];
    for (int i = start; i <= end; ++i) step.R *= shape[i];
    for (int i = end + 1; i < rank; ++i) step.Q *= shape[i];
    for (int i = start; i <= end; ++i) step.result[i] = 1;
    for (int i = 0; i < start; ++i) step.last &= !(target[i] == 1 && step.result[i] != 1);
    shape = step.result;
    plan.push_back(step);
    if (step.last) break;
  }
  return plan;
}

}  // namespace afd
