// Error checking for the whole project: one exception type and one check macro.
//
//   AFD_CHECK(a.numel() == b.numel(), "add: shapes {} and {} differ", shape_str(a), shape_str(b));
//
// throws afd::Error("add: shapes [2, 3] and [3] differ (tensor/ops.cpp:42)").
#pragma once
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace afd {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void throw_error(const std::string& message, const char* file, int line) {
  throw Error(fmt::format("{} ({}:{})", message, file, line));
}

}  // namespace afd

#define AFD_CHECK(cond, ...)                                                  \
  do {                                                                        \
    if (!(cond)) ::afd::throw_error(fmt::format(__VA_ARGS__), __FILE__, __LINE__); \
  } while (0)

#define AFD_FAIL(...) ::afd::throw_error(fmt::format(__VA_ARGS__), __FILE__, __LINE__)
