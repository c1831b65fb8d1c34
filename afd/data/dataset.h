// A dataset in memory: u8 images [N, C, H, W] and i64 labels [N], plus the loaders that build one
// from a folder of standard files.
//
//   Dataset train = load_mnist("data/mnist", Split::train);           // 60000 x 1 x 28 x 28
//   Dataset test  = load_cifar10("/data/cifar10", Split::test);       // 10000 x 3 x 32 x 32
//   Dataset tiny  = load_tiny_imagenet("data/tiny-imagenet-200", Split::train, 32);  // 100000 x 3 x 32 x 32
//   for (auto& note : train.notes) fmt::print("{}\n", note);          // e.g. missing batches
//
// Files are found by their official names (specs/formats.md); IDX files may also end in ".gz".
// A missing folder or file is an error naming what was expected. A CIFAR-10 folder with only some
// of the five training batches loads the batches that are there and says so in `notes` (the
// caller shows them: afd_run prints them on stderr).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace afd::data {

enum class Split { train, test };
const char* split_name(Split split);

struct Dataset {
  std::string name;                      // "mnist/train", "cifar10/test", ...
  Tensor images;                         // u8 [N, C, H, W], CPU
  Tensor labels;                         // i64 [N], CPU, each in [0, classes)
  int64_t classes = 0;
  std::vector<std::string> class_names;  // empty when the folder has no names file
  std::vector<std::string> notes;        // what a user should know (e.g. partial CIFAR-10 training set)

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  // One image's shape [C, H, W].
  Shape image_shape() const { return Shape(images.shape().begin() + 1, images.shape().end()); }
  // Number of samples of each label (length `classes`).
  std::vector<int64_t> label_histogram() const;
  // Checks shapes, dtypes and label ranges; loaders call it, so a Dataset is always consistent.
  void validate() const;
};

// MNIST or Fashion-MNIST (the same IDX file names): train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally with ".gz".
Dataset load_mnist(const std::string& dir, Split split);
Dataset load_fashion_mnist(const std::string& dir, Split split);

// CIFAR-10 binary: data_batch_1..5.bin (train; those present are loaded in order), test_batch.bin,
// optional batches.meta.txt with the class names.
Dataset load_cifar10(const std::string& dir, Split split);
// CIFAR-100 binary: train.bin, test.bin, optional fine_label_names.txt / coarse_label_names.txt.
// Labels are the fine labels (100 classes), or the coarse ones (20) when `coarse`.
Dataset load_cifar100(const std::string& dir, Split split, bool coarse = false);

// Tiny-ImageNet-200, the folder tiny-imagenet-200/ as distributed: wnids.txt (one wnid a line: the
// class order), optional words.txt (wnid TAB names: the class names, else the wnids),
// train/<wnid>/images/<wnid>_<k>.JPEG, val/images/val_<k>.JPEG labelled by val/val_annotations.txt.
// Split::train reads train/ (classes in wnids.txt order, each by k), Split::test reads val/ (by k);
// test/ has no labels and is not read. Images are u8 [N, 3, S, S]: greyscale JPEGs become three
// equal channels; every file must be 64x64. image_size 64 keeps them, 32 resizes each like Pillow's
// Image.resize((32, 32), Image.BILINEAR) (as the paper does; see resize_bilinear_pil in image.h).
// Errors name the file (and the line of a text file): missing folders, malformed wnids.txt or
// val_annotations.txt, unknown wnids, empty class folders, unreadable JPEGs, other sizes.
Dataset load_tiny_imagenet(const std::string& dir, Split split, int64_t image_size = 64);

// By name: "mnist", "fashion-mnist", "cifar10", "cifar100", "tiny-imagenet" (64x64) or
// "tiny-imagenet-32" (resized to 32x32).
Dataset load_dataset(const std::string& name, const std::string& dir, Split split);

}  // namespace afd::data
