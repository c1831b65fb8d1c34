// Batches from a Dataset: deterministic shuffling by seed, the last partial batch kept or dropped,
// augmentation (random crop with zero padding, horizontal flip), conversion to f32 in [0, 1], and
// a background thread that prepares the next batches while the trainer computes.
//
//   LoaderOptions opt;  opt.batch_size = 128;  opt.seed = 7;  opt.crop_padding = 4;  opt.flip = true;
//   Loader loader(train, opt);
//   for (int64_t epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     for (Batch b; loader.next(b);) step(b.images, b.labels);   // f32 [B, C, H, W], i64 [B]
//   }
//
// Determinism: a batch is a pure function of (dataset, options, epoch, batch index): the same seed
// gives the same batches on any machine, with or without the prefetch thread, for any prefetch
// depth. Random numbers come from the project's Philox (tensor/rng.h), at counters reserved for
// the loader so that they never meet a Generator's draws from the same seed (those start at 0):
//
//   base(e)             = 2^63 + e * 2^40                  (epoch e < 2^23)
//   shuffle of epoch e  = randperm(N, Generator(seed, base(e)))   -> blocks base(e) .. + ceil(N/2)
//   sample i, epoch e   = philox4x32(seed, base(e) + 2^39 + i)    (one block per dataset row i)
//                         lane 0: flip when lane0 >= 2^31 (probability exactly 1/2)
//                         lane 1: crop row offset    dy = (lane1 * (2P + 1)) >> 32 in [0, 2P]
//                         lane 2: crop column offset dx = (lane2 * (2P + 1)) >> 32 in [0, 2P]
//
// The augmentation of a sample depends on its dataset row and the epoch, not on its position in
// the batch, so changing the batch size changes which samples meet but not how each is augmented.
// Augmentation follows torchvision's RandomCrop(size, padding=P) then RandomHorizontalFlip():
//   out[c, y, x] = padded[c, y + dy, x' + dx] with x' = flip ? W - 1 - x : x,
//   padded[c, y, x] = image[c, y - P, x - P] inside the image, 0 outside.
// Conversion: u8 v -> f32 v * float(1/255) (what ops::mul_scalar computes), on the CPU by the
// worker, or on the GPU after copying u8 when options.device is a CUDA device.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "afd/data/dataset.h"
#include "tensor/device.h"

namespace afd::data {

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;     // drop the last batch when it has fewer than batch_size samples
  uint64_t seed = 0;
  int64_t crop_padding = 0;   // P above; 0 = no random crop
  bool flip = false;          // random horizontal flip with probability 1/2
  int64_t prefetch = 2;       // batches prepared ahead by the background thread; 0 = no thread
  Device device = Device::cpu();
  // Data parallel: every batch (of up to batch_size rows, the GLOBAL batch) is cut into shard_count
  // contiguous slices, the first (rows % shard_count) one row longer, and this loader yields slice
  // shard_rank only (afd/dist/data_parallel.h, shard_of). Order and augmentation are unchanged.
  int shard_rank = 0, shard_count = 1;
};

struct Batch {
  Tensor images;   // f32 [B, C, H, W] in [0, 1], on options.device
  Tensor labels;   // i64 [B], on options.device
  Tensor indices;  // i64 [B], CPU: the dataset rows in this batch
  int64_t epoch = 0;
  int64_t index = 0;  // batch number within the epoch
};

// One sample's augmentation.
struct Augment {
  int64_t dy = 0, dx = 0;  // crop offsets in the padded image, each in [0, 2P]
  bool flip = false;
};
Augment draw_augment(uint64_t seed, int64_t epoch, int64_t row, int64_t padding, bool flip);

// The dataset rows of epoch `epoch` in visiting order (0..N-1 when not shuffling).
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch, bool shuffle);

// One image u8 [C, H, W] -> augmented T [C, H, W] (T = uint8_t keeps the bytes, float scales to [0, 1]).
void augment_image(const uint8_t* src, uint8_t* dst, int64_t C, int64_t H, int64_t W, int64_t padding, Augment a);
void augment_image(const uint8_t* src, float* dst, int64_t C, int64_t H, int64_t W, int64_t padding, Augment a);

// Batch `index` of epoch `epoch` given that epoch's order, built on the CPU (images f32 when
// `as_float`, else u8).
Batch make_batch(const Dataset& data, const LoaderOptions& options, int64_t epoch, int64_t index,
                 const std::vector<int64_t>& order, bool as_float = true);

class Loader {
 public:
  Loader(const Dataset& data, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t batches_per_epoch() const;
  const LoaderOptions& options() const { return options_; }
  // Starts (or restarts) epoch `epoch`; the prefetch thread begins preparing its batches.
  void start_epoch(int64_t epoch);
  // The next batch of the current epoch; false when the epoch is over. Rethrows a worker's error.
  bool next(Batch& out);

 private:
  void stop_worker();
  void work(int64_t epoch, std::vector<int64_t> order);
  Batch finish(Batch b) const;  // moves to the device and converts there when needed

  Dataset data_;
  LoaderOptions options_;
  int64_t epoch_ = -1;
  int64_t next_index_ = 0;
  std::vector<int64_t> order_;

  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> queue_;
  std::exception_ptr error_;
  bool stop_ = false;
};

}  // namespace afd::data
