// afd_run train --nproc N: N local worker processes of this same binary, one per rank, and the watch
// over them.
//
// Each worker is `afd_run train <the same flags> --nproc 1 --rank R --world-size N --rendezvous DIR
// [--threads T]` (later flags win), started with fork + exec of /proc/self/exe (or $AFD_RUN_EXE).
// DIR is a fresh folder (mkdtemp) unless --rendezvous names one; it is removed at the end when we
// made it. With --threads 0 each worker gets max(1, cores / N) threads, so N workers do not
// oversubscribe the machine.
//
// The launcher waits for the workers. A worker that exits non-zero (other than 130 or 143) or dies
// from a signal makes it stop the others (SIGTERM, then SIGKILL after 5 s) and exit 1 naming the
// rank and how it died (a death by signal is named as the cause over the "peer died" errors it
// provokes).
// Exit status 130 (a worker stopped by Ctrl-C after writing its checkpoint) is not a failure: the
// stop reaches every rank through the step's metric reduction, so all of them write nothing more
// and exit 130, and so does the launcher. The launcher does not pass SIGINT on (the terminal
// delivers Ctrl-C to the workers, which are in its process group; a second copy would abort them)
// but notes it: when it got one, workers that then end by SIGINT or fail make it exit 130 with
// "stopped by Ctrl-C", not 1. It passes SIGTERM on: the workers finish their step, rank 0 writes a
// checkpoint and all exit 143, and so does the launcher (those still running after 120 s are killed).
// Each worker asks the kernel for SIGKILL should the launcher die (PR_SET_PDEATHSIG).
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "tools/afd_run/common.h"

namespace afd::cli {

namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_terminate{false}, g_interrupted{false};
extern "C" void on_terminate(int) { g_terminate.store(true); }
// Ctrl-C reaches the workers from the terminal (they are in the launcher's process group); the
// launcher only notes it, to name it as the cause when workers then end by SIGINT (a Ctrl-C before
// a worker installed its handler, or a second one, kills it) or by the errors that provokes.
extern "C" void on_interrupt(int) { g_interrupted.store(true); }

// After a stop: the command that continues the run, or that there is none (before rank 0 wrote
// resolved.flags, nothing was trained).
std::string what_next(const std::string& out) {
  return fs::exists(fs::path(out) / "resolved.flags")
             ? fmt::format("continue with: afd_run train --resume {} (from its last checkpoint)", out)
             : "it had not started training, nothing to continue";
}

std::string describe(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return fmt::format("was killed by signal {} ({})", sig, ::strsignal(sig));
  }
  return fmt::format("ended with wait status {}", status);
}

}  // namespace

