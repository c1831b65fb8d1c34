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

namespace afd::dist {

namespace {

// 64-bit FNV-1a: small, stable across machines and compilers (std::hash is neither).
constexpr uint64_t kFnvOffset = 14695981039346656037ull, kFnvPrime = 1099511628211ull;
uint64_t fnv1a(uint64_t h, const std::string& s) {
  for (const unsigned char c : s) h = (h ^ c) * kFnvPrime;
  return h;
}

// "name=value\n": the separators keep ("a", "bc") and ("ab", "c") apart.
std::string field_text(const std::pair<std::string, std::string>& f) { return f.first + "=" + f.second + "\n"; }

}  // namespace

std::vector<Disagreement> disagreements(Communicator& comm, const std::vector<std::pair<std::string, std::string>>& fields,
                                        Device device) {
  const int world = comm.size(), rank = comm.rank();
  if (world == 1) return {};
  uint64_t all = kFnvOffset;
  for (const auto& f : fields) all = fnv1a(all, field_text(f));
  // Round 1, [W, 3]: this rank writes its row (hash high half, low half, field count), the others
  // zeros; the sum holds every rank's row.
  std::vector<double> rows(size_t(world) * 3, 0.0);
  rows[size_t(rank) * 3 + 0] = double(all >> 32);
  rows[size_t(rank) * 3 + 1] = double(all & 0xffffffffu);
  rows[size_t(rank) * 3 + 2] = double(fields.size());
  rows = sum_over_ranks(comm, rows, device);
  std::vector<int> differ;
  bool same_count = true;
  for (int r = 1; r < world; ++r) {
    const size_t at = size_t(r) * 3;
    if (rows[at] != rows[0] || rows[at + 1] != rows[1]) differ.push_back(r);
    same_count = same_count && rows[at + 2] == rows[2];
  }
  std::vector<Disagreement> out;
  for (int r : differ) out.push_back({r, {}});
  if (differ.empty() || !same_count) return out;
  // Round 2, [W, fields]: each field's hash folded to 32 bits, enough to name the fields that differ
  // (the verdict itself is round 1's 64-bit hash).
  const size_t n = fields.size();
  std::vector<double> per_field(size_t(world) * n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t h = fnv1a(kFnvOffset, field_text(fields[i]));
    per_field[size_t(rank) * n + i] = double((h >> 32) ^ (h & 0xffffffffu));
  }
  per_field = sum_over_ranks(comm, per_field, device);
  for (Disagreement& d : out)
    for (size_t i = 0; i < n; ++i)
      if (per_field[size_t(d.rank) * n + i] != per_field[i]) d.fields.push_back(fields[i].first);
  return out;
}

}  // namespace afd::dist
