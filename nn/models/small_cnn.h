// SmallCNN: the usual small MNIST network (as in TRADES), for fast CPU work. Parameter names follow
// that PyTorch model (feature_extractor.conv1 ... classifier.fc3), so its checkpoints load.
//
//   x [N, 1, 28, 28] -> conv3x3 1-c1, ReLU, conv3x3 c1-c1, ReLU, maxpool 2        (feature_extractor)
//     -> conv3x3 c1-c2, ReLU, conv3x3 c2-c2, ReLU, maxpool 2 -> flatten [N, c2*4*4] = z
//     -> Linear(c2*4*4, h), ReLU, Dropout(p), Linear(h, h), ReLU, Linear(h, K)       (classifier)
// with c1 = 32, c2 = 64, h = 200 by default (1024-200-200-10), no padding, dropout off (p = 0).
// The convolution widths and the hidden width are parameters so that tests can use a small copy.
#pragma once
#include <memory>

#include "nn/layers.h"

namespace afd::nn {

struct SmallCNNConfig {
  int64_t in_channels = 1;
  int64_t num_classes = 10;
  int64_t channels1 = 32, channels2 = 64, hidden = 200;
  int64_t image_size = 28;  // H = W of the input
  double dropout = 0;       // after the first hidden layer; 0 = off
  uint64_t dropout_seed = 0;
};

class SmallCNN : public Classifier {
 public:
  SmallCNN(const SmallCNNConfig& config, Generator& gen);
  Var features(const Var& x) override { return flatten(feature_extractor->forward(x), 1); }
  Var classify(const Var& z) override { return classifier->forward(z); }
  int64_t feature_dim() const override { return feature_dim_; }
  std::string head_name() const override { return "classifier"; }

  SmallCNNConfig config;
  std::shared_ptr<Sequential> feature_extractor, classifier;

 private:
  int64_t feature_dim_;
};

}  // namespace afd::nn
