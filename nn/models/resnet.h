// The ResNet18 of the AFD paper (specs/afd.md, Networks), with the parameter names of the common
// PyTorch CIFAR ResNet18 (conv1, bn1, layer1..layer4 each [0, 1] with conv1, bn1, conv2, bn2,
// shortcut.0, shortcut.1; linear), so the authors' and other PyTorch checkpoints load unchanged.
//
//   x [N, C_in, H, W] -> conv3x3(stem stride) -> BN -> ReLU                          (conv1, bn1)
//     -> 4 stages of 2 BasicBlocks, widths w1..w4, first block of stage s has stride s_s (layerS)
//     -> global average pool -> [N, w4] -> L2-normalise (switchable) = z             (features)
//     -> Linear(w4, K) = logits                                                      (linear)
//
// BasicBlock: out = ReLU(BN(conv3x3(ReLU(BN(conv3x3_stride(x))))) + shortcut(x)), where the
// shortcut is conv1x1_stride + BN when the stride or width changes, else the identity.
//
//   Generator gen(seed);
//   auto model = std::make_shared<nn::ResNet18>(nn::ResNetConfig::cifar(10), gen);
//   auto [logits, z] = model->forward_with_features(x);   // z [N, 512], ||z|| = 1
//
// The average pool is global: the reference's avg_pool2d(4) is the same on 32x32 CIFAR inputs.
#pragma once
#include <array>
#include <memory>

#include "nn/layers.h"

namespace afd::nn {

struct ResNetConfig {
  int64_t in_channels = 3;
  int64_t num_classes = 10;
  std::array<int64_t, 4> widths{64, 128, 256, 512};
  int64_t stem_stride = 1;
  std::array<int64_t, 4> strides{1, 2, 2, 2};
  bool normalize_features = true;  // the paper's L2 "activation normalisation" of z

  // CIFAR ResNet18 ("resnet18norm"): 3 -> 64/128/256/512, strides 1/2/2/2. A smaller base width
  // (widths base, 2 base, 4 base, 8 base) keeps test fixtures small.
  static ResNetConfig cifar(int64_t num_classes = 10, int64_t base_width = 64);
  // MNIST ResNet18 of the paper: 1 -> 16/32/48/64 (base, 2 base, 3 base, 4 base), stride 2 in the
  // stem and every stage (28 -> 14 -> 7 -> 4 -> 2 -> 1).
  static ResNetConfig mnist(int64_t num_classes = 10, int64_t base_width = 16);
};

class BasicBlock : public UnaryModule {
 public:
  BasicBlock(int64_t in_planes, int64_t planes, int64_t stride, Generator& gen);
  Var forward(const Var& x) override;
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Sequential> shortcut;  // empty: identity
  // The shortcut's two layers (shortcut.0, shortcut.1) for conv_bn; null for the identity.
  std::shared_ptr<Conv2d> shortcut_conv;
  std::shared_ptr<BatchNorm2d> shortcut_bn;
};

class ResNet18 : public Classifier {
 public:
  ResNet18(const ResNetConfig& config, Generator& gen);
  Var features(const Var& x) override;
  Var classify(const Var& z) override { return linear->forward(z); }
  int64_t feature_dim() const override { return config.widths[3]; }
  std::string head_name() const override { return "linear"; }

  ResNetConfig config;
  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::array<std::shared_ptr<Sequential>, 4> layers;  // layer1..layer4
  std::shared_ptr<Linear> linear;
};

}  // namespace afd::nn
