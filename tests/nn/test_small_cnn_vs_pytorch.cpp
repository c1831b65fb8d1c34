// A whole model against PyTorch: the small CNN of tests/fixtures/make_small_cnn.py
//
//   conv2d(1 -> 4, 3x3, pad 1) -> batch_norm -> relu -> max_pool2d(2) -> flatten -> linear(64 -> 3)
//   -> cross_entropy (mean)
//
// rebuilt from afd's Var ops with PyTorch's weights, in train mode (batch statistics; the running
// statistics are updated with momentum 0.1) and in eval mode (running statistics). Logits, loss,
// every parameter gradient, the input gradient and the updated running statistics must match
// PyTorch elementwise, |afd - torch| <= atol + rtol |torch|:
//   f32: rtol 1e-5, atol 1e-6        f64: rtol 1e-10, atol 1e-12
#include <gtest/gtest.h>

#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "nn/safetensors.h"
#include "tensor/ops.h"

using namespace afd;

namespace {

struct FixtureSet {
  const char* file;
  DType dtype;
  double rtol, atol;
};
const FixtureSet kF32{"small_cnn_f32.safetensors", DType::f32, 1e-5, 1e-6};
const FixtureSet kF64{"small_cnn_f64.safetensors", DType::f64, 1e-10, 1e-12};

const char* const kParams[] = {"conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc.weight", "fc.bias"};

SafetensorsFile load(const FixtureSet& p) {
  return read_safetensors(std::string(AFD_SOURCE_DIR) + "/tests/fixtures/" + p.file);
}

// Elementwise |actual - expected| <= atol + rtol |expected|; on failure, the worst element with both.
void expect_close(const std::string& what, const Tensor& actual, const Tensor& expected, const FixtureSet& p) {
  ASSERT_TRUE(actual.defined()) << what << ": afd produced no tensor";
  EXPECT_EQ(actual.dtype(), expected.dtype()) << what;
  ASSERT_EQ(actual.numel(), expected.numel())
      << what << ": afd shape " << shape_str(actual.shape()) << ", torch shape " << shape_str(expected.shape());
  // PyTorch's 0-d loss may be afd's [1] (or the other way round): compare the elements.
  ops::CloseReport r = ops::allclose(actual.reshape(expected.shape()), expected, p.rtol, p.atol);
  std::ostringstream worst;
  worst << std::setprecision(17) << what << " (" << dtype_name(p.dtype) << "): worst element " << r.worst_index
        << ": afd " << r.worst_a << ", torch " << r.worst_b << ", |diff| " << std::abs(r.worst_a - r.worst_b)
        << " > atol + rtol |torch| = " << p.atol + p.rtol * std::abs(r.worst_b);
  EXPECT_TRUE(r.ok) << worst.str();
}

// Runs the network on the fixture's input and parameters, forward and backward, and compares with
// the fixture's "<mode>." tensors.
void check_against_pytorch(const FixtureSet& p, bool training) {
  SafetensorsFile f = load(p);
  const std::string mode = training ? "train." : "eval.";

  // Leaves: the input and the parameters, all requiring gradients; the running statistics are
  // plain tensors that train-mode batch_norm updates in place.
  Var x(f.get("input").clone(), true);
  std::map<std::string, Var> params;
  for (const char* name : kParams) {
    ASSERT_EQ(f.get(name).dtype(), p.dtype) << name;
    params[name] = Var(f.get(name).clone(), true);
  }
  Tensor running_mean = f.get("bn.running_mean").clone();
  Tensor running_var = f.get("bn.running_var").clone();
  const Tensor& labels = f.get("labels");

  Var h = conv2d(x, params["conv.weight"], params["conv.bias"], /*stride=*/1, /*padding=*/1);  // [5, 4, 8, 8]
  h = batch_norm(h, params["bn.weight"], params["bn.bias"], running_mean, running_var, training,
                 /*momentum=*/0.1, /*eps=*/1e-5);
  h = max_pool2d(relu(h), /*kernel=*/2, /*stride=*/2);                                        // [5, 4, 4, 4]
  Var logits = linear(flatten(h, 1), params["fc.weight"], params["fc.bias"]);                 // [5, 3]
  Var loss = cross_entropy(logits, labels, Reduction::mean);
  loss.backward();

  expect_close(mode + "logits", logits.data(), f.get(mode + "logits"), p);
  expect_close(mode + "loss", loss.data(), f.get(mode + "loss"), p);
  for (const char* name : kParams)
    expect_close(mode + "grad." + name, params[name].grad(), f.get(mode + "grad." + name), p);
  expect_close(mode + "grad.input", x.grad(), f.get(mode + "grad.input"), p);
  if (training) {
    expect_close("train.bn.running_mean", running_mean, f.get("train.bn.running_mean"), p);
    expect_close("train.bn.running_var", running_var, f.get("train.bn.running_var"), p);
  } else {
    // Eval mode leaves the running statistics alone.
    EXPECT_EQ(running_mean.to_vector<double>(), f.get("bn.running_mean").to_vector<double>());
    EXPECT_EQ(running_var.to_vector<double>(), f.get("bn.running_var").to_vector<double>());
  }
}

}  // namespace

TEST(SmallCnnVsPytorch, FixturesHoldWhatTheTestNeeds) {
  for (const FixtureSet& p : {kF32, kF64}) {
    SafetensorsFile f = load(p);
    EXPECT_EQ(f.get("input").dtype(), p.dtype);
    EXPECT_EQ(f.get("labels").dtype(), DType::i64);
    // The running statistics really move, and gamma/beta are not the identity.
    EXPECT_FALSE(ops::allclose(f.get("bn.running_mean"), f.get("train.bn.running_mean"), 0, 1e-3).ok);
    EXPECT_FALSE(ops::allclose(f.get("bn.weight"), Tensor::ones({4}, p.dtype), 0, 1e-3).ok);
    EXPECT_FALSE(ops::allclose(f.get("bn.bias"), Tensor::zeros({4}, p.dtype), 0, 1e-3).ok);
  }
}

TEST(SmallCnnVsPytorch, TrainModeF32) { check_against_pytorch(kF32, /*training=*/true); }
TEST(SmallCnnVsPytorch, TrainModeF64) { check_against_pytorch(kF64, /*training=*/true); }
TEST(SmallCnnVsPytorch, EvalModeF32) { check_against_pytorch(kF32, /*training=*/false); }
TEST(SmallCnnVsPytorch, EvalModeF64) { check_against_pytorch(kF64, /*training=*/false); }
