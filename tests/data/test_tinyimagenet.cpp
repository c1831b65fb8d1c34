// Tiny-ImageNet-200: JPEG decode and the 64 -> 32 resize against Pillow (committed fixtures), the
// folder reader on a small fake tiny-imagenet-200 tree written here with libjpeg, and one test per
// error case.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "afd/data/dataset.h"
#include "afd/data/image.h"
#include "afd/data/readers.h"
#include "afd/data/synthetic.h"
#include "tests/data/temp_dir.h"
#include "tests/support/checks.h"

namespace afd::data {
namespace {

namespace fs = std::filesystem;
using afd::testing::expect_error;
using afd::testing::TempDir;

// ---- against Pillow (tests/fixtures/data/make_tinyimagenet_fixture.py) -------------------------------

std::string fixture(const std::string& file) {
  return std::string(AFD_SOURCE_DIR) + "/tests/fixtures/data/tinyimagenet/" + file;
}

// Count of differing bytes and the largest difference, for a readable failure.
void expect_same_bytes(const std::vector<uint8_t>& ours, const std::vector<uint8_t>& pil, const std::string& what) {
  ASSERT_EQ(ours.size(), pil.size()) << what;
  int64_t differing = 0, worst = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    int64_t d = std::abs(int64_t(ours[i]) - int64_t(pil[i]));
    differing += d != 0;
    worst = std::max(worst, d);
  }
  EXPECT_EQ(differing, 0) << what << ": " << differing << " bytes differ from Pillow, by up to " << worst;
}

// Pillow's H x W x C bytes -> C x H x W planes, C = 3 (greyscale replicated, as the reader does).
std::vector<uint8_t> pil_to_rgb_chw(const std::vector<uint8_t>& hwc, int64_t channels, int64_t hw) {
  std::vector<uint8_t> chw(size_t(3 * hw));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < hw; ++i) chw[size_t(c * hw + i)] = hwc[size_t(i * channels + (channels == 1 ? 0 : c))];
  return chw;
}

struct PilCase {
  const char* name;
  int64_t channels;
};
const PilCase kPilCases[] = {{"rgb420", 3}, {"rgb422", 3}, {"rgb444", 3}, {"grey", 1}};

TEST(TinyImageNetPil, DecodeEqualsPillow) {
  for (const PilCase& c : kPilCases) {
    const std::string path = fixture(std::string(c.name) + ".JPEG");
    JpegImage img = decode_jpeg(read_file(path), path);
    EXPECT_EQ(img.height, 64);
    EXPECT_EQ(img.width, 64);
    EXPECT_EQ(img.channels, c.channels) << c.name;
    expect_same_bytes(img.pixels, read_file(fixture(std::string(c.name) + ".pil64.u8")), std::string(c.name) + " decode");
  }
}

TEST(TinyImageNetPil, ResizeEqualsPillowBilinear) {
  for (const PilCase& c : kPilCases) {
    // From Pillow's own decode, so the resize is checked on its own...
    const std::vector<uint8_t> pil64 = pil_to_rgb_chw(read_file(fixture(std::string(c.name) + ".pil64.u8")), c.channels, 64 * 64);
    const std::vector<uint8_t> pil32 = pil_to_rgb_chw(read_file(fixture(std::string(c.name) + ".pil32.u8")), c.channels, 32 * 32);
    std::vector<uint8_t> ours(3 * 32 * 32);
    resize_bilinear_pil(pil64.data(), 3, 64, 64, ours.data(), 32, 32);
    expect_same_bytes(ours, pil32, std::string(c.name) + " resize");
    // ...and from our decode, the loader's path.
    const std::string path = fixture(std::string(c.name) + ".JPEG");
    const std::vector<uint8_t> decoded = decode_jpeg(read_file(path), path).to_rgb_chw();
    resize_bilinear_pil(decoded.data(), 3, 64, 64, ours.data(), 32, 32);
    expect_same_bytes(ours, pil32, std::string(c.name) + " decode + resize");
  }
}

