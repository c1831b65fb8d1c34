// safetensors reader and writer. The reader trusts nothing in the file: every size is checked
// against the file length before anything is allocated, every multiplication is checked for
// overflow, and the tensors' byte ranges must tile the buffer exactly (no overlaps, no holes).
#include "nn/safetensors.h"

#include <fcntl.h>
#include <zlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>

namespace afd {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swaps here");

namespace {

using Kind = SafetensorsErrorKind;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the format's own limit
constexpr size_t kMaxJsonDepth = 16;                // a valid header nests 3 deep

[[noreturn]] void fail(Kind kind, const std::string& path, const std::string& what) {
  throw SafetensorsError(kind, fmt::format("safetensors {}: {} [{}]", path, what, safetensors_error_kind_name(kind)));
}

// afd's writer records the crc32 of the data buffer in the metadata under this key; the reader
// checks it when present (files from elsewhere have none) and hides the key from the caller.
constexpr const char* kCrcKey = "afd.crc32";
std::string crc_hex(uLong crc) { return fmt::format("{:08x}", static_cast<uint32_t>(crc)); }

// ---- dtypes --------------------------------------------------------------------------------------
// How file elements become Tensor elements: copied as they are, or widened from a 16-bit float.
enum class Widen { none, f16, bf16 };

struct DtypeInfo {
  const char* name;
  size_t size;  // bytes per element in the file
  bool supported;
  DType dtype;  // meaningful when supported
  Widen widen = Widen::none;
};

constexpr DtypeInfo kDtypes[] = {
    {"F64", 8, true, DType::f64},      {"F32", 4, true, DType::f32},      {"I64", 8, true, DType::i64},
    {"U8", 1, true, DType::u8},        {"F16", 2, true, DType::f32, Widen::f16},
    {"BF16", 2, true, DType::f32, Widen::bf16},
    {"I32", 4, false, DType::f32},     {"I16", 2, false, DType::f32},     {"I8", 1, false, DType::f32},
    {"BOOL", 1, false, DType::f32},    {"U16", 2, false, DType::f32},     {"U32", 4, false, DType::f32},
    {"U64", 8, false, DType::f32},     {"F8_E4M3", 1, false, DType::f32}, {"F8_E5M2", 1, false, DType::f32},
};

// IEEE binary16 -> binary32, exactly (every half value is a float): sign, 5-bit exponent (bias 15),
// 10-bit mantissa; exponent 0 is subnormal (m 2^-24), exponent 31 is inf or NaN.
float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h >> 15) << 31, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf, or NaN keeping its payload
  } else if (exponent != 0) {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  } else {
    float magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal
    std::memcpy(&bits, &magnitude, 4);
    bits |= sign;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// bfloat16 is the top half of a binary32.
float bfloat16_to_float(uint16_t b) {
  uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

const DtypeInfo* find_dtype(const std::string& name) {
  for (const DtypeInfo& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
  }
  return "?";
}

// ---- UTF-8 ---------------------------------------------------------------------------------------
// Index of the first byte that is not part of a well-formed UTF-8 sequence (no overlong forms, no
// surrogates, nothing above U+10FFFF), or npos when all of `s` is well formed.
size_t first_invalid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return i;
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string::npos;
}

// ---- file io -------------------------------------------------------------------------------------
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { if (fd_ >= 0) ::close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string errno_text() { return std::strerror(errno); }

// Reads exactly `n` bytes at `offset`.
void read_exact(int fd, const std::string& path, uint64_t offset, void* dst, uint64_t n) {
  auto* out = static_cast<char*>(dst);
  while (n > 0) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, 1u << 30));
    ssize_t got = ::pread(fd, out, chunk, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(Kind::io, path, fmt::format("read failed at byte {}: {}", offset, errno_text()));
    if (got == 0) fail(Kind::io, path, fmt::format("unexpected end of file at byte {}", offset));
    out += got;
    offset += static_cast<uint64_t>(got);
    n -= static_cast<uint64_t>(got);
  }
}

