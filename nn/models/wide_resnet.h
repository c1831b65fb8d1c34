// WideResNet-depth-k (Zagoruyko & Komodakis 2016) as RobustBench's CIFAR entries define it, with
// their parameter names, so their checkpoints (and TRADES') load unchanged:
//
//   x [N, 3, 32, 32] -> conv3x3 3->16 (conv1)
//     -> block1 (n blocks, 16 -> 16k, stride 1) -> block2 (-> 32k, stride 2) -> block3 (-> 64k, stride 2)
//     -> ReLU(BN) (bn1) -> global average pool = z [N, 64k] -> linear (fc)
// with n = (depth - 4) / 6 blocks per group, each at blockG.layer.I. WRN-28-10: n = 4, widths
// 160/320/640, 36,479,194 parameters with 10 classes; WRN-34-10: n = 5, 46,160,474.
//
// WideBasicBlock (pre-activation, names bn1, relu1, conv1, bn2, relu2, conv2, convShortcut):
//   a   = ReLU(BN1(x))
//   out = conv2(ReLU(BN2(conv1_stride(a))))
//   y   = out + x                   when in == out channels (then the stride is 1)
//   y   = out + convShortcut(a)     otherwise (1x1 conv, stride; note: on a, not on x)
//
//   Generator gen(seed);
//   auto model = std::make_shared<nn::WideResNet>(nn::WideResNetConfig{28, 10}, gen);
//   Var logits = model->forward(x);   // x in [0, 1]; nn::Normalize in front for normalised models
//
// Initialisation as the reference code: conv weights N(0, sqrt(2 / (k k out))) (kaiming normal,
// fan_out), BN weight 1 and bias 0, fc weight PyTorch's default and fc bias 0.
#pragma once
#include <memory>

#include "nn/layers.h"

namespace afd::nn {

struct WideResNetConfig {
  int64_t depth = 28;         // 6 n + 4: 28 (n = 4), 34 (n = 5); 10 or 16 for small copies
  int64_t widen_factor = 10;  // k
  int64_t num_classes = 10;
  // TRADES' WRN-34-10 also registers an unused copy of block1 named sub_block1 (between block1
  // and block2 in the state_dict); RobustBench builds it with sub_block1=True to load those files.
  // It never runs in forward, so its parameters get no gradient.
  bool sub_block1 = false;
};

class WideBasicBlock : public UnaryModule {
 public:
  WideBasicBlock(int64_t in_planes, int64_t out_planes, int64_t stride, Generator& gen);
  Var forward(const Var& x) override;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<ReLU> relu1, relu2;  // no parameters; registered so the module tree reads as torch's
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<Conv2d> convShortcut;  // null when in == out channels
};

// One group of blocks; its only child is the Sequential "layer" (RobustBench's NetworkBlock).
class WideNetworkBlock : public UnaryModule {
 public:
  WideNetworkBlock(int64_t num_blocks, int64_t in_planes, int64_t out_planes, int64_t stride, Generator& gen);
  Var forward(const Var& x) override { return layer->forward(x); }
  std::shared_ptr<Sequential> layer;
};

class WideResNet : public Classifier {
 public:
  WideResNet(const WideResNetConfig& config, Generator& gen);
  Var features(const Var& x) override;
  Var classify(const Var& z) override { return fc->forward(z); }
  int64_t feature_dim() const override { return 64 * config.widen_factor; }
  std::string head_name() const override { return "fc"; }

  WideResNetConfig config;
  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<WideNetworkBlock> block1, sub_block1, block2, block3;  // sub_block1 may be null
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<ReLU> relu;
  std::shared_ptr<Linear> fc;
};

}  // namespace afd::nn
