// Round trip to PyTorch (issue 4, acceptance 2, first half): a model saved by afd loads in PyTorch
// with load_state_dict(strict=True) and gives the same logits.
//
// Each case builds a model here, makes it non-trivial (one train-mode SGD step: BatchNorm running
// statistics, num_batches_tracked and every parameter move), then saves, in one temp directory,
//   <case>.model.safetensors   nn::save_state_dict
//   <case>.io.safetensors      an input and our eval-mode outputs, and in the metadata the PyTorch
//                              class ("model") and its constructor arguments ("config", JSON)
// and runs tests/fixtures/models/check_roundtrip.py on the directory: it builds the same PyTorch
// model, loads the file strictly, checks the entry order and compares the outputs within
// |afd - torch| <= 1e-5 + 1e-4 |torch|, exiting non-zero otherwise. The cases use other widths and
// options than the committed fixtures (test_models_vs_pytorch.cpp), so they also check the models
// at configurations nobody fixed in advance.
//
// Needs /usr/bin/python3 with torch (Debian python3-torch; tools/setup.sh --with-torch); the tests
// skip, saying why, where it cannot import torch (CI).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

#include "nn/checkpoint.h"
#include "nn/models/discriminator.h"
#include "nn/models/preact_resnet.h"
#include "nn/models/resnet.h"
#include "nn/models/small_cnn.h"
#include "nn/models/wide_resnet.h"
#include "nn/safetensors.h"
#include "tensor/ops.h"

using namespace afd;
namespace fs = std::filesystem;

