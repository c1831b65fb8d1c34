#include "afd/data/md5.h"

#include <array>
#include <cmath>
#include <cstring>

#include "tensor/error.h"

namespace afd::data {

namespace {

// Per-round left rotations and the sine table K[i] = floor(2^32 |sin(i + 1)|) (RFC 1321, 3.4).
constexpr std::array<uint32_t, 64> kShift = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                             5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                             4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                             6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

const std::array<uint32_t, 64>& sine_table() {
  static const std::array<uint32_t, 64> k = [] {
    std::array<uint32_t, 64> t{};
    for (int i = 0; i < 64; ++i) t[size_t(i)] = uint32_t(std::floor(std::fabs(std::sin(double(i + 1))) * 4294967296.0));
    return t;
  }();
  return k;
}

uint32_t rotl(uint32_t x, uint32_t s) { return (x << s) | (x >> (32 - s)); }

// One 64-byte block into the state (a, b, c, d).
void md5_block(std::array<uint32_t, 4>& state, const uint8_t* block) {
  const auto& K = sine_table();
  uint32_t m[16];
  for (int i = 0; i < 16; ++i)
    m[i] = uint32_t(block[4 * i]) | uint32_t(block[4 * i + 1]) << 8 | uint32_t(block[4 * i + 2]) << 16 |
           uint32_t(block[4 * i + 3]) << 24;
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  for (uint32_t i = 0; i < 64; ++i) {
    uint32_t f, g;
    if (i < 16) {
      f = (b & c) | (~b & d), g = i;
    } else if (i < 32) {
      f = (d & b) | (~d & c), g = (5 * i + 1) % 16;
    } else if (i < 48) {
      f = b ^ c ^ d, g = (3 * i + 5) % 16;
    } else {
      f = c ^ (b | ~d), g = (7 * i) % 16;
    }
    uint32_t next = b + rotl(a + f + K[i] + m[g], kShift[i]);
    a = d, d = c, c = b, b = next;
  }
  state[0] += a, state[1] += b, state[2] += c, state[3] += d;
}

}  // namespace

std::string md5_hex(std::span<const uint8_t> bytes) {
  std::array<uint32_t, 4> state = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};
  size_t full = bytes.size() / 64 * 64;
  for (size_t at = 0; at < full; at += 64) md5_block(state, bytes.data() + at);
  // Padding: 0x80, zeros to 56 mod 64, then the bit length as a little-endian u64.
  uint8_t tail[128] = {};
  size_t rest = bytes.size() - full;
  if (rest > 0) std::memcpy(tail, bytes.data() + full, rest);
  tail[rest] = 0x80;
  size_t tail_len = rest < 56 ? 64 : 128;
  uint64_t bits = uint64_t(bytes.size()) * 8;
  for (int i = 0; i < 8; ++i) tail[tail_len - 8 + size_t(i)] = uint8_t(bits >> (8 * i));
  for (size_t at = 0; at < tail_len; at += 64) md5_block(state, tail + at);
  std::string hex;
  for (uint32_t word : state)
    for (int i = 0; i < 4; ++i) hex += fmt::format("{:02x}", (word >> (8 * i)) & 0xff);
  return hex;
}

void check_md5(const std::string& name, std::span<const uint8_t> bytes, const std::string& expected_hex) {
  std::string got = md5_hex(bytes);
  AFD_CHECK(got == expected_hex, "{}: md5 {} (expected {}; corrupt or different file)", name, got, expected_hex);
}

}  // namespace afd::data
