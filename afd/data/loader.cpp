#include "afd/data/loader.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "tensor/error.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

namespace afd::data {

namespace {

constexpr uint64_t kLoaderBase = uint64_t(1) << 63;
constexpr uint64_t kEpochStride = uint64_t(1) << 40;
constexpr uint64_t kSampleBase = uint64_t(1) << 39;

uint64_t epoch_base(int64_t epoch) {
  AFD_CHECK(epoch >= 0 && epoch < (int64_t(1) << 23), "loader: epoch {} (expected 0 to 2^23 - 1)", epoch);
  return kLoaderBase + uint64_t(epoch) * kEpochStride;
}

// v * float(1/255) for every byte value: what ops::mul_scalar(x.to(f32), 1 / 255.) gives.
const std::array<float, 256>& byte_to_unit() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    const float scale = static_cast<float>(1.0 / 255.0);
    for (int v = 0; v < 256; ++v) t[size_t(v)] = scale * static_cast<float>(v) + 0.0f;
    return t;
  }();
  return table;
}

struct ToByte {
  uint8_t operator()(uint8_t v) const { return v; }
};
struct ToUnit {
  const float* table;
  float operator()(uint8_t v) const { return table[v]; }
};

// out[c, y, x] = image[c, y + dy - P, x' + dx - P] (0 outside), x' = flip ? W - 1 - x : x.
template <class T, class Convert>
void augment_into(const uint8_t* src, T* dst, int64_t C, int64_t H, int64_t W, int64_t P, Augment a,
                  Convert convert) {
  const int64_t shift_x = a.dx - P;
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t y = 0; y < H; ++y) {
      T* out = dst + (c * H + y) * W;
      const int64_t sy = y + a.dy - P;
      if (sy < 0 || sy >= H) {
        std::fill(out, out + W, T(0));
        continue;
      }
      const uint8_t* row = src + (c * H + sy) * W;
      if (!a.flip) {
        for (int64_t x = 0; x < W; ++x) {
          int64_t sx = x + shift_x;
          out[x] = (sx >= 0 && sx < W) ? convert(row[sx]) : T(0);
        }
      } else {
        for (int64_t x = 0; x < W; ++x) {
          int64_t sx = (W - 1 - x) + shift_x;
          out[x] = (sx >= 0 && sx < W) ? convert(row[sx]) : T(0);
        }
      }
    }
  }
}

}  // namespace

Augment draw_augment(uint64_t seed, int64_t epoch, int64_t row, int64_t padding, bool flip) {
  Augment a;
  if (padding == 0 && !flip) return a;
  auto lanes = philox4x32(seed, epoch_base(epoch) + kSampleBase + uint64_t(row));
  const uint64_t choices = uint64_t(2 * padding + 1);
  a.flip = flip && lanes[0] >= (uint32_t(1) << 31);
  a.dy = padding > 0 ? int64_t((uint64_t(lanes[1]) * choices) >> 32) : 0;
  a.dx = padding > 0 ? int64_t((uint64_t(lanes[2]) * choices) >> 32) : 0;
  return a;
}

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch, bool shuffle) {
  if (!shuffle) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
    return order;
  }
  Generator gen(seed, epoch_base(epoch));
  return randperm(n, gen).to_vector<int64_t>();
}

void augment_image(const uint8_t* src, uint8_t* dst, int64_t C, int64_t H, int64_t W, int64_t padding, Augment a) {
  augment_into(src, dst, C, H, W, padding, a, ToByte{});
}

void augment_image(const uint8_t* src, float* dst, int64_t C, int64_t H, int64_t W, int64_t padding, Augment a) {
  augment_into(src, dst, C, H, W, padding, a, ToUnit{byte_to_unit().data()});
}

