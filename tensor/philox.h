// Philox 4x32-10 (Salmon et al., SC'11) as one inline function that both the CPU (tensor/rng.cpp)
// and the CUDA kernels (tensor/cuda/rng.cu) compile, so both devices draw the same bits.
// tensor/rng.h documents how the project lays out counters and keys.
#pragma once
#include <cstdint>

#include "tensor/host_device.h"

namespace afd {

struct PhiloxBlock {
  uint32_t v[4];
};

// Ten rounds on the 128-bit counter (c0, c1, c2, c3) under the 64-bit key (k0, k1).
AFD_HOST_DEVICE inline PhiloxBlock philox_rounds(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                                 uint32_t k0, uint32_t k1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;   // round multipliers
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;  // key schedule increments
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(kMul0) * c0, p1 = uint64_t(kMul1) * c2;
    uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return {{c0, c1, c2, c3}};
}

// The project's layout: counter (lo32(block), hi32(block), 0, 0), key (lo32(seed), hi32(seed)).
AFD_HOST_DEVICE inline PhiloxBlock philox_block(uint64_t seed, uint64_t block) {
  return philox_rounds(uint32_t(block), uint32_t(block >> 32), 0, 0, uint32_t(seed), uint32_t(seed >> 32));
}

// 53 random bits from two lanes as a double in [0, 1).
AFD_HOST_DEVICE inline double philox_u53(uint32_t hi, uint32_t lo) {
  return static_cast<double>((uint64_t(hi) << 32 | lo) >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace afd