// The fault-injection hook (inject_write_fault_for_testing): bytes the writers may still write
// before the fault strikes (-1: off), and what it does then.
std::atomic<int64_t> g_fault_budget{-1};
std::atomic<WriteFault> g_fault_action{WriteFault::fail};

void write_all(int fd, const std::string& path, const void* src, size_t n) {
  const auto* in = static_cast<const char*>(src);
  if (int64_t budget = g_fault_budget.load(); budget >= 0) {
    if (int64_t(n) > budget) {  // write what fits, then fail as a full disk would, or die
      if (budget > 0 && ::write(fd, in, size_t(budget)) < 0) {}
      g_fault_budget = 0;
      if (g_fault_action == WriteFault::kill) ::raise(SIGKILL);
      errno = ENOSPC;
      fail(Kind::io, path, fmt::format("write failed: {} (injected by the fault-injection hook)", errno_text()));
    }
    g_fault_budget = budget - int64_t(n);
  }
  while (n > 0) {
    ssize_t put = ::write(fd, in, std::min<size_t>(n, 1u << 30));
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) fail(Kind::io, path, fmt::format("write failed: {}", errno_text()));
    in += put;
    n -= static_cast<size_t>(put);
  }
}

// ---- header parsing ------------------------------------------------------------------------------
using json = nlohmann::json;

// Parses the header, rejecting duplicate keys in any object (nlohmann would keep the last one
// silently) and nesting deeper than any valid header needs.
json parse_header(const std::string& header, const std::string& path, uint64_t header_start) {
  std::vector<std::set<std::string>> open_objects;  // keys seen so far, one set per open object
  auto on_event = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        open_objects.emplace_back();
        if (open_objects.size() > kMaxJsonDepth)
          fail(Kind::header_json, path, fmt::format("header nests deeper than {} levels", kMaxJsonDepth));
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        open_objects.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!open_objects.back().insert(key).second) {
          if (open_objects.size() == 1)
            fail(Kind::duplicate_name, path, fmt::format("duplicate tensor name '{}' in the header", key));
          fail(Kind::duplicate_name, path, fmt::format("duplicate key '{}' inside a header entry", key));
        }
        break;
      }
      case json::parse_event_t::value: break;
    }
    return true;
  };
  try {
    return json::parse(header.begin(), header.end(), on_event);
  } catch (const json::parse_error& e) {
    fail(Kind::header_json, path,
         fmt::format("header is not valid JSON (near file byte {}): {}", header_start + (e.byte > 0 ? e.byte - 1 : 0),
                     e.what()));
  } catch (const json::out_of_range& e) {  // a number beyond double's range, e.g. 7e777
    fail(Kind::header_json, path, fmt::format("header is not valid JSON: {}", e.what()));
  }
}

// A non-negative JSON integer that fits in int64, or a header_json error naming `what`.
uint64_t header_uint(const json& v, const std::string& path, const std::string& what) {
  if (!v.is_number_unsigned() || v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    fail(Kind::header_json, path, fmt::format("{} must be a non-negative integer below 2^63, got {}", what, v.dump()));
  return v.get<uint64_t>();
}

struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  Shape shape;
  uint64_t begin, end;  // relative to the start of the buffer
};

