#include <omp.h>

#include "tensor/backend.h"

namespace afd {

void set_num_threads(int n) {
  AFD_CHECK(n >= 1, "set_num_threads: {} threads requested, need at least 1", n);
  omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace afd
