// Data parallelism over a Communicator: which rows of a global batch a rank trains on, the
// start-of-run broadcast of the networks, and the gradient all-reduce in buckets.
//
//   dist::Shard s = dist::shard_of(global_n, comm.rank(), comm.size());   // rows [s.begin, s.begin + s.count)
//   dist::broadcast_module(comm, model);            // every rank starts from rank 0's weights
//   loss.backward();                                // mean over this rank's s.count rows
//   dist::average_gradients(comm, opt.params(), double(s.count) / double(global_n));
//   opt.step();                                     // the same update on every rank
//
// Why the weight: the loss of one rank is a mean over its n_r rows, the single-process loss is a
// mean over all N = sum_r n_r rows, so the single-process gradient is sum_r (n_r / N) g_r. With
// equal shards the weight is 1 / size(), the plain average of DDP; unequal shards (the last partial
// batch of an epoch) stay exact.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "afd/dist/communicator.h"
#include "autograd/var.h"
#include "autograd/ops.h"
#include "nn/module.h"

namespace afd::dist {

// Rank `rank`'s rows of a batch of n rows split over `size` ranks: contiguous slices in rank
// order, the first n % size ranks one row longer.
struct Shard {
  int64_t begin = 0, count = 0;
};
Shard shard_of(int64_t n, int rank, int size);

// Every parameter and buffer of `module` takes rank `root`'s values (in place).
void broadcast_module(Communicator& comm, nn::Module& module, int root = 0);

// For every Var of `params` with a gradient: grad = sum over ranks of weight * grad. The gradients
// are flattened into buckets of about `bucket_bytes` (consecutive parameters of one dtype), one
// all-reduce per bucket; afterwards each grad is a view into its bucket. Every rank must pass the
// same parameters with gradients of the same shapes. The all-reduce runs after backward() has
// finished: it is NOT overlapped with the backward pass (the tape has no per-leaf hook to start a
// bucket early), which costs one extra pass over the gradients' memory per step. Without overlap
// fewer, larger collectives are faster (each one costs a device synchronisation and a round of
// messages): the default of 25 MiB is PyTorch DDP's bucket_cap_mb (ResNet18's 45 MB of f32
// gradients go in two all-reduces).
void average_gradients(Communicator& comm, const std::vector<Var>& params, double weight,
                       size_t bucket_bytes = size_t(25) << 20);

// ---- synchronised batch norm ----
//   dist::enable_sync_batch_norm(*model, comm);   // before training; every rank, the same model
// Every nn::BatchNorm in `module` (recursively) then computes its train-mode statistics over the
// GLOBAL batch (sync_batch_norm, autograd/ops.h): the rows of all ranks, as one process would on
// the concatenated batch; the running statistics follow the global mean and unbiased variance, so
// they stay equal on every rank. Eval mode is unchanged (running statistics, no collective). Cost:
// two all-reduces per BN layer in each train-mode forward, two in its backward; every rank must
// run the same train-mode forwards and backwards in the same order (data-parallel training does).
// The layers keep `comm` alive. Returns the number of BatchNorm layers switched.
//
// The gradient is exact when every rank's loss carries its share of the global batch BEFORE
// backward (backward of w_r L_r, w_r = n_r / N, then a plain sum: average_gradients with weight 1),
// since the all-reduce in the backward adds the ranks' incoming gradients as they are. With equal
// shards, backward of L_r then weight 1 / size() gives the same result.
int enable_sync_batch_norm(nn::Module& module, std::shared_ptr<Communicator> comm);
// Back to per-rank statistics. Returns the number of BatchNorm layers switched.
int disable_sync_batch_norm(nn::Module& module);
// The communicator's in-place all_reduce_sum as an autograd ReplicaSum (keeps `comm` alive).
ReplicaSum replica_sum(std::shared_ptr<Communicator> comm);

// ---- do the ranks agree? ----
//   std::vector<dist::Disagreement> d = dist::disagreements(comm, {{"lr", "0.1"}, {"seed", "5"}}, device);
// `fields` are (name, value) pairs, e.g. a run's resolved flags, in the same order on every rank.
// Returns every rank whose fields differ from rank 0's, with the names of the fields that differ
// (an empty list: the ranks hold different lists of fields, say from another program version);
// empty when every rank agrees. Every rank gets the same answer, so all of them can stop with the
// same error. Call it before any collective whose size depends on these fields: its own
// collectives have sizes every rank knows (a [W, 3] tensor of hash halves and field counts; then,
// only on a disagreement and equal field counts, a [W, fields] tensor of per-field hashes). Each
// number is below 2^32, so it is exact in the f64 sum.
struct Disagreement {
  int rank = 0;
  std::vector<std::string> fields;
};
std::vector<Disagreement> disagreements(Communicator& comm, const std::vector<std::pair<std::string, std::string>>& fields,
                                        Device device);

// Element-wise sum over ranks of a few host numbers (metrics, counts), through a tensor on
// `device` (the communicator's kind of tensor).
std::vector<double> sum_over_ranks(Communicator& comm, const std::vector<double>& values, Device device);

}  // namespace afd::dist
