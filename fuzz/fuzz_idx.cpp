// libFuzzer target: the IDX parsers (header, images, labels) on arbitrary bytes. Any input must
// give either a result or afd::Error, never a crash, a sanitizer report or a hang. Build and run:
// see fuzz/build.sh and docs/data.md.
#include <cstddef>
#include <cstdint>
#include <span>

#include "afd/data/readers.h"
#include "tensor/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  try {
    afd::data::parse_idx_header(bytes, "fuzz");
  } catch (const afd::Error&) {
  }
  try {
    afd::data::parse_idx_images(bytes, "fuzz");
  } catch (const afd::Error&) {
  }
  try {
    afd::data::parse_idx_labels(bytes, "fuzz", 10);
  } catch (const afd::Error&) {
  }
  return 0;
}
