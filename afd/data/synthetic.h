// Tiny dataset files with known contents, for tests (no test needs the network or ../shared).
//
//   write_idx_images(dir / "train-images-idx3-ubyte", 5, 28, 28);       // pixel = synthetic_pixel(...)
//   write_idx_labels(dir / "train-labels-idx1-ubyte", {0, 1, 2, 3, 4});
//   write_cifar(dir / "data_batch_1.bin", CifarKind::cifar10, {3, 7});    // 2 records
//
// Pixel values are a fixed function of (sample, channel, row, column), so a test knows every byte.
// Corrupt files are made by writing raw bytes with write_bytes (for instance a header that lies).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "afd/data/readers.h"

namespace afd::data {

// The pixel every synthetic writer stores at sample n, channel c, row y, column x.
inline uint8_t synthetic_pixel(int64_t n, int64_t c, int64_t y, int64_t x) {
  return static_cast<uint8_t>((n * 31 + c * 17 + y * 7 + x * 3) & 0xff);
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gzip = false);

// IDX byte streams (header + data) and files.
std::vector<uint8_t> idx_bytes(IdxType type, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data);
void write_idx_images(const std::string& path, int64_t n, int64_t h, int64_t w, bool gzip = false);
void write_idx_labels(const std::string& path, const std::vector<uint8_t>& labels, bool gzip = false);

// CIFAR records: one per label (for CIFAR-100, `labels` are fine labels and the coarse label is
// fine / 5); pixels from synthetic_pixel with sample index first_index + i.
std::vector<uint8_t> cifar_bytes(CifarKind kind, const std::vector<uint8_t>& labels, int64_t first_index = 0);
void write_cifar(const std::string& path, CifarKind kind, const std::vector<uint8_t>& labels,
                 int64_t first_index = 0);

}  // namespace afd::data
