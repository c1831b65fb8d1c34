#include "nn/models/wide_resnet.h"

#include <cmath>

#include "nn/init.h"

namespace afd::nn {

namespace {

// The reference's conv init: N(0, sqrt(2 / n)) with n = k k out_channels (kaiming normal, fan_out).
std::shared_ptr<Conv2d> wrn_conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, Generator& gen) {
  auto conv = std::make_shared<Conv2d>(in, out, kernel, stride, kernel / 2, /*bias=*/false, gen);
  Tensor w = conv->weight.data();
  w.copy_(init::normal(w.shape(), 0.0, std::sqrt(2.0 / static_cast<double>(kernel * kernel * out)), gen));
  return conv;
}

}  // namespace

WideBasicBlock::WideBasicBlock(int64_t in_planes, int64_t out_planes, int64_t stride, Generator& gen) {
  AFD_CHECK(in_planes != out_planes || stride == 1,
            "WideBasicBlock: in == out channels ({}) needs stride 1 (an identity shortcut), got stride {}",
            in_planes, stride);
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(in_planes));
  relu1 = register_module("relu1", std::make_shared<ReLU>());
  conv1 = register_module("conv1", wrn_conv(in_planes, out_planes, 3, stride, gen));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(out_planes));
  relu2 = register_module("relu2", std::make_shared<ReLU>());
  conv2 = register_module("conv2", wrn_conv(out_planes, out_planes, 3, 1, gen));
  if (in_planes != out_planes)
    convShortcut = register_module("convShortcut", wrn_conv(in_planes, out_planes, 1, stride, gen));
}

Var WideBasicBlock::forward(const Var& x) {
  Var a = relu1->forward(bn1->forward(x));
  Var out = conv2->forward(relu2->forward(bn2->forward(conv1->forward(a))));
  // The projection shortcut sees the activated input a; the identity shortcut the raw x.
  return add(out, convShortcut ? convShortcut->forward(a) : x);
}

WideNetworkBlock::WideNetworkBlock(int64_t num_blocks, int64_t in_planes, int64_t out_planes, int64_t stride,
                                   Generator& gen) {
  layer = register_module("layer", std::make_shared<Sequential>());
  for (int64_t i = 0; i < num_blocks; ++i)
    layer->add(std::make_shared<WideBasicBlock>(i == 0 ? in_planes : out_planes, out_planes, i == 0 ? stride : 1, gen));
}

WideResNet::WideResNet(const WideResNetConfig& cfg, Generator& gen) : config(cfg) {
  AFD_CHECK(cfg.depth >= 10 && (cfg.depth - 4) % 6 == 0, "WideResNet: depth must be 6 n + 4 with n >= 1, got {}",
            cfg.depth);
  AFD_CHECK(cfg.widen_factor >= 1 && cfg.num_classes >= 1,
            "WideResNet: widen_factor {} and num_classes {} must be >= 1", cfg.widen_factor, cfg.num_classes);
  const int64_t n = (cfg.depth - 4) / 6, k = cfg.widen_factor;
  const int64_t widths[4] = {16, 16 * k, 32 * k, 64 * k};
  conv1 = register_module("conv1", wrn_conv(3, widths[0], 3, 1, gen));
  block1 = register_module("block1", std::make_shared<WideNetworkBlock>(n, widths[0], widths[1], 1, gen));
  if (cfg.sub_block1)
    sub_block1 = register_module("sub_block1", std::make_shared<WideNetworkBlock>(n, widths[0], widths[1], 1, gen));
  block2 = register_module("block2", std::make_shared<WideNetworkBlock>(n, widths[1], widths[2], 2, gen));
  block3 = register_module("block3", std::make_shared<WideNetworkBlock>(n, widths[2], widths[3], 2, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(widths[3]));
  relu = register_module("relu", std::make_shared<ReLU>());
  fc = register_module("fc", std::make_shared<Linear>(widths[3], cfg.num_classes, gen));
  Tensor fc_bias = fc->bias.data();
  fc_bias.copy_(Tensor::zeros({cfg.num_classes}));
}

Var WideResNet::features(const Var& x) {
  AFD_CHECK(x.dim() == 4 && x.size(1) == 3, "WideResNet: expected x [N, 3, H, W], got {}", shape_str(x.shape()));
  Var h = block3->forward(block2->forward(block1->forward(conv1->forward(x))));
  h = relu->forward(bn1->forward(h));
  return global_avg_pool(h);  // = the reference's avg_pool2d(8) on 32x32 inputs
}

}  // namespace afd::nn
