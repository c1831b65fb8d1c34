// Shared test assertions.
#pragma once
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <string>

#include "tensor/ops.h"

namespace afd::testing {

// f() must throw afd::Error whose message contains `fragment` (errors name what is wrong).
inline void expect_error(const std::function<void()>& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
        << "message '" << e.what() << "' lacks '" << fragment << "'";
  }
}

// Elementwise |a - b| <= atol + rtol |b|; on failure, the worst element with both numbers.
inline void expect_close(const Tensor& a, const Tensor& b, double rtol, double atol) {
  ops::CloseReport r = ops::allclose(a, b, rtol, atol);
  EXPECT_TRUE(r.ok) << "worst element " << r.worst_index << ": " << r.worst_a << " vs " << r.worst_b
                    << " (max |diff| " << r.max_abs_diff << ", rtol " << rtol << ", atol " << atol << ")";
}

// XORs the byte `from_end` bytes before the end of file `path` with `mask` (a damaged file that is
// still well-formed: what a checksum must catch).
inline void flip_byte_from_end(const std::string& path, int from_end, char mask) {
  std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(io.good()) << "cannot open " << path;
  io.seekg(-from_end, std::ios::end);
  char c = 0;
  io.get(c);
  io.seekp(-from_end, std::ios::end);
  io.put(static_cast<char>(c ^ mask));
}

}  // namespace afd::testing
