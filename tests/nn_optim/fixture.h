// Shared helpers of the nn_optim suite: loading the PyTorch fixtures of
// tests/fixtures/optim/make_optim_fixtures.py and comparing with both numbers in the message.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <iomanip>
#include <sstream>
#include <string>

#include "nn/safetensors.h"
#include "tensor/ops.h"

namespace afd::optim_test {

inline SafetensorsFile load_fixture(const std::string& file) {
  return read_safetensors(std::string(AFD_SOURCE_DIR) + "/tests/fixtures/optim/" + file);
}

// Elementwise |actual - expected| <= atol + rtol |expected| (PyTorch's 0-d values may be afd's [1]
// or the other way round: the elements are compared); on failure, the worst element with both.
inline void expect_matches(const std::string& what, const Tensor& actual, const Tensor& expected, double rtol,
                           double atol) {
  ASSERT_TRUE(actual.defined()) << what << ": afd produced no tensor";
  ASSERT_EQ(actual.dtype(), expected.dtype()) << what;
  ASSERT_EQ(actual.numel(), expected.numel())
      << what << ": afd shape " << shape_str(actual.shape()) << ", torch shape " << shape_str(expected.shape());
  ops::CloseReport r = ops::allclose(actual.reshape(expected.shape()), expected, rtol, atol);
  std::ostringstream msg;
  msg << std::setprecision(17) << what << ": worst element " << r.worst_index << ": afd " << r.worst_a
      << ", torch " << r.worst_b << ", |diff| " << std::abs(r.worst_a - r.worst_b)
      << " > atol + rtol |torch| = " << atol + rtol * std::abs(r.worst_b);
  EXPECT_TRUE(r.ok) << msg.str();
}

// The largest |actual - expected| (for reporting agreement figures).
inline double max_abs_diff(const Tensor& actual, const Tensor& expected) {
  return ops::allclose(actual.reshape(expected.shape()), expected, 0, 0).max_abs_diff;
}

}  // namespace afd::optim_test
