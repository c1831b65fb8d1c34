// safetensors: the checkpoint format (specs/formats.md). PyTorch, JAX and others read it, and
// unlike pickle it cannot run code on load, so the reader is strict: every malformed file is
// rejected with a SafetensorsError that names the file, the tensor and the byte offset.
//
// Layout: 8 bytes u64 little-endian N, then an N-byte UTF-8 JSON header padded with spaces,
// then the byte buffer. The header maps each name to {"dtype", "shape", "data_offsets": [BEGIN,
// END]} (offsets relative to the buffer) and may hold "__metadata__": {str: str}.
//
//   write_safetensors("ckpt.safetensors", {{"fc.weight", w}, {"fc.bias", b}}, {{"step", "100"}});
//   SafetensorsFile f = read_safetensors("ckpt.safetensors");
//   const Tensor& w2 = f.get("fc.weight");   // throws naming the file if absent
//
// Supported dtypes: F32, F64, I64, U8 (afd's dtypes), and F16 / BF16, which are widened to F32
// exactly on load (half-precision checkpoints from PyTorch). The other safetensors dtypes (I32,
// I16, I8, BOOL, ...) are recognised and rejected as unsupported.
//
// Integrity: the writer records the crc32 of the byte buffer in the metadata ("afd.crc32"); the
// reader checks it where present (files from other writers have none) and drops the key from the
// metadata it returns, so a bit flipped after writing is an error instead of a wrong weight.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tensor/error.h"
#include "tensor/tensor.h"

namespace afd {

// What is wrong with a file, so that callers and tests can tell the cases apart.
enum class SafetensorsErrorKind {
  io,                 // cannot open, read, write, sync or rename
  header_size,        // file shorter than 8 bytes, N over the file or over 100,000,000
  header_encoding,    // header not UTF-8
  header_json,        // not JSON, not an object, or an entry without the expected fields
  duplicate_name,     // a name (or a key inside an entry) appears twice
  unknown_dtype,      // a dtype string safetensors does not define
  unsupported_dtype,  // a safetensors dtype afd has no Tensor type for (I32, I16, I8, BOOL, ...)
  size_mismatch,      // END - BEGIN differs from dtype size x numel, or numel overflows
  offsets,            // offsets do not start at 0, overlap, leave holes or run past the buffer
  metadata,           // __metadata__ not an object of strings
  invalid_argument,   // writer input: duplicate or reserved names, undefined tensors
  checksum,           // the data's crc32 differs from the one afd's writer recorded: corrupt
};

const char* safetensors_error_kind_name(SafetensorsErrorKind kind);

class SafetensorsError : public Error {
 public:
  SafetensorsError(SafetensorsErrorKind kind, const std::string& message) : Error(message), kind_(kind) {}
  SafetensorsErrorKind kind() const { return kind_; }

 private:
  SafetensorsErrorKind kind_;
};

struct SafetensorsFile {
  std::string path;                                      // where it was read from (for errors)
  std::vector<std::pair<std::string, Tensor>> tensors;   // in the order of their data in the file
  std::map<std::string, std::string> metadata;           // "__metadata__", empty if absent

  bool contains(const std::string& name) const;
  // The tensor called `name`; throws afd::Error naming the file and the missing name.
  const Tensor& get(const std::string& name) const;
};

// Reads and validates the whole file; tensors land on the CPU.
SafetensorsFile read_safetensors(const std::string& path);

// Writes `tensors` in the given order (CUDA tensors are copied to the host first), with the
// checksum in the metadata ("afd.crc32" is reserved), atomically:
// the bytes go to `path`.tmp.<pid>, are fsync'ed, and the temp file is renamed over `path`. On any
// error the temp file is removed and a SafetensorsError is thrown; `path` is never half-written.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Fault injection for tests: once `bytes` more bytes have been written by write_safetensors (in
// any file), the next write fails as a full disk does (WriteFault::fail: ENOSPC, an io error) or
// the process kills itself with SIGKILL (WriteFault::kill: a crash in the middle of a file).
// bytes = -1 turns it off.
enum class WriteFault { fail, kill };
void inject_write_fault_for_testing(int64_t bytes, WriteFault action = WriteFault::fail);

}  // namespace afd
