// Data-parallel training through the real afd_run binary: `afd_run train --nproc N` (Gloo, N local
// processes) against one process with the same global batch, in float64 on a model without
// BatchNorm (SmallCNN; AFD's discriminator has spectral norm, no BN), for NT, AT and AFD; a model
// WITH BatchNorm under --sync-bn (and per-rank BN shown to differ); and the launcher's answer to a
// worker killed with SIGKILL.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "afd/data/synthetic.h"
#include "nn/safetensors.h"
#include "tests/support/safetensors_checks.h"
#include "tests/support/scratch.h"

namespace afd {
namespace {

namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;
using testing::compare_files;
using testing::expect_files_close;
using testing::FileComparison;

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / fmt::format("afd_test_dp_{}_{}", name, ::getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// `n` training images 16 x 16 (80: 10 steps of a global batch of 8), 16 test images; labels 7i % 10.
fs::path tiny_mnist(int64_t n = 80) {
  static std::map<int64_t, fs::path> made;
  if (made.count(n)) return made[n];
  fs::path dir = [n] {
    fs::path d = fresh_dir(fmt::format("data{}", n));
    auto labels = [](int64_t n) {
      std::vector<uint8_t> l;
      for (int64_t i = 0; i < n; ++i) l.push_back(uint8_t((i * 7) % 10));
      return l;
    };
    data::write_idx_images((d / "train-images-idx3-ubyte").string(), n, 16, 16);
    data::write_idx_labels((d / "train-labels-idx1-ubyte").string(), labels(n));
    data::write_idx_images((d / "t10k-images-idx3-ubyte").string(), 16, 16, 16);
    data::write_idx_labels((d / "t10k-labels-idx1-ubyte").string(), labels(16));
    return d;
  }();
  testing::remove_at_exit(dir);
  return made[n] = dir;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Proc {
  pid_t pid = -1;
};

// Starts afd_run with `args`, stdout and stderr into `log`; with `own_group`, in a process group of
// its own (as a shell starts a job: a Ctrl-C goes to the whole group).
Proc start(const std::vector<std::string>& args, const fs::path& log, bool own_group = false) {
  std::vector<std::string> all{AFD_RUN_PATH};
  all.insert(all.end(), args.begin(), args.end());
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (own_group) ::setpgid(0, 0);
    FILE* f = std::freopen(log.c_str(), "w", stdout);
    (void)f;
    ::dup2(1, 2);
    std::vector<char*> argv;
    for (std::string& s : all) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return {pid};
}

// Waits up to `seconds`; returns the wait status, or -1 on a timeout (the process is then killed).
int wait_for(Proc p, double seconds) {
  const auto deadline = clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (clock::now() < deadline) {
    if (::waitpid(p.pid, &status, WNOHANG) == p.pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(p.pid, SIGKILL);
  ::waitpid(p.pid, &status, 0);
  return -1;
}

// The worker of rank `rank` started by the launcher `parent`: its child whose command line has
// "--rank\0<rank>\0" (so only once it has exec'd afd_run); -1 if none.
pid_t worker_of(pid_t parent, int rank) {
  const std::string needle = fmt::format("--rank{}{}{}", '\0', rank, '\0');
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string s((std::istreambuf_iterator<char>(stat)), {});
    const size_t close = s.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(s.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid != parent) continue;
    std::ifstream cmd(e.path() / "cmdline");
    std::string c((std::istreambuf_iterator<char>(cmd)), {});
    if (c.find(needle) != std::string::npos) return pid_t(std::stoi(name));
  }
  return -1;
}

size_t count_of(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

std::vector<std::string> run_flags(const std::string& method, const fs::path& out, int nproc, int64_t n_train = 80) {
  std::vector<std::string> a{"train", "--dataset", "mnist", "--data-dir", tiny_mnist(n_train).string(), "--preset", "none",
                             "--method", method, "--model", "small-cnn", "--dtype", "f64", "--epochs", "1",
                             "--batch-size", "8", "--lr", "0.05", "--lr-d", "0.05", "--lr-f", "0.05", "--momentum",
                             "0.9", "--weight-decay", "1e-4", "--milestones", "", "--seed", "5", "--test-subset", "16",
                             "--eval-batch-size", "8", "--epoch-eval-attack=false", "--progress", "none",
                             "--threads", "1", "--out", out.string(), "--nproc", std::to_string(nproc)};
  // A training attack without random start, so that each rank's shard is attacked exactly as the
  // same rows are in one process (random starts are drawn per rank).
  for (const char* s : {"--attack", "fgsm", "--attack-eps", "0.1", "--attack-random-start=false"}) a.push_back(s);
  if (method == "afd")
    for (const char* s : {"--gan-loss", "wgan", "--gp-lambda", "0.5"}) a.push_back(s);
  return a;
}

// The acceptance test of issue 10: after 10 steps the parameters of N = 2 and 4 processes equal
// those of one process within |a - b| <= 1e-10 + 1e-8 |b| (float64).
void expect_parity(const std::string& method) {
  const fs::path root = fresh_dir(method);
  std::vector<Proc> procs;
  for (int nproc : {1, 2, 4}) {
    const fs::path out = root / fmt::format("n{}", nproc);
    Proc p = start(run_flags(method, out, nproc), root / fmt::format("n{}.log", nproc));
    const int status = wait_for(p, 120);
    ASSERT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "afd_run --nproc " << nproc << " status " << status << ":\n" << read_file(root / fmt::format("n{}.log", nproc));
  }
  for (int nproc : {2, 4}) {
    const fs::path one = root / "n1" / "checkpoint", many = root / fmt::format("n{}", nproc) / "checkpoint";
    EXPECT_GT(expect_files_close(many / "model.safetensors", one / "model.safetensors", 1e-10, 1e-8), 100000);
    if (method == "afd") {
      EXPECT_GT(expect_files_close(many / "discriminator.safetensors", one / "discriminator.safetensors", 1e-10, 1e-8), 1000);
    }
    // The whole trainer state too: momentum buffers of every optimizer, position, step generator.
    expect_files_close(many / "trainer.safetensors", one / "trainer.safetensors", 1e-10, 1e-8);
    // Rank 0 alone writes the run's files: 10 step lines and one epoch line in metrics.jsonl, the
    // epoch's training metrics reduced over the ranks (the single-process means), and final.json.
    auto last_line = [](const std::string& text) {
      const size_t end = text.find_last_not_of('\n');
      return text.substr(text.rfind('\n', end) + 1, end - text.rfind('\n', end));
    };
    const std::string lines = read_file(root / fmt::format("n{}", nproc) / "metrics.jsonl");
    ASSERT_EQ(std::count(lines.begin(), lines.end(), '\n'), 11) << lines;
    const nlohmann::json many_epoch = nlohmann::json::parse(last_line(lines));
    const nlohmann::json one_epoch = nlohmann::json::parse(last_line(read_file(root / "n1" / "metrics.jsonl")));
    EXPECT_EQ(many_epoch["images"], one_epoch["images"]);
    for (const char* term : {"loss", "clean_acc", "adv_acc", "l_d", "l_f", "gp"}) {
      if (!one_epoch["train"].contains(term)) continue;
      const double a = many_epoch["train"][term].get<double>(), b = one_epoch["train"][term].get<double>();
      EXPECT_LE(std::abs(a - b), 1e-10 + 1e-8 * std::abs(b)) << term << ": " << a << " vs " << b;
    }
    const nlohmann::json many_final = nlohmann::json::parse(read_file(root / fmt::format("n{}", nproc) / "final.json"));
    const nlohmann::json one_final = nlohmann::json::parse(read_file(root / "n1" / "final.json"));
    EXPECT_EQ(many_final["test"]["count"], one_final["test"]["count"]);
    EXPECT_EQ(many_final["test"]["clean_acc"], one_final["test"]["clean_acc"]);
  }
  fs::remove_all(root);
}

TEST(DataParallel, NaturalTrainingMatchesOneProcess) { expect_parity("nt"); }
TEST(DataParallel, AdversarialTrainingMatchesOneProcess) { expect_parity("at"); }
TEST(DataParallel, AfdMatchesOneProcess) { expect_parity("afd"); }

// Synchronised BN (--sync-bn) on a model WITH BatchNorm: the MNIST ResNet18 at width 4 (20 BN
// layers), 37 images = 4 batches of 8 and one of 5 (split 3 + 2 over 2 ranks, 2 + 1 + 1 + 1 over
// 4, so the loss weighting of uneven shards is covered too). After these 5 steps the parameters AND
// the BN running statistics of 2 and of 4 processes equal one process's within |a - b| <= 1e-10 + 1e-8 |b| (float64); the same 2 processes
// with per-rank BN statistics (the default) do not, so the comparison can fail.
void expect_sync_bn_parity(const std::string& method) {
  const fs::path root = fresh_dir("syncbn_" + method);
  struct Run {
    const char* name;
    int nproc;
    bool sync_bn;
  };
  for (const Run& run : {Run{"n1", 1, false}, Run{"n2", 2, true}, Run{"n4", 4, true}, Run{"n2_per_rank", 2, false}}) {
    std::vector<std::string> flags = run_flags(method, root / run.name, run.nproc, 37);
    for (const char* s : {"--model", "resnet18-mnist", "--width", "4"}) flags.push_back(s);
    // A smaller step than run_flags' 0.05: at 0.05 this tiny BN network amplifies rounding so much
    // that ONE process with 1 vs 2 threads (only the summation order differs) already breaks the
    // tolerance (AFD: 1e-7 relative in a momentum buffer). At 0.01 that noise stays below it; a real
    // error would not (the first step's gradients are compared through the momentum buffers).
    for (size_t i = 0; i + 1 < flags.size(); ++i)
      if (flags[i] == "--lr" || flags[i] == "--lr-d" || flags[i] == "--lr-f") flags[i + 1] = "0.01";
    if (run.sync_bn) flags.push_back("--sync-bn");
    const fs::path log = root / fmt::format("{}.log", run.name);
    const int status = wait_for(start(flags, log), 120);
    ASSERT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) << run.name << ":\n" << read_file(log);
  }
  const fs::path one = root / "n1" / "checkpoint", per_rank = root / "n2_per_rank" / "checkpoint";
  for (const char* run : {"n2", "n4"}) {
    SCOPED_TRACE(run);
    const fs::path synced = root / run / "checkpoint";
    // model.safetensors is the state_dict: parameters and every BN's running_mean and running_var.
    const FileComparison model = compare_files(synced / "model.safetensors", one / "model.safetensors", 1e-10, 1e-8);
    EXPECT_LE(model.worst, 0.0) << model.where;
    EXPECT_GT(model.compared, 3000);
    if (method == "afd") expect_files_close(synced / "discriminator.safetensors", one / "discriminator.safetensors", 1e-10, 1e-8);
    expect_files_close(synced / "trainer.safetensors", one / "trainer.safetensors", 1e-10, 1e-8);
  }
  const FileComparison own = compare_files(per_rank / "model.safetensors", one / "model.safetensors", 1e-10, 1e-8);
  EXPECT_GT(own.worst, 1e-6) << "per-rank BN matched one process: the test could not fail";
  fs::remove_all(root);
}

TEST(DataParallel, SyncBatchNormNaturalTrainingMatchesOneProcess) { expect_sync_bn_parity("nt"); }
TEST(DataParallel, SyncBatchNormAdversarialTrainingMatchesOneProcess) { expect_sync_bn_parity("at"); }
TEST(DataParallel, SyncBatchNormAfdMatchesOneProcess) { expect_sync_bn_parity("afd"); }

// Issue 10, acceptance 3 (GPU): two ranks on two GPUs over NCCL against one GPU, strict fp32,
// |a - b| <= 1e-6 + 1e-4 |b|. Skips without two GPUs (counted by nvidia-smi-free means: a child
// afd_run run with --device cuda:1 must work).
TEST(DataParallel, TwoGpusOverNcclMatchOneGpu) {
  const fs::path root = fresh_dir("nccl");
  {
    std::vector<std::string> probe = run_flags("nt", root / "probe", 1);
    for (const char* s : {"--device", "cuda:1", "--epochs", "0"}) probe.push_back(s);
    const int status = wait_for(start(probe, root / "probe.log"), 120);
    if (!(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      fs::remove_all(root);
      GTEST_SKIP() << "needs 2 GPUs: the NCCL path is compiled but not run here";
    }
  }
  for (int nproc : {1, 2}) {
    std::vector<std::string> flags = run_flags("at", root / fmt::format("n{}", nproc), nproc);
    for (const char* s : {"--device", "cuda", "--dtype", "f32", "--precision", "strict", "--deterministic"}) flags.push_back(s);
    const int status = wait_for(start(flags, root / fmt::format("n{}.log", nproc)), 300);
    ASSERT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << read_file(root / fmt::format("n{}.log", nproc));
  }
  EXPECT_GT(expect_files_close(root / "n2" / "checkpoint" / "model.safetensors", root / "n1" / "checkpoint" / "model.safetensors",
                         1e-6, 1e-4), 100000);
  fs::remove_all(root);
}

// NCCL needs a GPU per rank; --nproc's ranks share this machine, so the launcher refuses before
// starting any: one named GPU for every rank, or more ranks than GPUs (64 on any machine here).
TEST(DataParallel, NprocOnCudaNeedsAGpuPerRank) {
  const fs::path root = fresh_dir("gpus");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"cuda:0", "--nproc 2 --device cuda:0: every rank would run on that one GPU"},
      {"cuda", "--nproc 64 --device cuda: NCCL needs a GPU per rank and "}};
  for (const auto& [device, expected] : cases) {
    std::vector<std::string> flags = run_flags("nt", root / "out", device == "cuda" ? 64 : 2);
    for (const std::string& s : {std::string("--device"), device}) flags.push_back(s);
    const int status = wait_for(start(flags, root / "log"), 60);
    ASSERT_TRUE(status >= 0 && WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 2) << read_file(root / "log");
    EXPECT_NE(read_file(root / "log").find(expected), std::string::npos) << read_file(root / "log");
    EXPECT_FALSE(fs::exists(root / "out")) << "no worker may have started";
  }
  fs::remove_all(root);
}

// 85 images: 10 batches of 8, then one of 5, which 2 ranks split 3 + 2: the gradients weighted by
// 3/5 and 2/5 still give the single-process update.
TEST(DataParallel, UnevenLastBatchStaysExact) {
  const fs::path root = fresh_dir("uneven");
  for (int nproc : {1, 2}) {
    const int status = wait_for(start(run_flags("nt", root / fmt::format("n{}", nproc), nproc, 85),
                                      root / fmt::format("n{}.log", nproc)), 120);
    ASSERT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(root / fmt::format("n{}.log", nproc));
  }
  EXPECT_GT(expect_files_close(root / "n2" / "checkpoint" / "trainer.safetensors", root / "n1" / "checkpoint" / "trainer.safetensors",
                         1e-10, 1e-8), 100000);
  fs::remove_all(root);
}

// What every worker would find wrong is found once by the launcher, before any worker starts (it
// was reported per rank, interleaved, with exit status 1): the batch split, --out, --dist-host and
// a --rendezvous that cannot be made.
TEST(DataParallel, TheLauncherChecksTheFlagsBeforeStartingWorkers) {
  const fs::path root = fresh_dir("before");
  fs::create_directories(root / "done");
  std::ofstream(root / "done" / "resolved.flags") << "# an earlier run\n";
  struct Case {
    std::vector<std::string> flags;
    int code;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"--nproc", "3"}, 2, "--batch-size 8: the global batch does not divide by --nproc 3"},
      {{"--out", (root / "done").string()}, 1, "holds a run already"},
      {{"--dist-host", "10.255.255.1"}, 2, "--dist-host 10.255.255.1: not an address of this machine"},
      {{"--dist-host", "no-such-host.invalid"}, 2, "--dist-host no-such-host.invalid: cannot resolve the name"},
      {{"--rendezvous", "/proc/nope"}, 1, "--rendezvous /proc/nope: cannot create the folder ("}};
  for (const Case& c : cases) {
    std::vector<std::string> flags = run_flags("nt", root / "out", 2);
    flags.insert(flags.end(), c.flags.begin(), c.flags.end());
    const int status = wait_for(start(flags, root / "log"), 60);
    const std::string log = read_file(root / "log");
    ASSERT_TRUE(status >= 0 && WIFEXITED(status)) << log;
    EXPECT_EQ(WEXITSTATUS(status), c.code) << log;
    EXPECT_EQ(count_of(log, c.expected), 1u) << log;
    EXPECT_EQ(count_of(log, "launching"), 0u) << log;
  }
  fs::remove_all(root);
}

// Ranks started by an external launcher with different flags: every rank stops with one error
// naming the ranks and flags that differ, before the parameter broadcast (another --lr or --seed
// trained a corrupted model without a word; another --dtype, --model or --sync-bn aborted a rank
// in Gloo). Flags that may differ per rank (--threads, --progress) do not stop the run.
TEST(DataParallel, ExternalRanksMustAgreeOnTheFlags) {
  const fs::path root = fresh_dir("agree");
  struct Case {
    std::vector<std::string> rank1;
    std::vector<std::string> expected;  // empty: the run succeeds
  };
  const std::vector<Case> cases = {
      {{"--lr", "0.2", "--seed", "6"}, {"rank 1 differs in", "--seed", "--lr"}},
      {{"--dtype", "f32"}, {"rank 1 differs in --dtype"}},
      {{"--model", "resnet18-mnist", "--width", "4"}, {"rank 1 differs in --model, --width"}},
      {{"--sync-bn"}, {"rank 1 differs in --sync-bn"}},
      {{"--threads", "2", "--progress", "lines"}, {}}};
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    std::vector<Proc> ranks;
    for (int r = 0; r < 2; ++r) {
      std::vector<std::string> flags = run_flags("nt", root / fmt::format("out{}", i), 1);
      for (const std::string& f : {std::string("--rank"), std::to_string(r), std::string("--world-size"), std::string("2"),
                                   std::string("--rendezvous"), (root / fmt::format("rdv{}", i)).string(),
                                   std::string("--dist-timeout"), std::string("30"), std::string("--epochs"),
                                   std::string("0")})
        flags.push_back(f);
      if (r == 1) flags.insert(flags.end(), cases[i].rank1.begin(), cases[i].rank1.end());
      ranks.push_back(start(flags, root / fmt::format("rank{}.log", r)));
    }
    for (int r = 0; r < 2; ++r) {
      const int status = wait_for(ranks[size_t(r)], 60);
      const std::string log = read_file(root / fmt::format("rank{}.log", r));
      ASSERT_TRUE(status >= 0 && WIFEXITED(status)) << "rank " << r << " status " << status << ":\n" << log;
      EXPECT_EQ(WEXITSTATUS(status), cases[i].expected.empty() ? 0 : 1) << log;
      for (const std::string& part : cases[i].expected) EXPECT_NE(log.find(part), std::string::npos) << part << " in:\n" << log;
      if (!cases[i].expected.empty()) {
        EXPECT_NE(log.find("the ranks were started with different flags"), std::string::npos) << log;
      }
    }
  }
  fs::remove_all(root);
}

// Rendezvous mistakes of an external launcher are named: ranks with different --world-size (was
// Gloo's "sizeof(impl_) == bytes.size(). 136 vs 272" on one rank, a hang on the other) and a
// rendezvous folder left from an earlier run (was Gloo's "File already exists").
TEST(DataParallel, ExternalRendezvousMistakesAreNamed) {
  const fs::path root = fresh_dir("rdv");
  auto rank_flags = [&](int rank, int world, const fs::path& rdv, const std::string& out) {
    std::vector<std::string> flags = run_flags("nt", root / out, 1);
    for (const std::string& f : {std::string("--rank"), std::to_string(rank), std::string("--world-size"),
                                 std::to_string(world), std::string("--rendezvous"), rdv.string(),
                                 std::string("--dist-timeout"), std::string("30"), std::string("--epochs"), std::string("0")})
      flags.push_back(f);
    return flags;
  };
  {
    Proc a = start(rank_flags(0, 2, root / "rdv_world", "out_world"), root / "a.log");
    Proc b = start(rank_flags(1, 3, root / "rdv_world", "out_world"), root / "b.log");
    for (auto [p, log] : {std::pair{a, root / "a.log"}, std::pair{b, root / "b.log"}}) {
      const auto began = clock::now();
      const int status = wait_for(p, 60);
      ASSERT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << ":\n" << read_file(log);
      EXPECT_LT(std::chrono::duration<double>(clock::now() - began).count(), 20.0) << "not at once";
      EXPECT_NE(read_file(log).find("rank 0 was started with world size 2 and rank 1 with 3"), std::string::npos)
          << read_file(log);
    }
  }
  {
    // A run that ends well, then rank 0 of a new run pointed at the same folder.
    Proc a = start(rank_flags(0, 2, root / "rdv_old", "out_old"), root / "a.log");
    Proc b = start(rank_flags(1, 2, root / "rdv_old", "out_old"), root / "b.log");
    for (auto [p, log] : {std::pair{a, root / "a.log"}, std::pair{b, root / "b.log"}}) {
      const int status = wait_for(p, 60);
      ASSERT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << ":\n" << read_file(log);
    }
    const int status = wait_for(start(rank_flags(0, 2, root / "rdv_old", "out_new"), root / "c.log"), 20);
    ASSERT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << ":\n" << read_file(root / "c.log");
    EXPECT_NE(read_file(root / "c.log").find("holds files of an earlier run"), std::string::npos) << read_file(root / "c.log");
  }
  {
    // A rank on a GPU (its marker written here by hand: no GPU needed) and one on the CPU: Gloo
    // and NCCL cannot meet; it hung in the backends' set-up until the timeout.
    fs::create_directories(root / "rdv_device");
    std::ofstream(root / "rdv_device" / "afd-rank-1") << "world-size 2\ndevice cuda\n";
    const auto began = clock::now();
    const int status = wait_for(start(rank_flags(0, 2, root / "rdv_device", "out_device"), root / "d.log"), 20);
    ASSERT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << ":\n" << read_file(root / "d.log");
    EXPECT_LT(std::chrono::duration<double>(clock::now() - began).count(), 20.0) << "not at once";
    EXPECT_NE(read_file(root / "d.log").find("rank 0 runs on cpu and rank 1 on cuda"), std::string::npos)
        << read_file(root / "d.log");
  }
  fs::remove_all(root);
}

// small-cnn has no BatchNorm, but each rank still needs an image of the last batch: 81 images in
// batches of 8 over 2 ranks leave one image, refused before training (it crashed at the last step).
TEST(DataParallel, ALastBatchSmallerThanTheRanksIsRefused) {
  const fs::path root = fresh_dir("lastbatch");
  const int status = wait_for(start(run_flags("nt", root / "out", 2, 81), root / "log"), 60);
  const std::string log = read_file(root / "log");
  ASSERT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << ":\n" << log;
  EXPECT_NE(log.find("the last batch of 1 images split over 2 ranks leaves a rank with fewer than 1 image"),
            std::string::npos) << log;
  fs::remove_all(root);
}

// A Ctrl-C to the whole job before the workers have installed their SIGINT handler (or a second
// Ctrl-C) kills them by SIGINT: the launcher, which got the Ctrl-C too, reports a stop (exit 130),
// not a failure (it said "worker rank 0 ... was killed by signal 2", exit 1).
TEST(DataParallel, AnEarlyCtrlCStopsTheLauncherWith130) {
  const fs::path root = fresh_dir("ctrlc");
  Proc launcher = start(run_flags("nt", root / "out", 2), root / "log", /*own_group=*/true);
  const auto deadline = clock::now() + std::chrono::seconds(30);
  while (clock::now() < deadline && (worker_of(launcher.pid, 0) < 0 || worker_of(launcher.pid, 1) < 0))
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_EQ(::kill(-launcher.pid, SIGINT), 0);
  const int status = wait_for(launcher, 30);
  const std::string log = read_file(root / "log");
  ASSERT_TRUE(status >= 0 && WIFEXITED(status)) << status << ":\n" << log;
  EXPECT_EQ(WEXITSTATUS(status), 130) << log;
  // Workers that had installed their handler by then stop cleanly and say so themselves.
  EXPECT_TRUE(log.find("stopped by Ctrl-C") != std::string::npos ||
              log.find("Ctrl-C: finishing the current step") != std::string::npos)
      << log;
  fs::remove_all(root);
}

// SIGTERM to the launcher's process group (what a batch scheduler sends before it kills a job): the
// workers finish their step, rank 0 writes a checkpoint, every process exits 143 (it was exit 1 and
// no checkpoint), and the launcher names the --resume command.
TEST(DataParallel, SigtermToTheLauncherWritesACheckpoint) {
  const fs::path root = fresh_dir("sigterm");
  std::vector<std::string> flags = run_flags("nt", root / "out", 2);
  for (const char* s : {"--epochs", "100000"}) flags.push_back(s);
  Proc launcher = start(flags, root / "log", /*own_group=*/true);
  const auto deadline = clock::now() + std::chrono::seconds(60);
  while (clock::now() < deadline && read_file(root / "out" / "metrics.jsonl").find("\"type\":\"step\"") == std::string::npos)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // To the whole process group, as Slurm and timeout(1) send it: each worker gets it twice (from
  // the group and from the launcher) and must still write its checkpoint.
  ASSERT_EQ(::kill(-launcher.pid, SIGTERM), 0);
  const int status = wait_for(launcher, 60);
  const std::string log = read_file(root / "log");
  ASSERT_TRUE(status >= 0 && WIFEXITED(status)) << status << ":\n" << log;
  EXPECT_EQ(WEXITSTATUS(status), 143) << log;
  EXPECT_NE(log.find("stopped by SIGTERM; continue with: afd_run train --resume"), std::string::npos) << log;
  EXPECT_TRUE(fs::exists(root / "out" / "checkpoint" / "trainer.safetensors")) << log;
  fs::remove_all(root);
}

// resolved.flags records the process count, so `afd_run train --resume OUT` of a --nproc 2 run
// runs on 2 processes again (it went on as one, with other weights), and ends where a straight
// 2-process run of as many epochs does.
TEST(DataParallel, ResumeStartsTheRecordedProcessCount) {
  const fs::path root = fresh_dir("resume");
  auto run_ok = [&](const std::vector<std::string>& flags, const std::string& name) {
    const int status = wait_for(start(flags, root / (name + ".log")), 120);
    EXPECT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) << name << ":\n" << read_file(root / (name + ".log"));
    return read_file(root / (name + ".log"));
  };
  std::vector<std::string> straight = run_flags("nt", root / "straight", 2);
  for (const char* s : {"--epochs", "2"}) straight.push_back(s);
  run_ok(straight, "straight");
  run_ok(run_flags("nt", root / "staged", 2), "first");
  EXPECT_NE(read_file(root / "staged" / "resolved.flags").find("--nproc=2\n"), std::string::npos);
  const std::string log = run_ok({"train", "--resume", (root / "staged").string(), "--epochs", "2"}, "resumed");
  EXPECT_NE(log.find("launching 2 workers"), std::string::npos) << log;
  expect_files_close(root / "staged" / "checkpoint" / "trainer.safetensors",
                     root / "straight" / "checkpoint" / "trainer.safetensors", 1e-10, 1e-8);
  fs::remove_all(root);
}

