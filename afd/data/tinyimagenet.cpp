// Tiny-ImageNet-200 folder reader (load_tiny_imagenet in dataset.h): the text files are parsed
// strictly, every image file is listed before anything is decoded, then the JPEGs are decoded in
// parallel straight into the dataset tensor (resized there when asked).
#include <algorithm>
#include <charconv>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "afd/data/dataset.h"
#include "afd/data/image.h"
#include "afd/data/readers.h"
#include "tensor/error.h"

namespace afd::data {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kStoredSize = 64;  // every Tiny-ImageNet image is 64x64

struct TextLine {
  int64_t number;  // 1-based, as editors count
  std::string text;
};

// The non-blank lines of a text file, without trailing '\r' or spaces.
std::vector<TextLine> read_text_lines(const fs::path& path) {
  require_regular_file(path.string());
  std::ifstream in(path);
  AFD_CHECK(in.good(), "{}: cannot open file", path.string());
  std::vector<TextLine> lines;
  int64_t number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) lines.push_back({number, std::move(line)});
  }
  return lines;
}

std::vector<std::string_view> split_tabs(std::string_view text) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  for (size_t tab; (tab = text.find('\t', start)) != std::string_view::npos; start = tab + 1)
    fields.push_back(text.substr(start, tab - start));
  fields.push_back(text.substr(start));
  return fields;
}

