#include "nn/models/discriminator.h"

#include "nn/init.h"

namespace afd::nn {

SNPDFC3::SNPDFC3(int64_t num_features, int64_t num_classes, Generator& gen)
    : num_features(num_features), num_classes(num_classes) {
  linear1 = register_module("linear1", std::make_shared<SNLinear>(num_features, num_features, gen));
  linear2 = register_module("linear2", std::make_shared<SNLinear>(num_features, num_features, gen));
  l7 = register_module("l7", std::make_shared<SNLinear>(num_features, 1, gen));
  l_y = register_module("l_y", std::make_shared<SNEmbedding>(num_classes, num_features, gen));
  Tensor w7 = l7->weight_orig.data(), wy = l_y->weight_orig.data();
  w7.copy_(init::xavier_uniform(w7.shape(), 1.0, gen));
  wy.copy_(init::xavier_uniform(wy.shape(), 1.0, gen));
}

Var SNPDFC3::forward(const Var& z, const Tensor& labels) {
  AFD_CHECK(z.dim() == 2 && z.size(1) == num_features && labels.dim() == 1 && labels.size(0) == z.size(0),
            "SNPDFC3: expected z [N, {}] and labels [N], got {} and {}", num_features, shape_str(z.shape()),
            shape_str(labels.shape()));
  Var h = leaky_relu(linear1->forward(z), 0.2);
  h = leaky_relu(linear2->forward(h), 0.2);
  Var projection = sum(mul(l_y->forward(labels), h), {1}, /*keepdim=*/true);  // <embed(y), h>, [N, 1]
  return add(l7->forward(h), projection);
}

}  // namespace afd::nn
