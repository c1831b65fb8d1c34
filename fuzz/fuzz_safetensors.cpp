// libFuzzer target: the safetensors reader (8-byte header length, JSON header, dtypes, shapes,
// data offsets) on arbitrary bytes. Any input must give either a file or afd::Error, never a
// crash, a sanitizer report, a hang or an allocation beyond the file's size. See fuzz/build.sh.

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/scratch_file.h"
#include "nn/safetensors.h"
#include "tensor/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const afd::fuzz::ScratchFile scratch("afd_fuzz_safetensors");
  if (!scratch.write(data, size)) return 0;
  try {
    afd::SafetensorsFile file = afd::read_safetensors(scratch.path());
    for (const auto& [name, t] : file.tensors) (void)t.numel();
  } catch (const afd::Error&) {
  }
  return 0;
}
