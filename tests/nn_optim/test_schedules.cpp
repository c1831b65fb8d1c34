// MultiStepLR and CosineAnnealingLR against torch.optim.lr_scheduler (fixture: schedules.safetensors).
// Two optimizers with base lrs 0.1 and 0.5 share one schedule (torch: two param groups); the lr
// after each of E scheduler steps must match, |afd - torch| <= 1e-15 + 1e-14 |torch|.
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <memory>

#include "nn/optim/lr_scheduler.h"
#include "tests/support/checks.h"
#include "tests/nn_optim/fixture.h"

using namespace afd;
using afd::optim_test::load_fixture;

namespace {

void check_schedule(const std::string& name,
                    const std::function<std::unique_ptr<LRScheduler>(std::vector<Optimizer*>)>& make) {
  SafetensorsFile f = load_fixture("schedules.safetensors");
  const Tensor& expected = f.get(name + ".lr");  // [E + 1, 2]
  Var w1(Tensor::zeros({1}, DType::f64), true), w2(Tensor::zeros({1}, DType::f64), true);
  SGD a({w1}, {.lr = 0.1}), b({w2}, {.lr = 0.5});
  std::unique_ptr<LRScheduler> schedule = make({&a, &b});
  double worst = 0;
  for (int64_t e = 0; e < expected.size(0); ++e) {
    if (e > 0) schedule->step();
    EXPECT_EQ(schedule->last_epoch(), e);
    for (int k = 0; k < 2; ++k) {
      const double ours = k == 0 ? a.lr() : b.lr();
      const double torch = expected.at<double>({e, k});
      worst = std::max(worst, std::abs(ours - torch));
      EXPECT_LE(std::abs(ours - torch), 1e-15 + 1e-14 * std::abs(torch))
          << name << " epoch " << e << " group " << k << ": afd " << ours << ", torch " << torch;
    }
  }
  std::printf("[ agreement ] %s: max |afd - torch| over %lld epochs = %.3g\n", name.c_str(),
              static_cast<long long>(expected.size(0) - 1), worst);
}

TEST(Schedules, MultiStepRepeatedMilestone) {
  check_schedule("multistep", [](std::vector<Optimizer*> o) {
    return std::make_unique<MultiStepLR>(std::move(o), std::vector<int64_t>{3, 7, 7}, 0.1);
  });
}

TEST(Schedules, MultiStepAfdCifar) {
  check_schedule("multistep_afd", [](std::vector<Optimizer*> o) {
    return std::make_unique<MultiStepLR>(std::move(o), std::vector<int64_t>{250, 150}, 0.1);  // unsorted on purpose
  });
}

TEST(Schedules, CosineAnnealingPastTmax) {
  check_schedule("cosine", [](std::vector<Optimizer*> o) {
    return std::make_unique<CosineAnnealingLR>(std::move(o), 6, 0.001);
  });
}

TEST(Schedules, BadArguments) {
  using afd::testing::expect_error;
  Var w(Tensor::zeros({1}, DType::f64), true);
  SGD opt({w}, {.lr = 0.1});
  expect_error([&] { MultiStepLR({}, {1}, 0.1); }, "MultiStepLR: no optimizer given");
  expect_error([&] { MultiStepLR({&opt}, {0}, 0.1); }, "MultiStepLR: invalid milestone 0");
  expect_error([&] { MultiStepLR({&opt}, {5}, -0.1); }, "MultiStepLR: invalid gamma = -0.1");
  expect_error([&] { CosineAnnealingLR({&opt}, 0); }, "CosineAnnealingLR: invalid T_max = 0");
  expect_error([&] { CosineAnnealingLR({&opt}, 10, -1); }, "CosineAnnealingLR: invalid eta_min = -1");
  expect_error([&] { CosineAnnealingLR({&opt, nullptr}, 10); }, "optimizer 1 is null");
}

}  // namespace
