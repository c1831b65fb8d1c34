// Data parallelism helpers (data_parallel.h).
#include "afd/dist/data_parallel.h"

#include "nn/layers.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::dist {

Shard shard_of(int64_t n, int rank, int size) {
  AFD_CHECK(size >= 1 && rank >= 0 && rank < size && n >= 0, "shard_of: rank {} of {} for {} rows", rank, size, n);
  const int64_t base = n / size, extra = n % size;
  Shard s;
  s.count = base + (rank < extra ? 1 : 0);
  s.begin = rank * base + std::min<int64_t>(rank, extra);
  return s;
}

void broadcast_module(Communicator& comm, nn::Module& module, int root) {
  for (auto& [name, p] : module.named_parameters()) {
    Tensor t = p.data();  // shares the parameter's storage: the broadcast writes into it
    comm.broadcast(t, root);
  }
  for (auto& [name, b] : module.named_buffers()) {
    Tensor t = b;
    comm.broadcast(t, root);
  }
}

ReplicaSum replica_sum(std::shared_ptr<Communicator> comm) {
  AFD_CHECK(comm != nullptr, "replica_sum: no communicator");
  return [comm = std::move(comm)](Tensor& t) { comm->all_reduce_sum(t); };
}

namespace {

// Sets `sum` on every BatchNorm of `module` and its children; returns how many.
int set_replica_sum(nn::Module& module, const ReplicaSum& sum) {
  int switched = 0;
  if (auto* bn = dynamic_cast<nn::BatchNorm*>(&module)) {
    bn->sum_over_replicas = sum;
    ++switched;
  }
  for (auto& [name, child] : module.named_children()) switched += set_replica_sum(*child, sum);
  return switched;
}

}  // namespace

int enable_sync_batch_norm(nn::Module& module, std::shared_ptr<Communicator> comm) {
  return set_replica_sum(module, replica_sum(std::move(comm)));
}

int disable_sync_batch_norm(nn::Module& module) { return set_replica_sum(module, ReplicaSum()); }

namespace {

void reduce_bucket(Communicator& comm, const std::vector<Var>& bucket, double weight) {
  std::vector<Tensor> flat_parts;
  flat_parts.reserve(bucket.size());
  for (const Var& p : bucket) flat_parts.push_back(p.grad().reshape({-1}));
  // [sum of numels]: the bucket's gradients end to end, scaled before the sum.
  Tensor flat = ops::mul_scalar(cat(flat_parts, 0), weight);
  comm.all_reduce_sum(flat);
  int64_t offset = 0;
  for (const Var& p : bucket) {
    const int64_t n = p.grad().numel();
    p.impl()->grad = flat.slice(offset, offset + n).reshape(p.grad().shape());
    offset += n;
  }
}

}  // namespace

void average_gradients(Communicator& comm, const std::vector<Var>& params, double weight, size_t bucket_bytes) {
  std::vector<Var> bucket;
  size_t bytes = 0;
  for (const Var& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;  // the optimizer skips it too
    const Tensor& g = p.grad();
    if (!bucket.empty() && (g.dtype() != bucket.front().grad().dtype() || g.device() != bucket.front().grad().device())) {
      reduce_bucket(comm, bucket, weight);
      bucket.clear();
      bytes = 0;
    }
    bucket.push_back(p);
    bytes += g.nbytes();
    if (bytes >= bucket_bytes) {
      reduce_bucket(comm, bucket, weight);
      bucket.clear();
      bytes = 0;
    }
  }
  if (!bucket.empty()) reduce_bucket(comm, bucket, weight);
}

std::vector<double> sum_over_ranks(Communicator& comm, const std::vector<double>& values, Device device) {
  if (values.empty()) return values;
  Tensor t = Tensor::from_vector<double>(values, {int64_t(values.size())}).to(device);
  comm.all_reduce_sum(t);
  return t.to(Device::cpu()).to_vector<double>();
}

}  // namespace afd::dist
