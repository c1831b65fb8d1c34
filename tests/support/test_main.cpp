// The main of every test suite: GoogleTest's, after the restart that gives OpenBLAS the kernels of
// this CPU where it did not know it (restart_with_runtime_settings, tensor/backend.h). The suites'
// results do not depend on it (their tolerances hold for every kernel set); their time does, 2-3x
// on Intel Emerald Rapids. Child processes (afd_run, the examples) inherit the setting.
#include <gtest/gtest.h>

#include "tensor/backend.h"

int main(int argc, char** argv) {
  afd::restart_with_runtime_settings(argv, /*omp_passive=*/false);  // meson's test_env sets the wait policy
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