// The weights written in image.h, on an impulse: one 255 pixel at (y, x) = (10, 20) of 64x64.
// Output (5, 10) has centre (11, 21) and reads rows/columns 9..12 with 1/8, 3/8, 3/8, 1/8: the
// impulse sits at tap 1 both ways, so it gets 3/8 * 3/8 * 255 = 35.86 (36 after the two roundings:
// the horizontal pass gives round(255 3/8) = 96, then round(96 3/8) = 36).
TEST(TinyImageNetPil, ResizeWeightsOnAnImpulse) {
  std::vector<uint8_t> in(64 * 64, 0), out(32 * 32);
  in[10 * 64 + 20] = 255;
  resize_bilinear_pil(in.data(), 1, 64, 64, out.data(), 32, 32);
  EXPECT_EQ(out[5 * 32 + 10], 36);
  EXPECT_EQ(out[4 * 32 + 10], 12);   // row taps 7..10: impulse at tap 3 (1/8): round(96 / 8) = 12
  EXPECT_EQ(out[5 * 32 + 9], 12);    // column taps 17..20: impulse at tap 3 (1/8) -> 32, then 3/8 -> 12
  EXPECT_EQ(out[4 * 32 + 9], 4);     // 1/8 both ways: round(255 / 8) = 32, round(32 / 8) = 4
  int64_t nonzero = 0;
  for (uint8_t v : out) nonzero += v != 0;
  EXPECT_EQ(nonzero, 4);
  // Border: a constant image stays constant (the edge weights 3/7, 3/7, 1/7 sum to one).
  std::vector<uint8_t> flat(64 * 64, 201);
  resize_bilinear_pil(flat.data(), 1, 64, 64, out.data(), 32, 32);
  for (uint8_t v : out) ASSERT_EQ(v, 201);
}

TEST(TinyImageNetPil, ResizeTensor) {
  Tensor images = Tensor::empty({2, 3, 64, 64}, DType::u8);
  uint8_t* p = images.data<uint8_t>();
  for (int64_t i = 0; i < images.numel(); ++i) p[i] = uint8_t((i * 37) % 251);
  Tensor small = resize_bilinear_pil(images, 32, 32);
  EXPECT_EQ(small.shape(), (Shape{2, 3, 32, 32}));
  std::vector<uint8_t> one(3 * 32 * 32);
  resize_bilinear_pil(p + 3 * 64 * 64, 3, 64, 64, one.data(), 32, 32);
  EXPECT_TRUE(std::equal(one.begin(), one.end(), small.data<uint8_t>() + 3 * 32 * 32));
  expect_error([&] { resize_bilinear_pil(Tensor::zeros({2, 3}, DType::u8), 32, 32); }, "expected a u8 CPU tensor");
}

// ---- a fake tiny-imagenet-200 tree ---------------------------------------------------------------------

// A textured H x W x C image that differs with `seed`.
std::vector<uint8_t> textured(int64_t seed, int64_t h, int64_t w, int64_t channels) {
  std::vector<uint8_t> p(size_t(h * w * channels));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t c = 0; c < channels; ++c)
        p[size_t((y * w + x) * channels + c)] = uint8_t((x * 3 + y * 5 + seed * 41 + c * 70 + ((x ^ y) & 8) * 4) & 0xff);
  return p;
}

void write_jpeg(const fs::path& path, int64_t seed, int64_t channels = 3, int64_t h = 64, int64_t w = 64) {
  fs::create_directories(path.parent_path());
  write_bytes(path.string(), encode_jpeg(textured(seed, h, w, channels).data(), h, w, channels));
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

// tiny-imagenet-200/ with three classes (the second one greyscale), four training images per class
// named k = 0, 1, 2, 10 (written out of order), five validation images and a test/ folder.
struct TinyTree {
  TempDir tmp;
  fs::path root = fs::path(tmp.str()) / "tiny-imagenet-200";
  std::vector<std::string> wnids = {"n01443537", "n01629819", "n02124075"};
  std::vector<int64_t> val_labels = {2, 0, 1, 1, 0};  // of val_0 .. val_4

  TinyTree() {
    write_text(root / "wnids.txt", wnids[0] + "\n" + wnids[1] + "\r\n" + wnids[2] + "\n");
    write_text(root / "words.txt", "n00001740\tentity\nn01443537\tgoldfish, Carassius auratus\n"
                                   "n02124075\tEgyptian cat\n");
    for (size_t c = 0; c < wnids.size(); ++c)
      for (int64_t k : {10, 2, 0, 1}) write_jpeg(train_image(c, k), seed(c, k), c == 1 ? 1 : 3);
    std::string annotations;
    for (int64_t k : {3, 0, 4, 1, 2}) {  // annotation lines out of order
      write_jpeg(val_image(k), 100 + k, k == 3 ? 1 : 3);
      annotations += fmt::format("val_{}.JPEG\t{}\t0\t{}\t62\t63\n", k, wnids[size_t(val_labels[size_t(k)])], k);
    }
    write_text(root / "val" / "val_annotations.txt", annotations);
    write_jpeg(root / "test" / "images" / "test_0.JPEG", 999);
  }
  static int64_t seed(size_t c, int64_t k) { return int64_t(c) * 20 + k; }
  fs::path train_image(size_t c, int64_t k) const {
    return root / "train" / wnids[c] / "images" / fmt::format("{}_{}.JPEG", wnids[c], k);
  }
  fs::path val_image(int64_t k) const { return root / "val" / "images" / fmt::format("val_{}.JPEG", k); }
  std::string dir() const { return root.string(); }
};

// images[i] must be the decode of `path`, greyscale expanded to three equal planes.
void expect_image(const Tensor& images, int64_t i, const fs::path& path) {
  const std::vector<uint8_t> expected = decode_jpeg(read_file(path.string()), path.string()).to_rgb_chw();
  const uint8_t* got = images.data<uint8_t>() + i * 3 * 64 * 64;
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), got)) << "image " << i << " is not " << path;
}

