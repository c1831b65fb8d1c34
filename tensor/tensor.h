// Tensor: an n-dimensional array with a shape, a dtype and a device.
//
// Storage is contiguous and row-major (C order) and owned through a shared_ptr: reshape() and
// slice() return views that share the storage (writes through a view are visible in the parent);
// clone() copies. There are no strides: every tensor is contiguous, which keeps every kernel simple.
//
//   Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
//   Tensor row = x.slice(1, 2);              // shape [1, 3], shares storage with x
//   float v = x.at<float>({1, 2});           // 6
//   Tensor y = x.to(DType::f64).reshape({3, 2});
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"

namespace afd {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);        // "[2, 3]"
int64_t shape_numel(const Shape& s);          // product of sizes, checked for overflow
int normalize_dim(int64_t dim, int64_t rank, const char* op);  // -1 -> rank - 1, range-checked

// A block of device memory. Freed by the device's allocator when the last Tensor using it dies.
class Storage {
 public:
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

class Tensor {
 public:
  Tensor() = default;  // undefined tensor: defined() == false
  // Uninitialised tensor.
  Tensor(Shape shape, DType dtype, Device device = Device::cpu());

  static Tensor empty(Shape shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(Shape shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor ones(Shape shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(Shape shape, double value, DType dtype = DType::f32, Device device = Device::cpu());
  // [start, start + step, ...) strictly below end (above for negative step), like torch.arange.
  static Tensor arange(double start, double end, double step = 1, DType dtype = DType::f32,
                       Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::f32, Device device = Device::cpu());
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, Shape shape, Device device = Device::cpu());

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  Device device() const;
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }

  // Typed pointer to the first element; throws if T does not match the dtype.
  template <class T> T* data() const;
  void* raw_data() const;

  // Views (share storage).
  Tensor reshape(Shape shape) const;  // one size may be -1
  Tensor flatten(int64_t start_dim = 1) const;  // [N, C, H, W] -> [N, C*H*W] for start_dim 1
  Tensor slice(int64_t begin, int64_t end) const;  // rows [begin, end) along dim 0
  Tensor select(int64_t i) const;                  // row i along dim 0, that dim removed

  // Copies.
  Tensor clone() const;
  Tensor to(DType dtype) const;    // returns *this when the dtype already matches
  Tensor to(Device device) const;  // returns *this when already there
  void copy_(const Tensor& src);   // same shape; converts the dtype
  void fill_(double value);

  // Element access for tests and small host-side work (copies to the host for a CUDA tensor).
  template <class T> T item() const;
  template <class T> T at(std::initializer_list<int64_t> index) const;
  template <class T> std::vector<T> to_vector() const;
  double item_double() const;  // any dtype, converted

  std::string str() const;  // "Tensor[f32, [2, 3], cpu]"
  bool shares_storage(const Tensor& other) const { return storage_ == other.storage_; }

 private:
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;  // in elements
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::f32;
};

// Concatenation along `dim` (all other sizes equal, same dtype and device).
Tensor cat(const std::vector<Tensor>& parts, int64_t dim = 0);

}  // namespace afd
