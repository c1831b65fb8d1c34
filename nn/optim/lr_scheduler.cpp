// MultiStepLR and CosineAnnealingLR: the recurrences of torch.optim.lr_scheduler (1.13) get_lr().
#include "nn/optim/lr_scheduler.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "tensor/error.h"

namespace afd {

// ---- LRScheduler -------------------------------------------------------------------------------

LRScheduler::LRScheduler(std::vector<Optimizer*> optimizers, const char* who) : optimizers_(std::move(optimizers)) {
  AFD_CHECK(!optimizers_.empty(), "{}: no optimizer given", who);
  for (size_t k = 0; k < optimizers_.size(); ++k) {
    AFD_CHECK(optimizers_[k] != nullptr, "{}: optimizer {} is null", who, k);
    base_lrs_.push_back(optimizers_[k]->lr());
  }
}

void LRScheduler::step() {
  ++last_epoch_;
  for (size_t k = 0; k < optimizers_.size(); ++k) optimizers_[k]->set_lr(next_lr(k, optimizers_[k]->lr()));
}

void LRScheduler::set_last_epoch(int64_t epoch) {
  AFD_CHECK(epoch >= 0, "LRScheduler: invalid last_epoch = {} (must be >= 0)", epoch);
  last_epoch_ = epoch;
}

std::vector<double> LRScheduler::lrs() const {
  std::vector<double> out;
  for (const Optimizer* opt : optimizers_) out.push_back(opt->lr());
  return out;
}

// ---- MultiStepLR -------------------------------------------------------------------------------

MultiStepLR::MultiStepLR(std::vector<Optimizer*> optimizers, std::vector<int64_t> milestones, double gamma)
    : LRScheduler(std::move(optimizers), "MultiStepLR"), milestones_(std::move(milestones)), gamma_(gamma) {
  AFD_CHECK(gamma >= 0, "MultiStepLR: invalid gamma = {} (must be >= 0)", gamma);
  for (int64_t m : milestones_) AFD_CHECK(m > 0, "MultiStepLR: invalid milestone {} (must be > 0)", m);
  std::sort(milestones_.begin(), milestones_.end());
}

double MultiStepLR::next_lr(size_t /*k*/, double previous_lr) const {
  // At a milestone epoch the lr is multiplied by gamma once per occurrence of that milestone.
  auto hits = std::count(milestones_.begin(), milestones_.end(), last_epoch_);
  if (hits == 0) return previous_lr;
  return previous_lr * std::pow(gamma_, static_cast<double>(hits));
}

// ---- CosineAnnealingLR -------------------------------------------------------------------------

CosineAnnealingLR::CosineAnnealingLR(std::vector<Optimizer*> optimizers, int64_t t_max, double eta_min)
    : LRScheduler(std::move(optimizers), "CosineAnnealingLR"), t_max_(t_max), eta_min_(eta_min) {
  AFD_CHECK(t_max > 0, "CosineAnnealingLR: invalid T_max = {} (must be > 0)", t_max);
  AFD_CHECK(eta_min >= 0, "CosineAnnealingLR: invalid eta_min = {} (must be >= 0)", eta_min);
}

double CosineAnnealingLR::next_lr(size_t k, double previous_lr) const {
  const double pi = std::numbers::pi;
  const double e = static_cast<double>(last_epoch_), t = static_cast<double>(t_max_);
  // Python's floor modulo: (e - 1 - T_max) mod 2 T_max == 0 marks the epoch after a minimum,
  // where the ratio below would divide by 1 + cos(pi) = 0; torch adds the first rise instead.
  int64_t r = (last_epoch_ - 1 - t_max_) % (2 * t_max_);
  if (r < 0) r += 2 * t_max_;
  if (r == 0) return previous_lr + (base_lrs_[k] - eta_min_) * (1 - std::cos(pi / t)) / 2;
  // lr(e) - eta_min = (lr(e-1) - eta_min) (1 + cos(pi e / T)) / (1 + cos(pi (e-1) / T))
  return (1 + std::cos(pi * e / t)) / (1 + std::cos(pi * (e - 1) / t)) * (previous_lr - eta_min_) + eta_min_;
}

}  // namespace afd
