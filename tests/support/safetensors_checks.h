// Comparing two safetensors files value by value (two runs' checkpoints, two evaluations'
// per-sample files): the worst excess over the tolerance, and where it is.
#pragma once
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "nn/safetensors.h"

namespace afd::testing {

// The worst excess |a - b| - (atol + rtol |b|) over the tensors of two safetensors files (<= 0: all
// within tolerance), where it is, and the number of values compared. Both files must hold the same
// names and shapes. Only floating tensors, unless `all_dtypes` (integer and byte tensors then
// compare as numbers too: flags, counters).
struct FileComparison {
  double worst = -1;
  std::string where;
  int64_t compared = 0;
};
inline FileComparison compare_files(const std::filesystem::path& a_path, const std::filesystem::path& b_path,
                                    double atol, double rtol, bool all_dtypes = false) {
  SafetensorsFile a = read_safetensors(a_path.string()), b = read_safetensors(b_path.string());
  EXPECT_EQ(a.tensors.size(), b.tensors.size()) << a_path << " vs " << b_path;
  FileComparison c;
  for (const auto& [name, ta] : a.tensors) {
    const Tensor& tb = b.get(name);
    if (!all_dtypes && !is_floating(ta.dtype())) continue;
    std::vector<double> va = ta.to(DType::f64).to_vector<double>(), vb = tb.to(DType::f64).to_vector<double>();
    EXPECT_EQ(va.size(), vb.size()) << name;
    for (size_t i = 0; i < std::min(va.size(), vb.size()); ++i) {
      const double excess = std::abs(va[i] - vb[i]) - (atol + rtol * std::abs(vb[i]));
      if (c.compared == 0 || excess > c.worst)
        c.worst = excess, c.where = fmt::format("{} {}[{}]: {} vs {} (atol {}, rtol {})", a_path.string(), name, i,
                                                va[i], vb[i], atol, rtol);
      ++c.compared;
    }
  }
  return c;
}

// Every value of the two files within |a - b| <= atol + rtol |b|; returns the number compared.
inline int64_t expect_files_close(const std::filesystem::path& a_path, const std::filesystem::path& b_path,
                                  double atol, double rtol, bool all_dtypes = false) {
  const FileComparison c = compare_files(a_path, b_path, atol, rtol, all_dtypes);
  EXPECT_LE(c.worst, 0.0) << c.where;
  return c.compared;
}

}  // namespace afd::testing