Entry parse_entry(const std::string& name, const json& v, const std::string& path) {
  std::string where = fmt::format("tensor '{}'", name);
  if (!v.is_object()) fail(Kind::header_json, path, fmt::format("{}: entry must be a JSON object, got {}", where, v.dump()));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) fail(Kind::header_json, path, fmt::format("{}: entry has no \"{}\"", where, key));
  for (const auto& [key, _] : v.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      fail(Kind::header_json, path, fmt::format("{}: unexpected key \"{}\" in the entry", where, key));

  Entry e{name, nullptr, {}, 0, 0};
  const json& dtype = v["dtype"];
  if (!dtype.is_string()) fail(Kind::header_json, path, fmt::format("{}: dtype must be a string, got {}", where, dtype.dump()));
  e.dtype = find_dtype(dtype.get<std::string>());
  if (!e.dtype) fail(Kind::unknown_dtype, path, fmt::format("{}: unknown dtype {}", where, dtype.dump()));

  const json& shape = v["shape"];
  if (!shape.is_array()) fail(Kind::header_json, path, fmt::format("{}: shape must be an array, got {}", where, shape.dump()));
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : shape) {
    uint64_t size = header_uint(d, path, where + ": each shape entry");
    e.shape.push_back(static_cast<int64_t>(size));
    overflow = overflow || __builtin_mul_overflow(numel, size, &numel);
  }
  uint64_t nbytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, uint64_t(e.dtype->size), &nbytes) ||
             nbytes > uint64_t(std::numeric_limits<int64_t>::max());
  if (overflow)
    fail(Kind::size_mismatch, path,
         fmt::format("{}: shape {} with dtype {} overflows 64 bits", where, shape.dump(), e.dtype->name));

  const json& offsets = v["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail(Kind::header_json, path, fmt::format("{}: data_offsets must be [BEGIN, END], got {}", where, offsets.dump()));
  e.begin = header_uint(offsets[0], path, where + ": data_offsets BEGIN");
  e.end = header_uint(offsets[1], path, where + ": data_offsets END");
  if (e.end < e.begin)
    fail(Kind::offsets, path, fmt::format("{}: data_offsets [{}, {}] end before they begin", where, e.begin, e.end));
  if (e.end - e.begin != nbytes)
    fail(Kind::size_mismatch, path,
         fmt::format("{}: data_offsets [{}, {}] span {} bytes but dtype {} x shape {} needs {} bytes", where, e.begin,
                     e.end, e.end - e.begin, e.dtype->name, shape.dump(), nbytes));
  return e;
}

std::map<std::string, std::string> parse_metadata(const json& v, const std::string& path) {
  if (!v.is_object()) fail(Kind::metadata, path, fmt::format("__metadata__ must be an object, got {}", v.dump()));
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : v.items()) {
    if (!value.is_string())
      fail(Kind::metadata, path, fmt::format("__metadata__ value of '{}' must be a string, got {}", key, value.dump()));
    out[key] = value.get<std::string>();
  }
  return out;
}

}  // namespace

void inject_write_fault_for_testing(int64_t bytes, WriteFault action) {
  g_fault_action = action;
  g_fault_budget = bytes;
}

const char* safetensors_error_kind_name(SafetensorsErrorKind kind) {
  switch (kind) {
    case Kind::io: return "io";
    case Kind::header_size: return "header_size";
    case Kind::header_encoding: return "header_encoding";
    case Kind::header_json: return "header_json";
    case Kind::duplicate_name: return "duplicate_name";
    case Kind::unknown_dtype: return "unknown_dtype";
    case Kind::unsupported_dtype: return "unsupported_dtype";
    case Kind::size_mismatch: return "size_mismatch";
    case Kind::offsets: return "offsets";
    case Kind::metadata: return "metadata";
    case Kind::invalid_argument: return "invalid_argument";
    case Kind::checksum: return "checksum";
  }
  return "?";
}

bool SafetensorsFile::contains(const std::string& name) const {
  return std::any_of(tensors.begin(), tensors.end(), [&](const auto& t) { return t.first == name; });
}

const Tensor& SafetensorsFile::get(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  AFD_FAIL("safetensors {}: no tensor named '{}' (the file holds {} tensors)", path, name, tensors.size());
}

