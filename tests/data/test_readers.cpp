// IDX and CIFAR readers on synthetic files: contents, gzip, and one test per corrupt-input case.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "afd/data/dataset.h"
#include "afd/data/readers.h"
#include "afd/data/synthetic.h"
#include "tests/data/temp_dir.h"
#include "tests/support/checks.h"

namespace afd::data {
namespace {

using afd::testing::expect_error;
using afd::testing::TempDir;

void expect_synthetic_images(const Tensor& images, int64_t first_index = 0) {
  const uint8_t* p = images.data<uint8_t>();
  const int64_t N = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  int64_t wrong = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x)
          wrong += p[((n * C + c) * H + y) * W + x] != synthetic_pixel(first_index + n, c, y, x);
  EXPECT_EQ(wrong, 0) << "pixels differing from synthetic_pixel";
}

void write_mnist(const TempDir& dir, const std::string& prefix, int64_t n, bool gzip = false) {
  std::string suffix = gzip ? ".gz" : "";
  write_idx_images(dir / (prefix + "-images-idx3-ubyte" + suffix), n, 28, 28, gzip);
  std::vector<uint8_t> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back(uint8_t(i % 10));
  write_idx_labels(dir / (prefix + "-labels-idx1-ubyte" + suffix), labels, gzip);
}

// ---- IDX: good files --------------------------------------------------------------------------------

TEST(Idx, ReadsImagesAndLabels) {
  TempDir dir;
  write_mnist(dir, "train", 7);
  write_mnist(dir, "t10k", 3);
  Dataset train = load_mnist(dir.str(), Split::train);
  EXPECT_EQ(train.images.shape(), (Shape{7, 1, 28, 28}));
  EXPECT_EQ(train.labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(train.name, "mnist/train");
  expect_synthetic_images(train.images);
  Dataset test = load_mnist(dir.str(), Split::test);
  EXPECT_EQ(test.size(), 3);
  EXPECT_EQ(test.label_histogram(), (std::vector<int64_t>{1, 1, 1, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(Idx, ReadsGzipFiles) {
  TempDir dir;
  write_mnist(dir, "train", 5, /*gzip=*/true);
  Dataset train = load_fashion_mnist(dir.str(), Split::train);
  EXPECT_EQ(train.size(), 5);
  EXPECT_EQ(train.name, "fashion-mnist/train");
  expect_synthetic_images(train.images);
}

TEST(Idx, HeaderOfOtherTypes) {
  std::vector<uint8_t> data(2 * 3 * 4, 0);
  IdxHeader h = parse_idx_header(idx_bytes(IdxType::f32, {2, 3}, data), "f32.idx");
  EXPECT_EQ(h.type, IdxType::f32);
  EXPECT_EQ(h.dims, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(h.data_offset, 12);
}

TEST(Idx, EmptyImageSetIsAllowed) {
  Tensor images = parse_idx_images(idx_bytes(IdxType::u8, {0, 28, 28}, {}), "empty");
  EXPECT_EQ(images.shape(), (Shape{0, 1, 28, 28}));
}

// ---- IDX: corrupt inputs, one test per case -----------------------------------------------------------

TEST(IdxCorrupt, TruncatedFile) {
  std::vector<uint8_t> bytes = idx_bytes(IdxType::u8, {2, 28, 28}, std::vector<uint8_t>(2 * 784, 1));
  bytes.pop_back();
  expect_error([&] { parse_idx_images(bytes, "cut.idx"); }, "cut.idx: byte offset 16: IDX dimensions [2, 28, 28] promise 1568 data bytes but the file has 1567");
  expect_error([&] { parse_idx_images(bytes, "cut.idx"); }, "truncated file");
}

TEST(IdxCorrupt, TrailingBytes) {
  std::vector<uint8_t> bytes = idx_bytes(IdxType::u8, {3}, {1, 2, 3, 4});
  expect_error([&] { parse_idx_labels(bytes, "long.idx", 10); }, "trailing bytes");
}

TEST(IdxCorrupt, FileShorterThanMagic) {
  expect_error([&] { parse_idx_header(std::vector<uint8_t>{0, 0, 8}, "tiny"); },
               "tiny: byte offset 3: file ends inside the 4-byte IDX magic");
}

TEST(IdxCorrupt, WrongMagic) {
  std::vector<uint8_t> bytes = idx_bytes(IdxType::u8, {1}, {0});
  bytes[1] = 0x42;
  expect_error([&] { parse_idx_labels(bytes, "magic.idx", 10); }, "magic.idx: byte offset 0: wrong IDX magic 00 42 08 01");
}

TEST(IdxCorrupt, UnknownTypeCode) {
  std::vector<uint8_t> bytes = idx_bytes(IdxType::u8, {1}, {0});
  bytes[2] = 0x0A;
  expect_error([&] { parse_idx_labels(bytes, "type.idx", 10); }, "byte offset 2: unknown IDX type code 0x0a");
}

TEST(IdxCorrupt, ZeroDimensions) {
  expect_error([&] { parse_idx_header(std::vector<uint8_t>{0, 0, 8, 0}, "nodims"); }, "byte offset 3: IDX ndims 0");
}

TEST(IdxCorrupt, HeaderCutShort) {
  std::vector<uint8_t> bytes = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0};
  expect_error([&] { parse_idx_header(bytes, "short"); }, "short: byte offset 10: file ends inside the IDX header (expected 16");
}

TEST(IdxCorrupt, WrongDimensionsForImages) {
  std::vector<uint8_t> bytes = idx_bytes(IdxType::u8, {2, 784}, std::vector<uint8_t>(2 * 784, 0));
  expect_error([&] { parse_idx_images(bytes, "flat.idx"); }, "has 2 dimensions (expected 3: N, H, W)");
  expect_error([&] { parse_idx_labels(idx_bytes(IdxType::u8, {2, 2}, {0, 0, 0, 0}), "l.idx", 10); },
               "label file has 2 dimensions (expected 1");
}

TEST(IdxCorrupt, WrongElementType) {
  std::vector<uint8_t> bytes = idx_bytes(IdxType::i32, {1, 2, 2}, std::vector<uint8_t>(16, 0));
  expect_error([&] { parse_idx_images(bytes, "i32.idx"); }, "IDX type 0x0c (expected 0x08");
}

TEST(IdxCorrupt, HugeDimensionsDoNotOverflow) {
  std::vector<uint8_t> bytes = idx_bytes(IdxType::f64, {0xffffffffu, 0xffffffffu, 0xffffffffu}, {1, 2, 3});
  expect_error([&] { parse_idx_header(bytes, "huge"); }, "but the file has 3 after the header (truncated file)");
}

TEST(IdxCorrupt, LabelOutOfRange) {
  std::vector<uint8_t> bytes = idx_bytes(IdxType::u8, {4}, {1, 9, 10, 2});
  expect_error([&] { parse_idx_labels(bytes, "labels.idx", 10); },
               "labels.idx: byte offset 10: label 10 of sample 2 (expected 0 to 9)");
}

TEST(IdxCorrupt, CountMismatch) {
  TempDir dir;
  write_idx_images(dir / "train-images-idx3-ubyte", 4, 28, 28);
  write_idx_labels(dir / "train-labels-idx1-ubyte", {1, 2, 3});
  expect_error([&] { load_mnist(dir.str(), Split::train); }, "3 labels but");
  expect_error([&] { load_mnist(dir.str(), Split::train); }, "has 4 images (expected the same count)");
}

TEST(IdxCorrupt, MissingFolder) {
  expect_error([&] { load_mnist("/nonexistent/afd/mnist", Split::train); },
               "/nonexistent/afd/mnist: folder does not exist");
}

TEST(IdxCorrupt, MissingFile) {
  TempDir dir;
  write_idx_images(dir / "t10k-images-idx3-ubyte", 2, 28, 28);
  expect_error([&] { load_mnist(dir.str(), Split::test); }, "missing file (expected");
  expect_error([&] { load_mnist(dir.str(), Split::test); }, "t10k-labels-idx1-ubyte.gz");
}

TEST(IdxCorrupt, UnreadableFile) {
  expect_error([&] { read_file("/nonexistent/file"); }, "/nonexistent/file: cannot open file");
}

TEST(IdxCorrupt, AFolderOrDeviceWhereAFileBelongs) {
  // Before: a folder read as a file of 2^63 bytes (std::bad_alloc naming nothing), a device as an
  // endless stream.
  TempDir dir;
  std::filesystem::create_directories(dir / "train-images-idx3-ubyte");
  write_idx_labels(dir / "train-labels-idx1-ubyte", {1, 2});
  expect_error([&] { load_mnist(dir.str(), Split::train); }, "train-images-idx3-ubyte: not a regular file (it is a folder)");
  expect_error([&] { read_file("/dev/zero"); }, "/dev/zero: not a regular file (it is a device, socket or pipe)");
  std::filesystem::create_directories(dir / "c10/data_batch_1.bin");
  expect_error([&] { load_cifar10(dir / "c10", Split::train); }, "data_batch_1.bin: not a regular file");
  write_cifar(dir / "c10/test_batch.bin", CifarKind::cifar10, {1});
  std::filesystem::create_directories(dir / "c10/batches.meta.txt");  // optional, but not as a folder
  expect_error([&] { load_cifar10(dir / "c10", Split::test); }, "batches.meta.txt: not a regular file");
}

TEST(IdxCorrupt, TruncatedGzip) {
  TempDir dir;
  write_idx_images(dir / "images.gz", 20, 28, 28, /*gzip=*/true);
  std::vector<uint8_t> packed;
  {
    std::ifstream in(dir / "images.gz", std::ios::binary);
    packed.assign(std::istreambuf_iterator<char>(in), {});
  }
  packed.resize(packed.size() / 2);
  write_bytes(dir / "cut.gz", packed);
  expect_error([&] { read_idx_images(dir / "cut.gz"); }, "gzip stream is truncated at compressed byte offset");
}

TEST(IdxCorrupt, CorruptGzip) {
  TempDir dir;
  // gzip magic and method, then garbage where the deflate stream should be.
  write_bytes(dir / "bad.gz", {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  expect_error([&] { read_file(dir / "bad.gz"); }, "corrupt gzip data");
}

// ---- CIFAR: good files ---------------------------------------------------------------------------------

TEST(Cifar, ReadsCifar10Records) {
  CifarRecords r = parse_cifar(cifar_bytes(CifarKind::cifar10, {3, 9, 0}), "batch", CifarKind::cifar10);
  EXPECT_EQ(r.images.shape(), (Shape{3, 3, 32, 32}));
  EXPECT_EQ(r.labels.to_vector<int64_t>(), (std::vector<int64_t>{3, 9, 0}));
  EXPECT_FALSE(r.coarse_labels.defined());
  expect_synthetic_images(r.images);
}

TEST(Cifar, ReadsCifar100Records) {
  CifarRecords r = parse_cifar(cifar_bytes(CifarKind::cifar100, {99, 7}), "train.bin", CifarKind::cifar100);
  EXPECT_EQ(r.labels.to_vector<int64_t>(), (std::vector<int64_t>{99, 7}));
  EXPECT_EQ(r.coarse_labels.to_vector<int64_t>(), (std::vector<int64_t>{19, 1}));
  expect_synthetic_images(r.images);
}

TEST(Cifar, LoadsFullCifar10FolderInBatchOrder) {
  TempDir dir;
  for (int b = 1; b <= 5; ++b)
    write_cifar(dir / ("data_batch_" + std::to_string(b) + ".bin"), CifarKind::cifar10, {uint8_t(b), uint8_t(b + 1)},
                2 * (b - 1));
  write_cifar(dir / "test_batch.bin", CifarKind::cifar10, {4});
  write_bytes(dir / "batches.meta.txt", {'c', 'a', 't', '\n', 'd', 'o', 'g', '\n', '\n'});
  Dataset train = load_cifar10(dir.str(), Split::train);
  EXPECT_EQ(train.size(), 10);
  EXPECT_TRUE(train.notes.empty());
  EXPECT_EQ(train.labels.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 2, 3, 3, 4, 4, 5, 5, 6}));
  expect_synthetic_images(train.images);
  EXPECT_EQ(train.class_names, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(load_cifar10(dir.str(), Split::test).size(), 1);
}

TEST(Cifar, PartialTrainingSetLoadsWhatIsThereAndSaysSo) {
  TempDir dir;
  write_cifar(dir / "data_batch_1.bin", CifarKind::cifar10, {1, 2, 3});
  write_cifar(dir / "data_batch_4.bin", CifarKind::cifar10, {4}, 3);
  Dataset train = load_cifar10(dir.str(), Split::train);
  EXPECT_EQ(train.size(), 4);
  expect_synthetic_images(train.images);
  ASSERT_EQ(train.notes.size(), 1u);
  EXPECT_NE(train.notes[0].find("partial: 2 of 5 batches present (data_batch_1.bin, data_batch_4.bin), 4 images"),
            std::string::npos)
      << train.notes[0];
  EXPECT_NE(train.notes[0].find("missing data_batch_2.bin, data_batch_3.bin, data_batch_5.bin"), std::string::npos);
}

TEST(Cifar, LoadsCifar100FineAndCoarse) {
  TempDir dir;
  write_cifar(dir / "test.bin", CifarKind::cifar100, {10, 55, 99});
  Dataset fine = load_cifar100(dir.str(), Split::test);
  EXPECT_EQ(fine.classes, 100);
  EXPECT_EQ(fine.labels.to_vector<int64_t>(), (std::vector<int64_t>{10, 55, 99}));
  Dataset coarse = load_cifar100(dir.str(), Split::test, /*coarse=*/true);
  EXPECT_EQ(coarse.classes, 20);
  EXPECT_EQ(coarse.labels.to_vector<int64_t>(), (std::vector<int64_t>{2, 11, 19}));
  EXPECT_EQ(load_dataset("cifar100", dir.str(), Split::test).size(), 3);
}

// ---- CIFAR: corrupt inputs -------------------------------------------------------------------------------

TEST(CifarCorrupt, TruncatedFile) {
  std::vector<uint8_t> bytes = cifar_bytes(CifarKind::cifar10, {1, 2});
  bytes.resize(bytes.size() - 100);
  expect_error([&] { parse_cifar(bytes, "batch.bin", CifarKind::cifar10); },
               "batch.bin: byte offset 6046: file ends inside record 1 (6046 bytes is not a multiple of the "
               "3073-byte record");
}

TEST(CifarCorrupt, EmptyFile) {
  expect_error([&] { parse_cifar({}, "empty.bin", CifarKind::cifar10); }, "empty.bin: byte offset 0: empty file");
}

TEST(CifarCorrupt, LabelOutOfRange) {
  std::vector<uint8_t> bytes = cifar_bytes(CifarKind::cifar10, {1, 2, 3});
  bytes[3073] = 10;
  expect_error([&] { parse_cifar(bytes, "b.bin", CifarKind::cifar10); },
               "b.bin: byte offset 3073: label 10 of record 1 (expected 0 to 9)");
}

TEST(CifarCorrupt, Cifar100LabelsOutOfRange) {
  std::vector<uint8_t> bytes = cifar_bytes(CifarKind::cifar100, {1, 2, 3});
  bytes[2 * 3074 + 1] = 100;
  expect_error([&] { parse_cifar(bytes, "t.bin", CifarKind::cifar100); },
               "t.bin: byte offset 6149: fine label 100 of record 2 (expected 0 to 99)");
  bytes[0] = 20;
  expect_error([&] { parse_cifar(bytes, "t.bin", CifarKind::cifar100); },
               "t.bin: byte offset 0: coarse label 20 of record 0 (expected 0 to 19)");
}

TEST(CifarCorrupt, Cifar100FileReadAsCifar10) {
  // 3 CIFAR-100 records are 9222 bytes: not a whole number of 3073-byte records.
  expect_error([&] { parse_cifar(cifar_bytes(CifarKind::cifar100, {1, 2, 3}), "x", CifarKind::cifar10); },
               "not a multiple of the 3073-byte record");
}

TEST(CifarCorrupt, MissingFolder) {
  expect_error([&] { load_cifar10("/nonexistent/cifar10", Split::test); }, "/nonexistent/cifar10: folder does not exist");
}

TEST(CifarCorrupt, NoTrainingBatch) {
  TempDir dir;
  write_cifar(dir / "test_batch.bin", CifarKind::cifar10, {1});
  expect_error([&] { load_cifar10(dir.str(), Split::train); }, "no CIFAR-10 train file (expected data_batch_1.bin,");
  expect_error([&] { load_cifar100(dir.str(), Split::train); }, "missing file (expected");
}

TEST(Dataset, UnknownName) {
  expect_error([&] { load_dataset("imagenet", "/tmp", Split::train); }, "unknown dataset 'imagenet'");
}

}  // namespace
}  // namespace afd::data

#include "afd/data/md5.h"

namespace afd::data {
namespace {

// RFC 1321, appendix A.5 test suite (plus one input that needs a second padding block).
TEST(Md5, Rfc1321Vectors) {
  auto md5 = [](const std::string& s) { return md5_hex({reinterpret_cast<const uint8_t*>(s.data()), s.size()}); };
  EXPECT_EQ(md5(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(md5("a"), "0cc175b9c0f1b6a831c399e269772661");
  EXPECT_EQ(md5("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(md5("message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
  EXPECT_EQ(md5("abcdefghijklmnopqrstuvwxyz"), "c3fcd3d76192e4007dfb496cca67e13b");
  EXPECT_EQ(md5("12345678901234567890123456789012345678901234567890123456789012345678901234567890"),
            "57edf4a22be3c955ac49da2e2107b67a");
  std::vector<uint8_t> bytes = {1, 2, 3};
  afd::testing::expect_error([&] { check_md5("f.bin", bytes, "00"); }, "f.bin: md5 5289df737df57326fcdd22597afb1fac (expected 00");
}

}  // namespace
}  // namespace afd::data
