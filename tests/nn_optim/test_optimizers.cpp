// SGD and Adam against torch.optim (fixtures: tests/fixtures/optim/make_optim_fixtures.py).
//
// The model: parameters W [3, 4], b [3], u [2] (u has no gradient: skipped, as torch does);
//   loss(W, b) = mean((tanh(x W^T + b) - t)^2) + 0.5 sum(q (W - c)^2),
// 5 steps, each with the gradient of the loss at the current parameters. The loss before each
// step, the parameters after each step and the final optimizer state must match PyTorch,
// |afd - torch| <= atol + rtol |torch|:
//   f64: rtol 1e-12, atol 1e-14        f32: rtol 1e-6, atol 1e-6
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "nn/checkpoint.h"
#include "nn/optim/optimizer.h"
#include "tensor/backend.h"
#include "tensor/rng.h"
#include "tests/support/checks.h"
#include "tests/nn_optim/fixture.h"

using namespace afd;
using afd::optim_test::expect_matches;
using afd::optim_test::load_fixture;
using afd::optim_test::max_abs_diff;

namespace {

struct FixtureSet {
  const char* file;
  DType dtype;
  double rtol, atol;
};
const FixtureSet kF64{"optim_f64.safetensors", DType::f64, 1e-12, 1e-14};
const FixtureSet kF32{"optim_f32.safetensors", DType::f32, 1e-6, 1e-6};

struct Problem {
  Var x, t, q, c;
  Var W, b, u;  // the parameters, fresh leaves holding copies of init.*

  explicit Problem(const SafetensorsFile& f)
      : x(f.get("model.x")), t(f.get("model.t")), q(f.get("model.q")), c(f.get("model.c")),
        W(f.get("init.W").clone(), true), b(f.get("init.b").clone(), true), u(f.get("init.u").clone(), true) {}

  std::vector<Var> params() const { return {W, b, u}; }

