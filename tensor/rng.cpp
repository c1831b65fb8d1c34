#include "tensor/rng.h"

#include <algorithm>
#include <numeric>

#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/philox.h"

namespace afd {

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key) {
  PhiloxBlock r = philox_rounds(counter[0], counter[1], counter[2], counter[3], key[0], key[1]);
  return {r.v[0], r.v[1], r.v[2], r.v[3]};
}

std::array<uint32_t, 4> philox4x32(uint64_t seed, uint64_t block) {
  PhiloxBlock r = philox_block(seed, block);
  return {r.v[0], r.v[1], r.v[2], r.v[3]};
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
