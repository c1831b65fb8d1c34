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

}  // namespace afd::nn