  // mean((tanh(x W^T + b) - t)^2) + 0.5 sum(q (W - c)^2)
  Var loss() const {
    Var d = tanh(linear(x, W, b)) - t;
    Var e = W - c;
    return mean(d * d) + 0.5 * sum(q * e * e);
  }
  // mean((tanh(x W^T + b) + t)^2): the "feature" loss of the overlap case.
  Var loss_feature() const {
    Var d = tanh(linear(x, W, b)) + t;
    return mean(d * d);
  }
};

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<Var> params) {
  if (name == "sgd_nesterov")
    return std::make_unique<SGD>(params, SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
  if (name == "sgd_momentum") return std::make_unique<SGD>(params, SGDOptions{.lr = 0.05, .momentum = 0.9});
  if (name == "sgd_dampening")
    return std::make_unique<SGD>(params,
                                 SGDOptions{.lr = 0.1, .momentum = 0.5, .dampening = 0.3, .weight_decay = 0.001});
  if (name == "sgd_plain") return std::make_unique<SGD>(params, SGDOptions{.lr = 0.2});
  if (name == "adam") return std::make_unique<Adam>(params, AdamOptions{.lr = 0.01});
  if (name == "adam_wd")
    return std::make_unique<Adam>(
        params, AdamOptions{.lr = 0.02, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1});
  ADD_FAILURE() << "no optimizer case " << name;
  return nullptr;
}

// The optimizer's exported state against torch's state_dict()['state'] under `prefix`: the same
// names (apart from our param_groups.0.lr) and the same values.
void expect_state_matches(const std::string& prefix, const Optimizer& opt, const SafetensorsFile& f,
                          const FixtureSet& p) {
  std::set<std::string> ours, theirs;
  for (const auto& [name, value] : opt.state()) {
    if (name == "param_groups.0.lr") {
      EXPECT_EQ(value.item_double(), opt.lr());
      continue;
    }
    ours.insert(name);
    ASSERT_TRUE(f.contains(prefix + "." + name)) << "torch has no " << prefix << "." << name;
    const Tensor& expected = f.get(prefix + "." + name);
    // step is an f64 scalar on both sides; the moments have the parameter's dtype.
    expect_matches(prefix + "." + name, value, expected, p.rtol, p.atol);
  }
  for (const auto& [name, value] : f.tensors) {
    if (name.rfind(prefix + ".state.", 0) == 0) theirs.insert(name.substr(prefix.size() + 1));
  }
  EXPECT_EQ(ours, theirs) << prefix;
}

void run_case(const FixtureSet& p, const std::string& name) {
  SafetensorsFile f = load_fixture(p.file);
  Problem m(f);
  ASSERT_EQ(m.W.dtype(), p.dtype);
  std::unique_ptr<Optimizer> opt = make_optimizer(name, m.params());
  ASSERT_TRUE(opt);
  Tensor W_alias = m.W.data();  // another holder of W's storage: must see every update
  const Tensor u0 = m.u.data().clone();
  const Tensor& losses = f.get(name + ".loss");
  double worst = 0;
  for (int k = 1; k <= 5; ++k) {
    opt->zero_grad();
    Var loss = m.loss();
    expect_matches(name + " loss before step " + std::to_string(k), loss.data(), losses.slice(k - 1, k), p.rtol,
                   p.atol);
    loss.backward();
    opt->step();
    const std::string at = name + ".step" + std::to_string(k);
    expect_matches(at + ".W", m.W.data(), f.get(at + ".W"), p.rtol, p.atol);
    expect_matches(at + ".b", m.b.data(), f.get(at + ".b"), p.rtol, p.atol);
    expect_matches(at + ".u", m.u.data(), f.get(at + ".u"), 0, 0);
    worst = std::max({worst, max_abs_diff(m.W.data(), f.get(at + ".W")), max_abs_diff(m.b.data(), f.get(at + ".b"))});
  }
  EXPECT_TRUE(W_alias.shares_storage(m.W.data()));
  expect_matches(name + " W seen through an alias", W_alias, m.W.data(), 0, 0);
  expect_matches(name + " u (no gradient) untouched", m.u.data(), u0, 0, 0);
  expect_state_matches(name, *opt, f, p);
  std::printf("[ agreement ] %s %s: max |afd - torch| over 5 steps = %.3g\n", name.c_str(), dtype_name(p.dtype),
              worst);
}

class OptimizerVsTorch : public ::testing::TestWithParam<std::string> {};

TEST_P(OptimizerVsTorch, FiveStepsF64) { run_case(kF64, GetParam()); }
TEST_P(OptimizerVsTorch, FiveStepsF32) { run_case(kF32, GetParam()); }

INSTANTIATE_TEST_SUITE_P(Cases, OptimizerVsTorch,
                         ::testing::Values("sgd_nesterov", "sgd_momentum", "sgd_dampening", "sgd_plain", "adam",
                                           "adam_wd"),
                         [](const auto& info) { return info.param; });

// AFD's pattern: two optimizers over overlapping parameters (W in both), each with its own
// momentum buffers; per step A on the main loss, then F on the feature loss.
void run_overlap(const FixtureSet& p) {
  SafetensorsFile f = load_fixture(p.file);
  Problem m(f);
  SGD opt_a(m.params(), {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});
  SGD opt_f({m.W}, {.lr = 0.5, .momentum = 0.9});
  for (int k = 1; k <= 5; ++k) {
    opt_a.zero_grad();
    opt_f.zero_grad();
    Var loss = m.loss();
    expect_matches("overlap loss " + std::to_string(k), loss.data(), f.get("overlap.loss").slice(k - 1, k), p.rtol,
                   p.atol);
    loss.backward();
    opt_a.step();
    opt_a.zero_grad();
    opt_f.zero_grad();
    Var loss_f = m.loss_feature();
    expect_matches("overlap loss_f " + std::to_string(k), loss_f.data(), f.get("overlap.loss_f").slice(k - 1, k),
                   p.rtol, p.atol);
    loss_f.backward();
    opt_f.step();
    const std::string at = "overlap.step" + std::to_string(k);
    expect_matches(at + ".W", m.W.data(), f.get(at + ".W"), p.rtol, p.atol);
    expect_matches(at + ".b", m.b.data(), f.get(at + ".b"), p.rtol, p.atol);
  }
  expect_state_matches("overlap.a", opt_a, f, p);
  expect_state_matches("overlap.f", opt_f, f, p);
}

TEST(OptimizerOverlap, TwoSgdOverSharedParamsF64) { run_overlap(kF64); }
TEST(OptimizerOverlap, TwoSgdOverSharedParamsF32) { run_overlap(kF32); }

// ---- state export / import --------------------------------------------------------------------

// 2 steps, export, a new optimizer imports the state and takes 3 more: bit-identical to 5 steps
// of one optimizer.
template <class Opt, class Options>
void check_resume(const Options& options) {
  SafetensorsFile f = load_fixture(kF64.file);
  Problem straight(f), resumed(f);
  Opt opt_straight(straight.params(), options);
  for (int k = 0; k < 5; ++k) {
    opt_straight.zero_grad();
    straight.loss().backward();
    opt_straight.step();
  }
  NamedTensors saved;
  {
    Opt first(resumed.params(), options);
    for (int k = 0; k < 2; ++k) {
      first.zero_grad();
      resumed.loss().backward();
      first.step();
    }
    saved = first.state();
  }
  Opt second(resumed.params(), options);
  second.load_state(saved);
  for (int k = 0; k < 3; ++k) {
    second.zero_grad();
    resumed.loss().backward();
    second.step();
  }
  expect_matches("resumed W", resumed.W.data(), straight.W.data(), 0, 0);
  expect_matches("resumed b", resumed.b.data(), straight.b.data(), 0, 0);
}

// ops::sgd_step_ (one fused pass) against torch.optim.SGD's rule written as the separate ops it
// replaced: the same bits, in f32 and f64, for every combination of weight decay, momentum,
// dampening and Nesterov, on values that include -0, 0 and tiny and huge magnitudes.
Tensor sgd_by_separate_ops(Tensor p, Tensor g, Tensor& buf, const SgdStep& s) {
  Tensor d = g;
  if (s.weight_decay != 0) d = ops::add(d, ops::mul_scalar(p, s.weight_decay));
  if (s.momentum != 0) {
    buf = s.first ? d.clone() : ops::add(ops::mul_scalar(buf, s.momentum), ops::mul_scalar(d, 1 - s.dampening));
    d = s.nesterov ? ops::add(d, ops::mul_scalar(buf, s.momentum)) : buf;
  }
  return ops::sub(p, ops::mul_scalar(d, s.lr));
}

TEST(SgdStep, EqualsTheSeparateOpsBitForBit) {
  for (DType dt : {DType::f32, DType::f64}) {
    const std::vector<double> special{0.0, -0.0, 1e-30, -1e-30, 3.5, -2.25, 1e30, -7e-8};
    std::vector<double> pv, gv, bv;
    for (int i = 0; i < 64; ++i) {
      pv.push_back(i < 8 ? special[i] : std::sin(0.7 * i) * std::pow(10.0, i % 5 - 2));
      gv.push_back(i < 8 ? special[(i + 3) % 8] : std::cos(1.3 * i) * std::pow(10.0, i % 4 - 3));
      bv.push_back(i < 8 ? special[(i + 5) % 8] : std::sin(2.1 * i));
    }
    const Tensor p0 = Tensor::from_vector<double>(pv, {8, 8}).to(dt), g = Tensor::from_vector<double>(gv, {8, 8}).to(dt);
    const Tensor b0 = Tensor::from_vector<double>(bv, {8, 8}).to(dt);
    for (double wd : {0.0, 5e-4})
      for (double m : {0.0, 0.9})
        for (double damp : {0.0, 0.1})
          for (bool nesterov : {false, true})
            for (bool first : {false, true}) {
              if (m == 0 && (nesterov || first || damp != 0)) continue;
              const SgdStep s{0.05, wd, m, damp, nesterov, first};
              Tensor buf_ops = m != 0 ? b0.clone() : Tensor();
              const Tensor want = sgd_by_separate_ops(p0, g, buf_ops, s);
              Tensor p = p0.clone(), buf = m != 0 ? (first ? Tensor(p0.shape(), dt) : b0.clone()) : Tensor();
              ops::sgd_step_(p, g, buf, s);
              const std::string what = fmt::format("{} wd {} momentum {} dampening {} nesterov {} first {}",
                                                   dtype_name(dt), wd, m, damp, nesterov, first);
              EXPECT_EQ(std::memcmp(p.raw_data(), want.raw_data(), p.nbytes()), 0) << what << ": the parameter";
              if (m != 0) {
                EXPECT_EQ(std::memcmp(buf.raw_data(), buf_ops.raw_data(), buf.nbytes()), 0) << what << ": buf";
              }
            }
  }
}

// ops::update_running_stats_ (batch norm's running statistics and batch counter in one pass)
// against the separate ops it replaced: the same bits, f32 and f64.
TEST(UpdateRunningStats, EqualsTheSeparateOpsBitForBit) {
  for (DType dt : {DType::f32, DType::f64}) {
    std::vector<double> rm, rv, mu, var;
    for (int c = 0; c < 37; ++c) {
      rm.push_back(c == 0 ? -0.0 : std::sin(0.3 * c));
      rv.push_back(c == 1 ? 1e-30 : 1 + std::cos(0.7 * c));
      mu.push_back(c == 2 ? -0.0 : std::sin(1.9 * c) * 1e3);
      var.push_back(c == 3 ? 0.0 : std::fabs(std::cos(2.3 * c)) * 1e-3);
    }
    const Tensor rm0 = Tensor::from_vector<double>(rm, {37}).to(dt), rv0 = Tensor::from_vector<double>(rv, {37}).to(dt);
    const Tensor m = Tensor::from_vector<double>(mu, {37}).to(dt), v = Tensor::from_vector<double>(var, {37}).to(dt);
    const double momentum = 0.1, scale = 0.1 * 512 / 511;
    const Tensor want_m = ops::add(ops::mul_scalar(rm0, 1 - momentum), ops::mul_scalar(m, momentum));
    const Tensor want_v = ops::add(ops::mul_scalar(rv0, 1 - momentum), ops::mul_scalar(v, scale));
    Tensor got_m = rm0.clone(), got_v = rv0.clone(), count = Tensor::from_vector<int64_t>({41}, {});
    ops::update_running_stats_(got_m, got_v, count, m, v, momentum, scale);
    EXPECT_EQ(std::memcmp(got_m.raw_data(), want_m.raw_data(), got_m.nbytes()), 0) << dtype_name(dt) << " mean";
    EXPECT_EQ(std::memcmp(got_v.raw_data(), want_v.raw_data(), got_v.nbytes()), 0) << dtype_name(dt) << " var";
    EXPECT_EQ(count.item<int64_t>(), 42);
    Tensor none;  // no counter: the statistics alone
    ops::update_running_stats_(got_m, got_v, none, m, v, momentum, scale);
  }
}

TEST(SgdStep, RefusesMismatchedArguments) {
  using afd::testing::expect_error;
  Tensor p = Tensor::zeros({3}), g = Tensor::zeros({4}), buf = Tensor::zeros({3}, DType::f64);
  const SgdStep s{0.1, 0, 0.9, 0, false, false};
  expect_error([&] { ops::sgd_step_(p, g, buf, s); }, "sgd_step: the gradient has shape [4], expected [3]");
  Tensor g3 = Tensor::zeros({3});
  expect_error([&] { ops::sgd_step_(p, g3, buf, s); }, "sgd_step: dtypes f32 and f64 differ");
  const Tensor p64 = Tensor::zeros({2}, DType::f64);
  expect_error([&] { ops::sgd_step_({{p, g3, g3}, {p64, p64, p64}}, s); }, "sgd_step (two of the parameters): dtypes");
}

// SGD::step updates its parameters in groups (one ops::sgd_step_ call per device, dtype and
// whether the momentum buffer is new): the same bits as one parameter at a time, with a
// parameter that has no gradient (untouched) and one whose first gradient comes a step later (a
// new buffer in the same step as old ones), and one launch for all of them on the op counter.
TEST(SgdStep, TheOptimizerGroupsParametersWithTheSameBits) {
  Generator gen(8);
  std::vector<Var> params;
  for (int i = 0; i < 5; ++i) params.emplace_back(randn({3 + i, 2}, gen), true);
  const SGDOptions o{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-2, .nesterov = true};
  SGD opt(params, o);
  std::vector<Tensor> want, bufs(params.size());
  for (const Var& p : params) want.push_back(p.data().clone());
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    for (size_t i = 0; i < params.size(); ++i) {
      if (i == 1 || (i == 3 && step == 0)) continue;  // 1: never a gradient; 3: none at the first step
      params[i].impl()->grad = randn(params[i].shape(), gen);
      const SgdStep s{o.lr, o.weight_decay, o.momentum, o.dampening, o.nesterov, !bufs[i].defined()};
      want[i] = sgd_by_separate_ops(want[i], params[i].grad(), bufs[i], s);
    }
    const int64_t launches = kernel_calls(Kernel::elementwise);
    opt.step();
    EXPECT_EQ(kernel_calls(Kernel::elementwise) - launches, step == 1 ? 2 : 1) << "step " << step;
    for (size_t i = 0; i < params.size(); ++i)
      EXPECT_EQ(std::memcmp(params[i].data().raw_data(), want[i].raw_data(), want[i].nbytes()), 0)
          << "parameter " << i << " after step " << step;
  }
}

