// Fault injection (issue 11, acceptance 3): a run killed at any point, in a step or in the middle
// of a checkpoint write, resumes to the same result, bit for bit; a full disk while checkpointing
// gives a clear error and leaves the previous checkpoint intact; a corrupt latest checkpoint is
// detected (its crc32) and the previous one used, with a warning.
//
// Kills happen to a child process: this test executable started again (fork, then at once execve
// with an environment built beforehand, so the child inherits no threads or locks) running only
// FaultChild.TrainsTheTinyRun, which finds its run folder and its fault in the environment and is
// skipped when started any other way.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include "afd/train/trainer.h"
#include "nn/safetensors.h"
#include "tensor/backend.h"
#include "tests/train/tiny_run.h"
#include "tests/support/checks.h"
#include "tests/support/scratch.h"

extern char** environ;

namespace afd::train {
namespace {

const data::Dataset& train_set() {
  static const data::Dataset d = synthetic_dataset(40, 4);  // 5 batches of 8 per epoch, 2 epochs
  return d;
}

// The child half: trains the tiny AFD run into $AFD_FAULT_DIR, killing itself with SIGKILL once
// $AFD_FAULT_KILL_AFTER_BYTES bytes of checkpoint files are written (when set).
TEST(FaultChild, TrainsTheTinyRun) {
  const char* dir = std::getenv("AFD_FAULT_DIR");
  if (dir == nullptr) GTEST_SKIP() << "the child half of the fault-injection tests; they start it";
  if (const char* bytes = std::getenv("AFD_FAULT_KILL_AFTER_BYTES"))
    inject_write_fault_for_testing(std::stoll(bytes), WriteFault::kill);
  Trainer t(tiny_config(Method::afd, dir), train_set());
  t.fit();
}

// Starts the child for `dir`; its output goes to dir/child.log.
pid_t start_child(const std::string& dir, int64_t kill_after_bytes) {
  fs::create_directories(dir);
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  env.push_back("AFD_FAULT_DIR=" + dir);
  // The same thread count as here: the CPU's sums are split per thread, so it shapes the bits.
  env.push_back("OMP_NUM_THREADS=" + std::to_string(num_threads()));
  if (kill_after_bytes >= 0) env.push_back("AFD_FAULT_KILL_AFTER_BYTES=" + std::to_string(kill_after_bytes));
  std::vector<char*> envp;
  for (std::string& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = fs::read_symlink("/proc/self/exe").string(), filter = "--gtest_filter=FaultChild.TrainsTheTinyRun";
  char* argv[] = {exe.data(), filter.data(), nullptr};
  int log = ::open((dir + "/child.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  pid_t pid = ::fork();
  if (pid == 0) {  // only async-signal-safe calls until execve
    if (log >= 0) {
      ::dup2(log, 1);
      ::dup2(log, 2);
    }
    ::execve(exe.c_str(), argv, envp.data());
    ::_exit(127);
  }
  if (log >= 0) ::close(log);
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

// Finishes the run in `dir` as a user would: from its checkpoint, or from the start if it has none.
void finish(const std::string& dir) {
  const std::string ckpt = dir + "/checkpoint";
  if (fs::exists(ckpt + "/trainer.safetensors")) {
    Trainer t(Trainer::read_checkpoint_config(ckpt), train_set());
    t.load_checkpoint(ckpt);
    t.fit();
  } else {
    Trainer t(tiny_config(Method::afd, dir), train_set());
    t.fit();
  }
}

struct Reference {
  std::string dir;
  double seconds;
  int64_t checkpoint_bytes;  // the three files of one checkpoint
  int64_t trainer_bytes;
};

const Reference& reference() {
  static const Reference r = [] {
    Reference ref{temp_dir("faults_reference"), 0, 0, 0};
    testing::remove_at_exit(ref.dir);
    auto start = std::chrono::steady_clock::now();
    Trainer t(tiny_config(Method::afd, ref.dir), train_set());
    t.fit();
    ref.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (const char* f : {"trainer.safetensors", "model.safetensors", "discriminator.safetensors"})
      ref.checkpoint_bytes += int64_t(fs::file_size(ref.dir + "/checkpoint/" + f));
    ref.trainer_bytes = int64_t(fs::file_size(ref.dir + "/checkpoint/trainer.safetensors"));
    return ref;
  }();
  return r;
}

void expect_same_result(const std::string& dir) {
  expect_bit_identical(reference().dir + "/checkpoint/trainer.safetensors", dir + "/checkpoint/trainer.safetensors");
}

TEST(Faults, KilledInTheMiddleOfACheckpointWriteResumesToTheSameResult) {
  const Reference& ref = reference();
  // Halfway through the first checkpoint's trainer file (nothing complete to resume from), and
  // halfway through the second's (the first must still be there, whole).
  for (int64_t budget : {ref.trainer_bytes / 2, ref.checkpoint_bytes + ref.trainer_bytes / 2}) {
    const std::string dir = temp_dir("faults_write_kill_" + std::to_string(budget));
    int status = wait_for(start_child(dir, budget));
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the child should have died in its checkpoint write; see " << dir << "/child.log";
    if (budget > ref.checkpoint_bytes) {
      SafetensorsFile first = read_safetensors(dir + "/checkpoint/trainer.safetensors");  // whole, checksum right
      EXPECT_EQ(first.get("run.position").to_vector<int64_t>()[0], 1) << "the epoch-1 checkpoint";
    }
    finish(dir);
    expect_same_result(dir);
    fs::remove_all(dir);
  }
}

TEST(Faults, KilledAtRandomPointsResumesToTheSameResult) {
  const Reference& ref = reference();
  std::mt19937 rng(7);
  // The child needs its start-up time plus about the reference's time; kills land anywhere in it.
  std::uniform_real_distribution<double> when(0.0, 0.3 + 1.2 * ref.seconds);
  for (int trial = 0; trial < 3; ++trial) {
    const std::string dir = temp_dir("faults_random_kill_" + std::to_string(trial));
    pid_t pid = start_child(dir, -1);
    double delay = when(rng);
    std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    ::kill(pid, SIGKILL);
    int status = wait_for(pid);
    std::cout << "[ info ] trial " << trial << ": SIGKILL after " << delay << " s, child "
              << (WIFSIGNALED(status) ? "killed" : "had finished") << "\n";
    finish(dir);
    expect_same_result(dir);
    fs::remove_all(dir);
  }
}

TEST(Faults, AFullDiskWhileCheckpointingLeavesThePreviousCheckpoint) {
  const std::string dir = temp_dir("faults_full_disk");
  Trainer t(tiny_config(Method::afd, dir), train_set());
  t.train_epoch();
  t.save_checkpoint(dir + "/ckpt");
  t.train_epoch();
  inject_write_fault_for_testing(1000);
  try {
    t.save_checkpoint(dir + "/ckpt");
    ADD_FAILURE() << "the injected ENOSPC must surface";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("No space left on device"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(dir + "/ckpt/trainer.safetensors"), std::string::npos) << e.what();
  }
  inject_write_fault_for_testing(-1);
  Trainer again(Trainer::read_checkpoint_config(dir + "/ckpt"), train_set());
  again.load_checkpoint(dir + "/ckpt");
  EXPECT_EQ(again.epoch(), 1);  // the checkpoint before the failed one
  fs::remove_all(dir);
}

TEST(Faults, ACorruptLatestCheckpointFallsBackToThePreviousWithAWarning) {
  const std::string dir = temp_dir("faults_corrupt");
  const std::string ckpt = dir + "/ckpt", latest = ckpt + "/trainer.safetensors";
  {
    Trainer t(tiny_config(Method::afd, dir), train_set());
    t.train_epoch();
    t.save_checkpoint(ckpt);  // epoch 1
    t.train_epoch();
    t.save_checkpoint(ckpt);  // epoch 2; epoch 1 kept as trainer.prev.safetensors
  }
  afd::testing::flip_byte_from_end(latest, 3, 0x10);  // well-formed, but its crc32 no longer matches
  ::testing::internal::CaptureStderr();
  Trainer again(Trainer::read_checkpoint_config(ckpt), train_set());
  again.load_checkpoint(ckpt);
  const std::string warning = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(again.epoch(), 1);
  EXPECT_NE(warning.find("the file is corrupt"), std::string::npos) << warning;
  EXPECT_NE(warning.find("resuming from the previous checkpoint " + ckpt + "/trainer.prev.safetensors"),
            std::string::npos) << warning;
  // Without a previous checkpoint the corruption is an error naming the file.
  fs::remove(ckpt + "/trainer.prev.safetensors");
  try {
    Trainer::read_checkpoint_config(ckpt);
    ADD_FAILURE() << "a corrupt checkpoint without a previous one must be an error";
  } catch (const SafetensorsError& e) {
    EXPECT_EQ(e.kind(), SafetensorsErrorKind::checksum) << e.what();
    EXPECT_NE(std::string(e.what()).find(latest), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace afd::train
