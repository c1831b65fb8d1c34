// The single-process communicator, the options check and connect(): which implementation a device
// gets (communicator.h).
#include "afd/dist/communicator.h"

#include "tensor/error.h"

namespace afd::dist {

namespace {

// World size 1: the sum over one rank is the tensor itself, rank 0 is its own root.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* backend() const override { return "single"; }
  void all_reduce_sum(Tensor& t) override {
    AFD_CHECK(t.defined(), "all_reduce_sum: undefined tensor");
  }
  void broadcast(Tensor& t, int root) override {
    AFD_CHECK(t.defined(), "broadcast: undefined tensor");
    AFD_CHECK(root == 0, "broadcast: root {} outside a world of size 1", root);
  }
  void barrier() override {}
};

}  // namespace

void DistOptions::validate() const {
  AFD_CHECK(world_size >= 1, "distributed: world size {} (expected >= 1)", world_size);
  AFD_CHECK(rank >= 0 && rank < world_size, "distributed: rank {} outside [0, {}) (world size {})", rank, world_size,
            world_size);
  AFD_CHECK(world_size == 1 || !rendezvous.empty(),
            "distributed: world size {} needs a rendezvous directory shared by every rank", world_size);
  AFD_CHECK(timeout_seconds > 0, "distributed: timeout {} s (expected > 0)", timeout_seconds);
}

std::unique_ptr<Communicator> make_single_process() { return std::make_unique<SingleProcess>(); }

std::unique_ptr<Communicator> connect(const DistOptions& options, Device device) {
  options.validate();
  if (options.world_size == 1) return make_single_process();
  return device.is_cuda() ? make_nccl(options, device) : make_gloo(options);
}

}  // namespace afd::dist