TEST(TinyImageNet, TrainLayoutLabelsAndNames) {
  TinyTree tree;
  Dataset d = load_tiny_imagenet(tree.dir(), Split::train);
  EXPECT_EQ(d.name, "tiny-imagenet/train");
  EXPECT_EQ(d.images.shape(), (Shape{12, 3, 64, 64}));
  EXPECT_EQ(d.classes, 3);
  EXPECT_EQ(d.labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}));
  // words.txt names; n01629819 has no line there and keeps its wnid.
  EXPECT_EQ(d.class_names, (std::vector<std::string>{"goldfish, Carassius auratus", "n01629819", "Egyptian cat"}));
  // Classes in wnids.txt order, images by k as a number: 0, 1, 2, 10.
  int64_t i = 0;
  for (size_t c = 0; c < 3; ++c)
    for (int64_t k : {0, 1, 2, 10}) expect_image(d.images, i++, tree.train_image(c, k));
  ASSERT_EQ(d.notes.size(), 1u);
  EXPECT_NE(d.notes[0].find("3 classes in wnids.txt (Tiny-ImageNet-200 has 200)"), std::string::npos);
}

TEST(TinyImageNet, GreyscaleBecomesThreeEqualChannels) {
  TinyTree tree;
  Dataset d = load_tiny_imagenet(tree.dir(), Split::train);
  const uint8_t* grey = d.images.data<uint8_t>() + 4 * 3 * 64 * 64;  // first image of class 1
  EXPECT_TRUE(std::equal(grey, grey + 64 * 64, grey + 64 * 64));
  EXPECT_TRUE(std::equal(grey, grey + 64 * 64, grey + 2 * 64 * 64));
  const std::string path = tree.train_image(1, 0).string();
  JpegImage img = decode_jpeg(read_file(path), path);
  EXPECT_EQ(img.channels, 1);
  EXPECT_TRUE(std::equal(img.pixels.begin(), img.pixels.end(), grey));
}

TEST(TinyImageNet, ValidationLabelsFromAnnotations) {
  TinyTree tree;
  Dataset d = load_tiny_imagenet(tree.dir(), Split::test);
  EXPECT_EQ(d.name, "tiny-imagenet/val");
  EXPECT_EQ(d.images.shape(), (Shape{5, 3, 64, 64}));
  EXPECT_EQ(d.labels.to_vector<int64_t>(), tree.val_labels);  // val_0 .. val_4, whatever the line order
  for (int64_t k = 0; k < 5; ++k) expect_image(d.images, k, tree.val_image(k));
  EXPECT_EQ(d.label_histogram(), (std::vector<int64_t>{2, 2, 1}));
}

TEST(TinyImageNet, ResizedTo32LikePillow) {
  TinyTree tree;
  Dataset big = load_tiny_imagenet(tree.dir(), Split::test);
  Dataset small = load_dataset("tiny-imagenet-32", tree.dir(), Split::test);
  EXPECT_EQ(small.name, "tiny-imagenet-32/val");
  EXPECT_EQ(small.images.shape(), (Shape{5, 3, 32, 32}));
  EXPECT_EQ(small.labels.to_vector<int64_t>(), big.labels.to_vector<int64_t>());
  EXPECT_EQ(resize_bilinear_pil(big.images, 32, 32).to_vector<uint8_t>(), small.images.to_vector<uint8_t>());
  EXPECT_EQ(load_dataset("tiny-imagenet", tree.dir(), Split::train).images.size(2), 64);
}

