// Counter-based random numbers: Philox 4x32-10 (Salmon et al., SC'11, "Parallel random numbers:
// as easy as 1, 2, 3").
//
// A stream is a pure function of (seed, counter): philox(key = seed, counter) -> 4 x u32. Nothing
// is stateful inside the kernel, so a GPU thread computes element i with no communication and the
// CPU and CUDA backends produce the same numbers.
//
// Counter layout for one draw that starts at counter `offset` (a Generator advances offset by the
// number of 128-bit blocks each draw consumes, so consecutive draws never overlap):
//   block b = offset + j is the 128-bit counter (lo32(b), hi32(b), 0, 0), giving u32 lanes 0..3.
//   f32 uniform   element i: block i / 4, lane i % 4;  u = (lane >> 8) * 2^-24      in [0, 1)
//   f64 uniform   element i: block i / 2, lanes 2(i%2), 2(i%2)+1 as one u64; u = (u64 >> 11) 2^-53
//   f32 normal    element i: block i / 4; Box-Muller on lanes (0,1) -> elements 4j, 4j+1 and
//                 (2,3) -> 4j+2, 4j+3, with u1 = (lane + 1) 2^-32 in (0, 1], u2 = lane 2^-32
//   f64 normal    element i: block i / 2; lanes (0,1) -> u1 (53 bits, in (0,1]), (2,3) -> u2
//   permutation   element i: block i / 2, a 64-bit key per element; sort indices by key.
// The high 32 bits of the key come from seed >> 32, the low from seed.
#pragma once
#include <array>
#include <cstdint>

#include "tensor/tensor.h"

namespace afd {

// One Philox 4x32-10 evaluation of a full 128-bit counter under a 64-bit key.
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);
// The project's layout: counter (lo32(block), hi32(block), 0, 0), key (lo32(seed), hi32(seed)).
std::array<uint32_t, 4> philox4x32(uint64_t seed, uint64_t block);

// A seed and a running counter offset. Copy it to replay a stream.
struct Generator {
  uint64_t seed = 0;
  uint64_t offset = 0;
  explicit Generator(uint64_t s = 0, uint64_t o = 0) : seed(s), offset(o) {}
  // Reserves the blocks a draw of n elements of `dtype` uses and returns the draw's start offset.
  uint64_t reserve(int64_t n, DType dtype);
};

Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::f32,
            Device device = Device::cpu(), double low = 0, double high = 1);
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::f32,
             Device device = Device::cpu(), double mean = 0, double std = 1);
// 1 with probability p, else 0 (in `dtype`).
Tensor bernoulli(const Shape& shape, double p, Generator& gen, DType dtype = DType::f32,
                 Device device = Device::cpu());
// A random permutation of 0..n-1 (i64, on the CPU).
Tensor randperm(int64_t n, Generator& gen);

}  // namespace afd