// A WordNet id: 'n' and eight digits (n01443537).
bool is_wnid(std::string_view s) {
  return s.size() == 9 && s[0] == 'n' &&
         std::all_of(s.begin() + 1, s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A non-negative decimal without sign or leading zeros (the whole text), or nothing.
std::optional<int64_t> parse_count(std::string_view s) {
  if (s.empty() || s.size() > 12 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

// k from "<prefix><k>.JPEG", or nothing when the name has another form.
std::optional<int64_t> image_index(std::string_view name, std::string_view prefix) {
  constexpr std::string_view suffix = ".JPEG";
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) || !name.ends_with(suffix))
    return std::nullopt;
  return parse_count(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()));
}

struct Classes {
  std::vector<std::string> wnids;                   // label -> wnid, in wnids.txt order
  std::unordered_map<std::string, int64_t> label;   // wnid -> label
};

Classes read_wnids(const fs::path& path) {
  AFD_CHECK(fs::is_regular_file(path), "{}: missing file (expected the list of class wnids, one a line)",
            path.string());
  Classes classes;
  std::unordered_map<std::string, int64_t> first_line;
  for (const TextLine& line : read_text_lines(path)) {
    AFD_CHECK(is_wnid(line.text), "{}:{}: malformed line '{}' (expected one WordNet id such as n01443537)",
              path.string(), line.number, line.text);
    auto [at, inserted] = first_line.emplace(line.text, line.number);
    AFD_CHECK(inserted, "{}:{}: duplicate wnid {} (first on line {})", path.string(), line.number, line.text,
              at->second);
    classes.label.emplace(line.text, int64_t(classes.wnids.size()));
    classes.wnids.push_back(line.text);
  }
  AFD_CHECK(!classes.wnids.empty(), "{}: no wnids (expected one WordNet id a line, 200 for Tiny-ImageNet-200)",
            path.string());
  return classes;
}

// words.txt: "wnid TAB names" for (at least) every class; the names of our classes, in label
// order. A class without a line keeps its wnid as its name.
std::vector<std::string> read_class_names(const fs::path& path, const Classes& classes) {
  std::vector<std::string> names = classes.wnids;
  for (const TextLine& line : read_text_lines(path)) {
    size_t tab = line.text.find('\t');
    AFD_CHECK(tab != std::string::npos && is_wnid(std::string_view(line.text).substr(0, tab)),
              "{}:{}: malformed line '{}' (expected a wnid, a tab, then the class names)", path.string(), line.number,
              line.text);
    auto it = classes.label.find(line.text.substr(0, tab));
    if (it != classes.label.end()) names[size_t(it->second)] = line.text.substr(tab + 1);
  }
  return names;
}

struct ImageFile {
  int64_t index;  // k in the file name: the order within a class (train) or the split (val)
  fs::path path;
  int64_t label;
};

void require_folder(const fs::path& path, const std::string& expected) {
  AFD_CHECK(fs::is_directory(path), "{}: missing folder (expected {})", path.string(), expected);
}

bool hidden(const fs::path& path) { return path.filename().string().starts_with("."); }

std::vector<ImageFile> list_train(const fs::path& root, const Classes& classes) {
  const fs::path train = root / "train";
  require_folder(train, "train/<wnid>/images/<wnid>_<k>.JPEG for each wnid in wnids.txt");
  for (const auto& entry : fs::directory_iterator(train)) {
    if (!entry.is_directory() || hidden(entry.path())) continue;
    const std::string wnid = entry.path().filename().string();
    AFD_CHECK(classes.label.count(wnid), "{}: unknown wnid {} (a class folder for a wnid not in {})",
              entry.path().string(), wnid, (root / "wnids.txt").string());
  }
  std::vector<ImageFile> files;
  for (size_t label = 0; label < classes.wnids.size(); ++label) {
    const std::string& wnid = classes.wnids[label];
    const fs::path images = train / wnid / "images";
    require_folder(images, fmt::format("the class folder of {}: train/{}/images/{}_<k>.JPEG", wnid, wnid, wnid));
    std::vector<ImageFile> in_class;
    for (const auto& entry : fs::directory_iterator(images)) {
      if (hidden(entry.path())) continue;
      const std::string name = entry.path().filename().string();
      std::optional<int64_t> k = image_index(name, wnid + "_");
      AFD_CHECK(k && entry.is_regular_file(), "{}: unexpected entry in a class folder (expected files {}_<k>.JPEG)",
                entry.path().string(), wnid);
      in_class.push_back({*k, entry.path(), int64_t(label)});
    }
    AFD_CHECK(!in_class.empty(), "{}: class folder has no images (expected {}_<k>.JPEG files)", images.string(), wnid);
    std::sort(in_class.begin(), in_class.end(), [](const ImageFile& a, const ImageFile& b) { return a.index < b.index; });
    files.insert(files.end(), in_class.begin(), in_class.end());
  }
  return files;
}

std::vector<ImageFile> list_val(const fs::path& root, const Classes& classes) {
  const fs::path val = root / "val";
  require_folder(val, "val/images/val_<k>.JPEG and val/val_annotations.txt");
  const fs::path annotations = val / "val_annotations.txt";
  AFD_CHECK(fs::is_regular_file(annotations),
            "{}: missing file (expected the validation labels: val_<k>.JPEG TAB wnid TAB x0 TAB y0 TAB x1 TAB y1)",
            annotations.string());
  const fs::path images = val / "images";
  require_folder(images, "val/images/val_<k>.JPEG");

  std::vector<ImageFile> files;
  std::unordered_map<std::string, int64_t> line_of;  // file name -> annotation line
  for (const TextLine& line : read_text_lines(annotations)) {
    const std::vector<std::string_view> fields = split_tabs(line.text);
    bool well_formed = fields.size() == 6;
    for (size_t f = 2; well_formed && f < 6; ++f) well_formed = parse_count(fields[f]).has_value();
    std::optional<int64_t> k = well_formed ? image_index(fields[0], "val_") : std::nullopt;
    AFD_CHECK(k, "{}:{}: malformed line '{}' (expected val_<k>.JPEG TAB wnid TAB x0 TAB y0 TAB x1 TAB y1)",
              annotations.string(), line.number, line.text);
    const std::string file(fields[0]), wnid(fields[1]);
    auto label = classes.label.find(wnid);
    AFD_CHECK(label != classes.label.end(), "{}:{}: unknown wnid '{}' for {} (not in {})", annotations.string(),
              line.number, wnid, file, (root / "wnids.txt").string());
    auto [at, inserted] = line_of.emplace(file, line.number);
    AFD_CHECK(inserted, "{}:{}: {} is annotated twice (first on line {})", annotations.string(), line.number, file,
              at->second);
    const fs::path path = images / file;
    AFD_CHECK(fs::is_regular_file(path), "{}: missing image (listed on line {} of {})", path.string(), line.number,
              annotations.string());
    files.push_back({*k, path, label->second});
  }
  AFD_CHECK(!files.empty(), "{}: no annotations (expected one line per validation image)", annotations.string());
  for (const auto& entry : fs::directory_iterator(images)) {
    if (hidden(entry.path())) continue;
    AFD_CHECK(line_of.count(entry.path().filename().string()), "{}: image without a label (no line in {})",
              entry.path().string(), annotations.string());
  }
  std::sort(files.begin(), files.end(), [](const ImageFile& a, const ImageFile& b) { return a.index < b.index; });
  return files;
}

// Decodes files[i] into images[i] (u8 [N, 3, S, S]), in parallel. The first failing file in list
// order is the error reported, whatever the thread timing.
void decode_images(const std::vector<ImageFile>& files, int64_t size, Tensor& images) {
  const int64_t N = int64_t(files.size());
  uint8_t* out = images.data<uint8_t>();
  std::mutex mutex;
  int64_t first_failure = N;
  std::exception_ptr failure;
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < N; ++i) {
    try {
      const std::string path = files[size_t(i)].path.string();
      const JpegImage jpeg = decode_jpeg(read_file(path), path);
      AFD_CHECK(jpeg.height == kStoredSize && jpeg.width == kStoredSize,
                "{}: image is {}x{} pixels (expected {}x{}, the Tiny-ImageNet size)", path, jpeg.width, jpeg.height,
                kStoredSize, kStoredSize);
      uint8_t* dst = out + i * 3 * size * size;
      if (size == kStoredSize) {
        jpeg.to_rgb_chw(dst);
      } else {
        const std::vector<uint8_t> rgb = jpeg.to_rgb_chw();
        resize_bilinear_pil(rgb.data(), 3, kStoredSize, kStoredSize, dst, size, size);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      if (i < first_failure) {
        first_failure = i;
        failure = std::current_exception();
      }
    }
  }
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

Dataset load_tiny_imagenet(const std::string& dir, Split split, int64_t image_size) {
  AFD_CHECK(image_size == 64 || image_size == 32,
            "load_tiny_imagenet: image_size {} (expected 64, as stored, or 32, resized like Pillow's BILINEAR)",
            image_size);
  const fs::path root(dir);
  require_folder(root, "the Tiny-ImageNet-200 folder: wnids.txt, train/, val/, optionally words.txt");
  const Classes classes = read_wnids(root / "wnids.txt");
  const std::vector<ImageFile> files = split == Split::train ? list_train(root, classes) : list_val(root, classes);

  Dataset d;
  d.name = fmt::format("{}/{}", image_size == 64 ? "tiny-imagenet" : "tiny-imagenet-32",
                       split == Split::train ? "train" : "val");
  d.classes = int64_t(classes.wnids.size());
  const fs::path words = root / "words.txt";
  d.class_names = fs::exists(words) ? read_class_names(words, classes) : classes.wnids;
  if (d.classes != 200)
    d.notes.push_back(fmt::format("{}: {} classes in wnids.txt (Tiny-ImageNet-200 has 200)", dir, d.classes));

  const int64_t N = int64_t(files.size());
  d.images = Tensor::empty({N, 3, image_size, image_size}, DType::u8);
  decode_images(files, image_size, d.images);
  std::vector<int64_t> labels(files.size());
  for (int64_t i = 0; i < N; ++i) labels[size_t(i)] = files[size_t(i)].label;
  d.labels = Tensor::from_vector(labels, {N});
  d.validate();
  return d;
}

}  // namespace afd::data
