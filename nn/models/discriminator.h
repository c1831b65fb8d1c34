// SNPDFC3: the projection discriminator D of AFD (specs/afd.md, Networks), on features z [N, F]:
//
//   h = LeakyReLU_0.2(SN(Linear(F, F))(z))                      (linear1)
//   h = LeakyReLU_0.2(SN(Linear(F, F))(h))                      (linear2)
//   D(z, y) = SN(Linear(F, 1))(h) + < SN(Embedding(K, F))[y], h >   -> [N, 1]   (l7, l_y)
//
// l7 and l_y start xavier-uniform (gain 1); linear1, linear2 and l7's bias have PyTorch's defaults.
// Names as the authors' module applied to features directly (their `decoder_only` path).
//
//   nn::SNPDFC3 d(/*num_features=*/64, /*num_classes=*/10, gen);
//   Var d_clean = d.forward(z_clean, labels), d_adv = d.forward(z_adv, labels);   // true labels
#pragma once
#include <memory>

#include "nn/spectral_norm.h"

namespace afd::nn {

class SNPDFC3 : public Module {
 public:
  SNPDFC3(int64_t num_features, int64_t num_classes, Generator& gen);
  Var forward(const Var& z, const Tensor& labels);
  std::shared_ptr<SNLinear> linear1, linear2, l7;
  std::shared_ptr<SNEmbedding> l_y;
  int64_t num_features, num_classes;
};

}  // namespace afd::nn
