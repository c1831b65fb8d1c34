// Spectral normalisation (Miyato et al. 2018) as torch.nn.utils.spectral_norm does it, for the
// discriminator of AFD (specs/afd.md, Spectral norm).
//
// The layer keeps the raw weight as the parameter `weight_orig` [out, in] and two buffers, `weight_u`
// [out] and `weight_v` [in] (normalised N(0, 1) at construction). Each forward uses
//   W_sn = W / sigma,   sigma = u^T W v,
// after, in train mode only, one power iteration (no gradient):  v = n(W^T u),  u = n(W v),  with
// n(a) = a / max(||a||_2, 1e-12); u and v are updated in place. The gradient flows through sigma with
// u and v held constant. The state_dict names match PyTorch's: "bias", "weight_orig", "weight_u",
// "weight_v" for a Linear, and the last three for an Embedding.
#pragma once
#include "nn/layers.h"

namespace afd::nn {

// W / (u^T W v) for weight_orig [out, in]; in training, one power iteration first updates u [out]
// and v [in] in place.
Var spectral_normalized_weight(const Var& weight_orig, const Var& u, const Var& v, bool training,
                               double eps = 1e-12);

// spectral_norm(Linear(in, out)): weight_orig kaiming-uniform (a = sqrt 5) unless set otherwise.
class SNLinear : public UnaryModule {
 public:
  SNLinear(int64_t in_features, int64_t out_features, Generator& gen, bool bias = true);
  Var forward(const Var& x) override;
  Var weight() const;  // W_sn as the next eval-mode forward would use it (no power iteration)
  Var bias, weight_orig, weight_u, weight_v;
  int64_t in_features, out_features;
};

// spectral_norm(Embedding(K, D)): rows of W_sn [K, D] picked by i64 labels [N].
class SNEmbedding : public Module {
 public:
  SNEmbedding(int64_t num_embeddings, int64_t embedding_dim, Generator& gen);
  Var forward(const Tensor& index);
  Var weight_orig, weight_u, weight_v;
  int64_t num_embeddings, embedding_dim;
};

}  // namespace afd::nn
