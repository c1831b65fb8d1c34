// afd_run's entry point: everything happens in afd::cli::run (cli.h), which the tests call too.
#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "tools/afd_run/cli.h"

int main(int argc, char** argv) {
  // Ctrl-C must reach afd_run even when a shell started it in the background with SIGINT ignored
  // (tools/main_job.sh): train installs its own handler (checkpoint, exit 130), the rest stop.
  ::signal(SIGINT, SIG_DFL);
  std::vector<std::string> args(argv + 1, argv + argc);
  return afd::cli::run(args, {std::cout, std::cerr, ::isatty(2) != 0});
}
