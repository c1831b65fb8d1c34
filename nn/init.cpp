#include "nn/init.h"

#include <cmath>

#include "tensor/error.h"

namespace afd::nn::init {

std::pair<int64_t, int64_t> fans(const Shape& shape) {
  AFD_CHECK(shape.size() >= 2, "init: fan_in/fan_out need a weight of at least 2 dims, got {}", shape_str(shape));
  int64_t receptive = 1;
  for (size_t i = 2; i < shape.size(); ++i) receptive *= shape[i];
  return {shape[1] * receptive, shape[0] * receptive};
}

Tensor uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype) {
  return rand(shape, gen, dtype, Device::cpu(), low, high);
}

Tensor normal(const Shape& shape, double mean, double std, Generator& gen, DType dtype) {
  return randn(shape, gen, dtype, Device::cpu(), mean, std);
}

Tensor kaiming_uniform(const Shape& shape, double a, Generator& gen, DType dtype) {
  double gain = std::sqrt(2.0 / (1.0 + a * a));
  double bound = gain * std::sqrt(3.0 / static_cast<double>(fans(shape).first));
  return uniform(shape, -bound, bound, gen, dtype);
}

Tensor bias_uniform(int64_t n, int64_t fan_in, Generator& gen, DType dtype) {
  AFD_CHECK(fan_in > 0, "init: bias_uniform needs fan_in > 0, got {}", fan_in);
  double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return uniform({n}, -bound, bound, gen, dtype);
}

Tensor xavier_uniform(const Shape& shape, double gain, Generator& gen, DType dtype) {
  auto [fan_in, fan_out] = fans(shape);
  double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  return uniform(shape, -bound, bound, gen, dtype);
}

}  // namespace afd::nn::init
