// PreActResNet-18 (He et al. 2016, identity mappings) with the parameter names of RobustBench's
// CIFAR model (conv1; layer1..layer4 each [0, 1] with bn1, conv1, bn2, conv2 and, when the shape
// changes, shortcut.0 (a 1x1 conv, no BN); optional bn; linear), so its checkpoints load.
//
//   x [N, 3, 32, 32] -> conv3x3 (conv1) -> 4 stages of 2 PreActBlocks (widths w, 2w, 4w, 8w,
//   strides 1, 2, 2, 2) -> [ReLU(BN) if bn_before_fc] -> global average pool = z [N, 8w] -> linear
// PreActBlock: a = ReLU(BN1(x)); out = conv2(ReLU(BN2(conv1_stride(a)))) + shortcut(x), where the
// shortcut is conv1x1_stride(x) when the shape changes, else x (RobustBench's PreActBlock).
// Inputs in [0, 1]; put an nn::Normalize in front for models trained on normalised inputs.
#pragma once
#include <memory>

#include "nn/layers.h"

namespace afd::nn {

struct PreActResNetConfig {
  int64_t num_classes = 10;
  int64_t base_width = 64;
  bool bn_before_fc = false;  // RobustBench's PreActResNet option (a final BN + ReLU)
};

class PreActBlock : public UnaryModule {
 public:
  PreActBlock(int64_t in_planes, int64_t planes, int64_t stride, Generator& gen);
  Var forward(const Var& x) override;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<Sequential> shortcut;  // null: identity (not registered, as in RobustBench)
};

class PreActResNet18 : public Classifier {
 public:
  PreActResNet18(const PreActResNetConfig& config, Generator& gen);
  Var features(const Var& x) override;
  Var classify(const Var& z) override { return linear->forward(z); }
  int64_t feature_dim() const override { return 8 * config.base_width; }
  std::string head_name() const override { return "linear"; }

  PreActResNetConfig config;
  std::shared_ptr<Conv2d> conv1;
  std::array<std::shared_ptr<Sequential>, 4> layers;
  std::shared_ptr<BatchNorm2d> bn;  // only with bn_before_fc
  std::shared_ptr<Linear> linear;
};

}  // namespace afd::nn
