// The registry of differentiable ops: every op that records a node on the tape has an entry here,
// and recording requires one, so the list cannot fall behind the code. tests/autograd enumerates
// it and fails when an op has no gradient check (and, in its perturbation mode, when a check
// would not notice a wrong backward).
#pragma once
#include <array>
#include <cstdint>
#include <string_view>

namespace afd {

// X(name, double_backward): double_backward says whether the op's backward is itself written
// with differentiable ops (so grad(..., create_graph = true) can be differentiated again).
#define AFD_AUTOGRAD_OPS(X)                                                                      \
  X(add, true) X(sub, true) X(mul, true) X(div, true) X(affine, true) X(neg, true)               \
  X(exp, true) X(log, true) X(sqrt, true) X(pow, true) X(abs, true) X(clamp, true)               \
  X(maximum, true) X(minimum, true) X(where, true) X(relu, true) X(relu_grad, true)              \
  X(leaky_relu, true) X(add_relu, true)                                                          \
  X(sigmoid, true) X(tanh, true) X(atanh, true) X(softplus, true) X(reshape, true)               \
  X(expand, true) X(sum_to, true) X(matmul, true) X(log_softmax, true) X(softmax, true)          \
  X(cross_entropy, true) X(cross_entropy_grad, true) X(batch_norm_eval, true)                    \
  X(bn_fold_weight, true) X(bn_fold_shift, true) X(all_reduce_sum, true) X(max_dim, false)       \
  X(gather, false) X(conv2d, false) X(batch_norm, false) X(max_pool2d, false)                   \
  X(avg_pool2d, false) X(index_select, false) X(cat, false)

enum class Op : uint8_t {
#define AFD_OP_ENUM(name, dbl) name,
  AFD_AUTOGRAD_OPS(AFD_OP_ENUM)
#undef AFD_OP_ENUM
      count_
};

struct OpInfo {
  std::string_view name;
  bool double_backward;
};

inline constexpr std::array<OpInfo, static_cast<size_t>(Op::count_)> kOpInfo = {{
#define AFD_OP_INFO(name, dbl) {#name, dbl},
    AFD_AUTOGRAD_OPS(AFD_OP_INFO)
#undef AFD_OP_INFO
}};

inline constexpr const OpInfo& op_info(Op op) { return kOpInfo[static_cast<size_t>(op)]; }

// Differentiable functions built from the ops above (no node of their own); they have gradient
// checks too, listed by the same test.
inline constexpr std::array<std::string_view, 8> kComposedOps = {
    "sum", "mean", "linear", "l2_normalize", "kl_div", "global_avg_pool", "flatten", "sync_batch_norm"};

}  // namespace afd
