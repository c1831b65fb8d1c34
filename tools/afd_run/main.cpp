// afd_run's entry point: everything happens in afd::cli::run (cli.h), which the tests call too.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "tools/afd_run/cli.h"

int main(int argc, char** argv) {
  // OpenMP threads that spin-wait at barriers lose most of their time when another process holds
  // a core (measured: a 2-thread AutoAttack run beside one busy core took 4x longer than with
  // passive waiting, which matched 1 thread). libgomp reads OMP_WAIT_POLICY once, when it loads,
  // so afd_run sets it to passive and restarts itself, unless the user chose a policy.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && ::setenv("OMP_WAIT_POLICY", "passive", 1) == 0)
    ::execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
  // Ctrl-C must reach afd_run even when a shell started it in the background with SIGINT ignored
  // (tools/main_job.sh): train installs its own handler (checkpoint, exit 130), the rest stop.
  ::signal(SIGINT, SIG_DFL);
  std::vector<std::string> args(argv + 1, argv + argc);
  return afd::cli::run(args, {std::cout, std::cerr, ::isatty(2) != 0});
}
