// Learning-rate schedules with the values of torch.optim.lr_scheduler (1.13), per epoch.
//
// A schedule drives any number of optimizers at once (AFD's three share one schedule); each keeps
// its own base learning rate, read from the optimizer when the schedule is made (epoch 0).
//
//   MultiStepLR schedule({&opt_fc, &opt_d, &opt_f}, /*milestones=*/{150, 250}, /*gamma=*/0.1);
//   for (int epoch = 0; epoch < 300; ++epoch) {
//     train_one_epoch();           // uses opt.lr()
//     schedule.step();             // epoch += 1, then every optimizer's lr is set
//   }
//
// The values come from torch's recurrences (each step rescales the optimizer's current lr), not
// from the closed forms, so they agree with torch to the last bit or so. Because the recurrence
// starts from the current lr, a set_lr() between steps carries on into later epochs, as in torch.
//
// Checkpoints: last_epoch() and the optimizers' lr (Optimizer::state) restore a schedule;
// set_last_epoch() sets the counter without touching any lr.
#pragma once
#include <cstdint>
#include <vector>

#include "nn/optim/optimizer.h"

namespace afd {

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  // Advances one epoch and sets every optimizer's lr.
  void step();
  int64_t last_epoch() const { return last_epoch_; }
  void set_last_epoch(int64_t epoch);
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  // The current lr of each optimizer, in the order given.
  std::vector<double> lrs() const;

 protected:
  LRScheduler(std::vector<Optimizer*> optimizers, const char* who);
  // The lr of optimizer k at last_epoch_ (already advanced), given its lr at the previous epoch.
  virtual double next_lr(size_t k, double previous_lr) const = 0;

  std::vector<Optimizer*> optimizers_;
  std::vector<double> base_lrs_;
  int64_t last_epoch_ = 0;
};

// lr = base_lr * gamma^(number of milestones <= epoch). Milestones may repeat (each counts).
class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(std::vector<Optimizer*> optimizers, std::vector<int64_t> milestones, double gamma = 0.1);

 protected:
  double next_lr(size_t k, double previous_lr) const override;

 private:
  std::vector<int64_t> milestones_;  // sorted
  double gamma_;
};

// Cosine annealing (SGDR without restarts): in closed form
//   lr(e) = eta_min + (base_lr - eta_min) (1 + cos(pi e / T_max)) / 2,
// computed with torch's recurrence; past T_max the lr rises again (period 2 T_max), as in torch.
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(std::vector<Optimizer*> optimizers, int64_t t_max, double eta_min = 0);

 protected:
  double next_lr(size_t k, double previous_lr) const override;

 private:
  int64_t t_max_;
  double eta_min_;
};

}  // namespace afd
