#include "afd/data/dataset.h"

#include <filesystem>
#include <fstream>

#include <fmt/ranges.h>

#include "afd/data/readers.h"
#include "tensor/error.h"

namespace afd::data {

namespace fs = std::filesystem;

const char* split_name(Split split) { return split == Split::train ? "train" : "test"; }

std::vector<int64_t> Dataset::label_histogram() const {
  std::vector<int64_t> hist(size_t(classes), 0);
  const int64_t* y = labels.data<int64_t>();
  for (int64_t i = 0; i < labels.numel(); ++i) ++hist[size_t(y[i])];
  return hist;
}

void Dataset::validate() const {
  AFD_CHECK(images.defined() && images.dtype() == DType::u8 && images.dim() == 4,
            "dataset {}: images must be u8 [N, C, H, W], got {}", name, images.defined() ? images.str() : "none");
  AFD_CHECK(labels.defined() && labels.dtype() == DType::i64 && labels.dim() == 1 && labels.size(0) == images.size(0),
            "dataset {}: labels must be i64 [{}], got {}", name, images.size(0),
            labels.defined() ? labels.str() : "none");
  AFD_CHECK(classes > 0, "dataset {}: {} classes (expected at least 1)", name, classes);
  const int64_t* y = labels.data<int64_t>();
  for (int64_t i = 0; i < labels.numel(); ++i)
    AFD_CHECK(y[i] >= 0 && y[i] < classes, "dataset {}: label {} of sample {} (expected 0 to {})", name, y[i], i,
              classes - 1);
}

namespace {

void require_dir(const std::string& dir, const std::string& what) {
  AFD_CHECK(fs::is_directory(dir), "{}: folder does not exist (expected the {} files there)", dir, what);
}

// `dir/name`, or `dir/name.gz`; an error naming both when neither exists.
std::string find_idx(const std::string& dir, const std::string& name) {
  fs::path plain = fs::path(dir) / name;
  if (fs::exists(plain)) return plain.string();
  fs::path gz = fs::path(dir) / (name + ".gz");
  if (fs::exists(gz)) return gz.string();
  AFD_FAIL("{}: missing file (expected {} or {})", dir, plain.string(), gz.string());
}

std::vector<std::string> read_lines(const fs::path& path) {
  require_regular_file(path.string());
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

Dataset load_idx_pair(const std::string& dir, Split split, const std::string& tag) {
  require_dir(dir, tag + " IDX");
  std::string prefix = split == Split::train ? "train" : "t10k";
  std::string image_path = find_idx(dir, prefix + "-images-idx3-ubyte");
  std::string label_path = find_idx(dir, prefix + "-labels-idx1-ubyte");
  Dataset d;
  d.name = tag + "/" + split_name(split);
  d.classes = 10;
  d.images = read_idx_images(image_path);
  d.labels = read_idx_labels(label_path, d.classes);
  AFD_CHECK(d.images.size(0) == d.labels.size(0),
            "{}: byte offset 4: {} labels but {} has {} images (expected the same count)", label_path,
            d.labels.size(0), image_path, d.images.size(0));
  d.validate();
  return d;
}

}  // namespace

Dataset load_mnist(const std::string& dir, Split split) { return load_idx_pair(dir, split, "mnist"); }
Dataset load_fashion_mnist(const std::string& dir, Split split) {
  return load_idx_pair(dir, split, "fashion-mnist");
}

Dataset load_cifar10(const std::string& dir, Split split) {
  require_dir(dir, "CIFAR-10 binary");
  Dataset d;
  d.name = std::string("cifar10/") + split_name(split);
  d.classes = 10;
  std::vector<std::string> names;
  if (split == Split::train) {
    for (int b = 1; b <= 5; ++b) names.push_back("data_batch_" + std::to_string(b) + ".bin");
  } else {
    names.push_back("test_batch.bin");
  }
  std::vector<Tensor> images, labels;
  std::vector<std::string> present, missing;
  for (const auto& name : names) {
    fs::path path = fs::path(dir) / name;
    if (!fs::exists(path)) {
      missing.push_back(name);
      continue;
    }
    CifarRecords r = read_cifar(path.string(), CifarKind::cifar10);
    images.push_back(r.images);
    labels.push_back(r.labels);
    present.push_back(name);
  }
  AFD_CHECK(!present.empty(), "{}: no CIFAR-10 {} file (expected {})", dir, split_name(split),
            fmt::format("{}", fmt::join(names, ", ")));
  d.images = images.size() == 1 ? images[0] : cat(images, 0);
  d.labels = labels.size() == 1 ? labels[0] : cat(labels, 0);
  if (!missing.empty()) {
    std::string note = fmt::format("{}: CIFAR-10 training set is partial: {} of {} batches present ({}), {} images; "
                                   "missing {}",
                                   dir, present.size(), names.size(), fmt::join(present, ", "), d.images.size(0),
                                   fmt::join(missing, ", "));
    d.notes.push_back(note);
  }
  fs::path meta = fs::path(dir) / "batches.meta.txt";
  if (fs::exists(meta)) d.class_names = read_lines(meta);
  d.validate();
  return d;
}

Dataset load_cifar100(const std::string& dir, Split split, bool coarse) {
  require_dir(dir, "CIFAR-100 binary");
  fs::path path = fs::path(dir) / (split == Split::train ? "train.bin" : "test.bin");
  AFD_CHECK(fs::exists(path), "{}: missing file (expected {})", dir, path.string());
  CifarRecords r = read_cifar(path.string(), CifarKind::cifar100);
  Dataset d;
  d.name = std::string(coarse ? "cifar100-coarse/" : "cifar100/") + split_name(split);
  d.classes = coarse ? 20 : 100;
  d.images = r.images;
  d.labels = coarse ? r.coarse_labels : r.labels;
  fs::path names = fs::path(dir) / (coarse ? "coarse_label_names.txt" : "fine_label_names.txt");
  if (fs::exists(names)) d.class_names = read_lines(names);
  d.validate();
  return d;
}

Dataset load_dataset(const std::string& name, const std::string& dir, Split split) {
  if (name == "mnist") return load_mnist(dir, split);
  if (name == "fashion-mnist") return load_fashion_mnist(dir, split);
  if (name == "cifar10") return load_cifar10(dir, split);
  if (name == "cifar100") return load_cifar100(dir, split);
  if (name == "tiny-imagenet") return load_tiny_imagenet(dir, split, 64);
  if (name == "tiny-imagenet-32") return load_tiny_imagenet(dir, split, 32);
  AFD_FAIL("unknown dataset '{}' (expected mnist, fashion-mnist, cifar10, cifar100, tiny-imagenet or tiny-imagenet-32)",
           name);
}

}  // namespace afd::data
