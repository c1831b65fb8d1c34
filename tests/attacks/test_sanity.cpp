// The sanity report passes on an honest model and flags each failure it is meant to catch:
// a softmax output, a randomised forward pass, a model whose input gradient is zero.
#include <gtest/gtest.h>

#include "attacks/core.h"
#include "attacks/sanity.h"
#include "autograd/ops.h"
#include "nn/layers.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/attacks/tiny_models.h"

namespace afd::attacks {
namespace {

// tiny_models.h's CNN with 5 classes, in float32.
std::shared_ptr<nn::Sequential> tiny_cnn(uint64_t seed) { return attacks::tiny_cnn(5, seed, DType::f32); }

// Wraps a model: softmax on its output, Gaussian noise on its logits, or a gradient-free output.
class Wrapped : public nn::UnaryModule {
 public:
  enum Kind { softmax_out, noisy, constant };
  Wrapped(std::shared_ptr<nn::UnaryModule> inner, Kind kind) : inner_(std::move(inner)), kind_(kind), gen_(99) {}
  Var forward(const Var& x) override {
    Var z = inner_->forward(x);
    switch (kind_) {
      case softmax_out: return softmax(z, 1);
      case noisy: return z + Var(randn(z.shape(), gen_, z.dtype()));
      case constant: return Var(z.data());  // detached: no gradient reaches the input
    }
    return z;
  }

 private:
  std::shared_ptr<nn::UnaryModule> inner_;
  Kind kind_;
  Generator gen_;
};

struct Data {
  Tensor x, y;
};

Data data_for(nn::UnaryModule& model) {
  Generator gen(5);
  Data d;
  d.x = rand({30, 1, 8, 8}, gen);
  d.y = ops::argmax(logits_of(model, d.x), 1);
  return d;
}

SanityOptions small() {
  SanityOptions o;
  o.eps = 0.1;
  o.pgd_steps = 10;
  return o;
}

const SanityItem& item(const SanityReport& r, const std::string& name) {
  for (const SanityItem& i : r.items)
    if (i.name == name) return i;
  ADD_FAILURE() << "no item " << name << " in\n" << r.str();
  static SanityItem none;
  return none;
}

TEST(SanityReport, AnHonestModelPasses) {
  auto net = tiny_cnn(1);
  Data d = data_for(*net);
  auto source = tiny_cnn(2);
  SanityOptions o = small();
  o.transfer_source = source.get();
  SanityReport r = sanity_report(*net, d.x, d.y, o);
  EXPECT_TRUE(r.all_ok()) << r.str();
  EXPECT_EQ(r.items.size(), 7u) << r.str();
}

TEST(SanityReport, FlagsASoftmaxOutput) {
  auto net = std::make_shared<Wrapped>(tiny_cnn(1), Wrapped::softmax_out);
  Data d = data_for(*net);
  SanityReport r = sanity_report(*net, d.x, d.y, small());
  EXPECT_FALSE(item(r, "logits").ok) << r.str();
  EXPECT_NE(item(r, "logits").detail.find("looks like softmax"), std::string::npos);
}

TEST(SanityReport, FlagsARandomisedForwardPass) {
  auto net = std::make_shared<Wrapped>(tiny_cnn(1), Wrapped::noisy);
  Data d = data_for(*net);
  SanityReport r = sanity_report(*net, d.x, d.y, small());
  EXPECT_FALSE(item(r, "randomised forward").ok) << r.str();
  EXPECT_TRUE(item(r, "logits").ok);
}

TEST(SanityReport, FlagsZeroGradientsAndAnUnbeatenUnboundedAttack) {
  auto net = std::make_shared<Wrapped>(tiny_cnn(1), Wrapped::constant);
  Data d = data_for(*net);
  SanityReport r = sanity_report(*net, d.x, d.y, small());
  EXPECT_FALSE(item(r, "gradients").ok) << r.str();
  EXPECT_FALSE(item(r, "unbounded budget").ok) << r.str();
  EXPECT_FALSE(r.all_ok());
}

}  // namespace
}  // namespace afd::attacks
