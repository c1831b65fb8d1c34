// Synchronised batch norm (dist::enable_sync_batch_norm, sync_batch_norm in autograd/ops.h), float64:
//   - over a group of one it IS batch norm: values, input/gamma/beta gradients and running statistics
//     within 1e-12 of nn::BatchNorm's fused kernels, and its gradient passes gradcheck;
//   - it costs two sums over the replicas in a train-mode forward, two in the backward, none in eval;
//   - on 2 Gloo processes with an uneven split (4 + 3 rows), each rank's rows of y and of dL/dx, the
//     summed gamma/beta gradients and the running statistics equal one process's batch norm on the
//     concatenated batch within 1e-10 + 1e-8 |b|, while per-rank BN (the default) does not.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "afd/dist/communicator.h"
#include "afd/dist/data_parallel.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/layers.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/dist/fork_ranks.h"

namespace afd::dist {
namespace {

namespace fs = std::filesystem;

Tensor uniform(const Shape& s, uint64_t seed, double lo, double hi) {
  Generator g(seed);
  return rand(s, g, DType::f64, Device::cpu(), lo, hi);
}

// The worst excess max(|a - b| - (atol + rtol |b|)) over the elements (<= 0: within tolerance),
// with a description of where it is.
struct Excess {
  double worst = -1;
  std::string where;
};
Excess excess(const std::string& what, const Tensor& a, const Tensor& b, double atol, double rtol) {
  EXPECT_EQ(a.shape(), b.shape()) << what;
  std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  Excess e;
  for (size_t i = 0; i < va.size() && i < vb.size(); ++i) {
    const double x = std::abs(va[i] - vb[i]) - (atol + rtol * std::abs(vb[i]));
    if (i == 0 || x > e.worst)
      e = {x, fmt::format("{}[{}]: {} vs {} (atol {}, rtol {})", what, i, va[i], vb[i], atol, rtol)};
  }
  return e;
}

// A BatchNorm2d (x [N, C, H, W]) or BatchNorm1d (x [N, C]) in float64 with gamma, beta drawn from `seed`.
std::shared_ptr<nn::BatchNorm> make_bn(bool two_d, int64_t c, uint64_t seed) {
  std::shared_ptr<nn::BatchNorm> bn;
  if (two_d) bn = std::make_shared<nn::BatchNorm2d>(c);
  else bn = std::make_shared<nn::BatchNorm1d>(c);
  bn->to(DType::f64);
  Tensor gamma = bn->weight.data(), beta = bn->bias.data();  // share the parameters' storage
  gamma.copy_(uniform({c}, seed, 0.5, 1.5));
  beta.copy_(uniform({c}, seed + 1, -1, 1));
  return bn;
}

// One train-mode forward and the backward of sum(y * w): y, dL/dx, dL/dgamma, dL/dbeta.
struct Step {
  Tensor y, dx, dgamma, dbeta;
};
Step step(nn::BatchNorm& bn, const Tensor& x, const Tensor& w) {
  bn.zero_grad();
  Var xv(x, true);
  Var y = bn.forward(xv);
  sum(mul(y, Var(w))).backward();
  return {y.data(), xv.grad(), bn.weight.grad(), bn.bias.grad()};
}

TEST(SyncBatchNorm, GroupOfOneEqualsBatchNorm) {
  std::shared_ptr<Communicator> comm = make_single_process();
  for (bool two_d : {true, false}) {
    const Shape shape = two_d ? Shape{6, 3, 2, 2} : Shape{5, 4};
    const int64_t c = shape[1];
    auto plain = make_bn(two_d, c, 10), synced = make_bn(two_d, c, 10);
    EXPECT_EQ(enable_sync_batch_norm(*synced, comm), 1);
    for (int k = 0; k < 2; ++k) {  // two steps: the running statistics move twice
      // Mean 3 and spread 0.6: a mean far from 0 relative to the std.
      const Tensor x = uniform(shape, 20 + k, 2, 4), w = uniform(shape, 30 + k, -1, 1);
      Step a = step(*synced, x, w), b = step(*plain, x, w);
      const std::string tag = fmt::format("{} step {} ", two_d ? "2-D" : "1-D", k);
      for (const Excess& e : {excess(tag + "y", a.y, b.y, 1e-12, 1e-12), excess(tag + "dx", a.dx, b.dx, 1e-12, 1e-12),
                              excess(tag + "dgamma", a.dgamma, b.dgamma, 1e-12, 1e-12),
                              excess(tag + "dbeta", a.dbeta, b.dbeta, 1e-12, 1e-12),
                              excess(tag + "running_mean", synced->running_mean.data(), plain->running_mean.data(), 1e-12, 1e-12),
                              excess(tag + "running_var", synced->running_var.data(), plain->running_var.data(), 1e-12, 1e-12)})
        EXPECT_LE(e.worst, 0.0) << e.where;
    }
    // Eval mode: the running statistics, as before.
    synced->eval();
    plain->eval();
    const Tensor x = uniform(shape, 40, 2, 4);
    Excess e = excess("eval y", synced->forward(Var(x)).data(), plain->forward(Var(x)).data(), 1e-12, 1e-12);
    EXPECT_LE(e.worst, 0.0) << e.where;
  }
}

TEST(SyncBatchNorm, GradcheckThroughASingleProcessCommunicator) {
  ReplicaSum sum = replica_sum(make_single_process());
  auto f = [sum](const std::vector<Var>& v) {
    Tensor rm = Tensor::zeros({2}, DType::f64), rv = Tensor::ones({2}, DType::f64);
    return sync_batch_norm(v[0], v[1], v[2], rm, rv, sum);
  };
  GradcheckResult r = gradcheck(f, {uniform({3, 2, 2, 2}, 1, 2, 4), uniform({2}, 2, 0.5, 1.5), uniform({2}, 3, -1, 1)});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_GT(r.entries, 0);
}

// Two sums over the replicas in a train-mode forward, two in its backward, none in eval mode; and
// disable_sync_batch_norm switches the layer back.
TEST(SyncBatchNorm, TwoCollectivesForwardTwoBackwardNoneInEval) {
  auto bn = make_bn(true, 3, 10);
  int calls = 0;
  bn->sum_over_replicas = [&calls](Tensor&) { ++calls; };
  const Tensor x = uniform({4, 3, 2, 2}, 5, -1, 1);
  Var xv(x, true);
  Var y = bn->forward(xv);
  EXPECT_EQ(calls, 2);
  sum(y).backward();
  EXPECT_EQ(calls, 4);
  bn->eval();
  bn->forward(Var(x));
  EXPECT_EQ(calls, 4);
  bn->train();
  EXPECT_EQ(disable_sync_batch_norm(*bn), 1);
  bn->forward(Var(x));
  EXPECT_EQ(calls, 4);
}

// Runs body(comm) in 2 forked processes joined by Gloo; returns their exit statuses (a throw -> 3).
std::vector<int> run_two_ranks(const fs::path& dir, const std::function<int(std::shared_ptr<Communicator>)>& body) {
  return afd::testing::run_ranks(2, [&](int r) {
    DistOptions o;
    o.rank = r;
    o.world_size = 2;
    o.rendezvous = dir.string();
    o.timeout_seconds = 20;
    return body(make_gloo(o));
  });
}

// The global batch X [7, 3, 2, 2] split 4 + 3 over two ranks; the loss is sum(y * W) over all rows
// (each rank's part over its rows; the ranks' parts add up to the single-process loss).
TEST(SyncBatchNorm, TwoGlooRanksEqualOneProcessOnTheConcatenatedBatch) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("afd_test_sync_bn_{}", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<int> codes = run_two_ranks(dir, [](std::shared_ptr<Communicator> comm) {
    const int64_t n = 7;
    const Shard s = shard_of(n, comm->rank(), comm->size());
    const Tensor x = uniform({n, 3, 2, 2}, 50, 2, 4), w = uniform({n, 3, 2, 2}, 51, -1, 1);
    const Tensor x_r = x.slice(s.begin, s.begin + s.count), w_r = w.slice(s.begin, s.begin + s.count);
    auto rows = [&s](const Tensor& t) { return t.slice(s.begin, s.begin + s.count); };
    auto sum_over_ranks = [&comm](const Tensor& t) {
      Tensor c = t.clone();
      comm->all_reduce_sum(c);
      return c;
    };
    // One process on the whole batch (every rank computes it).
    auto ref = make_bn(true, 3, 10);
    Step one = step(*ref, x, w);
    // Synchronised: this rank's rows only.
    auto synced = make_bn(true, 3, 10);
    enable_sync_batch_norm(*synced, comm);
    Step many = step(*synced, x_r, w_r);
    int code = 10;
    for (const Excess& e : {excess("y", many.y, rows(one.y), 1e-10, 1e-8), excess("dx", many.dx, rows(one.dx), 1e-10, 1e-8),
                            excess("dgamma", sum_over_ranks(many.dgamma), one.dgamma, 1e-10, 1e-8),
                            excess("dbeta", sum_over_ranks(many.dbeta), one.dbeta, 1e-10, 1e-8),
                            excess("running_mean", synced->running_mean.data(), ref->running_mean.data(), 1e-10, 1e-8),
                            excess("running_var", synced->running_var.data(), ref->running_var.data(), 1e-10, 1e-8)}) {
      if (e.worst > 0) {
        fmt::print(stderr, "rank {}: {}\n", comm->rank(), e.where);
        return code;
      }
      ++code;
    }
    // Eval mode: the (equal) running statistics, no collective.
    synced->eval();
    ref->eval();
    Excess e = excess("eval y", synced->forward(Var(x_r)).data(), rows(ref->forward(Var(x)).data()), 1e-10, 1e-8);
    if (e.worst > 0) {
      fmt::print(stderr, "rank {}: {}\n", comm->rank(), e.where);
      return 20;
    }
    // The comparison can fail: per-rank statistics (the default) give other values.
    auto per_rank = make_bn(true, 3, 10);
    Step own = step(*per_rank, x_r, w_r);
    if (excess("per-rank y", own.y, rows(one.y), 1e-10, 1e-8).worst <= 1e-6) return 21;
    if (excess("per-rank running_mean", per_rank->running_mean.data(), ref->running_mean.data(), 1e-10, 1e-8).worst <= 1e-6)
      return 22;
    return 0;
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace afd::dist