TEST(TinyImageNet, WithoutWordsTheNamesAreWnids) {
  TinyTree tree;
  fs::remove(tree.root / "words.txt");
  EXPECT_EQ(load_tiny_imagenet(tree.dir(), Split::test).class_names, tree.wnids);
}

// ---- errors: one test per case ---------------------------------------------------------------------------

TEST(TinyImageNetCorrupt, MissingFolder) {
  expect_error([] { load_tiny_imagenet("/nonexistent/tiny-imagenet-200", Split::train); },
               "/nonexistent/tiny-imagenet-200: missing folder (expected the Tiny-ImageNet-200 folder");
}

TEST(TinyImageNetCorrupt, BadImageSizeArgument) {
  TinyTree tree;
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::train, 48); }, "image_size 48 (expected 64");
}

TEST(TinyImageNetCorrupt, MissingWnids) {
  TinyTree tree;
  fs::remove(tree.root / "wnids.txt");
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::train); }, "wnids.txt: missing file");
}

TEST(TinyImageNetCorrupt, MalformedWnids) {
  TinyTree tree;
  write_text(tree.root / "wnids.txt", "n01443537\n\nn01629819 n02124075\n");
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::train); },
               "wnids.txt:3: malformed line 'n01629819 n02124075' (expected one WordNet id");
}

TEST(TinyImageNetCorrupt, DuplicateWnid) {
  TinyTree tree;
  write_text(tree.root / "wnids.txt", "n01443537\nn01629819\nn01443537\n");
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::train); },
               "wnids.txt:3: duplicate wnid n01443537 (first on line 1)");
}

TEST(TinyImageNetCorrupt, EmptyWnids) {
  TinyTree tree;
  write_text(tree.root / "wnids.txt", "\n");
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::train); }, "wnids.txt: no wnids");
}

TEST(TinyImageNetCorrupt, MalformedWords) {
  TinyTree tree;
  write_text(tree.root / "words.txt", "n01443537\tgoldfish\nn01629819 newt\n");
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::train); },
               "words.txt:2: malformed line 'n01629819 newt' (expected a wnid, a tab");
}

TEST(TinyImageNetCorrupt, MissingTrainFolder) {
  TinyTree tree;
  fs::remove_all(tree.root / "train");
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::train); }, "train: missing folder");
}

TEST(TinyImageNetCorrupt, MissingClassFolder) {
  TinyTree tree;
  fs::remove_all(tree.root / "train" / tree.wnids[2]);
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::train); },
               "train/n02124075/images: missing folder (expected the class folder of n02124075");
}

TEST(TinyImageNetCorrupt, ClassFolderWithoutImages) {
  TinyTree tree;
  fs::remove_all(tree.root / "train" / tree.wnids[1] / "images");
  fs::create_directories(tree.root / "train" / tree.wnids[1] / "images");
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::train); },
               "train/n01629819/images: class folder has no images (expected n01629819_<k>.JPEG files)");
}

TEST(TinyImageNetCorrupt, UnexpectedFileInClassFolder) {
  TinyTree tree;
  write_text(tree.root / "train" / tree.wnids[0] / "images" / "notes.txt", "x");
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::train); },
               "images/notes.txt: unexpected entry in a class folder (expected files n01443537_<k>.JPEG)");
}

TEST(TinyImageNetCorrupt, UnknownWnidFolder) {
  TinyTree tree;
  write_jpeg(tree.root / "train" / "n09999999" / "images" / "n09999999_0.JPEG", 1);
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::train); }, "unknown wnid n09999999");
}

TEST(TinyImageNetCorrupt, MissingAnnotations) {
  TinyTree tree;
  fs::remove(tree.root / "val" / "val_annotations.txt");
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::test); }, "val_annotations.txt: missing file");
}

TEST(TinyImageNetCorrupt, MalformedAnnotations) {
  TinyTree tree;
  write_text(tree.root / "val" / "val_annotations.txt",
             "val_0.JPEG\tn02124075\t0\t0\t62\t63\nval_1.JPEG n01443537 0 0 62 63\n");
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::test); },
               "val_annotations.txt:2: malformed line 'val_1.JPEG n01443537 0 0 62 63' (expected val_<k>.JPEG TAB");
  write_text(tree.root / "val" / "val_annotations.txt", "val_0.JPEG\tn02124075\t0\t0\tx\t63\n");
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::test); }, "val_annotations.txt:1: malformed line");
}

