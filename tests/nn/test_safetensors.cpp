// safetensors: round trips of every supported dtype (0-d and empty tensors included), metadata,
// atomic writes, one test per class of malformed file (each writes the bad bytes itself), and a
// file written by Python (tests/fixtures/make_small_cnn.py).
#include <gtest/gtest.h>

#include <cmath>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <string>

#include "nn/safetensors.h"
#include "tests/support/checks.h"

using namespace afd;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test, removed afterwards.
class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / fmt::format("afd_safetensors_{}_{}", ::getpid(), info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // A file made of the u64 little-endian `header_len` (the header's real size unless given), the
  // header text and `buffer_bytes` zero bytes.
  std::string write_raw(const std::string& header, uint64_t buffer_bytes, int64_t header_len = -1) {
    std::string p = path("bad.safetensors");
    std::ofstream f(p, std::ios::binary);
    uint64_t n = header_len < 0 ? header.size() : static_cast<uint64_t>(header_len);
    for (int i = 0; i < 8; ++i) f.put(static_cast<char>(n >> (8 * i)));
    f << header << std::string(buffer_bytes, '\0');
    return p;
  }

  fs::path dir_;
};

// read_safetensors(p) must throw a SafetensorsError of `kind` whose message holds every fragment.
void expect_rejected(const std::string& p, SafetensorsErrorKind kind, std::initializer_list<std::string> fragments) {
  try {
    read_safetensors(p);
    ADD_FAILURE() << "expected a " << safetensors_error_kind_name(kind) << " error";
  } catch (const SafetensorsError& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.kind(), kind) << "got " << safetensors_error_kind_name(e.kind()) << ": " << msg;
    EXPECT_NE(msg.find(p), std::string::npos) << "message '" << msg << "' does not name the file";
    for (const std::string& f : fragments)
      EXPECT_NE(msg.find(f), std::string::npos) << "message '" << msg << "' lacks '" << f << "'";
  }
}

// One tensor entry of a hand-written header.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t begin,
                  uint64_t end) {
  return fmt::format(R"("{}":{{"dtype":"{}","shape":{},"data_offsets":[{},{}]}})", name, dtype, shape, begin, end);
}

// {e1,e2,...}: a header made of entries.
std::string object(std::initializer_list<std::string> entries) {
  std::string s = "{";
  for (const std::string& e : entries) s += (s.size() > 1 ? "," : "") + e;
  return s + "}";
}

template <class T>
void expect_same(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.dtype(), b.dtype());
  EXPECT_EQ(a.shape(), b.shape());
  EXPECT_EQ(a.to_vector<T>(), b.to_vector<T>());
}

}  // namespace

// ---- round trips -----------------------------------------------------------------------------------
TEST_F(Safetensors, RoundTripsEveryDtypeWithScalarsAndEmptyTensors) {
  std::vector<std::pair<std::string, Tensor>> tensors = {
      {"f32", Tensor::from_vector<float>({1.5f, -2.25f, 3e-38f, 1e30f, 0.f, -0.f}, {2, 3})},
      {"f64", Tensor::from_vector<double>({3.141592653589793, -1e-300, 1e300}, {3, 1})},
      {"i64", Tensor::from_vector<int64_t>({INT64_MIN, -1, 0, 1, INT64_MAX}, {5})},
      {"u8", Tensor::from_vector<uint8_t>({0, 1, 127, 128, 255, 7}, {1, 2, 3})},
      {"scalar.f32", Tensor::from_vector<float>({42.5f}, {})},
      {"scalar.i64", Tensor::from_vector<int64_t>({-7}, {})},
      {"empty.f64", Tensor::from_vector<double>({}, {0})},
      {"empty.u8", Tensor::from_vector<uint8_t>({}, {2, 0, 3})},
      {"after.empty", Tensor::from_vector<double>({2.5}, {1})},
  };
  std::string p = path("round.safetensors");
  write_safetensors(p, tensors);
  SafetensorsFile f = read_safetensors(p);
  ASSERT_EQ(f.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, expected] = tensors[i];
    EXPECT_EQ(f.tensors[i].first, name) << "tensors come back in the order written";
    const Tensor& got = f.get(name);
    dispatch_all(expected.dtype(), [&]<class T>() { expect_same<T>(got, expected); });
  }
  EXPECT_EQ(f.get("scalar.f32").dim(), 0);
  EXPECT_EQ(f.get("empty.u8").numel(), 0);
  EXPECT_TRUE(f.metadata.empty());
}

