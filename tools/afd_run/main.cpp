// afd_run's entry point: everything happens in afd::cli::run (cli.h), which the tests call too.
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "tools/afd_run/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return afd::cli::run(args, {std::cout, std::cerr, ::isatty(2) != 0});
}