Batch make_batch(const Dataset& data, const LoaderOptions& options, int64_t epoch, int64_t index,
                 const std::vector<int64_t>& order, bool as_float) {
  const int64_t n = int64_t(order.size());
  int64_t begin = index * options.batch_size;
  AFD_CHECK(begin >= 0 && begin < n, "loader: batch {} starts at sample {} of {}", index, begin, n);
  int64_t count = std::min(options.batch_size, n - begin);
  if (options.shard_count > 1) {  // this shard's slice of the global batch (dist::shard_of)
    const int64_t base = count / options.shard_count, extra = count % options.shard_count;
    begin += options.shard_rank * base + std::min<int64_t>(options.shard_rank, extra);
    count = base + (options.shard_rank < extra ? 1 : 0);
  }
  const int64_t C = data.images.size(1), H = data.images.size(2), W = data.images.size(3);
  const int64_t image_size = C * H * W;
  Batch b;
  b.epoch = epoch;
  b.index = index;
  b.images = Tensor({count, C, H, W}, as_float ? DType::f32 : DType::u8);
  b.labels = Tensor({count}, DType::i64);
  b.indices = Tensor({count}, DType::i64);
  const uint8_t* images = data.images.data<uint8_t>();
  const int64_t* labels = data.labels.data<int64_t>();
  int64_t* out_labels = b.labels.data<int64_t>();
  int64_t* out_indices = b.indices.data<int64_t>();
  for (int64_t i = 0; i < count; ++i) {
    const int64_t row = order[size_t(begin + i)];
    Augment a = draw_augment(options.seed, epoch, row, options.crop_padding, options.flip);
    const uint8_t* src = images + row * image_size;
    if (as_float) {
      augment_image(src, b.images.data<float>() + i * image_size, C, H, W, options.crop_padding, a);
    } else {
      augment_image(src, b.images.data<uint8_t>() + i * image_size, C, H, W, options.crop_padding, a);
    }
    out_labels[i] = labels[row];
    out_indices[i] = row;
  }
  return b;
}

Loader::Loader(const Dataset& data, LoaderOptions options) : data_(data), options_(options) {
  data_.validate();
  AFD_CHECK(options_.batch_size > 0, "loader: batch_size {} (expected > 0)", options_.batch_size);
  AFD_CHECK(options_.crop_padding >= 0 && options_.crop_padding <= 1024,
            "loader: crop_padding {} (expected 0 to 1024)", options_.crop_padding);
  AFD_CHECK(options_.prefetch >= 0, "loader: prefetch {} (expected >= 0)", options_.prefetch);
  AFD_CHECK(options_.shard_count >= 1 && options_.shard_rank >= 0 && options_.shard_rank < options_.shard_count,
            "loader: shard {} of {} (expected 0 <= shard_rank < shard_count)", options_.shard_rank, options_.shard_count);
  AFD_CHECK(data_.size() > 0, "loader: dataset {} is empty", data_.name);
}

Loader::~Loader() { stop_worker(); }

int64_t Loader::batches_per_epoch() const {
  const int64_t n = data_.size();
  return options_.drop_last ? n / options_.batch_size : (n + options_.batch_size - 1) / options_.batch_size;
}

void Loader::stop_worker() {
  if (!worker_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  worker_.join();
  queue_.clear();
  error_ = nullptr;
  stop_ = false;
}

void Loader::start_epoch(int64_t epoch) {
  stop_worker();
  epoch_ = epoch;
  next_index_ = 0;
  order_ = epoch_order(data_.size(), options_.seed, epoch, options_.shuffle);
  if (options_.prefetch > 0 && batches_per_epoch() > 0) worker_ = std::thread(&Loader::work, this, epoch, order_);
}

void Loader::work(int64_t epoch, std::vector<int64_t> order) {
  const bool as_float = options_.device.is_cpu();
  for (int64_t index = 0; index < batches_per_epoch(); ++index) {
    Batch b;
    try {
      b = make_batch(data_, options_, epoch, index, order, as_float);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
      changed_.notify_all();
      return;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return stop_ || int64_t(queue_.size()) < options_.prefetch; });
    if (stop_) return;
    queue_.push_back(std::move(b));
    changed_.notify_all();
  }
}

Batch Loader::finish(Batch b) const {
  if (options_.device.is_cpu()) return b;
  // u8 over the bus (a quarter of the bytes), converted on the device.
  b.images = ops::mul_scalar(b.images.to(options_.device).to(DType::f32), 1.0 / 255.0);
  b.labels = b.labels.to(options_.device);
  return b;
}

bool Loader::next(Batch& out) {
  AFD_CHECK(epoch_ >= 0, "loader: next() before start_epoch()");
  if (next_index_ >= batches_per_epoch()) return false;
  if (options_.prefetch == 0) {
    out = finish(make_batch(data_, options_, epoch_, next_index_, order_, options_.device.is_cpu()));
    ++next_index_;
    return true;
  }
  Batch b;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return !queue_.empty() || error_ != nullptr; });
    if (queue_.empty()) std::rethrow_exception(error_);
    b = std::move(queue_.front());
    queue_.pop_front();
  }
  changed_.notify_all();
  ++next_index_;
  out = finish(std::move(b));
  return true;
}

}  // namespace afd::data
