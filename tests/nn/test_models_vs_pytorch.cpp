// The paper's networks against PyTorch (tests/fixtures/models/make_model_fixtures.py).
//
// Each fixture holds a reduced-width copy of a model (same code path, smaller widths) with seeded
// weights, a batch of 2 inputs, and what PyTorch computed in one train-mode forward + backward of the
// mean cross-entropy: logits, features z, the loss, every parameter gradient, the input gradient,
// every buffer after the forward (BatchNorm running statistics and num_batches_tracked), then the
// eval-mode logits. Ours must match elementwise within |afd - torch| <= 1e-5 + 1e-4 |torch| (f32).
// The fixture's metadata also lists the state_dict names and shapes of the full-width model, which
// ours must reproduce exactly and in the same order.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <functional>
#include <iomanip>
#include <sstream>
#include <string>

#include "nn/checkpoint.h"
#include "nn/models/discriminator.h"
#include "nn/models/preact_resnet.h"
#include "nn/models/resnet.h"
#include "nn/models/small_cnn.h"
#include "nn/models/wide_resnet.h"
#include "nn/safetensors.h"
#include "support/checks.h"
#include "tensor/ops.h"

using namespace afd;

namespace {

constexpr double kRtol = 1e-4, kAtol = 1e-5;

struct ModelCase {
  const char* name;
  std::function<std::shared_ptr<nn::Classifier>(Generator&)> make_small, make_full;
};

const ModelCase kCases[] = {
    {"cifar_resnet18",
     [](Generator& g) { return std::make_shared<nn::ResNet18>(nn::ResNetConfig::cifar(10, 8), g); },
     [](Generator& g) { return std::make_shared<nn::ResNet18>(nn::ResNetConfig::cifar(10), g); }},
    {"mnist_resnet18",
     [](Generator& g) { return std::make_shared<nn::ResNet18>(nn::ResNetConfig::mnist(10, 8), g); },
     [](Generator& g) { return std::make_shared<nn::ResNet18>(nn::ResNetConfig::mnist(10), g); }},
    {"small_cnn",
     [](Generator& g) {
       nn::SmallCNNConfig c;
       c.channels1 = 8, c.channels2 = 16, c.hidden = 32;
       return std::make_shared<nn::SmallCNN>(c, g);
     },
     [](Generator& g) { return std::make_shared<nn::SmallCNN>(nn::SmallCNNConfig{}, g); }},
    {"preact_resnet18",
     [](Generator& g) { return std::make_shared<nn::PreActResNet18>(nn::PreActResNetConfig{10, 4, true}, g); },
     [](Generator& g) { return std::make_shared<nn::PreActResNet18>(nn::PreActResNetConfig{10, 64, true}, g); }},
    {"wide_resnet", [](Generator& g) { return std::make_shared<nn::WideResNet>(nn::WideResNetConfig{10, 1}, g); },
     [](Generator& g) { return std::make_shared<nn::WideResNet>(nn::WideResNetConfig{28, 10}, g); }},
};

SafetensorsFile load_fixture(const std::string& name) {
  return read_safetensors(std::string(AFD_SOURCE_DIR) + "/tests/fixtures/models/" + name + ".safetensors");
}

// Entries "<prefix>name" of the fixture, with the prefix removed, in file order.
nn::NamedTensors with_prefix(const SafetensorsFile& f, const std::string& prefix) {
  nn::NamedTensors out;
  for (const auto& [name, t] : f.tensors)
    if (name.rfind(prefix, 0) == 0) out.emplace_back(name.substr(prefix.size()), t);
  return out;
}

// Counts failures instead of stopping, so one run reports every tensor that disagrees, and keeps
// the worst relative excess for the summary line.
struct Comparison {
  int compared = 0;
  double worst_ratio = 0;  // max over elements of |a - b| / (atol + rtol |b|); <= 1 passes
  std::string worst_name;

