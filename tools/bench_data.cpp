// Loader throughput: CIFAR-10 training batches with random crop (padding 4) and horizontal flip,
// converted to f32 [0, 1], on one core (prefetch off, so the calling thread does all the work),
// and with the prefetch thread as the trainer sees it.
//
//   bench_data [cifar10-dir] [epochs]     (default dir: $AFD_CIFAR10_DIR, else data/cifar10;
//                                          synthetic images of the same shape when absent)
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "afd/data/loader.h"

using namespace afd;
using namespace afd::data;

namespace {

Dataset synthetic_cifar(int64_t n) {
  Dataset d;
  d.name = "synthetic-cifar10/train";
  d.classes = 10;
  d.images = Tensor({n, 3, 32, 32}, DType::u8);
  d.labels = Tensor({n}, DType::i64);
  uint8_t* p = d.images.data<uint8_t>();
  for (int64_t i = 0; i < d.images.numel(); ++i) p[i] = uint8_t((i * 2654435761u) >> 24);
  for (int64_t i = 0; i < n; ++i) d.labels.data<int64_t>()[i] = i % 10;
  return d;
}

// Images per second over `epochs` full epochs (the first, warm-up epoch not counted).
double images_per_second(const Dataset& data, LoaderOptions opt, int64_t epochs) {
  Loader loader(data, opt);
  double seconds = 0;
  int64_t images = 0;
  for (int64_t epoch = 0; epoch <= epochs; ++epoch) {
    auto start = std::chrono::steady_clock::now();
    loader.start_epoch(epoch);
    int64_t seen = 0;
    for (Batch b; loader.next(b);) seen += b.images.size(0);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (epoch > 0) {
      seconds += s;
      images += seen;
    }
  }
  return double(images) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : (std::getenv("AFD_CIFAR10_DIR") ? std::getenv("AFD_CIFAR10_DIR") : "data/cifar10");
  int64_t epochs = argc > 2 ? std::atoll(argv[2]) : 5;
  Dataset train;
  if (std::filesystem::exists(dir + "/data_batch_1.bin")) {
    train = load_cifar10(dir, Split::train);
  } else {
    fmt::print("no CIFAR-10 in {}: using 10000 synthetic 3x32x32 images\n", dir);
    train = synthetic_cifar(10000);
  }
  LoaderOptions opt;
  opt.batch_size = 128;
  opt.seed = 1;
  opt.crop_padding = 4;
  opt.flip = true;
  fmt::print("dataset {}: {} images, batch 128, crop padding 4 + flip, f32 output, {} timed epochs\n", train.name,
             train.size(), epochs);
  opt.prefetch = 0;
  fmt::print("one core (no prefetch thread):   {:>10.0f} images/s\n", images_per_second(train, opt, epochs));
  opt.prefetch = 4;
  fmt::print("prefetch thread (depth 4):       {:>10.0f} images/s (consumer only drains the queue)\n",
             images_per_second(train, opt, epochs));
  opt.crop_padding = 0;
  opt.flip = false;
  opt.prefetch = 0;
  fmt::print("one core, no augmentation:       {:>10.0f} images/s\n", images_per_second(train, opt, epochs));
  return 0;
}
