// The fixed float64 SmallCNN and inputs of tests/fixtures/attacks/attack_refs.* (made by
// make_attack_refs.py from the reference libraries), shared by the reference-agreement tests.
#pragma once
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "nn/models/small_cnn.h"
#include "nn/safetensors.h"

namespace afd::attacks {

struct ReferenceFixture {
  nlohmann::json spec;        // attack_refs.json
  SafetensorsFile file;   // attack_refs.safetensors
  std::shared_ptr<nn::SmallCNN> model;

  // The run named `name` in spec["runs"], or nullptr.
  const nlohmann::json* run(const std::string& name) const {
    for (const nlohmann::json& r : spec["runs"])
      if (r["name"] == name) return &r;
    return nullptr;
  }
};

inline ReferenceFixture load_reference_fixture() {
  const std::string dir = std::string(AFD_SOURCE_DIR) + "/tests/fixtures/attacks/";
  ReferenceFixture f;
  std::ifstream in(dir + "attack_refs.json");
  f.spec = nlohmann::json::parse(in);
  f.file = read_safetensors(dir + "attack_refs.safetensors");
  const nlohmann::json& m = f.spec["model"];
  nn::SmallCNNConfig cfg;
  cfg.channels1 = m["channels1"];
  cfg.channels2 = m["channels2"];
  cfg.hidden = m["hidden"];
  cfg.num_classes = m["num_classes"];
  Generator gen(0);
  f.model = std::make_shared<nn::SmallCNN>(cfg, gen);
  f.model->to(DType::f64);
  nn::NamedTensors weights;
  for (auto& [name, t] : f.model->state_dict()) weights.emplace_back(name, f.file.get(name));
  f.model->load_state_dict(weights);
  f.model->eval();
  return f;
}

}  // namespace afd::attacks
