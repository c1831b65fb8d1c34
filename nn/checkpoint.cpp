#include "nn/checkpoint.h"

#include "nn/safetensors.h"

namespace afd::nn {

void save_state_dict(const Module& module, const std::string& path,
                     const std::map<std::string, std::string>& metadata) {
  write_safetensors(path, module.state_dict(), metadata);
}

std::map<std::string, std::string> load_state_dict_file(Module& module, const std::string& path, bool strict) {
  SafetensorsFile file = read_safetensors(path);
  try {
    module.load_state_dict(file.tensors, strict);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  return file.metadata;
}

void save_optimizer_states(const std::vector<std::pair<std::string, const Optimizer*>>& optimizers,
                           const std::string& path, const std::map<std::string, std::string>& metadata) {
  NamedTensors all;
  for (const auto& [prefix, optimizer] : optimizers) {
    AFD_CHECK(!prefix.empty() && prefix.find('.') == std::string::npos,
              "{}: optimizer prefix '{}' must be non-empty and contain no '.'", path, prefix);
    for (auto& [name, t] : optimizer->state()) all.emplace_back(prefix + "." + name, t);
  }
  write_safetensors(path, all, metadata);
}

std::map<std::string, std::string> load_optimizer_states(
    const std::vector<std::pair<std::string, Optimizer*>>& optimizers, const std::string& path) {
  SafetensorsFile file = read_safetensors(path);
  std::map<std::string, NamedTensors> by_prefix;
  for (auto& [name, t] : file.tensors) {
    size_t dot = name.find('.');
    by_prefix[name.substr(0, dot)].emplace_back(dot == std::string::npos ? "" : name.substr(dot + 1), t);
  }
  for (const auto& [prefix, optimizer] : optimizers) {
    auto it = by_prefix.find(prefix);
    AFD_CHECK(it != by_prefix.end(), "{}: no state for optimizer '{}' ({})", path, prefix, optimizer->name());
    try {
      optimizer->load_state(it->second);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: optimizer '{}': {}", path, prefix, e.what()));
    }
    by_prefix.erase(it);
  }
  AFD_CHECK(by_prefix.empty(), "{}: state for an unknown optimizer '{}'", path, by_prefix.begin()->first);
  return file.metadata;
}

}  // namespace afd::nn
