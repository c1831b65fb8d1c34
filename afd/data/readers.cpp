#include "afd/data/readers.h"

#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "tensor/error.h"

namespace afd::data {

namespace {

// Largest decompressed file we accept: far above any dataset file, small enough that a
// "zip bomb" fails with a message instead of exhausting memory.
constexpr size_t kMaxDecompressed = size_t(4) << 30;

uint32_t read_be32(std::span<const uint8_t> b, size_t at) {
  return (uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) | (uint32_t(b[at + 2]) << 8) | uint32_t(b[at + 3]);
}

std::vector<uint8_t> gunzip(const std::vector<uint8_t>& packed, const std::string& path) {
  z_stream zs{};
  // 15 + 16: a 32 KiB window and a gzip (not zlib) wrapper.
  AFD_CHECK(inflateInit2(&zs, 15 + 16) == Z_OK, "{}: zlib inflateInit2 failed", path);
  std::vector<uint8_t> out(std::max<size_t>(packed.size() * 4, 1 << 16));
  zs.next_in = const_cast<Bytef*>(packed.data());
  zs.avail_in = static_cast<uInt>(packed.size());
  size_t produced = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (produced == out.size()) {
      if (out.size() >= kMaxDecompressed) {
        inflateEnd(&zs);
        AFD_FAIL("{}: decompressed data exceeds {} bytes (expected a dataset file)", path, kMaxDecompressed);
      }
      out.resize(std::min(out.size() * 2, kMaxDecompressed));
    }
    size_t room = std::min<size_t>(out.size() - produced, 1u << 30);
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(room);
    rc = inflate(&zs, Z_NO_FLUSH);
    produced += room - zs.avail_out;
    if (rc == Z_STREAM_END) break;
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
      size_t at = zs.total_in;
      inflateEnd(&zs);
      AFD_FAIL("{}: gzip stream is truncated at compressed byte offset {} (expected more compressed data)",
               path, at);
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      size_t at = zs.total_in;
      std::string msg = zs.msg ? zs.msg : "unknown zlib error";
      inflateEnd(&zs);
      AFD_FAIL("{}: corrupt gzip data near compressed byte offset {}: {}", path, at, msg);
    }
  }
  inflateEnd(&zs);
  out.resize(produced);
  return out;
}

}  // namespace

void require_regular_file(const std::string& path) {
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(path, ec);
  AFD_CHECK(std::filesystem::exists(st), "{}: cannot open file (expected a readable dataset file)", path);
  AFD_CHECK(std::filesystem::is_regular_file(st), "{}: not a regular file (it is a {})", path,
            std::filesystem::is_directory(st) ? "folder" : "device, socket or pipe");
}

std::vector<uint8_t> read_file(const std::string& path) {
  require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  AFD_CHECK(in.good(), "{}: cannot open file (expected a readable dataset file)", path);
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  AFD_CHECK(size >= 0, "{}: cannot determine the file size", path);
  in.seekg(0, std::ios::beg);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (size > 0) in.read(reinterpret_cast<char*>(bytes.data()), size);
  AFD_CHECK(in.gcount() == size, "{}: read {} of {} bytes", path, in.gcount(), size);
  if (bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) return gunzip(bytes, path);
  return bytes;
}

// ---- IDX -------------------------------------------------------------------------------------------

IdxHeader parse_idx_header(std::span<const uint8_t> bytes, const std::string& name) {
  AFD_CHECK(bytes.size() >= 4, "{}: byte offset {}: file ends inside the 4-byte IDX magic (file has {} bytes)",
            name, bytes.size(), bytes.size());
  AFD_CHECK(bytes[0] == 0 && bytes[1] == 0,
            "{}: byte offset 0: wrong IDX magic {:02x} {:02x} {:02x} {:02x} (expected 00 00 <type> <ndims>)", name,
            bytes[0], bytes[1], bytes[2], bytes[3]);
  IdxHeader h;
  uint8_t type = bytes[2];
  AFD_CHECK(type == 0x08 || type == 0x09 || type == 0x0B || type == 0x0C || type == 0x0D || type == 0x0E,
            "{}: byte offset 2: unknown IDX type code 0x{:02x} (expected 08, 09, 0B, 0C, 0D or 0E)", name, type);
  h.type = static_cast<IdxType>(type);
  int ndims = bytes[3];
  AFD_CHECK(ndims >= 1 && ndims <= 8, "{}: byte offset 3: IDX ndims {} (expected 1 to 8)", name, ndims);
  h.data_offset = 4 + 4 * int64_t(ndims);
  AFD_CHECK(bytes.size() >= size_t(h.data_offset),
            "{}: byte offset {}: file ends inside the IDX header (expected {} header bytes for {} dimensions)",
            name, bytes.size(), h.data_offset, ndims);
  static constexpr int kElemSize[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 2, 4, 4, 8, 0};
  // Product of the sizes, checked against the file as it grows (no overflow: each factor < 2^32 and
  // the running product stays <= the file size).
  uint64_t expected = uint64_t(kElemSize[type]);
  for (int d = 0; d < ndims; ++d) {
    uint32_t size = read_be32(bytes, 4 + 4 * size_t(d));
    h.dims.push_back(size);
    if (expected != 0 && size > (uint64_t(1) << 62) / expected) expected = uint64_t(1) << 62;  // saturate
    else expected *= size;
  }
  uint64_t have = bytes.size() - uint64_t(h.data_offset);
  AFD_CHECK(have == expected,
            "{}: byte offset {}: IDX dimensions {} promise {} data bytes but the file has {} after the header "
            "({})",
            name, h.data_offset, shape_str(h.dims), expected, have,
            have < expected ? "truncated file" : "trailing bytes");
  return h;
}