// ---- reader --------------------------------------------------------------------------------------
SafetensorsFile read_safetensors(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail(Kind::io, path, fmt::format("cannot open: {}", errno_text()));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) fail(Kind::io, path, fmt::format("cannot stat: {}", errno_text()));
  if (!S_ISREG(st.st_mode)) fail(Kind::io, path, "not a regular file");
  uint64_t file_size = static_cast<uint64_t>(st.st_size);

  // 8 bytes: the header length N
  if (file_size < 8)
    fail(Kind::header_size, path, fmt::format("file is {} bytes, too short for the 8-byte header length", file_size));
  unsigned char len_bytes[8];
  read_exact(fd.get(), path, 0, len_bytes, 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > kMaxHeaderBytes)
    fail(Kind::header_size, path,
         fmt::format("header length {} (bytes 0-7) exceeds the limit of {} bytes", header_len, kMaxHeaderBytes));
  if (header_len > file_size - 8)
    fail(Kind::header_size, path,
         fmt::format("header length {} (bytes 0-7) runs past the end of the {}-byte file", header_len, file_size));

  // N bytes: UTF-8 JSON object, padded with spaces
  std::string header(header_len, '\0');
  read_exact(fd.get(), path, 8, header.data(), header_len);
  if (size_t bad = first_invalid_utf8(header); bad != std::string::npos)
    fail(Kind::header_encoding, path, fmt::format("header is not valid UTF-8 at file byte {}", 8 + bad));
  if (header.empty() || header[0] != '{')
    fail(Kind::header_json, path, "header does not start with '{' at file byte 8");
  json root = parse_header(header, path, 8);
  if (!root.is_object()) fail(Kind::header_json, path, "header is not a JSON object");

  SafetensorsFile out;
  out.path = path;
  std::vector<Entry> entries;
  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") out.metadata = parse_metadata(value, path);
    else entries.push_back(parse_entry(name, value, path));
  }
  // The checksum afd's writer adds: checked below, not part of what the caller sees.
  std::optional<std::string> crc_text;
  if (auto it = out.metadata.find(kCrcKey); it != out.metadata.end()) {
    crc_text = it->second;
    out.metadata.erase(it);
  }

  // The byte ranges, in buffer order, must tile [0, buffer_len) exactly.
  const uint64_t data_start = 8 + header_len;
  const uint64_t buffer_len = file_size - data_start;
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t expected = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin > expected) {
      if (previous)
        fail(Kind::offsets, path,
             fmt::format("tensor '{}' starts at buffer offset {} (file byte {}) but '{}' ends at {}: a hole of {} bytes",
                         e.name, e.begin, data_start + e.begin, previous->name, expected, e.begin - expected));
      fail(Kind::offsets, path,
           fmt::format("the data does not start at offset 0: the first tensor '{}' starts at buffer offset {} "
                       "(file byte {})",
                       e.name, e.begin, data_start + e.begin));
    }
    if (e.begin < expected)
      fail(Kind::offsets, path,
           fmt::format("tensor '{}' at buffer offsets [{}, {}] (file byte {}) overlaps '{}', which ends at {}", e.name,
                       e.begin, e.end, data_start + e.begin, previous->name, expected));
    if (e.end > buffer_len)
      fail(Kind::offsets, path,
           fmt::format("tensor '{}' ends at buffer offset {} (file byte {}), past the end of the {}-byte buffer",
                       e.name, e.end, data_start + e.end, buffer_len));
    expected = e.end;
    previous = &e;
  }
  if (expected != buffer_len)
    fail(Kind::offsets, path,
         fmt::format("the tensors end at buffer offset {} but the buffer holds {} bytes ({} unclaimed bytes from "
                     "file byte {})",
                     expected, buffer_len, buffer_len - expected, data_start + expected));

  // Only a well-formed file gets as far as "unsupported".
  for (const Entry& e : entries)
    if (!e.dtype->supported)
      fail(Kind::unsupported_dtype, path,
           fmt::format("tensor '{}' has dtype {}, which is unsupported (afd reads F32, F64, I64, U8, and F16/BF16 as F32)", e.name,
                       e.dtype->name));

  uLong crc = ::crc32_z(0L, Z_NULL, 0);  // over the data buffer in file order (entries are sorted)
  for (const Entry& e : entries) {
    Tensor t(e.shape, e.dtype->dtype);
    if (e.dtype->widen == Widen::none) {
      read_exact(fd.get(), path, data_start + e.begin, t.raw_data(), e.end - e.begin);
      crc = ::crc32_z(crc, static_cast<const Bytef*>(t.raw_data()), e.end - e.begin);
    } else {
      // F16 and BF16 are read as 16-bit words (little-endian) and widened to f32.
      std::vector<uint16_t> half(static_cast<size_t>(t.numel()));
      read_exact(fd.get(), path, data_start + e.begin, half.data(), e.end - e.begin);
      crc = ::crc32_z(crc, reinterpret_cast<const Bytef*>(half.data()), e.end - e.begin);
      float* dst = t.data<float>();
      for (size_t i = 0; i < half.size(); ++i)
        dst[i] = e.dtype->widen == Widen::f16 ? half_to_float(half[i]) : bfloat16_to_float(half[i]);
    }
    out.tensors.emplace_back(e.name, std::move(t));
  }
  if (crc_text && *crc_text != crc_hex(crc))
    fail(Kind::checksum, path,
         fmt::format("the data's crc32 is {} but the header records {}: the file is corrupt (bytes changed after "
                     "it was written)", crc_hex(crc), *crc_text));
  return out;
}

