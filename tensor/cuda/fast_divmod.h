// Division by a divisor fixed at launch time, with a multiply and a shift instead of a division
// (Granlund and Montgomery, "Division by invariant integers using multiplication", PLDI 1994).
//
// Elementwise kernels turn a flat index into coordinates (i / size, i % size per dim). A 64-bit
// integer division is a long instruction sequence on a GPU, so a memory-bound kernel with a
// few of them per element becomes bound by that arithmetic instead. For a divisor d >= 1 with
// l = ceil(log2 d) and m = floor(2^32 (2^l - d) / d) + 1 (which fits 32 bits), every 32-bit n
// has n / d = (floor(m n / 2^32) + n) / 2^l (the sum in 64 bits, so no n overflows it).
//
// A plain header, compiled by nvcc for the kernels and by the C++ compiler for the host side that
// fills it (and for its test, tests/tensor/test_cuda.cpp: FastDivmod.*).
#pragma once
#include <cstdint>

#include "tensor/host_device.h"

namespace afd::cuda {

struct FastDivmod {
  uint32_t divisor = 1, multiplier = 1, shift = 0;

  FastDivmod() = default;
  explicit FastDivmod(uint32_t d) : divisor(d) {  // d >= 1 (callers pass sizes of non-empty tensors)
    while (shift < 32 && (uint64_t(1) << shift) < d) ++shift;
    // (2^l - d) < d <= 2^32, so the product stays below 2^63.
    multiplier = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << shift) - d)) / d + 1);
  }

  AFD_HOST_DEVICE uint32_t div(uint32_t n) const {
    const uint64_t high = (uint64_t(n) * multiplier) >> 32;  // mul.hi on the GPU
    return static_cast<uint32_t>((high + n) >> shift);
  }
  // q = n / divisor, r = n % divisor
  AFD_HOST_DEVICE void divmod(uint32_t n, uint32_t& q, uint32_t& r) const {
    q = div(n);
    r = n - q * divisor;
  }
};

}  // namespace afd::cuda
