#include "afd/data/synthetic.h"

#include <zlib.h>

#include <cstdio>

#include "tensor/error.h"

namespace afd::data {

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    AFD_CHECK(f != nullptr, "{}: cannot create file", path);
    int written = bytes.empty() ? 0 : gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    int rc = gzclose(f);
    AFD_CHECK(written == int(bytes.size()) && rc == Z_OK, "{}: gzip write failed", path);
    return;
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  AFD_CHECK(f != nullptr, "{}: cannot create file", path);
  size_t written = bytes.empty() ? 0 : std::fwrite(bytes.data(), 1, bytes.size(), f);
  int rc = std::fclose(f);
  AFD_CHECK(written == bytes.size() && rc == 0, "{}: write failed", path);
}

std::vector<uint8_t> idx_bytes(IdxType type, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out = {0, 0, static_cast<uint8_t>(type), static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(d >> shift));
  }
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

void write_idx_images(const std::string& path, int64_t n, int64_t h, int64_t w, bool gzip) {
  std::vector<uint8_t> pixels;
  pixels.reserve(size_t(n * h * w));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) pixels.push_back(synthetic_pixel(i, 0, y, x));
  write_bytes(path, idx_bytes(IdxType::u8, {uint32_t(n), uint32_t(h), uint32_t(w)}, pixels), gzip);
}

void write_idx_labels(const std::string& path, const std::vector<uint8_t>& labels, bool gzip) {
  write_bytes(path, idx_bytes(IdxType::u8, {uint32_t(labels.size())}, labels), gzip);
}

std::vector<uint8_t> cifar_bytes(CifarKind kind, const std::vector<uint8_t>& labels, int64_t first_index) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (kind == CifarKind::cifar100) out.push_back(static_cast<uint8_t>(labels[i] / 5));
    out.push_back(labels[i]);
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x) out.push_back(synthetic_pixel(first_index + int64_t(i), c, y, x));
  }
  return out;
}

void write_cifar(const std::string& path, CifarKind kind, const std::vector<uint8_t>& labels, int64_t first_index) {
  write_bytes(path, cifar_bytes(kind, labels, first_index));
}

}  // namespace afd::data