TEST(OptimizerState, SgdResumesExactly) { check_resume<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true}); }
TEST(OptimizerState, AdamResumesExactly) { check_resume<Adam>(AdamOptions{.lr = 0.01, .weight_decay = 0.1}); }

// Several optimizers (AFD has three, over overlapping parameters) saved to and restored from one
// file, with the run state as metadata: the resumed run is bit-identical to the straight one.
TEST(OptimizerState, SeveralOptimizersResumeThroughOneFile) {
  SafetensorsFile f = load_fixture(kF64.file);
  Problem straight(f), resumed(f);
  SGDOptions sgd{.lr = 0.05, .momentum = 0.9};
  AdamOptions adam{.lr = 0.01};
  auto step_both = [](Problem& p, Optimizer& a, Optimizer& b) {
    a.zero_grad();
    b.zero_grad();
    p.loss().backward();
    a.step();
    b.step();
  };
  SGD s1(straight.params(), sgd);
  Adam a1({straight.W}, adam);
  for (int k = 0; k < 5; ++k) step_both(straight, s1, a1);
  std::string path = ::testing::TempDir() + "afd_optim_state.safetensors";
  {
    SGD s2(resumed.params(), sgd);
    Adam a2({resumed.W}, adam);
    for (int k = 0; k < 2; ++k) step_both(resumed, s2, a2);
    nn::save_optimizer_states({{"fc", &s2}, {"f", &a2}}, path, {{"epoch", "2"}});
  }
  SGD s3(resumed.params(), sgd);
  Adam a3({resumed.W}, adam);
  std::map<std::string, std::string> run = nn::load_optimizer_states({{"fc", &s3}, {"f", &a3}}, path);
  EXPECT_EQ(run.at("epoch"), "2");
  for (int k = 0; k < 3; ++k) step_both(resumed, s3, a3);
  expect_matches("resumed W", resumed.W.data(), straight.W.data(), 0, 0);
  expect_matches("resumed b", resumed.b.data(), straight.b.data(), 0, 0);
  // A missing or unknown optimizer prefix is an error naming the file and the prefix.
  afd::testing::expect_error([&] { nn::load_optimizer_states({{"fc", &s3}, {"d", &a3}}, path); }, "no state for optimizer 'd'");
  afd::testing::expect_error([&] { nn::load_optimizer_states({{"fc", &s3}}, path); }, "state for an unknown optimizer 'f'");
  std::remove(path.c_str());
}

