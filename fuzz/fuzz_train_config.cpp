// libFuzzer target: the training config's JSON parser (train::config_from_json), which reads the
// "config" of every checkpoint, on arbitrary text. Any input must give a config or an Error naming
// the key, never a crash, a hang or another exception type; a config it gives must print back to
// JSON that parses to the same text (the checkpoint round trip).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "afd/train/config.h"
#include "tensor/error.h"

using namespace afd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const train::TrainConfig c = train::config_from_json(std::string(reinterpret_cast<const char*>(data), size));
    const std::string once = train::config_to_json(c);
    if (train::config_to_json(train::config_from_json(once)) != once) std::abort();
  } catch (const Error&) {
  }
  return 0;
}
