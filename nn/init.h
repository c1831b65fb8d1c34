// Parameter initialisation as PyTorch does it, drawn from the project's Philox Generator so that one
// seed reproduces a whole model.
//
// fan_in and fan_out of a weight [out, in, k...] are in * prod(k) and out * prod(k).
//   kaiming_uniform(shape, a, gen):  U(-b, b), b = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)).
//     PyTorch's default for Linear and Conv2d weights is a = sqrt(5), which gives b = 1 / sqrt(fan_in).
//   bias_uniform(n, fan_in, gen):    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default bias.
//   xavier_uniform(shape, gain, gen): U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)).
//
//   Generator gen(42);
//   Tensor w = init::kaiming_uniform({64, 3, 3, 3}, std::sqrt(5.0), gen);
#pragma once
#include <cstdint>
#include <utility>

#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace afd::nn::init {

// {fan_in, fan_out} of a weight of at least 2 dims.
std::pair<int64_t, int64_t> fans(const Shape& shape);

Tensor uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype = DType::f32);
Tensor normal(const Shape& shape, double mean, double std, Generator& gen, DType dtype = DType::f32);
Tensor kaiming_uniform(const Shape& shape, double a, Generator& gen, DType dtype = DType::f32);
Tensor bias_uniform(int64_t n, int64_t fan_in, Generator& gen, DType dtype = DType::f32);
Tensor xavier_uniform(const Shape& shape, double gain, Generator& gen, DType dtype = DType::f32);

}  // namespace afd::nn::init
