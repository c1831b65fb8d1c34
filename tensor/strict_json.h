// Strict reads of JSON values that come from files (checkpoint configs, evaluation state files):
// nlohmann's get<T>() converts 1e30 to an int (undefined behaviour), 2.5 to 2 and -1 to a huge
// unsigned; strict_json_get accepts only a value of T's own kind and range.
//
//   int64_t n;
//   if (!strict_json_get(j["epochs"], n)) AFD_FAIL("'epochs' has the wrong type or is out of range");
#pragma once
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

namespace afd {

// bool: a JSON boolean; integers: a JSON integer inside T's range; floating point: any JSON number;
// std::string: a JSON string; std::vector<U>: an array whose every element reads as U.
// Returns false (out untouched) otherwise.
template <class T>
bool strict_json_get(const nlohmann::json& v, T& out) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return false;
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) return false;
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > uint64_t(std::numeric_limits<T>::max())) return false;
    } else {
      const int64_t i = v.get<int64_t>();
      if (i < int64_t(std::numeric_limits<T>::min())) return false;
      if (std::is_signed_v<T> && i > int64_t(std::numeric_limits<T>::max())) return false;
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) return false;
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return false;
  } else {  // std::vector<U>
    if (!v.is_array()) return false;
    T list;
    for (const nlohmann::json& e : v)
      if (!strict_json_get(e, list.emplace_back())) return false;
    out = std::move(list);
    return true;
  }
  out = v.get<T>();
  return true;
}

}  // namespace afd