  void check(const std::string& what, const Tensor& actual, const Tensor& expected) {
    ASSERT_TRUE(actual.defined()) << what << ": afd produced no tensor";
    ASSERT_EQ(actual.numel(), expected.numel())
        << what << ": afd " << shape_str(actual.shape()) << ", torch " << shape_str(expected.shape());
    Tensor a = actual.reshape(expected.shape()).to(DType::f64);
    Tensor b = expected.to(DType::f64);
    std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
    double ratio = 0;
    size_t worst = 0;
    for (size_t i = 0; i < av.size(); ++i) {
      double r = std::abs(av[i] - bv[i]) / (kAtol + kRtol * std::abs(bv[i]));
      if (r > ratio) ratio = r, worst = i;
    }
    ++compared;
    if (ratio > worst_ratio) worst_ratio = ratio, worst_name = what;
    EXPECT_LE(ratio, 1.0) << std::setprecision(9) << what << ": element " << worst << ": afd " << av[worst]
                          << ", torch " << bv[worst] << ", |diff| " << std::abs(av[worst] - bv[worst])
                          << " > atol + rtol |torch| = " << kAtol + kRtol * std::abs(bv[worst]);
  }
};

void check_against_pytorch(const ModelCase& c) {
  SafetensorsFile f = load_fixture(c.name);
  Generator gen(7);
  auto model = c.make_small(gen);
  model->load_state_dict(with_prefix(f, "state."), /*strict=*/true);

  // Same names in the same order as torch's state_dict.
  nn::NamedTensors ours = model->state_dict(), theirs = with_prefix(f, "state.");
  ASSERT_EQ(ours.size(), theirs.size());
  for (size_t i = 0; i < ours.size(); ++i) EXPECT_EQ(ours[i].first, theirs[i].first) << "entry " << i;

  model->train();
  Var x(f.get("input").clone(), /*requires_grad=*/true);
  auto [logits, z] = model->forward_with_features(x);
  Var loss = cross_entropy(logits, f.get("labels"), Reduction::mean);
  loss.backward();

  Comparison cmp;
  cmp.check("logits", logits.data(), f.get("logits"));
  cmp.check("features", z.data(), f.get("features"));
  cmp.check("loss", loss.data(), f.get("loss"));
  for (const auto& [name, p] : model->named_parameters()) cmp.check("grad." + name, p.grad(), f.get("grad." + name));
  cmp.check("grad.input", x.grad(), f.get("grad.input"));
  nn::NamedTensors buffers = model->named_buffers();
  EXPECT_EQ(buffers.size(), with_prefix(f, "after.").size());
  for (const auto& [name, b] : buffers) {
    if (b.dtype() == DType::i64)
      EXPECT_EQ(b.item<int64_t>(), f.get("after." + name).item<int64_t>()) << name;
    else
      cmp.check("after." + name, b, f.get("after." + name));
  }

  model->eval();
  {
    NoGradGuard no_grad;
    cmp.check("eval.logits", model->forward(Var(f.get("input"))).data(), f.get("eval.logits"));
  }
  std::printf("%s: %d tensors within 1e-5 + 1e-4 |torch|; worst %s at %.3f of the tolerance\n", c.name,
              cmp.compared, cmp.worst_name.c_str(), cmp.worst_ratio);
}

// The full-width model's state_dict names and shapes, in order, against torch's (fixture metadata).
void check_full_width_names(const ModelCase& c) {
  SafetensorsFile f = load_fixture(c.name);
  nlohmann::json expected = nlohmann::json::parse(f.metadata.at("full_state_dict"));
  Generator gen(0);
  nn::NamedTensors ours = c.make_full(gen)->state_dict();
  ASSERT_EQ(ours.size(), expected.size()) << c.name;
  for (size_t i = 0; i < ours.size(); ++i) {
    EXPECT_EQ(ours[i].first, expected[i][0].get<std::string>()) << c.name << " entry " << i;
    EXPECT_EQ(ours[i].second.shape(), expected[i][1].get<Shape>()) << c.name << " " << ours[i].first;
  }
}

}  // namespace

TEST(ModelsVsPytorch, CifarResNet18) { check_against_pytorch(kCases[0]); }
TEST(ModelsVsPytorch, MnistResNet18) { check_against_pytorch(kCases[1]); }
TEST(ModelsVsPytorch, SmallCNN) { check_against_pytorch(kCases[2]); }
TEST(ModelsVsPytorch, PreActResNet18) { check_against_pytorch(kCases[3]); }
TEST(ModelsVsPytorch, WideResNet) { check_against_pytorch(kCases[4]); }

TEST(ModelsVsPytorch, FullWidthStateDictNamesAndShapes) {
  for (const ModelCase& c : kCases) check_full_width_names(c);
}

TEST(ModelsVsPytorch, FullWidthParameterCounts) {
  // torch: sum(p.numel() for p in model.parameters())
  Generator gen(0);
  EXPECT_EQ(nn::ResNet18(nn::ResNetConfig::cifar(10), gen).parameter_count(), 11173962);
  EXPECT_EQ(nn::WideResNet(nn::WideResNetConfig{28, 10}, gen).parameter_count(), 36479194);
  EXPECT_EQ(nn::WideResNet(nn::WideResNetConfig{34, 10}, gen).parameter_count(), 46160474);
}