TEST(OptimizerState, NamesFollowTorch) {
  SafetensorsFile f = load_fixture(kF64.file);
  Problem m(f);
  Adam adam(m.params(), {.lr = 0.01});
  EXPECT_EQ(adam.state().size(), 1u);  // only param_groups.0.lr before the first step
  adam.zero_grad();
  m.loss().backward();
  adam.step();
  std::vector<std::string> names;
  for (const auto& [name, value] : adam.state()) names.push_back(name);
  // u (index 2) has no gradient, so no state.
  EXPECT_EQ(names, (std::vector<std::string>{"param_groups.0.lr", "state.0.step", "state.0.exp_avg",
                                             "state.0.exp_avg_sq", "state.1.step", "state.1.exp_avg",
                                             "state.1.exp_avg_sq"}));
}

TEST(OptimizerState, LoadRejectsBadEntries) {
  using afd::testing::expect_error;
  SafetensorsFile f = load_fixture(kF64.file);
  Problem m(f);
  SGD sgd(m.params(), {.lr = 0.1, .momentum = 0.9});
  const Tensor lr = Tensor::scalar(0.1, DType::f64);
  expect_error([&] { sgd.load_state({}); }, "'param_groups.0.lr' is missing");
  expect_error([&] { sgd.load_state({{"param_groups.0.lr", lr}, {"state.0.momentum_buffer", Tensor::zeros({2}, DType::f64)}}); },
               "has shape [2], parameter 0 has shape [3, 4]");
  expect_error([&] { sgd.load_state({{"param_groups.0.lr", lr}, {"state.0.momentum_buffer", Tensor::zeros({3, 4}, DType::f32)}}); },
               "has dtype f32, parameter 0 has dtype f64");
  expect_error([&] { sgd.load_state({{"param_groups.0.lr", lr}, {"state.7.momentum_buffer", Tensor::zeros({3}, DType::f64)}}); },
               "names parameter 7, but the optimizer has 3");
  expect_error([&] { sgd.load_state({{"param_groups.0.lr", lr}, {"state.0.velocity", Tensor::zeros({3, 4}, DType::f64)}}); },
               "unknown slot 'velocity'");
  expect_error([&] { sgd.load_state({{"param_groups.0.lr", lr}, {"momentum", lr}}); }, "unexpected entry 'momentum'");
  Adam adam(m.params(), {});
  expect_error([&] { adam.load_state({{"param_groups.0.lr", lr}, {"state.1.exp_avg", Tensor::zeros({3}, DType::f64)}}); },
               "parameter 1 has 1 of its 3 state slots");
}

