// Forked ranks for the data-parallel tests: run_ranks(world, body) runs body(rank) in `world`
// child processes and returns their exit statuses (a throw -> 3, a signal -> 128 + signal). A rank
// that hangs (a collective or a communicator's teardown waiting for a peer) is ended by SIGALRM
// after kRankSeconds: the test then fails with 128 + 14 instead of waiting for the suite's timeout.
#pragma once
#include <fmt/core.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <functional>
#include <vector>

namespace afd::testing {

inline constexpr unsigned kRankSeconds = 300;

inline std::vector<int> run_ranks(int world, const std::function<int(int)>& body) {
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::alarm(kRankSeconds);
      int code = 3;
      try {
        code = body(r);
      } catch (const std::exception& e) {
        fmt::print(stderr, "rank {}: {}\n", r, e.what());
      }
      std::fflush(stderr);
      ::_exit(code);
    }
    pids.push_back(pid);
  }
  std::vector<int> codes;
  for (pid_t p : pids) {
    int status = 0;
    ::waitpid(p, &status, 0);
    codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
  return codes;
}

}  // namespace afd::testing