int launch_workers(const std::vector<std::string>& args, int64_t nproc, const Options& opt, Io io) {
  const char* exe_env = std::getenv("AFD_RUN_EXE");
  const std::string exe = exe_env && *exe_env ? exe_env : "/proc/self/exe";
  std::string rendezvous = opt.get("rendezvous");
  bool made_rendezvous = false;
  if (rendezvous.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = (fs::path(tmp && *tmp ? tmp : "/tmp") / "afd-rendezvous-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw RunError(fmt::format("--nproc {}: cannot make a rendezvous folder {} ({})", nproc, pattern, std::strerror(errno)));
    rendezvous = pattern;
    made_rendezvous = true;
  } else {
    std::error_code ec;
    fs::create_directories(rendezvous, ec);
    if (ec) throw RunError(fmt::format("--rendezvous {}: cannot create the folder ({})", rendezvous, ec.message()));
    const bool empty = fs::is_empty(rendezvous, ec);
    if (ec) throw RunError(fmt::format("--rendezvous {}: cannot read the folder ({})", rendezvous, ec.message()));
    if (!empty)
      throw RunError(fmt::format("--rendezvous {}: not empty (each run needs an empty folder: stale addresses from an "
                                 "earlier run would mislead the workers)", rendezvous));
  }
  int64_t threads = opt.get_int("threads");
  if (threads == 0) threads = std::max<int64_t>(1, int64_t(std::thread::hardware_concurrency()) / nproc);

  std::vector<std::vector<std::string>> argvs;
  for (int64_t r = 0; r < nproc; ++r) {
    std::vector<std::string> a{exe, "train"};
    a.insert(a.end(), args.begin(), args.end());
    for (const std::string& s : {std::string("--nproc"), std::string("1"), std::string("--rank"), std::to_string(r),
                                 std::string("--world-size"), std::to_string(nproc), std::string("--rendezvous"),
                                 rendezvous, std::string("--threads"), std::to_string(threads)})
      a.push_back(s);
    argvs.push_back(std::move(a));
  }
  io.err << fmt::format("afd_run train: launching {} workers ({} threads each, rendezvous {})\n", nproc, threads,
                        rendezvous)
         << std::flush;

  // SIGINT: the workers get it from the terminal; SIGTERM: passed on to them.
  struct sigaction interrupt = {}, term = {}, old_int = {}, old_term = {};
  interrupt.sa_handler = on_interrupt;
  term.sa_handler = on_terminate;
  sigemptyset(&interrupt.sa_mask);
  sigemptyset(&term.sa_mask);
  g_terminate.store(false);
  g_interrupted.store(false);
  sigaction(SIGINT, &interrupt, &old_int);
  sigaction(SIGTERM, &term, &old_term);

  const pid_t launcher = ::getpid();
  std::vector<pid_t> pids(size_t(nproc), -1);
  for (int64_t r = 0; r < nproc; ++r) {
    std::vector<char*> cargv;
    for (std::string& s : argvs[size_t(r)]) cargv.push_back(s.data());
    cargv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != launcher) ::_exit(127);  // the launcher died before prctl
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      ::execv(cargv[0], cargv.data());
      const char msg[] = "afd_run: cannot exec the worker binary\n";
      ssize_t ignored = ::write(2, msg, sizeof msg - 1);
      (void)ignored;
      ::_exit(127);
    }
    if (pid < 0) {
      for (pid_t p : pids)
        if (p > 0) ::kill(p, SIGKILL);
      throw RunError(fmt::format("--nproc {}: fork failed ({})", nproc, std::strerror(errno)));
    }
    pids[size_t(r)] = pid;
  }

  auto rank_of = [&](pid_t pid) -> int64_t {
    for (int64_t r = 0; r < nproc; ++r)
      if (pids[size_t(r)] == pid) return r;
    return -1;
  };
  int64_t alive = nproc;
  int exit_code = 0;
  std::string failure;
  auto stop_all = [&](int sig) {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, sig);
  };
  bool terminating = false;
  std::chrono::steady_clock::time_point kill_at;  // terminating: SIGKILL for workers still there then
  std::string term_failure;                       // terminating: a worker that did not stop cleanly
  // Whether a worker ended by Ctrl-C: killed by SIGINT, or stopped cleanly with status 130.
  bool worker_interrupted = false;
  auto by_ctrl_c = [](int status) {
    return (WIFSIGNALED(status) && WTERMSIG(status) == SIGINT) || (WIFEXITED(status) && WEXITSTATUS(status) == 130);
  };
  while (alive > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid == 0 || (pid < 0 && errno == EINTR)) {
      if (g_terminate.load() && !terminating) {
        // A scheduler's SIGTERM: each worker finishes its step, rank 0 writes a checkpoint, and all
        // exit 143. They get two minutes for that (a large model's checkpoint), then SIGKILL.
        terminating = true;
        kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(120);
        stop_all(SIGTERM);
      }
      if (terminating && std::chrono::steady_clock::now() >= kill_at) {
        if (term_failure.empty()) term_failure = "workers still running 120 s after SIGTERM were killed";
        stop_all(SIGKILL);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (pid < 0) break;  // no children left
    const int64_t r = rank_of(pid);
    if (r < 0) continue;
    pids[size_t(r)] = -1;
    --alive;
    worker_interrupted |= by_ctrl_c(status);
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    const bool stopped = WIFEXITED(status) && (WEXITSTATUS(status) == 130 || WEXITSTATUS(status) == 143);
    if (ok) continue;
    if (stopped) {
      if (exit_code == 0) exit_code = WEXITSTATUS(status);
      continue;
    }
    if (terminating) {
      // Killed by the SIGTERM itself: a worker that had not yet installed its handler (still
      // meeting the others or loading data), as a single process would be.
      const bool before_training = WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM;
      if (!before_training && term_failure.empty())
        term_failure = fmt::format("worker rank {} (pid {}) {}", r, pid, describe(status));
      continue;
    }
    if (!failure.empty()) continue;  // the first failure is the one reported
    // A rank killed by a signal makes the others fail in their next collective ("connection closed
    // by peer") within milliseconds, and waitpid may report those first: collect what ends within
    // 300 ms and name a signal death as the cause when there is one.
    struct Ended {
      int64_t rank;
      pid_t pid;
      int status;
    };
    std::vector<Ended> ended{{r, pid, status}};
    const auto grace = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    while (alive > 0 && std::chrono::steady_clock::now() < grace) {
      int st = 0;
      const pid_t p = ::waitpid(-1, &st, WNOHANG);
      if (const int64_t q = p > 0 ? rank_of(p) : -1; q >= 0) {
        pids[size_t(q)] = -1, --alive;
        worker_interrupted |= by_ctrl_c(st);
        ended.push_back({q, p, st});
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    const Ended* cause = &ended.front();
    for (const Ended& e : ended)
      if (WIFSIGNALED(e.status)) {
        cause = &e;
        break;
      }
    failure = fmt::format("worker rank {} (pid {}) {}", cause->rank, cause->pid, describe(cause->status));
    for (const Ended& e : ended)
      if (&e != cause) failure += fmt::format(" (then rank {} {})", e.rank, describe(e.status));
    // After a Ctrl-C that reached the workers, one message at the end says it all.
    if (alive > 0 && !(g_interrupted.load() && worker_interrupted))
      io.err << fmt::format("afd_run train: {}; stopping the other {} worker{}\n", failure, alive, alive == 1 ? "" : "s")
             << std::flush;
    // SIGTERM, then SIGKILL for any worker still there after 5 s.
    stop_all(SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (alive > 0 && std::chrono::steady_clock::now() < deadline) {
      const pid_t p = ::waitpid(-1, &status, WNOHANG);
      if (p > 0) {
        if (int64_t q = rank_of(p); q >= 0) pids[size_t(q)] = -1, --alive;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    stop_all(SIGKILL);
    while (alive > 0) {
      const pid_t p = ::waitpid(-1, &status, 0);
      if (p < 0 && errno != EINTR) break;
      if (p > 0)
        if (int64_t q = rank_of(p); q >= 0) pids[size_t(q)] = -1, --alive;
    }
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (made_rendezvous) {
    std::error_code ec;
    fs::remove_all(rendezvous, ec);
  }
  // After a Ctrl-C that ended a worker, the others' failures ("peer died") are its consequence: the
  // run was stopped, not broken. (A Ctrl-C sent to the launcher alone reaches no worker: their own
  // failures then stay failures.)
  if (g_interrupted.load() && worker_interrupted && !terminating && !failure.empty()) {
    io.err << fmt::format("afd_run train: stopped by Ctrl-C ({}); {}\n", failure, what_next(opt.get("out")))
           << std::flush;
    return 130;
  }
  if (terminating && failure.empty()) {
    if (!term_failure.empty())
      throw RunError(fmt::format("--nproc {}: stopped by SIGTERM, but {}; the last checkpoint may be older", nproc,
                                 term_failure));
    io.err << fmt::format("afd_run train: stopped by SIGTERM; {}\n", what_next(opt.get("out"))) << std::flush;
    return 143;
  }
  if (!failure.empty()) throw RunError(fmt::format("--nproc {}: {}; all workers stopped", nproc, failure));
  return exit_code;
}

}  // namespace afd::cli
