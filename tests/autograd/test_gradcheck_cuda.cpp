// The float64 gradient checks of tests/autograd/test_gradcheck.cpp with the inputs on cuda:0: every
// case of gradcheck_cases.h (each registry op and composed function), the double backward of the
// marked ops, and a tanh/matmul composition. Skipped, with the reason, where no GPU is visible.
#include <gtest/gtest.h>

#include "tests/autograd/gradcheck_cases.h"
#include "tests/support/checks.h"

using namespace afd;
using afd::testing::all_cases;
using afd::testing::Case;

namespace {

const Device kCuda = Device::cuda(0);

std::vector<Tensor> on_cuda(const std::vector<Tensor>& inputs) {
  std::vector<Tensor> moved;
  for (const Tensor& t : inputs) moved.push_back(t.to(kCuda));
  return moved;
}

class GradcheckCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!backend_available(kCuda)) GTEST_SKIP() << "no CUDA device is visible (or built without CUDA)";
  }
};

}  // namespace

// gradcheck itself: a perturbation must reach the device copy, and the result must be the CPU's.
TEST_F(GradcheckCuda, PerturbsDeviceInputsAndMatchesTheCpu) {
  Case c{"tanh*mul", [](const std::vector<Var>& v) { return tanh(v[0]) * v[1]; },
         {afd::testing::uniform({2, 3}, 1), afd::testing::uniform({3}, 2)}};
  GradcheckResult cpu = gradcheck(c.f, c.inputs);
  GradcheckResult cuda = gradcheck(c.f, on_cuda(c.inputs));
  EXPECT_TRUE(cuda.ok) << cuda.message;
  EXPECT_EQ(cuda.entries, cpu.entries);
  EXPECT_NEAR(cuda.max_abs_error, cpu.max_abs_error, 1e-8);
  // A wrong backward is still caught on the device.
  set_backward_scale_for_testing(Op::tanh, 1.01);
  GradcheckResult wrong = gradcheck(c.f, on_cuda(c.inputs));
  set_backward_scale_for_testing(Op::tanh, 1.0);
  EXPECT_FALSE(wrong.ok) << "a 1% error in tanh's backward went unnoticed on cuda:0";
}

// Each unary op, the broadcasting binary ops, matmul, conv2d (bias, stride 2, pad 1), batch norm
// in train and eval mode, both poolings, softmax, log_softmax, cross_entropy, gather, sum/mean
// over dims, ...: every case of the CPU suite.
TEST_F(GradcheckCuda, EveryOpPassesInFloat64) {
  for (const Case& c : all_cases(kCuda)) {
    GradcheckResult r = gradcheck(c.f, on_cuda(c.inputs));
    EXPECT_TRUE(r.ok) << c.op << " on cuda:0: " << r.message;
    EXPECT_GT(r.entries, 0) << c.op;
  }
}

TEST_F(GradcheckCuda, DoubleBackwardOfMarkedOps) {
  int checked = 0;
  for (const Case& c : all_cases(kCuda)) {
    if (!afd::testing::has_double_backward(c.op)) continue;
    GradcheckResult r = gradgradcheck(c.f, on_cuda(c.inputs));
    EXPECT_TRUE(r.ok) << c.op << " (double backward) on cuda:0: " << r.message;
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

// A small network layer: tanh(x w) w2, differentiated twice.
TEST_F(GradcheckCuda, DoubleBackwardOfTanhMatmul) {
  auto f = [](const std::vector<Var>& v) { return matmul(tanh(matmul(v[0], v[1])), v[2], false, true); };
  std::vector<Tensor> inputs = {afd::testing::uniform({3, 4}, 70), afd::testing::uniform({4, 5}, 71),
                                afd::testing::uniform({2, 5}, 72)};
  GradcheckResult first = gradcheck(f, on_cuda(inputs));
  EXPECT_TRUE(first.ok) << first.message;
  GradcheckResult second = gradgradcheck(f, on_cuda(inputs));
  EXPECT_TRUE(second.ok) << second.message;
}

// A seed gradient on another device than the output is refused by name, for backward() and grad()
// (a CPU seed would otherwise become a CUDA leaf's .grad, or fail deep inside a backward op).
TEST_F(GradcheckCuda, ASeedOnAnotherDeviceIsRefused) {
  Var x(Tensor::ones({2, 3}, DType::f64, kCuda), /*requires_grad=*/true);
  Var y = tanh(x);
  const Tensor cpu_seed = Tensor::ones({2, 3}, DType::f64);
  afd::testing::expect_error([&] { y.backward(cpu_seed, /*retain_graph=*/true); }, "does not match output");
  afd::testing::expect_error([&] { grad({y}, {x}, {cpu_seed}); }, "does not match output");
}