// WRN-28-10, WRN-34-10 and TRADES' WRN-34-10 with sub_block1 at full size: state_dict names, order
// and shapes, and parameter counts, against torch's (the wide_resnet fixture's extra metadata).
TEST(ModelsVsPytorch, FullSizeWideResNets) {
  SafetensorsFile f = load_fixture("wide_resnet");
  nlohmann::json names = nlohmann::json::parse(f.metadata.at("full_state_dicts"));
  nlohmann::json counts = nlohmann::json::parse(f.metadata.at("parameter_counts"));
  const std::pair<const char*, nn::WideResNetConfig> models[] = {
      {"wrn28_10", {28, 10, 10, false}},
      {"wrn34_10", {34, 10, 10, false}},
      {"wrn34_10_sub_block1", {34, 10, 10, true}}};
  ASSERT_EQ(names.size(), std::size(models));
  for (const auto& [key, config] : models) {
    Generator gen(0);
    nn::WideResNet model(config, gen);
    EXPECT_EQ(model.parameter_count(), counts.at(key).get<int64_t>()) << key;
    nn::NamedTensors ours = model.state_dict();
    const nlohmann::json& expected = names.at(key);
    ASSERT_EQ(ours.size(), expected.size()) << key;
    for (size_t i = 0; i < ours.size(); ++i) {
      EXPECT_EQ(ours[i].first, expected[i][0].get<std::string>()) << key << " entry " << i;
      EXPECT_EQ(ours[i].second.shape(), expected[i][1].get<Shape>()) << key << " " << ours[i].first;
    }
  }
}

TEST(ModelsVsPytorch, SaveLoadRoundTripGivesIdenticalLogits) {
  for (const ModelCase& c : kCases) {
    SafetensorsFile f = load_fixture(c.name);
    Generator gen_a(1), gen_b(2);
    auto a = c.make_small(gen_a), b = c.make_small(gen_b);
    a->load_state_dict(with_prefix(f, "state."));
    a->eval();
    b->eval();
    std::string path = ::testing::TempDir() + "/afd_round_trip_" + c.name + ".safetensors";
    nn::save_state_dict(*a, path, {{"model", c.name}});
    auto metadata = nn::load_state_dict_file(*b, path);
    EXPECT_EQ(metadata.at("model"), c.name);
    NoGradGuard no_grad;
    Var x(f.get("input"));
    EXPECT_EQ(a->forward(x).data().to_vector<float>(), b->forward(x).data().to_vector<float>()) << c.name;
    std::remove(path.c_str());
  }
}

// SNPDFC3 (spectral norm): two consecutive train-mode forwards, each with one power iteration, the
// DCGAN discriminator loss and its backward; outputs, gradients (parameters and both feature
// inputs) and the u, v buffers after both iterations; then an eval forward with the stored u, v.
TEST(ModelsVsPytorch, SNPDFC3Discriminator) {
  SafetensorsFile f = load_fixture("snpdfc3");
  Generator gen(3);
  nn::SNPDFC3 d(64, 10, gen);
  nn::NamedTensors ours = d.state_dict(), theirs = with_prefix(f, "state.");
  ASSERT_EQ(ours.size(), theirs.size());
  for (size_t i = 0; i < ours.size(); ++i) EXPECT_EQ(ours[i].first, theirs[i].first) << "entry " << i;
  d.load_state_dict(theirs);

  d.train();
  const Tensor& labels = f.get("labels");
  Var z_clean(f.get("z_clean").clone(), true), z_adv(f.get("z_adv").clone(), true);
  Var d_clean = d.forward(z_clean, labels);
  Var d_adv = d.forward(z_adv, labels);
  Var loss = mean(softplus(neg(d_clean))) + mean(softplus(d_adv));
  loss.backward();

  Comparison cmp;
  cmp.check("d_clean", d_clean.data(), f.get("d_clean"));
  cmp.check("d_adv", d_adv.data(), f.get("d_adv"));
  cmp.check("loss", loss.data(), f.get("loss"));
  for (const auto& [name, p] : d.named_parameters()) cmp.check("grad." + name, p.grad(), f.get("grad." + name));
  cmp.check("grad.z_clean", z_clean.grad(), f.get("grad.z_clean"));
  cmp.check("grad.z_adv", z_adv.grad(), f.get("grad.z_adv"));
  for (const auto& [name, b] : d.named_buffers()) cmp.check("after." + name, b, f.get("after." + name));
  d.eval();
  {
    NoGradGuard no_grad;
    cmp.check("eval.d_adv", d.forward(Var(f.get("z_adv")), labels).data(), f.get("eval.d_adv"));
  }
  std::printf("snpdfc3: %d tensors within 1e-5 + 1e-4 |torch|; worst %s at %.3f of the tolerance\n", cmp.compared,
              cmp.worst_name.c_str(), cmp.worst_ratio);
}
