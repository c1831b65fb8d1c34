#include "tensor/rng.h"

#include <algorithm>
#include <numeric>

#include "tensor/backend.h"
#include "tensor/ops.h"

namespace afd {

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;  // round multipliers
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;  // key schedule increments
  auto [c0, c1, c2, c3] = counter;
  auto [k0, k1] = key;
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
  return {c0, c1, c2, c3};
}

std::array<uint32_t, 4> philox4x32(uint64_t seed, uint64_t block) {
  return philox4x32_10({uint32_t(block), uint32_t(block >> 32), 0, 0}, {uint32_t(seed), uint32_t(seed >> 32)});
}

uint64_t Generator::reserve(int64_t n, DType dtype) {
  int64_t per_block = dtype == DType::f32 ? 4 : 2;
  uint64_t start = offset;
  offset += static_cast<uint64_t>((n + per_block - 1) / per_block);
  return start;
}

namespace {
// Allocates the output, reserves its counter blocks and lets `fill(out, seed, start)` draw.
template <class Fill>
Tensor draw(const char* op, const Shape& shape, Generator& gen, DType dtype, Device device, Fill fill) {
  AFD_CHECK(is_floating(dtype), "{}: dtype {} is not f32 or f64", op, dtype_name(dtype));
  Tensor out(shape, dtype, device);
  uint64_t start = gen.reserve(out.numel(), dtype);
  if (out.numel() > 0) {
    count_kernel(Kernel::rng);
    fill(backend(device), out, gen.seed, start);
  }
  return out;
}
}  // namespace

Tensor rand(const Shape& shape, Generator& gen, DType dtype, Device device, double low, double high) {
  return draw("rand", shape, gen, dtype, device, [&](Backend& be, Tensor& out, uint64_t seed, uint64_t start) {
    be.uniform(out, seed, start, low, high);
  });
}

Tensor randn(const Shape& shape, Generator& gen, DType dtype, Device device, double mean, double std) {
  return draw("randn", shape, gen, dtype, device, [&](Backend& be, Tensor& out, uint64_t seed, uint64_t start) {
    be.normal(out, seed, start, mean, std);
  });
}

Tensor bernoulli(const Shape& shape, double p, Generator& gen, DType dtype, Device device) {
  AFD_CHECK(p >= 0 && p <= 1, "bernoulli: probability {} is outside [0, 1]", p);
  Tensor u = rand(shape, gen, dtype, device);
  // u < p  <=>  -u > -p; uses the uniform stream only, so the GPU reproduces it.
  return ops::unary(UnaryOp::gt_scalar, ops::neg(u), -p);
}

Tensor randperm(int64_t n, Generator& gen) {
  AFD_CHECK(n >= 0, "randperm: n = {} is negative", n);
  uint64_t start = gen.reserve(n, DType::f64);
  std::vector<uint64_t> keys(n);
  for (int64_t b = 0; b < (n + 1) / 2; ++b) {
    auto r = philox4x32(gen.seed, start + b);
    for (int k = 0; k < 2 && 2 * b + k < n; ++k) keys[2 * b + k] = uint64_t(r[2 * k]) << 32 | r[2 * k + 1];
  }
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });
  return Tensor::from_vector(perm, {n});
}

}  // namespace afd