namespace {

const char* const kPython = "/usr/bin/python3";

std::string script_path() { return std::string(AFD_SOURCE_DIR) + "/tests/fixtures/models/check_roundtrip.py"; }

// Empty when /usr/bin/python3 imports torch; otherwise why the tests skip.
std::string torch_unavailable() {
  if (!fs::exists(kPython)) return std::string(kPython) + " does not exist";
  std::string cmd = std::string(kPython) + " -c 'import torch' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0)
    return std::string(kPython) + " cannot import torch (bash tools/setup.sh --with-torch)";
  return "";
}

struct ScriptResult {
  int exit_status;  // -1 if it did not exit normally
  std::string output;
};

ScriptResult run_check_script(const fs::path& dir) {
  std::string cmd = std::string(kPython) + " " + script_path() + " '" + dir.string() + "' 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return {-1, "popen failed for: " + cmd};
  std::string output;
  std::array<char, 4096> chunk;
  while (size_t n = std::fread(chunk.data(), 1, chunk.size(), pipe)) output.append(chunk.data(), n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// A fresh directory under the test temp dir, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& stem) {
    std::string pattern = ::testing::TempDir() + "/" + stem + "_XXXXXX";
    AFD_CHECK(mkdtemp(pattern.data()) != nullptr, "mkdtemp {} failed", pattern);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

// ---- the cases: our model, and the PyTorch class and arguments of make_model_fixtures.py ----------

struct ClassifierCase {
  std::string name;
  std::function<std::shared_ptr<nn::Classifier>(Generator&)> make;
  std::string torch_model;   // a key of check_roundtrip.py's BUILDERS
  nlohmann::json torch_config;
  Shape input_shape;
};

ClassifierCase resnet_case(const std::string& name, const nn::ResNetConfig& c, Shape input_shape) {
  nlohmann::json config = {{"in_channels", c.in_channels}, {"widths", c.widths},
                           {"stem_stride", c.stem_stride},  {"strides", c.strides},
                           {"num_classes", c.num_classes},  {"normalize", c.normalize_features}};
  return {name, [c](Generator& g) { return std::make_shared<nn::ResNet18>(c, g); }, "resnet18", config,
          std::move(input_shape)};
}

ClassifierCase small_cnn_case(const std::string& name, const nn::SmallCNNConfig& c) {
  nlohmann::json config = {
      {"c1", c.channels1}, {"c2", c.channels2}, {"hidden", c.hidden}, {"num_classes", c.num_classes}};
  return {name, [c](Generator& g) { return std::make_shared<nn::SmallCNN>(c, g); }, "small_cnn", config,
          {2, c.in_channels, c.image_size, c.image_size}};
}

ClassifierCase preact_case(const std::string& name, const nn::PreActResNetConfig& c) {
  nlohmann::json config = {{"base", c.base_width}, {"bn_before_fc", c.bn_before_fc}, {"num_classes", c.num_classes}};
  return {name, [c](Generator& g) { return std::make_shared<nn::PreActResNet18>(c, g); }, "preact_resnet18", config,
          {2, 3, 32, 32}};
}

ClassifierCase wide_resnet_case(const std::string& name, const nn::WideResNetConfig& c) {
  nlohmann::json config = {{"depth", c.depth},
                           {"widen_factor", c.widen_factor},
                           {"num_classes", c.num_classes},
                           {"sub_block1", c.sub_block1}};
  return {name, [c](Generator& g) { return std::make_shared<nn::WideResNet>(c, g); }, "wide_resnet", config,
          {2, 3, 32, 32}};
}

std::vector<ClassifierCase> classifier_cases() {
  nn::ResNetConfig cifar_raw = nn::ResNetConfig::cifar(100, 8);
  cifar_raw.normalize_features = false;
  nn::SmallCNNConfig small_cnn_narrow;
  small_cnn_narrow.channels1 = 8, small_cnn_narrow.channels2 = 16, small_cnn_narrow.hidden = 24;
  return {
      resnet_case("cifar_resnet18_w8", nn::ResNetConfig::cifar(10, 8), {2, 3, 32, 32}),
      resnet_case("cifar_resnet18_w8_k100_raw_z", cifar_raw, {2, 3, 32, 32}),
      resnet_case("mnist_resnet18_w8", nn::ResNetConfig::mnist(10, 8), {4, 1, 28, 28}),
      small_cnn_case("small_cnn", nn::SmallCNNConfig{}),
      small_cnn_case("small_cnn_narrow", small_cnn_narrow),
      preact_case("preact_resnet18_w4_bn", {10, 4, true}),
      preact_case("preact_resnet18_w8", {10, 8, false}),
      wide_resnet_case("wrn16_2", {16, 2, 10, false}),
      wide_resnet_case("wrn10_2_sub_block1", {10, 2, 10, true}),
  };
}

// One train-mode forward, mean cross-entropy and plain SGD step (p -= 0.1 dp): running statistics,
// num_batches_tracked and parameters all leave their initial values.
void train_one_step(nn::Classifier& model, const Shape& input_shape, Generator& gen) {
  model.train();
  Var x(rand(input_shape, gen));
  std::vector<int64_t> y(input_shape[0]);
  for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<int64_t>(i * 3 % 10);
  Var loss = cross_entropy(model.forward(x), Tensor::from_vector<int64_t>(y, {input_shape[0]}), Reduction::mean);
  loss.backward();
  NoGradGuard no_grad;
  for (Var& p : model.parameters()) {
    if (!p.grad().defined()) continue;  // sub_block1 never runs
    Tensor data = p.data();
    data.copy_(ops::sub(data, ops::mul_scalar(p.grad(), 0.1)));
  }
  model.zero_grad();
}

// Saves <case>.model.safetensors and <case>.io.safetensors (input, eval-mode logits and features).
void save_classifier_case(const ClassifierCase& c, const fs::path& dir, uint64_t seed) {
  Generator gen(seed);
  auto model = c.make(gen);
  train_one_step(*model, c.input_shape, gen);
  model->eval();
  Tensor x = rand(c.input_shape, gen);
  NoGradGuard no_grad;
  auto [logits, z] = model->forward_with_features(Var(x));
  nn::save_state_dict(*model, (dir / (c.name + ".model.safetensors")).string(), {{"case", c.name}});
  write_safetensors((dir / (c.name + ".io.safetensors")).string(),
                    {{"input", x}, {"logits", logits.data()}, {"features", z.data()}},
                    {{"model", c.torch_model}, {"config", c.torch_config.dump()}});
}

// SNPDFC3 after two train-mode forwards (two power iterations move weight_u, weight_v) and an SGD
// step; eval-mode output D(z, y) with the stored u, v.
void save_discriminator_case(const fs::path& dir, uint64_t seed) {
  Generator gen(seed);
  nn::SNPDFC3 d(64, 10, gen);
  Tensor labels = Tensor::from_vector<int64_t>({3, 1, 4, 1}, {4});
  d.train();
  Var loss = mean(softplus(neg(d.forward(Var(randn({4, 64}, gen)), labels)))) +
             mean(softplus(d.forward(Var(randn({4, 64}, gen)), labels)));
  loss.backward();
  {
    NoGradGuard no_grad;
    for (Var& p : d.parameters()) {
      Tensor data = p.data();
      data.copy_(ops::sub(data, ops::mul_scalar(p.grad(), 0.1)));
    }
  }
  d.eval();
  Tensor z = randn({4, 64}, gen);
  NoGradGuard no_grad;
  Tensor out = d.forward(Var(z), labels).data();
  nn::save_state_dict(d, (dir / "snpdfc3.model.safetensors").string(), {{"case", "snpdfc3"}});
  nlohmann::json config = {{"num_features", 64}, {"num_classes", 10}};
  write_safetensors((dir / "snpdfc3.io.safetensors").string(), {{"z", z}, {"labels", labels}, {"output", out}},
                    {{"model", "snpdfc3"}, {"config", config.dump()}});
}

}  // namespace

TEST(PytorchRoundTrip, SavedModelsLoadStrictlyInPytorchWithTheSameLogits) {
  if (std::string why = torch_unavailable(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir("afd_pytorch_roundtrip");
  uint64_t seed = 100;
  for (const ClassifierCase& c : classifier_cases()) save_classifier_case(c, dir.path, seed++);
  save_discriminator_case(dir.path, seed++);

  ScriptResult r = run_check_script(dir.path);
  std::printf("%s", r.output.c_str());
  EXPECT_EQ(r.exit_status, 0) << r.output;
  EXPECT_NE(r.output.find("10 of 10 cases passed"), std::string::npos) << r.output;
}

// The checker is not vacuous: it fails a case whose logits are off by 1e-3 and one whose file lacks
// an entry (torch's strict load), and reports both.
TEST(PytorchRoundTrip, CheckScriptRejectsWrongLogitsAndMissingEntries) {
  if (std::string why = torch_unavailable(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir("afd_pytorch_roundtrip_bad");
  ClassifierCase c = small_cnn_case("small_cnn_narrow", [] {
    nn::SmallCNNConfig config;
    config.channels1 = 8, config.channels2 = 16, config.hidden = 24;
    return config;
  }());
  save_classifier_case(c, dir.path, 1);

  // wrong_logits: the same model, our logits shifted by 1e-3.
  fs::copy_file(dir.path / "small_cnn_narrow.model.safetensors", dir.path / "wrong_logits.model.safetensors");
  SafetensorsFile io = read_safetensors((dir.path / "small_cnn_narrow.io.safetensors").string());
  write_safetensors((dir.path / "wrong_logits.io.safetensors").string(),
                    {{"input", io.get("input")},
                     {"logits", ops::add_scalar(io.get("logits"), 1e-3)},
                     {"features", io.get("features")}},
                    io.metadata);
  // missing_entry: the state without classifier.fc3.bias.
  SafetensorsFile state = read_safetensors((dir.path / "small_cnn_narrow.model.safetensors").string());
  std::vector<std::pair<std::string, Tensor>> partial;
  for (const auto& entry : state.tensors)
    if (entry.first != "classifier.fc3.bias") partial.push_back(entry);
  write_safetensors((dir.path / "missing_entry.model.safetensors").string(), partial, state.metadata);
  fs::copy_file(dir.path / "small_cnn_narrow.io.safetensors", dir.path / "missing_entry.io.safetensors");

  ScriptResult r = run_check_script(dir.path);
  EXPECT_EQ(r.exit_status, 1) << r.output;
  EXPECT_NE(r.output.find("ok   small_cnn_narrow"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("FAIL wrong_logits"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("FAIL missing_entry"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("classifier.fc3.bias"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1 of 3 cases passed"), std::string::npos) << r.output;
}
