// Element types and the compile-time dispatch from a runtime DType to a C++ type.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "tensor/error.h"

namespace afd {

enum class DType : uint8_t { f32, f64, i64, u8 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::i64: return 8;
    case DType::u8: return 1;
  }
  return 0;
}

constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
  }
  return "?";
}

constexpr bool is_floating(DType t) { return t == DType::f32 || t == DType::f64; }

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::u8; }

// Calls f.template operator()<T>() with T the C++ type of a floating dtype; `op` names the caller
// in the error for other dtypes. Usage: dispatch_float(x.dtype(), "exp", [&]<class T>() { ... });
template <class F>
decltype(auto) dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    default: AFD_FAIL("{}: dtype {} is not supported (expected f32 or f64)", op, dtype_name(t));
  }
}

// Same for every dtype.
template <class F>
decltype(auto) dispatch_all(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::i64: return f.template operator()<int64_t>();
    case DType::u8: return f.template operator()<uint8_t>();
  }
  AFD_FAIL("unknown dtype {}", static_cast<int>(t));
}

}  // namespace afd
