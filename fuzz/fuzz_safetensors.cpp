// libFuzzer target: the safetensors reader (8-byte header length, JSON header, dtypes, shapes,
// data offsets) on arbitrary bytes. Any input must give either a file or afd::Error, never a
// crash, a sanitizer report, a hang or an allocation beyond the file's size. See fuzz/build.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "nn/safetensors.h"
#include "tensor/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The reader takes a path: the bytes go to a per-process file (in memory where /dev/shm exists).
  static const std::string path = "/tmp/afd_fuzz_safetensors_" + std::to_string(::getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  if (size > 0) std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    afd::SafetensorsFile file = afd::read_safetensors(path);
    for (const auto& [name, t] : file.tensors) (void)t.numel();
  } catch (const afd::Error&) {
  }
  return 0;
}