// Issue 10, acceptance 2: SIGKILL to one worker; the launcher stops the others and exits non-zero,
// naming the rank and the signal, within 30 s.
TEST(DataParallel, KilledWorkerStopsTheLauncherWithin30Seconds) {
  const fs::path root = fresh_dir("kill");
  const fs::path rendezvous = root / "rendezvous";
  std::vector<std::string> flags = run_flags("nt", root / "out", 2);
  for (const char* s : {"--epochs", "100000"}) flags.push_back(s);
  flags.push_back("--rendezvous");
  flags.push_back(rendezvous.string());
  Proc launcher = start(flags, root / "log");
  auto worker = [&](int rank) { return worker_of(launcher.pid, rank); };
  // Wait until the workers have joined the Gloo group (rank 0 prints its header line after that and
  // after loading the data) and trained a moment.
  pid_t victim = -1;
  const auto deadline = clock::now() + std::chrono::seconds(60);
  while (clock::now() < deadline) {
    int status = 0;
    ASSERT_EQ(::waitpid(launcher.pid, &status, WNOHANG), 0) << "the launcher ended early:\n" << read_file(root / "log");
    victim = worker(1);
    if (victim > 0 && worker(0) > 0 && read_file(root / "log").find("afd_run train: NT") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(victim, 0) << read_file(root / "log");
  const pid_t survivor = worker(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto killed_at = clock::now();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  const int status = wait_for(launcher, 30);
  const double seconds = std::chrono::duration<double>(clock::now() - killed_at).count();
  ASSERT_GE(status, 0) << "the launcher did not exit within 30 s:\n" << read_file(root / "log");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << status;
  EXPECT_LT(seconds, 30.0);
  const std::string log = read_file(root / "log");
  EXPECT_NE(log.find(fmt::format("worker rank 1 (pid {}) was killed by signal 9", victim)), std::string::npos) << log;
  EXPECT_EQ(::kill(survivor, 0), -1) << "rank 0 (pid " << survivor << ") still runs";
  fs::remove_all(root);
}

}  // namespace
}  // namespace afd
