// The Communicator across real processes: fork() N children that each join a Gloo group through a
// fresh rendezvous folder, run collectives and report through their exit status (0 = all right).
// The children touch no OpenMP (raw tensor data only), so forking a gtest process is safe.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>

#include "afd/dist/communicator.h"
#include "afd/dist/data_parallel.h"
#include "tensor/cuda/cuda_info.h"
#include "tensor/error.h"
#include "tests/dist/fork_ranks.h"

namespace afd::dist {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / fmt::format("afd_test_dist_{}_{}", name, ::getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

using afd::testing::run_ranks;

DistOptions options(int rank, int world, const fs::path& dir, double timeout = 20) {
  DistOptions o;
  o.rank = rank;
  o.world_size = world;
  o.rendezvous = dir.string();
  o.timeout_seconds = timeout;
  return o;
}

TEST(Communicator, SingleProcessIsTheIdentity) {
  auto comm = make_single_process();
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  Tensor t = Tensor::from_vector<double>({1.5, -2}, {2});
  comm->all_reduce_sum(t);
  comm->broadcast(t, 0);
  comm->barrier();
  EXPECT_EQ(t.to_vector<double>(), (std::vector<double>{1.5, -2}));
  EXPECT_THROW(comm->broadcast(t, 1), Error);
}

TEST(Communicator, ShardsCoverTheBatchInRankOrder) {
  for (int world : {1, 2, 3, 4})
    for (int64_t n : {0, 1, 5, 8, 13}) {
      int64_t next = 0;
      for (int r = 0; r < world; ++r) {
        Shard s = shard_of(n, r, world);
        EXPECT_EQ(s.begin, next) << "n " << n << " rank " << r << " of " << world;
        EXPECT_TRUE(s.count == n / world || s.count == n / world + 1);
        next += s.count;
      }
      EXPECT_EQ(next, n);
    }
}

// all_reduce_sum (f32, f64, i64, a large tensor), broadcast from a non-zero root, barrier, on 2 and
// 4 ranks.
TEST(Communicator, GlooAllReduceBroadcastBarrier) {
  for (int world : {2, 4}) {
    const fs::path dir = fresh_dir(fmt::format("collectives{}", world));
    std::vector<int> codes = run_ranks(world, [&](int rank) {
      auto comm = make_gloo(options(rank, world, dir));
      if (comm->rank() != rank || comm->size() != world || std::string(comm->backend()) != "gloo") return 4;
      Tensor f64 = Tensor::from_vector<double>({double(rank + 1), 0.25 * rank}, {2});
      comm->all_reduce_sum(f64);
      const double n = world;
      if (f64.to_vector<double>() != std::vector<double>{n * (n + 1) / 2, 0.25 * n * (n - 1) / 2}) return 5;
      Tensor f32 = Tensor::from_vector<float>({1.0f, float(rank)}, {1, 2});
      comm->all_reduce_sum(f32);
      if (f32.to_vector<float>() != std::vector<float>{float(n), float(n * (n - 1) / 2)}) return 6;
      Tensor i64 = Tensor::from_vector<int64_t>({int64_t(rank)}, {1});
      comm->all_reduce_sum(i64);
      if (i64.item<int64_t>() != int64_t(world * (world - 1) / 2)) return 7;
      // 300k values: several segments of Gloo's ring.
      std::vector<double> big(300000);
      for (size_t i = 0; i < big.size(); ++i) big[i] = double(i % 97) + rank;
      Tensor b = Tensor::from_vector<double>(big, {int64_t(big.size())});
      comm->all_reduce_sum(b);
      const double* p = b.data<double>();
      for (size_t i = 0; i < big.size(); ++i)
        if (p[i] != n * double(i % 97) + n * (n - 1) / 2) return 8;
      Tensor w = Tensor::from_vector<float>({float(rank), float(10 * rank), 3.f}, {3});
      comm->broadcast(w, 1);
      if (w.to_vector<float>() != std::vector<float>{1.f, 10.f, 3.f}) return 9;
      for (int k = 0; k < 3; ++k) comm->barrier();
      return 0;
    });
    for (int r = 0; r < world; ++r) EXPECT_EQ(codes[size_t(r)], 0) << "rank " << r << " of " << world;
    fs::remove_all(dir);
  }
}

// The bucketed gradient average: 2 ranks, 3 parameters over a tiny bucket size (so several
// buckets), unequal weights; a parameter without a gradient stays without one.
TEST(Communicator, GlooAverageGradientsInBuckets) {
  const fs::path dir = fresh_dir("buckets");
  std::vector<int> codes = run_ranks(2, [&](int rank) {
    auto comm = make_gloo(options(rank, 2, dir));
    std::vector<Var> params;
    for (int64_t n : {3, 5, 2}) params.emplace_back(Tensor::zeros({n}, DType::f64), true);
    for (size_t i = 0; i < 2; ++i) {
      std::vector<double> g(size_t(params[i].numel()));
      for (size_t k = 0; k < g.size(); ++k) g[k] = double(rank + 1) * double(k + 1 + 10 * i);
      params[i].impl()->grad = Tensor::from_vector<double>(g, {int64_t(g.size())});
    }
    const double weight = rank == 0 ? 0.75 : 0.25;  // rank 0 had 3 of 4 rows
    average_gradients(*comm, params, weight, /*bucket_bytes=*/16);
    for (size_t i = 0; i < 2; ++i) {
      std::vector<double> g = params[i].grad().to_vector<double>();
      for (size_t k = 0; k < g.size(); ++k)
        if (std::abs(g[k] - (0.75 * 1 + 0.25 * 2) * double(k + 1 + 10 * i)) > 1e-12) return 4;
    }
    return params[2].grad().defined() ? 5 : 0;
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
  fs::remove_all(dir);
}

// A peer that dies makes the survivor's collective throw (no hang): rank 1 leaves right after the
// rendezvous; rank 0's all-reduce must fail well within the 10 s timeout.
TEST(Communicator, GlooDeadPeerGivesAnErrorNotAHang) {
  const fs::path dir = fresh_dir("dead");
  const auto start = std::chrono::steady_clock::now();
  std::vector<int> codes = run_ranks(2, [&](int rank) {
    auto comm = make_gloo(options(rank, 2, dir, /*timeout=*/10));
    comm->barrier();
    if (rank == 1) ::_exit(0);  // dies without a word
    Tensor t = Tensor::from_vector<double>({1}, {1});
    try {
      for (int k = 0; k < 1000; ++k) comm->all_reduce_sum(t);
    } catch (const Error& e) {
      return std::string(e.what()).find("gloo all_reduce_sum failed on rank 0") != std::string::npos ? 0 : 4;
    }
    return 5;
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
  EXPECT_LT(seconds, 15.0);
  fs::remove_all(dir);
}

// A peer that is alive but never joins the collective: the survivor's call throws after the
// timeout (2 s here), not later.
TEST(Communicator, GlooHungPeerTimesOut) {
  const fs::path dir = fresh_dir("hung");
  const auto start = std::chrono::steady_clock::now();
  std::vector<int> codes = run_ranks(2, [&](int rank) {
    auto comm = make_gloo(options(rank, 2, dir, /*timeout=*/2));
    comm->barrier();
    if (rank == 1) {
      ::sleep(3);  // hangs (alive, sockets open), then leaves
      ::_exit(0);
    }
    Tensor t = Tensor::from_vector<double>({1}, {1});
    const auto before = std::chrono::steady_clock::now();
    try {
      comm->all_reduce_sum(t);
    } catch (const Error& e) {
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - before).count();
      return waited > 1.5 && waited < 4.5 ? 0 : 4;
    }
    return 5;
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10.0);
  fs::remove_all(dir);
}

// The number of visible GPUs, counted in a child process: the parent must not initialise CUDA
// before it forks the ranks.
int visible_gpus() {
  static const int count = [] {
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(std::min(cuda::device_count(), 100));
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 0;
  }();
  return count;
}

// NCCL with one rank on cuda:0: initialisation, the collectives and the barrier run through the
// non-blocking communicator's polling (ncclInProgress) on a machine with one GPU. Skips without.
TEST(Communicator, NcclOneRankOnOneGpu) {
  if (visible_gpus() < 1) GTEST_SKIP() << "needs a GPU: the NCCL communicator is compiled but not run here";
  const fs::path dir = fresh_dir("nccl1");
  std::vector<int> codes = run_ranks(1, [&](int rank) {
    auto comm = make_nccl(options(rank, 1, dir), Device::cuda(0));
    if (comm->size() != 1 || comm->rank() != 0 || std::string(comm->backend()) != "nccl") return 3;
    Tensor t = Tensor::from_vector<float>({1.5f, -2.f, 3.f}, {3}).to(Device::cuda(0));
    comm->all_reduce_sum(t);
    if (t.to(Device::cpu()).to_vector<float>() != std::vector<float>{1.5f, -2.f, 3.f}) return 4;
    Tensor d = Tensor::from_vector<double>({0.25, 7.0}, {2}).to(Device::cuda(0));
    comm->broadcast(d, 0);
    if (d.to(Device::cpu()).to_vector<double>() != std::vector<double>{0.25, 7.0}) return 5;
    comm->barrier();
    // The trainer's helpers over NCCL at world size 1 (issue 10: "the NCCL path with world size 1"):
    // gradients weighted and summed in several buckets, and the metric sums.
    std::vector<Var> params;
    for (int64_t n : {3, 5}) params.emplace_back(Tensor::zeros({n}, DType::f32, Device::cuda(0)), true);
    for (size_t i = 0; i < params.size(); ++i) {
      std::vector<float> g(size_t(params[i].numel()));
      for (size_t k = 0; k < g.size(); ++k) g[k] = float(k + 1 + 10 * i);
      params[i].impl()->grad = Tensor::from_vector<float>(g, {int64_t(g.size())}).to(Device::cuda(0));
    }
    average_gradients(*comm, params, 0.5, /*bucket_bytes=*/16);
    for (size_t i = 0; i < params.size(); ++i) {
      std::vector<float> g = params[i].grad().to(Device::cpu()).to_vector<float>();
      for (size_t k = 0; k < g.size(); ++k)
        if (g[k] != 0.5f * float(k + 1 + 10 * i)) return 6;
    }
    if (sum_over_ranks(*comm, {2.5, 4.0}, Device::cuda(0)) != std::vector<double>{2.5, 4.0}) return 7;
    return 0;
  });
  EXPECT_EQ(codes, (std::vector<int>{0}));
  fs::remove_all(dir);
}

// NCCL, one process per GPU. Skips without two GPUs (NCCL refuses two ranks on one device).
TEST(Communicator, NcclAllReduceBroadcastBarrierOnTwoGpus) {
  if (visible_gpus() < 2) GTEST_SKIP() << "needs 2 GPUs: the NCCL communicator is compiled but not run here";
  const fs::path dir = fresh_dir("nccl");
  std::vector<int> codes = run_ranks(2, [&](int rank) {
    auto comm = make_nccl(options(rank, 2, dir), Device::cuda(rank));
    Tensor t = Tensor::from_vector<float>({float(rank + 1), 2.f}, {2}).to(Device::cuda(rank));
    comm->all_reduce_sum(t);
    if (t.to(Device::cpu()).to_vector<float>() != std::vector<float>{3.f, 4.f}) return 4;
    Tensor d = Tensor::from_vector<double>({double(rank), 7.0 * rank}, {2}).to(Device::cuda(rank));
    comm->broadcast(d, 1);
    if (d.to(Device::cpu()).to_vector<double>() != std::vector<double>{1.0, 7.0}) return 5;
    comm->barrier();
    return 0;
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace afd::dist