TEST_F(Safetensors, WritesTheDocumentedLayout) {
  std::string p = path("layout.safetensors");
  write_safetensors(p, {{"b", Tensor::from_vector<float>({1, 2}, {2})}, {"a", Tensor::from_vector<uint8_t>({9}, {1})}});
  std::ifstream in(p, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(n % 8, 0u) << "header padded to a multiple of 8";
  ASSERT_EQ(bytes.size(), 8 + n + 9);
  std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header[header.find_last_not_of(' ')], '}') << "only spaces after the JSON";
  EXPECT_LT(header.find("\"b\""), header.find("\"a\"")) << "header entries in the given order";
  EXPECT_NE(header.find(R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})"), std::string::npos) << header;
  EXPECT_NE(header.find(R"("a":{"dtype":"U8","shape":[1],"data_offsets":[8,9]})"), std::string::npos) << header;
  // 1.0f and 2.0f little-endian, then the byte 9.
  EXPECT_EQ(bytes.substr(8 + n), std::string("\x00\x00\x80\x3f\x00\x00\x00\x40\x09", 9));
}

TEST_F(Safetensors, RoundTripsMetadata) {
  std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"config", R"({"lr": 0.1, "name": "caf\u00e9"})"}, {"empty", ""}, {"ünïcode", "√2 ≈ 1.414"}};
  std::string p = path("meta.safetensors");
  write_safetensors(p, {{"x", Tensor::from_vector<double>({1}, {1})}}, metadata);
  SafetensorsFile f = read_safetensors(p);
  EXPECT_EQ(f.metadata, metadata);
  // A file with no tensors at all is valid too.
  write_safetensors(p, {}, {{"only", "metadata"}});
  SafetensorsFile g = read_safetensors(p);
  EXPECT_TRUE(g.tensors.empty());
  EXPECT_EQ(g.metadata.at("only"), "metadata");
}

TEST_F(Safetensors, GetNamesTheFileAndTheMissingTensor) {
  std::string p = path("get.safetensors");
  write_safetensors(p, {{"present", Tensor::from_vector<double>({1}, {1})}});
  SafetensorsFile f = read_safetensors(p);
  EXPECT_TRUE(f.contains("present"));
  EXPECT_FALSE(f.contains("absent"));
  try {
    f.get("absent");
    ADD_FAILURE() << "get of a missing name must throw";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_NE(msg.find("'absent'"), std::string::npos) << msg;
  }
}

