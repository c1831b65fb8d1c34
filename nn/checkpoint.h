// Model checkpoints: a module's state_dict (parameters and persistent buffers, PyTorch names and
// order) in one safetensors file, written atomically, that PyTorch loads with
// model.load_state_dict(safetensors.torch.load_file(path), strict=True).
//
//   nn::save_state_dict(*model, "model.safetensors", {{"config", flags_json}});
//   auto metadata = nn::load_state_dict_file(*model, "model.safetensors");   // strict
#pragma once
#include <map>
#include <string>

#include "nn/module.h"

namespace afd::nn {

void save_state_dict(const Module& module, const std::string& path,
                     const std::map<std::string, std::string>& metadata = {});
// Reads `path` (strict safetensors validation) and loads it into `module` with the strictness of
// Module::load_state_dict; errors name the file. Returns the file's metadata.
std::map<std::string, std::string> load_state_dict_file(Module& module, const std::string& path,
                                                         bool strict = true);

}  // namespace afd::nn
