// The tiny training runs the resume and fault-injection tests share: a learnable synthetic
// dataset, a config that trains in a fraction of a second, temp folders, and a byte-for-byte
// comparison of checkpoint files.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "afd/data/synthetic.h"
#include "afd/train/trainer.h"
#include "nn/safetensors.h"

namespace afd::train {

namespace fs = std::filesystem;

// n images [1, size, size] of `classes` classes: the synthetic pixel pattern plus a bright row that
// depends on the label, so the classes are learnable.
inline data::Dataset synthetic_dataset(int64_t n, int64_t classes, int64_t first = 0, int64_t size = 12) {
  data::Dataset d;
  d.name = "synthetic";
  d.classes = classes;
  d.images = Tensor({n, 1, size, size}, DType::u8);
  d.labels = Tensor({n}, DType::i64);
  uint8_t* px = d.images.data<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = (first + i) % classes;
    d.labels.data<int64_t>()[i] = label;
    for (int64_t y = 0; y < size; ++y)
      for (int64_t x = 0; x < size; ++x)
        px[(i * size + y) * size + x] =
            y == 2 + 2 * label ? 255 : uint8_t(data::synthetic_pixel(first + i, 0, y, x) / 4);
  }
  return d;
}

inline TrainConfig tiny_config(Method method, const std::string& out_dir) {
  TrainConfig c;
  c.method = method;
  c.dataset = "synthetic";
  c.model = "resnet18-mnist";
  c.width = 2;
  c.epochs = 2;
  c.batch_size = 8;
  c.milestones = {1};
  c.lr = 0.05, c.lr_d = 0.1, c.lr_f = 0.1;
  c.gp_lambda = method == Method::afd ? 1.0 : 0.0;  // the GP draws from the step generator
  c.attack = "pgd-linf";
  c.attack_config.eps = 0.3;
  c.attack_config.steps = 2;
  c.attack_config.step_size = 0.1;
  c.attack_config.random_start = true;  // the attack's seed matters
  c.trades_attack = {0.3, 2, 0.1, 0.001};
  c.seed = 11;
  c.checkpoint_every = 1;
  c.eval_batch_size = 16;
  c.out_dir = out_dir;
  return c;
}

inline std::string temp_dir(const std::string& tag) {
  fs::path p = fs::temp_directory_path() / ("afd_test_resume_" + std::to_string(::getpid()) + "_" + tag);
  fs::remove_all(p);
  return p.string();
}

inline void expect_bit_identical(const std::string& a, const std::string& b, bool trainer_file = true) {
  SafetensorsFile fa = read_safetensors(a), fb = read_safetensors(b);
  ASSERT_EQ(fa.tensors.size(), fb.tensors.size());
  for (size_t i = 0; i < fa.tensors.size(); ++i) {
    const auto& [name_a, ta] = fa.tensors[i];
    const auto& [name_b, tb] = fb.tensors[i];
    ASSERT_EQ(name_a, name_b);
    ASSERT_EQ(ta.dtype(), tb.dtype()) << name_a;
    ASSERT_EQ(ta.shape(), tb.shape()) << name_a;
    EXPECT_EQ(std::memcmp(ta.raw_data(), tb.raw_data(), ta.nbytes()), 0) << name_a << " differs";
  }
  if (!trainer_file) return;
  for (const char* key : {"epoch", "batch", "global_step", "epoch_sums", "dataset_size", "method", "model"})
    EXPECT_EQ(fa.metadata.at(key), fb.metadata.at(key)) << key;
}

}  // namespace afd::train