// ---- writer --------------------------------------------------------------------------------------
namespace {

// The temp file of an atomic write: removed unless commit() renamed it into place.
class TempFile {
 public:
  TempFile(std::string tmp_path, std::string final_path)
      : tmp_(std::move(tmp_path)), final_(std::move(final_path)) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd_ < 0) fail(Kind::io, final_, fmt::format("cannot create temp file {}: {}", tmp_, errno_text()));
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const void* src, size_t n) { write_all(fd_, final_, src, n); }

  void commit() {
    if (::fsync(fd_) != 0) fail(Kind::io, final_, fmt::format("fsync of {} failed: {}", tmp_, errno_text()));
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail(Kind::io, final_, fmt::format("close of {} failed: {}", tmp_, errno_text()));
    if (::rename(tmp_.c_str(), final_.c_str()) != 0)
      fail(Kind::io, final_, fmt::format("rename of {} failed: {}", tmp_, errno_text()));
    committed_ = true;
    // Make the rename itself durable. Best effort: the file is complete and in place either way.
    std::string dir = final_.find('/') == std::string::npos ? "." : final_.substr(0, final_.rfind('/') + 1);
    Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir_fd.get() >= 0) ::fsync(dir_fd.get());
  }

 private:
  std::string tmp_, final_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Validate everything and build the header before the temp file exists.
  std::set<std::string> names;
  std::vector<Tensor> host;  // the tensors on the CPU, in order
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  {  // first, as other writers put it; it always holds at least the checksum (added below)
    auto& m = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) m[key] = value;
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail(Kind::invalid_argument, path, "'__metadata__' cannot name a tensor");
    if (!names.insert(name).second) fail(Kind::invalid_argument, path, fmt::format("duplicate tensor name '{}'", name));
    if (!t.defined()) fail(Kind::invalid_argument, path, fmt::format("tensor '{}' is undefined", name));
    host.push_back(t.to(Device::cpu()));
    uint64_t nbytes = t.nbytes();
    header[name] = {{"dtype", safetensors_dtype_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  if (metadata.count(kCrcKey)) fail(Kind::invalid_argument, path, fmt::format("metadata key '{}' is reserved", kCrcKey));
  uLong crc = ::crc32_z(0L, Z_NULL, 0);
  for (const Tensor& t : host) crc = ::crc32_z(crc, static_cast<const Bytef*>(t.raw_data()), t.nbytes());
  header["__metadata__"][kCrcKey] = crc_hex(crc);
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a name or metadata string that is not UTF-8
    fail(Kind::invalid_argument, path, fmt::format("cannot encode the header: {}", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // 8 + N stays a multiple of 8: aligned data

  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));

  TempFile file(path + ".tmp." + std::to_string(::getpid()), path);
  file.write(len_bytes, 8);
  file.write(text.data(), text.size());
  for (const Tensor& t : host)
    if (t.nbytes() > 0) file.write(t.raw_data(), t.nbytes());
  file.commit();
}

}  // namespace afd
