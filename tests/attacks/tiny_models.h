// The two tiny models the attack property tests run on, a batch for them (small enough that every
// test attacks in milliseconds, deep enough, with ReLU and max pooling, to have kinks), and the
// host-side norm the tests measure perturbations with.
#pragma once
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "attacks/core.h"
#include "nn/layers.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

namespace afd::attacks {

// MLP on [N, 1, 4, 4]: flatten, 16 -> 12, ReLU, 12 -> classes.
inline std::shared_ptr<nn::Sequential> tiny_mlp(int64_t classes, uint64_t seed, DType dtype = DType::f64) {
  Generator gen(seed);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Flatten>());
  net->add(std::make_shared<nn::Linear>(16, 12, gen));
  net->add(std::make_shared<nn::ReLU>());
  net->add(std::make_shared<nn::Linear>(12, classes, gen));
  net->to(dtype);
  return net;
}

// CNN on [N, 1, 8, 8]: conv 1 -> 4 (3x3, pad 1), ReLU, maxpool 2, flatten, 64 -> classes.
inline std::shared_ptr<nn::Sequential> tiny_cnn(int64_t classes, uint64_t seed, DType dtype = DType::f64) {
  Generator gen(seed);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Conv2d>(1, 4, 3, 1, 1, true, gen));
  net->add(std::make_shared<nn::ReLU>());
  net->add(std::make_shared<nn::MaxPool2d>(2));
  net->add(std::make_shared<nn::Flatten>());
  net->add(std::make_shared<nn::Linear>(64, classes, gen));
  net->to(dtype);
  return net;
}

struct TinyCase {
  std::shared_ptr<nn::Sequential> model;
  Tensor x, y;
};

// The model of `seed` (the CNN or the MLP), n inputs U(0, 1) drawn with seed + 100, float64, and
// as labels the model's clean predictions, so every point starts correctly classified.
inline TinyCase tiny_case(bool cnn, int64_t classes, int64_t n, uint64_t seed) {
  TinyCase c;
  c.model = cnn ? tiny_cnn(classes, seed) : tiny_mlp(classes, seed);
  Generator gen(seed + 100);
  c.x = rand(cnn ? Shape{n, 1, 8, 8} : Shape{n, 1, 4, 4}, gen, DType::f64);
  c.y = ops::argmax(logits_of(*c.model, c.x), 1);
  return c;
}

// The Lp norm of d[begin, end), computed on the host: the tests' own measure of a perturbation.
inline double lp(const std::vector<double>& d, size_t begin, size_t end, Norm p) {
  double s = 0;
  for (size_t j = begin; j < end; ++j) {
    const double a = std::fabs(d[j]);
    s = p == Norm::linf ? std::max(s, a) : (p == Norm::l2 ? s + a * a : s + a);
  }
  return p == Norm::l2 ? std::sqrt(s) : s;
}

}  // namespace afd::attacks