Tensor parse_idx_images(std::span<const uint8_t> bytes, const std::string& name) {
  IdxHeader h = parse_idx_header(bytes, name);
  AFD_CHECK(h.type == IdxType::u8, "{}: byte offset 2: IDX type 0x{:02x} (expected 0x08, unsigned bytes, for images)",
            name, uint8_t(h.type));
  AFD_CHECK(h.dims.size() == 3, "{}: byte offset 3: IDX image file has {} dimensions (expected 3: N, H, W)", name,
            h.dims.size());
  AFD_CHECK(h.dims[1] > 0 && h.dims[2] > 0, "{}: byte offset 8: image size {}x{} (expected positive sizes)", name,
            h.dims[1], h.dims[2]);
  Tensor images({h.dims[0], 1, h.dims[1], h.dims[2]}, DType::u8);
  if (images.numel() > 0) std::memcpy(images.data<uint8_t>(), bytes.data() + h.data_offset, images.nbytes());
  return images;
}

Tensor parse_idx_labels(std::span<const uint8_t> bytes, const std::string& name, int64_t classes) {
  IdxHeader h = parse_idx_header(bytes, name);
  AFD_CHECK(h.type == IdxType::u8, "{}: byte offset 2: IDX type 0x{:02x} (expected 0x08, unsigned bytes, for labels)",
            name, uint8_t(h.type));
  AFD_CHECK(h.dims.size() == 1, "{}: byte offset 3: IDX label file has {} dimensions (expected 1: N)", name,
            h.dims.size());
  Tensor labels({h.dims[0]}, DType::i64);
  int64_t* out = labels.data<int64_t>();
  for (int64_t i = 0; i < h.dims[0]; ++i) {
    uint8_t v = bytes[size_t(h.data_offset + i)];
    AFD_CHECK(v < classes, "{}: byte offset {}: label {} of sample {} (expected 0 to {})", name,
              h.data_offset + i, v, i, classes - 1);
    out[i] = v;
  }
  return labels;
}

Tensor read_idx_images(const std::string& path) { return parse_idx_images(read_file(path), path); }
Tensor read_idx_labels(const std::string& path, int64_t classes) {
  return parse_idx_labels(read_file(path), path, classes);
}

// ---- CIFAR -----------------------------------------------------------------------------------------

int64_t cifar_record_bytes(CifarKind kind) { return kind == CifarKind::cifar10 ? 3073 : 3074; }

CifarRecords parse_cifar(std::span<const uint8_t> bytes, const std::string& name, CifarKind kind) {
  const int64_t record = cifar_record_bytes(kind);
  const int64_t pixels = 3 * 32 * 32;
  const int64_t size = int64_t(bytes.size());
  AFD_CHECK(size > 0, "{}: byte offset 0: empty file (expected records of {} bytes)", name, record);
  AFD_CHECK(size % record == 0,
            "{}: byte offset {}: file ends inside record {} ({} bytes is not a multiple of the {}-byte record; "
            "truncated file?)",
            name, size, size / record, size, record);
  const int64_t n = size / record;
  CifarRecords r;
  r.images = Tensor({n, 3, 32, 32}, DType::u8);
  r.labels = Tensor({n}, DType::i64);
  if (kind == CifarKind::cifar100) r.coarse_labels = Tensor({n}, DType::i64);
  uint8_t* img = r.images.data<uint8_t>();
  int64_t* lab = r.labels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* rec = bytes.data() + i * record;
    if (kind == CifarKind::cifar10) {
      AFD_CHECK(rec[0] < 10, "{}: byte offset {}: label {} of record {} (expected 0 to 9)", name, i * record,
                rec[0], i);
      lab[i] = rec[0];
    } else {
      AFD_CHECK(rec[0] < 20, "{}: byte offset {}: coarse label {} of record {} (expected 0 to 19)", name,
                i * record, rec[0], i);
      AFD_CHECK(rec[1] < 100, "{}: byte offset {}: fine label {} of record {} (expected 0 to 99)", name,
                i * record + 1, rec[1], i);
      r.coarse_labels.data<int64_t>()[i] = rec[0];
      lab[i] = rec[1];
    }
    std::memcpy(img + i * pixels, rec + (record - pixels), size_t(pixels));
  }
  return r;
}

CifarRecords read_cifar(const std::string& path, CifarKind kind) { return parse_cifar(read_file(path), path, kind); }

}  // namespace afd::data
