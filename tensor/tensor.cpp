#include "tensor/tensor.h"

#include <cstring>
#include <limits>

#include "tensor/backend.h"
#include "tensor/ops.h"

namespace afd {

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5) {
    size_t used = 0;
    int index = -1;
    try {
      index = std::stoi(text.substr(5), &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == text.size() - 5 && index >= 0) return cuda(index);
  }
  AFD_FAIL("device '{}' is not one of cpu, cuda, cuda:N", text);
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    AFD_CHECK(d >= 0, "shape {} has a negative size", shape_str(s));
    AFD_CHECK(d == 0 || n <= std::numeric_limits<int64_t>::max() / d, "shape {} overflows int64",
              shape_str(s));
    n *= d;
  }
  return n;
}

int normalize_dim(int64_t dim, int64_t rank, const char* op) {
  int64_t d = dim < 0 ? dim + rank : dim;
  AFD_CHECK(d >= 0 && d < rank, "{}: dim {} is out of range for a tensor of rank {}", op, dim, rank);
  return static_cast<int>(d);
}

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  data_ = backend(device).allocate(bytes);
}

Storage::~Storage() {
  // Destructors never throw: the backend's deallocate does not.
  if (data_) backend(device_).deallocate(data_, bytes_);
}

Tensor::Tensor(Shape shape, DType dtype, Device device)
    : shape_(std::move(shape)), numel_(shape_numel(shape_)), dtype_(dtype) {
  storage_ = std::make_shared<Storage>(nbytes(), device);
}

Tensor Tensor::empty(Shape shape, DType dtype, Device device) {
  return Tensor(std::move(shape), dtype, device);
}

Tensor Tensor::full(Shape shape, double value, DType dtype, Device device) {
  Tensor t(std::move(shape), dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype, Device device) {
  return full(std::move(shape), 0.0, dtype, device);
}

Tensor Tensor::ones(Shape shape, DType dtype, Device device) {
  return full(std::move(shape), 1.0, dtype, device);
}

Tensor Tensor::scalar(double value, DType dtype, Device device) {
  return full({}, value, dtype, device);
}

Tensor Tensor::arange(double start, double end, double step, DType dtype, Device device) {
  AFD_CHECK(step != 0, "arange: step must be non-zero");
  double count = std::ceil((end - start) / step);
  int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
  Tensor t({n}, dtype, device);
  if (n > 0) backend(device).arange(t, start, step);
  return t;
}

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, Shape shape, Device device) {
  AFD_CHECK(shape_numel(shape) == static_cast<int64_t>(values.size()),
            "from_vector: {} values do not fill shape {}", values.size(), shape_str(shape));
  Tensor host(std::move(shape), dtype_of<T>(), Device::cpu());
  if (!values.empty()) std::memcpy(host.raw_data(), values.data(), values.size() * sizeof(T));
  return host.to(device);
}

int64_t Tensor::size(int64_t d) const { return shape_[normalize_dim(d, dim(), "size")]; }

Device Tensor::device() const { return storage_ ? storage_->device() : Device::cpu(); }