TEST(TinyImageNetCorrupt, UnknownWnidInAnnotations) {
  TinyTree tree;
  write_text(tree.root / "val" / "val_annotations.txt",
             "val_0.JPEG\tn02124075\t0\t0\t62\t63\n\nval_1.JPEG\tn09999999\t0\t0\t62\t63\n");
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::test); },
               "val_annotations.txt:3: unknown wnid 'n09999999' for val_1.JPEG (not in");
}

TEST(TinyImageNetCorrupt, DuplicateAnnotation) {
  TinyTree tree;
  write_text(tree.root / "val" / "val_annotations.txt",
             "val_0.JPEG\tn02124075\t0\t0\t62\t63\nval_0.JPEG\tn01443537\t0\t0\t62\t63\n");
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::test); },
               "val_annotations.txt:2: val_0.JPEG is annotated twice (first on line 1)");
}

TEST(TinyImageNetCorrupt, AnnotatedImageMissing) {
  TinyTree tree;
  fs::remove(tree.val_image(4));
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::test); }, "val_4.JPEG: missing image (listed on line 3 of");
}

TEST(TinyImageNetCorrupt, ImageWithoutAnnotation) {
  TinyTree tree;
  write_jpeg(tree.val_image(5), 7);
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::test); }, "val_5.JPEG: image without a label");
}

TEST(TinyImageNetCorrupt, NotAJpeg) {
  TinyTree tree;
  write_bytes(tree.train_image(2, 1).string(), {'G', 'I', 'F', '8', '9', 'a', 0, 0, 0, 0});
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::train); },
               "n02124075_1.JPEG: unreadable JPEG: libjpeg: Not a JPEG file: starts with 0x47 0x49");
}

TEST(TinyImageNetCorrupt, EmptyJpeg) {
  TinyTree tree;
  write_bytes(tree.val_image(2).string(), {});
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::test); }, "val_2.JPEG: unreadable JPEG: libjpeg:");
}

TEST(TinyImageNetCorrupt, TruncatedJpeg) {
  TinyTree tree;
  std::vector<uint8_t> bytes = read_file(tree.train_image(0, 2).string());
  bytes.resize(bytes.size() / 2);
  write_bytes(tree.train_image(0, 2).string(), bytes);
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::train); },
               "n01443537_2.JPEG: unreadable JPEG: libjpeg: Premature end of JPEG file");
}

TEST(TinyImageNetCorrupt, CorruptJpegHeader) {
  TinyTree tree;
  std::vector<uint8_t> bytes = read_file(tree.val_image(1).string());
  // Overwrite everything after SOI with 0xff 0x01-style garbage: libjpeg must fail, not exit.
  for (size_t i = 2; i < 40 && i < bytes.size(); ++i) bytes[i] = uint8_t(i % 2 ? 0x01 : 0xff);
  write_bytes(tree.val_image(1).string(), bytes);
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::test); }, "val_1.JPEG: unreadable JPEG: libjpeg:");
}

TEST(TinyImageNetCorrupt, WrongImageSize) {
  TinyTree tree;
  write_jpeg(tree.val_image(3), 5, 3, /*h=*/48, /*w=*/64);
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::test); },
               "val_3.JPEG: image is 64x48 pixels (expected 64x64, the Tiny-ImageNet size)");
}

TEST(TinyImageNetCorrupt, CmykJpeg) {
  TinyTree tree;
  write_jpeg(tree.train_image(1, 10), 3, /*channels=*/4);
  expect_error([&] { load_tiny_imagenet(tree.dir(), Split::train); },
               "n01629819_10.JPEG: JPEG colour space CMYK (code 4) is not supported (expected greyscale, YCbCr or RGB)");
}

TEST(TinyImageNetCorrupt, FirstBadFileInOrderIsReported) {
  // Two broken files: the error names the earlier one in dataset order, whatever the threads do.
  TinyTree tree;
  write_bytes(tree.train_image(2, 0).string(), {1, 2, 3});
  write_bytes(tree.train_image(0, 10).string(), {1, 2, 3});
  for (int repeat = 0; repeat < 3; ++repeat)
    expect_error([&] { load_tiny_imagenet(tree.dir(), Split::train); }, "n01443537_10.JPEG: unreadable JPEG");
}

}  // namespace
}  // namespace afd::data
