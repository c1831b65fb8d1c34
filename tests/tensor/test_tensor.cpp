// Tensor basics: creation, views, copies, dtype conversion, concatenation and errors.
#include <gtest/gtest.h>

#include "tests/support/checks.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

using namespace afd;
using afd::testing::expect_error;

TEST(Tensor, CreationAndAccess) {
  Tensor z = Tensor::zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.dtype(), DType::f32);
  EXPECT_TRUE(z.device().is_cpu());
  for (float v : z.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(Tensor::ones({4}, DType::f64).at<double>({3}), 1.0);
  EXPECT_EQ(Tensor::full({2, 2}, 7.5, DType::f64).at<double>({1, 0}), 7.5);
  EXPECT_EQ(Tensor::full({3}, 9, DType::u8).at<uint8_t>({2}), 9);
  EXPECT_EQ(Tensor::scalar(3.0).item<float>(), 3.0f);
  EXPECT_EQ(Tensor::scalar(3.0).dim(), 0);

  Tensor r = Tensor::arange(0, 5, 1, DType::i64);
  EXPECT_EQ(r.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(Tensor::arange(1, 2, 0.25, DType::f64).to_vector<double>(), (std::vector<double>{1, 1.25, 1.5, 1.75}));
  EXPECT_EQ(Tensor::arange(5, 0, -2, DType::i64).to_vector<int64_t>(), (std::vector<int64_t>{5, 3, 1}));
  EXPECT_EQ(Tensor::arange(3, 3).numel(), 0);

  Tensor v = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(v.at<float>({1, 2}), 6.0f);
  EXPECT_EQ(v.at<float>({0, 1}), 2.0f);
  EXPECT_EQ(v.str(), "Tensor[f32, [2, 3], cpu]");
}

TEST(Tensor, ViewsShareStorage) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor flat = x.reshape({-1});
  EXPECT_EQ(flat.shape(), (Shape{6}));
  EXPECT_TRUE(flat.shares_storage(x));
  Tensor rows = x.slice(1, 3);
  EXPECT_EQ(rows.shape(), (Shape{2, 2}));
  EXPECT_EQ(rows.to_vector<float>(), (std::vector<float>{3, 4, 5, 6}));
  rows.fill_(0);  // writes through the view
  EXPECT_EQ(x.to_vector<float>(), (std::vector<float>{1, 2, 0, 0, 0, 0}));
  Tensor row = x.select(0);
  EXPECT_EQ(row.shape(), (Shape{2}));
  EXPECT_EQ(row.to_vector<float>(), (std::vector<float>{1, 2}));
  EXPECT_EQ(Tensor::zeros({2, 3, 4, 5}).flatten().shape(), (Shape{2, 60}));
  EXPECT_EQ(x.slice(1, 1).numel(), 0);
}

TEST(Tensor, CopiesAndConversion) {
  Tensor x = Tensor::from_vector<double>({1.5, -2.25, 3.75}, {3});
  Tensor c = x.clone();
  EXPECT_FALSE(c.shares_storage(x));
  c.fill_(0);
  EXPECT_EQ(x.at<double>({0}), 1.5);
  EXPECT_EQ(x.to(DType::f32).to_vector<float>(), (std::vector<float>{1.5f, -2.25f, 3.75f}));
  EXPECT_EQ(x.to(DType::i64).to_vector<int64_t>(), (std::vector<int64_t>{1, -2, 3}));
  Tensor u = Tensor::from_vector<uint8_t>({0, 128, 255}, {3});
  EXPECT_EQ(u.to(DType::f32).to_vector<float>(), (std::vector<float>{0, 128, 255}));
  EXPECT_TRUE(x.to(DType::f64).shares_storage(x));  // no-op conversion
  Tensor dst = Tensor::zeros({3}, DType::f32);
  dst.copy_(x);
  EXPECT_EQ(dst.at<float>({2}), 3.75f);
}

TEST(Tensor, Concatenation) {
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  Tensor b = Tensor::from_vector<float>({5, 6}, {1, 2});
  EXPECT_EQ(cat({a, b}, 0).to_vector<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  Tensor c = Tensor::from_vector<float>({7, 8}, {2, 1});
  Tensor ac = cat({a, c}, 1);
  EXPECT_EQ(ac.shape(), (Shape{2, 3}));
  EXPECT_EQ(ac.to_vector<float>(), (std::vector<float>{1, 2, 7, 3, 4, 8}));
  EXPECT_EQ(cat({a, c}, -1).shape(), (Shape{2, 3}));
}

TEST(Tensor, ErrorsNameTheProblem) {
  Tensor x = Tensor::zeros({2, 3});
  expect_error([&] { x.reshape({4, 2}); }, "cannot view [2, 3]");
  expect_error([&] { x.reshape({-1, -1}); }, "more than one -1");
  expect_error([&] { x.slice(1, 3); }, "rows [1, 3) out of range for shape [2, 3]");
  expect_error([&] { x.at<float>({2, 0}); }, "index 2 out of range for dim 0");
  expect_error([&] { x.at<double>({0, 0}); }, "at<f64> on a tensor of dtype f32");
  expect_error([&] { x.data<int64_t>(); }, "data<i64>() on a tensor of dtype f32");
  expect_error([&] { x.item<float>(); }, "has 6 elements, expected 1");
  expect_error([&] { Tensor::from_vector<float>({1, 2, 3}, {2, 2}); }, "3 values do not fill shape [2, 2]");
  expect_error([&] { cat({x, Tensor::zeros({2, 4})}, 0); }, "differ outside dim 0");
  expect_error([&] { Tensor::zeros({2, -1}); }, "negative size");
  expect_error([&] { Device::parse("gpu0"); }, "device 'gpu0'");
  // A device no machine has (a CPU-only build and a machine with GPUs both refuse it by name).
  expect_error([&] { Tensor::zeros({1}, DType::f32, Device::cuda(1000)); }, "cuda:1000");
  EXPECT_EQ(Device::parse("cuda:3"), Device::cuda(3));
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
}
