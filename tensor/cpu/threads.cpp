// The CPU runtime around the backend: OpenMP threads, and the OpenBLAS kernel set.
#include <omp.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "tensor/backend.h"

extern "C" char* openblas_get_config(void);
extern "C" char* openblas_get_corename(void);

namespace afd {

void set_num_threads(int n) {
  AFD_CHECK(n >= 1, "set_num_threads: {} threads requested, need at least 1", n);
  omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

std::string cpu_blas_info() {
  // openblas_get_config(): "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": name and version.
  std::string config = openblas_get_config();
  const size_t end = config.find(' ', config.find(' ') + 1);
  return fmt::format("{}, {} kernels", config.substr(0, end), openblas_get_corename());
}

namespace {

// The OpenBLAS kernel set for this CPU when OpenBLAS fell back to its generic SSE3 one (it names
// that "Prescott") although the CPU has AVX2 or AVX-512; nullptr when there is nothing to mend.
// __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0).
const char* better_openblas_core() {
  if (std::strcmp(openblas_get_corename(), "Prescott") != 0) return nullptr;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}

}  // namespace

void restart_with_runtime_settings(char** argv, bool omp_passive) {
  bool changed = false;
  if (omp_passive && std::getenv("OMP_WAIT_POLICY") == nullptr)
    changed |= ::setenv("OMP_WAIT_POLICY", "passive", 1) == 0;
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr)
    if (const char* core = better_openblas_core()) changed |= ::setenv("OPENBLAS_CORETYPE", core, 1) == 0;
  if (changed) ::execv("/proc/self/exe", argv);  // returns only on failure
}

}  // namespace afd