void* Tensor::raw_data() const {
  AFD_CHECK(defined(), "data access on an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * dtype_size(dtype_);
}

template <class T>
T* Tensor::data() const {
  AFD_CHECK(dtype_of<T>() == dtype_, "data<{}>() on a tensor of dtype {}", dtype_name(dtype_of<T>()),
            dtype_name(dtype_));
  return static_cast<T*>(raw_data());
}

Tensor Tensor::reshape(Shape shape) const {
  AFD_CHECK(defined(), "reshape of an undefined tensor");
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      AFD_CHECK(infer < 0, "reshape: more than one -1 in {}", shape_str(shape));
      infer = static_cast<int>(i);
    } else {
      AFD_CHECK(shape[i] >= 0, "reshape: negative size in {}", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    AFD_CHECK(known > 0 && numel_ % known == 0, "reshape: cannot view {} as {}", shape_str(shape_),
              shape_str(shape));
    shape[infer] = numel_ / known;
  }
  AFD_CHECK(shape_numel(shape) == numel_, "reshape: cannot view {} ({} elements) as {}",
            shape_str(shape_), numel_, shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::flatten(int64_t start_dim) const {
  int s = normalize_dim(start_dim, std::max<int64_t>(dim(), 1), "flatten");
  Shape out(shape_.begin(), shape_.begin() + std::min<int64_t>(s, dim()));
  out.push_back(-1);
  return reshape(out);
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  AFD_CHECK(dim() >= 1, "slice of a 0-d tensor");
  AFD_CHECK(0 <= begin && begin <= end && end <= shape_[0],
            "slice: rows [{}, {}) out of range for shape {}", begin, end, shape_str(shape_));
  Tensor t = *this;
  int64_t row = numel_ / std::max<int64_t>(shape_[0], 1);
  t.offset_ += begin * row;
  t.shape_[0] = end - begin;
  t.numel_ = shape_numel(t.shape_);
  return t;
}

Tensor Tensor::select(int64_t i) const {
  Tensor row = slice(i, i + 1);
  Shape s(shape_.begin() + 1, shape_.end());
  return row.reshape(s);
}

Tensor Tensor::clone() const {
  Tensor t(shape_, dtype_, device());
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor t(shape_, dtype, device());
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor t(shape_, dtype_, device);
  t.copy_(*this);
  return t;
}

void Tensor::copy_(const Tensor& src) {
  AFD_CHECK(defined() && src.defined(), "copy_: undefined tensor");
  AFD_CHECK(src.shape_ == shape_, "copy_: source shape {} differs from destination shape {}",
            shape_str(src.shape_), shape_str(shape_));
  if (numel_ == 0) return;
  count_kernel(Kernel::copy);
  // The backend of the non-CPU side performs host/device transfers.
  Device d = device().is_cpu() ? src.device() : device();
  backend(d).copy(src, *this);
}

void Tensor::fill_(double value) {
  AFD_CHECK(defined(), "fill_ on an undefined tensor");
  if (numel_ == 0) return;
  count_kernel(Kernel::elementwise);
  backend(device()).fill(*this, value);
}

template <class T>
T Tensor::item() const {
  AFD_CHECK(numel_ == 1, "item: tensor of shape {} has {} elements, expected 1", shape_str(shape_),
            numel_);
  return to(Device::cpu()).to(dtype_of<T>()).template data<T>()[0];
}

double Tensor::item_double() const {
  return dispatch_all(dtype_, [&]<class T>() { return static_cast<double>(item<T>()); });
}

template <class T>
T Tensor::at(std::initializer_list<int64_t> index) const {
  AFD_CHECK(static_cast<int64_t>(index.size()) == dim(), "at: {} indices for shape {}", index.size(),
            shape_str(shape_));
  int64_t flat = 0, d = 0;
  for (int64_t i : index) {
    AFD_CHECK(i >= 0 && i < shape_[d], "at: index {} out of range for dim {} of shape {}", i, d,
              shape_str(shape_));
    flat = flat * shape_[d] + i;
    ++d;
  }
  Tensor host = to(Device::cpu());
  AFD_CHECK(dtype_of<T>() == dtype_, "at<{}> on a tensor of dtype {}", dtype_name(dtype_of<T>()),
            dtype_name(dtype_));
  return host.data<T>()[flat];
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor host = to(Device::cpu()).to(dtype_of<T>());
  const T* p = host.data<T>();
  return std::vector<T>(p, p + numel_);
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor[undefined]";
  return fmt::format("Tensor[{}, {}, {}]", dtype_name(dtype_), shape_str(shape_), device().str());
}

Tensor cat(const std::vector<Tensor>& parts, int64_t dim) {
  AFD_CHECK(!parts.empty(), "cat: no tensors");
  const Tensor& first = parts[0];
  int d = normalize_dim(dim, first.dim(), "cat");
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  for (const Tensor& p : parts) {
    AFD_CHECK(p.dim() == first.dim() && p.dtype() == first.dtype() && p.device() == first.device(),
              "cat: {} and {} differ in rank, dtype or device", first.str(), p.str());
    for (int i = 0; i < first.dim(); ++i)
      AFD_CHECK(i == d || p.size(i) == first.size(i), "cat: shapes {} and {} differ outside dim {}",
                shape_str(first.shape()), shape_str(p.shape()), d);
    out_shape[d] += p.size(d);
  }
  Tensor out(out_shape, first.dtype(), first.device());
  int64_t start = 0;
  for (const Tensor& p : parts) {
    if (p.numel() > 0) {
      count_kernel(Kernel::copy);
      backend(out.device()).copy_slab(p, 0, out, start, d, p.size(d));
    }
    start += p.size(d);
  }
  return out;
}

#define AFD_INSTANTIATE(T)                                                                  \
  template Tensor Tensor::from_vector<T>(const std::vector<T>&, Shape, Device);             \
  template T* Tensor::data<T>() const;                                                      \
  template T Tensor::item<T>() const;                                                       \
  template T Tensor::at<T>(std::initializer_list<int64_t>) const;                           \
  template std::vector<T> Tensor::to_vector<T>() const;
AFD_INSTANTIATE(float)
AFD_INSTANTIATE(double)
AFD_INSTANTIATE(int64_t)
AFD_INSTANTIATE(uint8_t)
#undef AFD_INSTANTIATE

}  // namespace afd
