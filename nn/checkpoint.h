// Model checkpoints: a module's state_dict (parameters and persistent buffers, PyTorch names and
// order) in one safetensors file, written atomically, that PyTorch loads with
// model.load_state_dict(safetensors.torch.load_file(path), strict=True).
//
//   nn::save_state_dict(*model, "model.safetensors", {{"config", flags_json}});
//   auto metadata = nn::load_state_dict_file(*model, "model.safetensors");   // strict
//
// The optimizers' state and the run state go to a second file: each optimizer's named state under
// its own prefix, and the run's flags and counters as metadata strings (a JSON string for flags).
//
//   nn::save_optimizer_states({{"fc", &opt_fc}, {"d", &opt_d}}, "optim.safetensors", {{"epoch", "7"}});
//   auto run = nn::load_optimizer_states({{"fc", &opt_fc}, {"d", &opt_d}}, "optim.safetensors");
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"
#include "nn/optim/optimizer.h"

namespace afd::nn {

void save_state_dict(const Module& module, const std::string& path,
                     const std::map<std::string, std::string>& metadata = {});
// Reads `path` (strict safetensors validation) and loads it into `module` with the strictness of
// Module::load_state_dict; errors name the file. Returns the file's metadata.
std::map<std::string, std::string> load_state_dict_file(Module& module, const std::string& path,
                                                         bool strict = true);

// Writes every optimizer's state() as "<prefix>.<name>" into one safetensors file, atomically.
void save_optimizer_states(const std::vector<std::pair<std::string, const Optimizer*>>& optimizers,
                           const std::string& path, const std::map<std::string, std::string>& metadata = {});
// Restores each optimizer from its prefix. Every prefix must be in the file and every tensor of the
// file must belong to one of them (errors name the file and the prefix or tensor). Returns the
// metadata.
std::map<std::string, std::string> load_optimizer_states(
    const std::vector<std::pair<std::string, Optimizer*>>& optimizers, const std::string& path);

}  // namespace afd::nn
