#include "nn/models/preact_resnet.h"

namespace afd::nn {

PreActBlock::PreActBlock(int64_t in_planes, int64_t planes, int64_t stride, Generator& gen) {
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(in_planes));
  conv1 = register_module("conv1", std::make_shared<Conv2d>(in_planes, planes, 3, stride, 1, false, gen));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, 1, 1, false, gen));
  if (stride != 1 || in_planes != planes) {
    shortcut = register_module("shortcut", std::make_shared<Sequential>());
    shortcut->add(std::make_shared<Conv2d>(in_planes, planes, 1, stride, 0, false, gen));
  }
}

Var PreActBlock::forward(const Var& x) {
  Var a = relu(bn1->forward(x));
  Var skip = shortcut ? shortcut->forward(x) : x;
  Var out = conv2->forward(relu(bn2->forward(conv1->forward(a))));
  return add(out, skip);
}

PreActResNet18::PreActResNet18(const PreActResNetConfig& cfg, Generator& gen) : config(cfg) {
  const int64_t w = cfg.base_width;
  conv1 = register_module("conv1", std::make_shared<Conv2d>(3, w, 3, 1, 1, false, gen));
  const int64_t widths[4] = {w, 2 * w, 4 * w, 8 * w}, strides[4] = {1, 2, 2, 2};
  int64_t in_planes = w;
  for (size_t s = 0; s < 4; ++s) {
    layers[s] = register_module("layer" + std::to_string(s + 1), std::make_shared<Sequential>());
    layers[s]->add(std::make_shared<PreActBlock>(in_planes, widths[s], strides[s], gen));
    layers[s]->add(std::make_shared<PreActBlock>(widths[s], widths[s], 1, gen));
    in_planes = widths[s];
  }
  if (cfg.bn_before_fc) bn = register_module("bn", std::make_shared<BatchNorm2d>(8 * w));
  linear = register_module("linear", std::make_shared<Linear>(8 * w, cfg.num_classes, gen));
}

Var PreActResNet18::features(const Var& x) {
  AFD_CHECK(x.dim() == 4 && x.size(1) == 3, "PreActResNet18: expected x [N, 3, H, W], got {}", shape_str(x.shape()));
  Var h = conv1->forward(x);
  for (auto& layer : layers) h = layer->forward(h);
  if (bn) h = relu(bn->forward(h));
  return global_avg_pool(h);  // = avg_pool2d(4) on 32x32 inputs
}

}  // namespace afd::nn
