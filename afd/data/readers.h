// Strict readers for the standard dataset files (../shared/specs/formats.md in the workspace).
//
// Every reader checks what the format promises (magic numbers, dimensions, sizes against the file
// length, label ranges, image/label count match) and throws afd::Error naming the file, the byte
// offset and what was expected. Nothing is ever read past the end of a buffer, so a corrupt or
// hostile file gives an error, never a crash (the parsers are fuzzed: see docs/data.md).
//
//   Tensor images = read_idx_images("data/mnist/train-images-idx3-ubyte");   // u8 [60000, 1, 28, 28]
//   Tensor labels = read_idx_labels("data/mnist/train-labels-idx1-ubyte", 10);  // i64 [60000]
//   CifarRecords r = parse_cifar(read_file(path), path, CifarKind::cifar10);
//
// The parse_* functions work on bytes already in memory (`name` is only used in messages); the
// read_* functions read the file first. Gzip-compressed files (magic 1f 8b) are decompressed
// transparently; byte offsets in messages then count bytes of the decompressed stream.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace afd::data {

// Throws unless `path` names a regular file (after symlinks): a folder or a device where a dataset
// file belongs would otherwise read as garbage, an endless stream or a size of 2^63.
void require_regular_file(const std::string& path);

// The whole file, gunzipped when it starts with the gzip magic. Throws when the file is missing,
// not a regular file, unreadable or a corrupt/truncated gzip stream.
std::vector<uint8_t> read_file(const std::string& path);

// ---- IDX (MNIST, Fashion-MNIST) ------------------------------------------------------------------
// Header: 00 00 <type> <ndims>, then ndims big-endian u32 sizes, then the data in C order.
enum class IdxType : uint8_t { u8 = 0x08, i8 = 0x09, i16 = 0x0B, i32 = 0x0C, f32 = 0x0D, f64 = 0x0E };

struct IdxHeader {
  IdxType type = IdxType::u8;
  std::vector<int64_t> dims;
  int64_t data_offset = 0;  // bytes: 4 + 4 * ndims
};

// Checks the magic, the type code, ndims (1..8) and that the file holds exactly the data the
// dimensions promise (no more, no less).
IdxHeader parse_idx_header(std::span<const uint8_t> bytes, const std::string& name);
// u8 images: type 0x08, 3 dimensions [N, H, W] -> Tensor u8 [N, 1, H, W].
Tensor parse_idx_images(std::span<const uint8_t> bytes, const std::string& name);
// u8 labels: type 0x08, 1 dimension [N], each < classes -> Tensor i64 [N].
Tensor parse_idx_labels(std::span<const uint8_t> bytes, const std::string& name, int64_t classes);
Tensor read_idx_images(const std::string& path);
Tensor read_idx_labels(const std::string& path, int64_t classes);

// ---- CIFAR-10 / CIFAR-100 binary version ---------------------------------------------------------
// CIFAR-10 record: 1 label byte (0-9) + 3072 pixel bytes (1024 R, 1024 G, 1024 B; rows row-major).
// CIFAR-100 record: coarse label (0-19), fine label (0-99), 3072 pixel bytes.
enum class CifarKind { cifar10, cifar100 };
int64_t cifar_record_bytes(CifarKind kind);  // 3073 or 3074

struct CifarRecords {
  Tensor images;         // u8 [N, 3, 32, 32]
  Tensor labels;         // i64 [N]: the CIFAR-10 label, or CIFAR-100's fine label
  Tensor coarse_labels;  // i64 [N]: CIFAR-100 only (undefined for CIFAR-10)
};

// The file must hold a whole, positive number of records, each label within its range.
CifarRecords parse_cifar(std::span<const uint8_t> bytes, const std::string& name, CifarKind kind);
CifarRecords read_cifar(const std::string& path, CifarKind kind);

}  // namespace afd::data