// ---- options and errors ------------------------------------------------------------------------

TEST(OptimizerErrors, BadHyperParameters) {
  using afd::testing::expect_error;
  Var w(Tensor::zeros({2}, DType::f64), true);
  expect_error([&] { SGD({w}, {.lr = -0.1}); }, "SGD: invalid learning rate lr = -0.1");
  expect_error([&] { SGD({w}, {.lr = 0.1, .momentum = -0.5}); }, "SGD: invalid momentum = -0.5");
  expect_error([&] { SGD({w}, {.lr = 0.1, .weight_decay = -1}); }, "SGD: invalid weight_decay = -1");
  expect_error([&] { SGD({w}, {.lr = 0.1, .nesterov = true}); }, "nesterov = true requires momentum > 0");
  expect_error([&] { SGD({w}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
               "dampening = 0.1");
  expect_error([&] { Adam({w}, {.lr = -1}); }, "Adam: invalid learning rate lr = -1");
  expect_error([&] { Adam({w}, {.beta1 = 1.0}); }, "Adam: invalid beta1 = 1 (must be in [0, 1))");
  expect_error([&] { Adam({w}, {.beta2 = -0.1}); }, "Adam: invalid beta2 = -0.1");
  expect_error([&] { Adam({w}, {.eps = -1e-8}); }, "Adam: invalid eps");
  expect_error([&] { Adam({w}, {.weight_decay = -0.1}); }, "Adam: invalid weight_decay = -0.1");
  SGD sgd({w}, {.lr = 0.1});
  expect_error([&] { sgd.set_lr(-0.5); }, "SGD: invalid learning rate lr = -0.5");
  expect_error([&] { SGD({w, w}, {.lr = 0.1}); }, "parameter 1 appears twice");
  Var not_leaf = w * 2.0;
  expect_error([&] { SGD({not_leaf}, {.lr = 0.1}); }, "parameter 0 is not a leaf");
  expect_error([&] { SGD({Var()}, {.lr = 0.1}); }, "parameter 0 is undefined");
}

TEST(OptimizerBasics, ZeroGradAndSetLr) {
  Var w(Tensor::from_vector<double>({1.0, -2.0}, {2}), true);
  SGD sgd({w}, {.lr = 0.1});
  sum(w * w).backward();
  ASSERT_TRUE(w.grad().defined());
  sgd.set_lr(0.25);
  EXPECT_EQ(sgd.lr(), 0.25);
  sgd.step();  // w -= 0.25 * 2 w
  EXPECT_EQ(w.data().at<double>({0}), 0.5);
  EXPECT_EQ(w.data().at<double>({1}), -1.0);
  sgd.zero_grad();
  EXPECT_FALSE(w.grad().defined());
  sgd.step();  // no gradient: nothing changes
  EXPECT_EQ(w.data().at<double>({0}), 0.5);
}

TEST(OptimizerBasics, StepIsNotRecorded) {
  Var w(Tensor::from_vector<double>({1.0, -2.0}, {2}), true);
  Adam adam({w}, {.lr = 0.1});
  sum(w * w).backward();
  adam.step();
  EXPECT_TRUE(w.is_leaf());
  EXPECT_TRUE(w.requires_grad());
}

}  // namespace
