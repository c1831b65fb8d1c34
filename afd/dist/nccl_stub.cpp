// make_nccl in a build without the CUDA backend.
#include "afd/dist/communicator.h"
#include "tensor/error.h"

namespace afd::dist {

std::unique_ptr<Communicator> make_nccl(const DistOptions& options, Device device) {
  AFD_FAIL("NCCL communicator for rank {} on {}: this build has no CUDA backend (meson -Dcuda=enabled)", options.rank,
           device.str());
}

}  // namespace afd::dist