// ---- the writer --------------------------------------------------------------------------------
TEST_F(Safetensors, WriterRejectsDuplicateAndReservedNamesAndLeavesTheOldFile) {
  std::string p = path("keep.safetensors");
  write_safetensors(p, {{"old", Tensor::from_vector<float>({1}, {1})}});
  Tensor t = Tensor::from_vector<float>({2}, {1});
  try {
    write_safetensors(p, {{"w", t}, {"v", t}, {"w", t}});
    ADD_FAILURE() << "duplicate names must be rejected";
  } catch (const SafetensorsError& e) {
    EXPECT_EQ(e.kind(), SafetensorsErrorKind::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("duplicate tensor name 'w'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(write_safetensors(p, {{"__metadata__", t}}), SafetensorsError);
  EXPECT_THROW(write_safetensors(p, {{"undefined", Tensor()}}), SafetensorsError);
  SafetensorsFile f = read_safetensors(p);
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_EQ(f.tensors[0].first, "old");
}

TEST_F(Safetensors, FailedWriteRemovesItsTempFile) {
  // Renaming a file over a directory fails after all the bytes were written and synced.
  fs::create_directories(path("a_directory"));
  Tensor t = Tensor::from_vector<float>({1, 2, 3}, {3});
  try {
    write_safetensors(path("a_directory"), {{"t", t}});
    ADD_FAILURE() << "writing over a directory must fail";
  } catch (const SafetensorsError& e) {
    EXPECT_EQ(e.kind(), SafetensorsErrorKind::io);
    EXPECT_NE(std::string(e.what()).find("rename"), std::string::npos) << e.what();
  }
  // A missing directory fails before anything is written.
  EXPECT_THROW(write_safetensors(path("no/such/dir/x.safetensors"), {{"t", t}}), SafetensorsError);
  for (const auto& item : fs::directory_iterator(dir_))
    EXPECT_EQ(item.path().filename().string().find(".tmp."), std::string::npos) << "left behind: " << item.path();
  EXPECT_TRUE(fs::is_directory(path("a_directory")));
}

TEST_F(Safetensors, AFullDiskMidWriteLeavesTheOldFileAndNoTempFile) {
  std::string p = path("ckpt.safetensors");
  write_safetensors(p, {{"step", Tensor::from_vector<int64_t>({1}, {})}});
  Tensor big = Tensor::zeros({1000}, DType::f64);
  inject_write_fault_for_testing(100);  // the disk fills 100 bytes into the next write
  try {
    write_safetensors(p, {{"step", Tensor::from_vector<int64_t>({2}, {})}, {"big", big}});
    ADD_FAILURE() << "the injected ENOSPC must surface";
  } catch (const SafetensorsError& e) {
    EXPECT_EQ(e.kind(), SafetensorsErrorKind::io);
    EXPECT_NE(std::string(e.what()).find("No space left on device"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
  inject_write_fault_for_testing(-1);
  EXPECT_EQ(read_safetensors(p).get("step").item<int64_t>(), 1);  // the previous file, intact
  for (const auto& item : fs::directory_iterator(dir_))
    EXPECT_EQ(item.path().filename().string().find(".tmp."), std::string::npos) << "left behind: " << item.path();
}

TEST_F(Safetensors, ChecksumCatchesAFlippedDataByteAndStaysHidden) {
  std::string p = path("ckpt.safetensors");
  write_safetensors(p, {{"w", Tensor::from_vector<float>({1, 2, 3, 4}, {4})}}, {{"epoch", "3"}});
  SafetensorsFile f = read_safetensors(p);
  EXPECT_EQ(f.metadata, (std::map<std::string, std::string>{{"epoch", "3"}}));  // the key is hidden
  // Flip one bit of the last data byte: a well-formed file whose numbers changed.
  afd::testing::flip_byte_from_end(p, 1, 0x01);
  expect_rejected(p, SafetensorsErrorKind::checksum, {"crc32", "the file is corrupt"});
  EXPECT_THROW(write_safetensors(p, {{"w", Tensor::zeros({1})}}, {{"afd.crc32", "0"}}), SafetensorsError);
}

TEST_F(Safetensors, OverwritesAnExistingFile) {
  std::string p = path("ckpt.safetensors");
  write_safetensors(p, {{"step", Tensor::from_vector<int64_t>({1}, {})}});
  write_safetensors(p, {{"step", Tensor::from_vector<int64_t>({2}, {})}});
  EXPECT_EQ(read_safetensors(p).get("step").item<int64_t>(), 2);
}

// ---- rejections: the header length -----------------------------------------------------------------
TEST_F(Safetensors, RejectsAFileShorterThanTheLengthField) {
  std::string p = path("short.safetensors");
  std::ofstream(p, std::ios::binary) << "abc";
  expect_rejected(p, SafetensorsErrorKind::header_size, {"3 bytes", "8-byte header length"});
}

TEST_F(Safetensors, RejectsAHeaderLengthPastTheFile) {
  std::string p = write_raw("{}", 0, 64);
  expect_rejected(p, SafetensorsErrorKind::header_size, {"header length 64", "past the end of the 10-byte file"});
}

TEST_F(Safetensors, RejectsAHeaderLengthOverTheLimit) {
  std::string p = write_raw("{}", 0, 100'000'001);
  expect_rejected(p, SafetensorsErrorKind::header_size, {"100000001", "exceeds the limit of 100000000"});
}

// ---- rejections: the header text -------------------------------------------------------------------
TEST_F(Safetensors, RejectsANonUtf8Header) {
  std::string p = write_raw("{\"a\xff\":{}}", 0);  // 0xFF at header byte 3 = file byte 11
  expect_rejected(p, SafetensorsErrorKind::header_encoding, {"not valid UTF-8", "file byte 11"});
  std::string overlong = write_raw("{\"\xc0\xaf\":1}", 0);  // an overlong '/'
  expect_rejected(overlong, SafetensorsErrorKind::header_encoding, {"file byte 10"});
}

TEST_F(Safetensors, RejectsANonJsonHeader) {
  std::string p = write_raw(R"({"a": {"dtype": "F32",)", 0);
  expect_rejected(p, SafetensorsErrorKind::header_json, {"not valid JSON", "file byte"});
  // A number beyond double's range (the fuzzer's find: nlohmann throws out_of_range, not parse_error).
  expect_rejected(write_raw(R"({"a": 7e777})", 0), SafetensorsErrorKind::header_json,
                  {"not valid JSON", "number overflow"});
}

TEST_F(Safetensors, RejectsAHeaderThatIsNotAnObject) {
  expect_rejected(write_raw("[1, 2, 3]", 0), SafetensorsErrorKind::header_json, {"does not start with '{'"});
  expect_rejected(write_raw("", 0), SafetensorsErrorKind::header_json, {"does not start with '{'"});
  expect_rejected(write_raw(R"({"x": [1, 2]})", 0), SafetensorsErrorKind::header_json,
                  {"tensor 'x'", "must be a JSON object"});
  expect_rejected(write_raw(R"({"x": {"dtype": "F32", "shape": [1]}})", 0), SafetensorsErrorKind::header_json,
                  {"tensor 'x'", "no \"data_offsets\""});
  expect_rejected(write_raw(R"({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4),
                  SafetensorsErrorKind::header_json, {"tensor 'x'", "non-negative integer"});
  expect_rejected(write_raw(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}})", 4),
                  SafetensorsErrorKind::header_json, {"unexpected key \"x\""});
}

TEST_F(Safetensors, RejectsDuplicateNames) {
  std::string header = object({entry("w", "F32", "[1]", 0, 4), entry("w", "F32", "[1]", 4, 8)});
  expect_rejected(write_raw(header, 8), SafetensorsErrorKind::duplicate_name, {"duplicate tensor name 'w'"});
  std::string inner = R"({"w": {"dtype": "F32", "dtype": "F64", "shape": [1], "data_offsets": [0, 4]}})";
  expect_rejected(write_raw(inner, 4), SafetensorsErrorKind::duplicate_name, {"duplicate key 'dtype'"});
}

// ---- rejections: dtypes ----------------------------------------------------------------------------
TEST_F(Safetensors, RejectsAnUnknownDtype) {
  std::string p = write_raw(object({entry("w", "F33", "[1]", 0, 4)}), 4);
  expect_rejected(p, SafetensorsErrorKind::unknown_dtype, {"tensor 'w'", "unknown dtype \"F33\""});
}

TEST_F(Safetensors, RejectsValidButUnsupportedDtypes) {
  for (auto [dtype, size] : {std::pair{"I32", 4}, {"I16", 2}, {"I8", 1}, {"BOOL", 1}}) {
    std::string p = write_raw(object({entry("h", dtype, "[2, 2]", 0, 4 * size)}), 4 * size);
    expect_rejected(p, SafetensorsErrorKind::unsupported_dtype, {"tensor 'h'", std::string("dtype ") + dtype, "unsupported"});
  }
}

// Half-precision checkpoints load as f32, exactly: normal, subnormal, signed zero, inf and NaN.
TEST_F(Safetensors, ReadsF16AndBF16AsF32) {
  const std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x3555, 0x0001, 0x8000, 0x7C00, 0x7E00, 0x7BFF};
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC040, 0x7F80, 0x0001};
  std::string header = object({entry("h", "F16", "[2, 4]", 0, 16), entry("b", "BF16", "[4]", 16, 24)});
  while (header.size() % 8) header += ' ';
  std::string p = path("half.safetensors");
  {
    std::ofstream f(p, std::ios::binary);
    for (int i = 0; i < 8; ++i) f.put(static_cast<char>(uint64_t(header.size()) >> (8 * i)));
    f << header;
    for (uint16_t v : f16) f.put(static_cast<char>(v & 0xff)).put(static_cast<char>(v >> 8));
    for (uint16_t v : bf16) f.put(static_cast<char>(v & 0xff)).put(static_cast<char>(v >> 8));
  }
  SafetensorsFile file = read_safetensors(p);
  std::vector<float> h = file.get("h").to_vector<float>();
  EXPECT_EQ(file.get("h").dtype(), DType::f32);
  EXPECT_EQ(file.get("h").shape(), (Shape{2, 4}));
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_EQ(h[2], 0.333251953125f);        // 0x3555 = 1365 / 4096
  EXPECT_EQ(h[3], std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(h[4], 0.0f);
  EXPECT_TRUE(std::signbit(h[4]));
  EXPECT_EQ(h[5], INFINITY);
  EXPECT_TRUE(std::isnan(h[6]));
  EXPECT_EQ(h[7], 65504.0f);  // largest half
  std::vector<float> b = file.get("b").to_vector<float>();
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -3.0f);
  EXPECT_EQ(b[2], INFINITY);
  EXPECT_EQ(b[3], std::ldexp(1.0f, -133));  // bf16 subnormal: 2^-126 * 2^-7
}

// ---- rejections: sizes and offsets -----------------------------------------------------------------
TEST_F(Safetensors, RejectsOffsetsThatDisagreeWithTheShape) {
  std::string p = write_raw(object({entry("w", "F32", "[3]", 0, 8)}), 8);
  expect_rejected(p, SafetensorsErrorKind::size_mismatch, {"tensor 'w'", "span 8 bytes", "needs 12 bytes"});
}

TEST_F(Safetensors, RejectsAShapeWhoseByteCountOverflows) {
  // 2^32 x 2^32 elements = 2^64 overflows u64; 2^31 x 2^31 x 8 bytes = 2^65 overflows too.
  std::string p = write_raw(object({entry("w", "F32", "[4294967296, 4294967296]", 0, 4)}), 4);
  expect_rejected(p, SafetensorsErrorKind::size_mismatch, {"tensor 'w'", "overflows"});
  std::string q = write_raw(object({entry("w", "F64", "[2147483648, 2147483648]", 0, 4)}), 4);
  expect_rejected(q, SafetensorsErrorKind::size_mismatch, {"tensor 'w'", "overflows"});
}

TEST_F(Safetensors, RejectsOffsetsNotStartingAtZero) {
  std::string p = write_raw(object({entry("w", "F32", "[1]", 4, 8)}), 8);
  expect_rejected(p, SafetensorsErrorKind::offsets, {"does not start at offset 0", "tensor 'w'", "buffer offset 4"});
}

TEST_F(Safetensors, RejectsOverlappingTensors) {
  std::string header = object({entry("a", "F32", "[2]", 0, 8), entry("b", "F32", "[2]", 4, 12)});
  // header is 86 bytes, so b's data starts at file byte 8 + 86 + 4 = 98
  std::string p = write_raw(header, 12);
  expect_rejected(p, SafetensorsErrorKind::offsets, {"tensor 'b'", "overlaps 'a'", fmt::format("file byte {}", 8 + header.size() + 4)});
}

TEST_F(Safetensors, RejectsHolesBetweenTensors) {
  std::string header = object({entry("a", "F32", "[1]", 0, 4), entry("b", "F32", "[1]", 8, 12)});
  std::string p = write_raw(header, 12);
  expect_rejected(p, SafetensorsErrorKind::offsets, {"tensor 'b'", "hole of 4 bytes", fmt::format("file byte {}", 8 + header.size() + 8)});
}

TEST_F(Safetensors, RejectsATensorPastTheBuffer) {
  std::string p = write_raw(object({entry("w", "F64", "[1]", 0, 8)}), 4);
  expect_rejected(p, SafetensorsErrorKind::offsets, {"tensor 'w'", "past the end of the 4-byte buffer"});
}

TEST_F(Safetensors, RejectsALastOffsetShortOfTheBufferEnd) {
  std::string header = object({entry("w", "F32", "[1]", 0, 4)});
  std::string p = write_raw(header, 8);
  expect_rejected(p, SafetensorsErrorKind::offsets,
                  {"end at buffer offset 4", "holds 8 bytes", fmt::format("file byte {}", 8 + header.size() + 4)});
  // Trailing bytes with no tensors at all are rejected too.
  expect_rejected(write_raw("{}", 3), SafetensorsErrorKind::offsets, {"holds 3 bytes"});
}

// ---- rejections: metadata --------------------------------------------------------------------------
TEST_F(Safetensors, RejectsMetadataThatIsNotStrings) {
  expect_rejected(write_raw(R"({"__metadata__": {"epoch": 3}})", 0), SafetensorsErrorKind::metadata,
                  {"__metadata__ value of 'epoch' must be a string", "3"});
  expect_rejected(write_raw(R"({"__metadata__": ["a"]})", 0), SafetensorsErrorKind::metadata,
                  {"__metadata__ must be an object"});
}

// ---- files from elsewhere --------------------------------------------------------------------------
TEST_F(Safetensors, ReadsAFileWrittenByPython) {
  std::string p = std::string(AFD_SOURCE_DIR) + "/tests/fixtures/small_cnn_f32.safetensors";
  SafetensorsFile f = read_safetensors(p);
  EXPECT_EQ(f.metadata.at("generator"), "tests/fixtures/make_small_cnn.py");
  EXPECT_EQ(f.metadata.at("dtype"), "float32");
  EXPECT_EQ(f.tensors.front().first, "input");
  const Tensor& x = f.get("input");
  EXPECT_EQ(x.dtype(), DType::f32);
  EXPECT_EQ(x.shape(), (Shape{5, 1, 8, 8}));
  for (float v : x.to_vector<float>()) EXPECT_TRUE(v >= 0 && v < 1) << v;
  EXPECT_EQ(f.get("labels").to_vector<int64_t>(), (std::vector<int64_t>{0, 2, 1, 2, 0}));
  EXPECT_EQ(f.get("conv.weight").shape(), (Shape{4, 1, 3, 3}));
  EXPECT_EQ(f.get("fc.weight").shape(), (Shape{3, 64}));
  const Tensor& tracked = f.get("bn.num_batches_tracked");
  EXPECT_EQ(tracked.dtype(), DType::i64);
  EXPECT_EQ(tracked.dim(), 0);
  EXPECT_EQ(tracked.item<int64_t>(), 0);
  EXPECT_EQ(f.get("train.loss").dim(), 0);

  // What we read, we write back identically.
  std::string q = path("copy.safetensors");
  write_safetensors(q, f.tensors, f.metadata);
  SafetensorsFile g = read_safetensors(q);
  ASSERT_EQ(g.tensors.size(), f.tensors.size());
  for (size_t i = 0; i < f.tensors.size(); ++i) {
    EXPECT_EQ(g.tensors[i].first, f.tensors[i].first);
    dispatch_all(f.tensors[i].second.dtype(), [&]<class T>() { expect_same<T>(g.tensors[i].second, f.tensors[i].second); });
  }
  EXPECT_EQ(g.metadata, f.metadata);
}
