// afd_run's entry point: everything happens in afd::cli::run (cli.h), which the tests call too.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "tensor/backend.h"
#include "tools/afd_run/cli.h"

int main(int argc, char** argv) {
  // The CPU runtime libraries read their settings once, when they load, so afd_run sets them and
  // restarts itself (tensor/backend.h), unless the user chose them:
  // - OMP_WAIT_POLICY=passive: OpenMP threads that spin-wait at barriers lose most of their time
  //   when another process holds a core (measured: a 2-thread AutoAttack run beside one busy core
  //   took 4x longer than with passive waiting, which matched 1 thread).
  // - OPENBLAS_CORETYPE, where OpenBLAS did not know the CPU and chose its slow generic kernels.
  afd::restart_with_runtime_settings(argv, /*omp_passive=*/true);
  // Ctrl-C must reach afd_run even when a shell started it in the background with SIGINT ignored
  // (tools/main_job.sh): train installs its own handler (checkpoint, exit 130), the rest stop.
  ::signal(SIGINT, SIG_DFL);
  std::vector<std::string> args(argv + 1, argv + argc);
  return afd::cli::run(args, {std::cout, std::cerr, ::isatty(2) != 0});
}
