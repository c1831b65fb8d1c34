#include "nn/spectral_norm.h"

#include <cmath>
#include <limits>

#include "nn/init.h"
#include "tensor/ops.h"

namespace afd::nn {

namespace {

// a / max(||a||_2, eps), on the device (no host sync).
Tensor normalized(const Tensor& a, double eps) {
  Tensor norm = ops::sqrt(ops::sum(ops::mul(a, a)));
  return ops::div(a, ops::clamp(norm, eps, std::numeric_limits<double>::infinity()));
}

// u [out], v [in], both normalised N(0, 1) draws, as torch.nn.utils.spectral_norm starts them.
Tensor random_unit_vector(int64_t n, Generator& gen) { return normalized(randn({n}, gen), 1e-12); }

}  // namespace

Var spectral_normalized_weight(const Var& weight_orig, const Var& u, const Var& v, bool training, double eps) {
  AFD_CHECK(weight_orig.dim() == 2 && u.shape() == Shape{weight_orig.size(0)} && v.shape() == Shape{weight_orig.size(1)},
            "spectral_norm: expected weight [out, in], u [out], v [in], got {}, {}, {}",
            shape_str(weight_orig.shape()), shape_str(u.shape()), shape_str(v.shape()));
  const int64_t out = weight_orig.size(0), in = weight_orig.size(1);
  if (training) {
    // One power iteration, outside the tape: v = n(W^T u), u = n(W v).
    const Tensor& w = weight_orig.data();
    Tensor u_data = u.data(), v_data = v.data();  // share storage with the buffers
    v_data.copy_(normalized(ops::matmul(w, u_data.reshape({out, 1}), /*trans_a=*/true).reshape({in}), eps));
    u_data.copy_(normalized(ops::matmul(w, v_data.reshape({in, 1})).reshape({out}), eps));
  }
  // sigma = u^T W v, differentiable in W only (u, v are constants: copies, so that a later power
  // iteration cannot change what this forward's backward sees).
  Var u_col(u.data().clone().reshape({out, 1})), v_col(v.data().clone().reshape({in, 1}));
  Var sigma = sum(mul(u_col, matmul(weight_orig, v_col)));
  return div(weight_orig, sigma);
}

SNLinear::SNLinear(int64_t in_features, int64_t out_features, Generator& gen, bool with_bias)
    : in_features(in_features), out_features(out_features) {
  // torch registers weight_orig after bias (spectral_norm removes "weight" and adds it back).
  Tensor w = init::kaiming_uniform({out_features, in_features}, std::sqrt(5.0), gen);
  if (with_bias) bias = register_parameter("bias", init::bias_uniform(out_features, in_features, gen));
  weight_orig = register_parameter("weight_orig", w);
  weight_u = register_buffer("weight_u", random_unit_vector(out_features, gen));
  weight_v = register_buffer("weight_v", random_unit_vector(in_features, gen));
}

Var SNLinear::forward(const Var& x) {
  AFD_CHECK(x.dim() == 2 && x.size(1) == in_features, "SNLinear: expected x [N, {}], got {}", in_features,
            shape_str(x.shape()));
  return linear(x, spectral_normalized_weight(weight_orig, weight_u, weight_v, is_training()), bias);
}

Var SNLinear::weight() const { return spectral_normalized_weight(weight_orig, weight_u, weight_v, false); }

SNEmbedding::SNEmbedding(int64_t num_embeddings, int64_t embedding_dim, Generator& gen)
    : num_embeddings(num_embeddings), embedding_dim(embedding_dim) {
  weight_orig = register_parameter("weight_orig", init::normal({num_embeddings, embedding_dim}, 0.0, 1.0, gen));
  weight_u = register_buffer("weight_u", random_unit_vector(num_embeddings, gen));
  weight_v = register_buffer("weight_v", random_unit_vector(embedding_dim, gen));
}

Var SNEmbedding::forward(const Tensor& index) {
  AFD_CHECK(index.dtype() == DType::i64 && index.dim() == 1, "SNEmbedding: expected i64 indices [N], got {}",
            index.str());
  return embedding(spectral_normalized_weight(weight_orig, weight_u, weight_v, is_training()), index);
}

}  // namespace afd::nn
