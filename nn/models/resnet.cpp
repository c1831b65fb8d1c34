#include "nn/models/resnet.h"

namespace afd::nn {

ResNetConfig ResNetConfig::cifar(int64_t num_classes, int64_t base_width) {
  ResNetConfig c;
  c.in_channels = 3;
  c.num_classes = num_classes;
  c.widths = {base_width, 2 * base_width, 4 * base_width, 8 * base_width};
  c.stem_stride = 1;
  c.strides = {1, 2, 2, 2};
  return c;
}

ResNetConfig ResNetConfig::mnist(int64_t num_classes, int64_t base_width) {
  ResNetConfig c;
  c.in_channels = 1;
  c.num_classes = num_classes;
  c.widths = {base_width, 2 * base_width, 3 * base_width, 4 * base_width};
  c.stem_stride = 2;
  c.strides = {2, 2, 2, 2};
  return c;
}

BasicBlock::BasicBlock(int64_t in_planes, int64_t planes, int64_t stride, Generator& gen) {
  conv1 = register_module("conv1", std::make_shared<Conv2d>(in_planes, planes, 3, stride, 1, false, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, 1, 1, false, gen));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  shortcut = register_module("shortcut", std::make_shared<Sequential>());
  if (stride != 1 || in_planes != planes) {
    shortcut_conv = shortcut->add(std::make_shared<Conv2d>(in_planes, planes, 1, stride, 0, false, gen));
    shortcut_bn = shortcut->add(std::make_shared<BatchNorm2d>(planes));
  }
}

Var BasicBlock::forward(const Var& x) {
  Var h = conv_bn(*conv1, *bn1, x, /*relu=*/true);
  h = conv_bn(*conv2, *bn2, h);
  return add_relu(h, shortcut_conv ? conv_bn(*shortcut_conv, *shortcut_bn, x) : x);  // relu(h + shortcut)
}

ResNet18::ResNet18(const ResNetConfig& cfg, Generator& gen) : config(cfg) {
  conv1 = register_module("conv1", std::make_shared<Conv2d>(cfg.in_channels, cfg.widths[0], 3, cfg.stem_stride, 1,
                                                            false, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(cfg.widths[0]));
  int64_t in_planes = cfg.widths[0];
  for (size_t s = 0; s < 4; ++s) {
    layers[s] = register_module("layer" + std::to_string(s + 1), std::make_shared<Sequential>());
    layers[s]->add(std::make_shared<BasicBlock>(in_planes, cfg.widths[s], cfg.strides[s], gen));
    layers[s]->add(std::make_shared<BasicBlock>(cfg.widths[s], cfg.widths[s], 1, gen));
    in_planes = cfg.widths[s];
  }
  linear = register_module("linear", std::make_shared<Linear>(cfg.widths[3], cfg.num_classes, gen));
}

Var ResNet18::features(const Var& x) {
  AFD_CHECK(x.dim() == 4 && x.size(1) == config.in_channels, "ResNet18: expected x [N, {}, H, W], got {}",
            config.in_channels, shape_str(x.shape()));
  Var h = conv_bn(*conv1, *bn1, x, /*relu=*/true);
  for (auto& layer : layers) h = layer->forward(h);
  Var z = global_avg_pool(h);  // [N, widths[3]]
  return config.normalize_features ? l2_normalize(z, 1, 1e-12) : z;
}

}  // namespace afd::nn
