// The GAN losses' names (flags, checkpoint configs), apart from the losses so that the config's JSON
// parser links on its own (fuzz/).
#include "nn/optim/losses.h"
#include "tensor/error.h"

namespace afd {

GanLoss parse_gan_loss(const std::string& name) {
  if (name == "dcgan") return GanLoss::dcgan;
  if (name == "wgan") return GanLoss::wgan;
  if (name == "hinge") return GanLoss::hinge;
  AFD_FAIL("unknown GAN loss '{}' (expected dcgan, wgan or hinge)", name);
}

const char* gan_loss_name(GanLoss kind) {
  switch (kind) {
    case GanLoss::dcgan: return "dcgan";
    case GanLoss::wgan: return "wgan";
    case GanLoss::hinge: return "hinge";
  }
  return "?";
}

}  // namespace afd
