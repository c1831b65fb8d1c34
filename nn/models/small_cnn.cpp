#include "nn/models/small_cnn.h"

namespace afd::nn {

SmallCNN::SmallCNN(const SmallCNNConfig& cfg, Generator& gen) : config(cfg) {
  // 3x3 valid convolutions take 2 pixels off each size, the pools halve it: 28 -> 24 -> 12 -> 8 -> 4.
  int64_t side = ((cfg.image_size - 4) / 2 - 4) / 2;
  AFD_CHECK(side > 0, "SmallCNN: image size {} is too small", cfg.image_size);
  feature_dim_ = cfg.channels2 * side * side;

  auto& f = feature_extractor = register_module("feature_extractor", std::make_shared<Sequential>());
  f->add("conv1", std::make_shared<Conv2d>(cfg.in_channels, cfg.channels1, 3, 1, 0, true, gen));
  f->add("relu1", std::make_shared<ReLU>());
  f->add("conv2", std::make_shared<Conv2d>(cfg.channels1, cfg.channels1, 3, 1, 0, true, gen));
  f->add("relu2", std::make_shared<ReLU>());
  f->add("maxpool1", std::make_shared<MaxPool2d>(2));
  f->add("conv3", std::make_shared<Conv2d>(cfg.channels1, cfg.channels2, 3, 1, 0, true, gen));
  f->add("relu3", std::make_shared<ReLU>());
  f->add("conv4", std::make_shared<Conv2d>(cfg.channels2, cfg.channels2, 3, 1, 0, true, gen));
  f->add("relu4", std::make_shared<ReLU>());
  f->add("maxpool2", std::make_shared<MaxPool2d>(2));

  auto& c = classifier = register_module("classifier", std::make_shared<Sequential>());
  c->add("fc1", std::make_shared<Linear>(feature_dim_, cfg.hidden, gen));
  c->add("relu1", std::make_shared<ReLU>());
  c->add("drop", std::make_shared<Dropout>(cfg.dropout, Generator(cfg.dropout_seed)));
  c->add("fc2", std::make_shared<Linear>(cfg.hidden, cfg.hidden, gen));
  c->add("relu2", std::make_shared<ReLU>());
  c->add("fc3", std::make_shared<Linear>(cfg.hidden, cfg.num_classes, gen));
}

}  // namespace afd::nn
