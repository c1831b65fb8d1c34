// libFuzzer target: the CIFAR-10 and CIFAR-100 record parsers on arbitrary bytes (result or
// afd::Error, never a crash). See fuzz/build.sh and docs/data.md.
#include <cstddef>
#include <cstdint>
#include <span>

#include "afd/data/readers.h"
#include "tensor/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  for (auto kind : {afd::data::CifarKind::cifar10, afd::data::CifarKind::cifar100}) {
    try {
      afd::data::parse_cifar(bytes, "fuzz", kind);
    } catch (const afd::Error&) {
    }
  }
  return 0;
}
