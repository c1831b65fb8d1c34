// CPU/CUDA parity: every op of the public op layer (tensor/ops.h, tensor/rng.h, the Tensor copies)
// run on the CPU, the oracle, and on cuda:0 with the same inputs; the CUDA result is brought back
// and compared elementwise. Skipped, with the reason, where no GPU is visible.
//
// Tolerances, b the CPU value:  f32 |a - b| <= 1e-6 + 1e-5 m,  f64 |a - b| <= 1e-12 + 1e-10 m,
// integer outputs (indices, conversions) exactly. m is |b| for elementwise ops; for a result that
// is a sum (matmul, convolution, reductions, scatter) m is the same op applied to |inputs|, because
// the rounding error of a sum scales with its terms, not with the (possibly cancelled) result.
// Precision::strict (no TF32) throughout, so f32 gemm and cuDNN compute in full fp32.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <sstream>
#include <tuple>

#include "autograd/ops.h"
#include "nn/models/resnet.h"
#include "nn/models/small_cnn.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

using namespace afd;

namespace {

const Device kCuda = Device::cuda(0);
const Device kCpu = Device::cpu();

Tensor dev(const Tensor& t) { return t.to(kCuda); }

struct Tol {
  double atol, rtol;
};
Tol default_tol(DType dt) { return dt == DType::f64 ? Tol{1e-12, 1e-10} : Tol{1e-6, 1e-5}; }

std::string index_str(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return shape_str(idx);
}

// The CUDA result `cuda` against the CPU result `cpu`: same shape and dtype, `cuda` on the GPU, and
// every element within tolerance (NaN matches NaN, inf matches the same inf). `magnitude` (CPU,
// cpu's shape) replaces |b| in the relative term; `loosen` scales both tolerances. On failure the
// worst element is reported with its index and both values.
void expect_close(const Tensor& cpu, const Tensor& cuda, const std::string& what,
                  const Tensor& magnitude = Tensor(), double loosen = 1) {
  ASSERT_TRUE(cpu.defined() && cuda.defined()) << what << ": undefined result";
  EXPECT_TRUE(cuda.device().is_cuda()) << what << ": result is on " << cuda.device().str();
  ASSERT_EQ(cpu.shape(), cuda.shape()) << what << ": shapes " << shape_str(cpu.shape()) << " and "
                                       << shape_str(cuda.shape());
  ASSERT_EQ(cpu.dtype(), cuda.dtype()) << what << ": dtypes " << dtype_name(cpu.dtype()) << " and "
                                       << dtype_name(cuda.dtype());
  std::vector<double> b = cpu.to_vector<double>(), a = cuda.to(kCpu).to_vector<double>();
  std::vector<double> m = magnitude.defined() ? magnitude.to_vector<double>() : std::vector<double>();
  ASSERT_TRUE(m.empty() || m.size() == b.size()) << what << ": magnitude has the wrong size";
  bool exact = !is_floating(cpu.dtype());
  Tol tol = default_tol(cpu.dtype());
  int64_t bad = 0, worst = -1;
  double worst_excess = -INFINITY;
  for (size_t i = 0; i < b.size(); ++i) {
    if (a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i]))) continue;
    double allowed = exact ? 0 : loosen * (tol.atol + tol.rtol * (m.empty() ? std::fabs(b[i]) : m[i]));
    double excess = std::fabs(a[i] - b[i]) - allowed;
    if (excess <= 0) continue;  // false for NaN: a NaN on one side only is a failure
    ++bad;
    if (std::isnan(excess) || excess > worst_excess) {
      worst_excess = std::isnan(excess) ? INFINITY : excess;
      worst = static_cast<int64_t>(i);
    }
  }
  if (bad == 0) return;
  std::ostringstream os;
  os.precision(17);
  os << what << " (" << dtype_name(cpu.dtype()) << ", shape " << shape_str(cpu.shape()) << "): " << bad
     << " of " << b.size() << " elements differ; worst at " << index_str(worst, cpu.shape()) << ": cuda "
     << a[worst] << ", cpu " << b[worst] << " (|diff| " << std::fabs(a[worst] - b[worst]) << ")";
  ADD_FAILURE() << os.str();
}

// A magnitude tensor holding one number: for results whose entries cancel in ways no simple op
// reproduces (batch-norm gradients, log-softmax), the tolerance is relative to the largest entry.
Tensor flat_magnitude(const Tensor& like, double value) { return Tensor::full(like.shape(), value, DType::f64); }
double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::fabs(v));
  return m;
}

Tensor uniform(const Shape& s, uint64_t seed, DType dt, double lo = -1, double hi = 1) {
  Generator g(seed);
  return rand(s, g, dt, kCpu, lo, hi);
}
Tensor normal(const Shape& s, uint64_t seed, DType dt, double mean = 0, double std = 1) {
  Generator g(seed);
  return randn(s, g, dt, kCpu, mean, std);
}
// Multiples of 0.25 in [-2, 2): many exact ties (comparisons, maximum, max and max pooling).
Tensor quantized(const Shape& s, uint64_t seed, DType dt) {
  std::vector<double> v = uniform(s, seed, DType::f64, -2, 2).to_vector<double>();
  for (double& x : v) x = std::floor(x * 4) / 4;
  return Tensor::from_vector(v, s).to(dt);
}
Tensor random_index(const Shape& s, int64_t bound, uint64_t seed) {
  std::vector<double> u = uniform(s, seed, DType::f64, 0, 1).to_vector<double>();
  std::vector<int64_t> idx(u.size());
  for (size_t i = 0; i < u.size(); ++i) idx[i] = std::min(bound - 1, static_cast<int64_t>(u[i] * bound));
  return Tensor::from_vector(idx, s);
}

// Every test here: skipped without a GPU; Precision::strict while it runs, the old value after.
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    old_precision_ = precision();
    if (!backend_available(kCuda)) GTEST_SKIP() << "no CUDA device is visible (or built without CUDA)";
    set_precision(Precision::strict);
  }
  void TearDown() override { set_precision(old_precision_); }

 private:
  Precision old_precision_ = Precision::tf32;
};

template <class T>
class CudaParity : public CudaTest {
 protected:
  static constexpr DType dt = dtype_of<T>();
};
using FloatTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(CudaParity, FloatTypes);

using CudaParityFixed = CudaTest;  // the tests that are not per float type

// ---- elementwise ---------------------------------------------------------------------------------

struct UnaryCase {
  UnaryOp op;
  const char* name;
  double a, b;     // the op's scalars
  double lo, hi;   // input domain
};
// Every UnaryOp, some twice (both sides of a switch, other parameters).
const std::vector<UnaryCase>& unary_cases() {
  static const std::vector<UnaryCase> cases = {
      {UnaryOp::neg, "neg", 0, 0, -3, 3},
      {UnaryOp::exp, "exp", 0, 0, -10, 10},
      {UnaryOp::log, "log", 0, 0, 1e-3, 100},
      {UnaryOp::sqrt, "sqrt", 0, 0, 0, 100},
      {UnaryOp::abs, "abs", 0, 0, -3, 3},
      {UnaryOp::sign, "sign", 0, 0, -3, 3},
      {UnaryOp::relu, "relu", 0, 0, -3, 3},
      {UnaryOp::sigmoid, "sigmoid", 0, 0, -20, 20},
      {UnaryOp::tanh, "tanh", 0, 0, -6, 6},
      {UnaryOp::atanh, "atanh", 0, 0, -0.99, 0.99},
      {UnaryOp::softplus, "softplus(beta 1, threshold 20)", 1, 20, -30, 30},
      {UnaryOp::softplus, "softplus(beta 2, threshold 3)", 2, 3, -5, 5},
      {UnaryOp::leaky_relu, "leaky_relu", 0.1, 0, -3, 3},
      {UnaryOp::clamp, "clamp", -0.5, 0.7, -2, 2},
      {UnaryOp::pow, "pow 2.5", 2.5, 0, 0, 4},
      {UnaryOp::pow, "pow 3 (negative base)", 3, 0, -2, 2},
      {UnaryOp::pow, "pow 2 (negative base)", 2, 0, -2, 2},
      {UnaryOp::pow, "pow -1.5", -1.5, 0, 0.1, 4},
      {UnaryOp::affine, "affine", -1.5, 0.25, -3, 3},
      {UnaryOp::gt_scalar, "gt_scalar", 0.3, 0, -1, 1},
      {UnaryOp::in_range, "in_range", -0.5, 0.5, -1, 1},
      {UnaryOp::leaky_slope, "leaky_slope", 0.2, 0, -1, 1},
      {UnaryOp::reciprocal, "reciprocal", 0, 0, 0.1, 4},
      {UnaryOp::reciprocal, "reciprocal (negative)", 0, 0, -4, -0.1},
  };
  return cases;
}
// The list above must name every UnaryOp: reciprocal is the last enumerator.
constexpr int kUnaryOps = static_cast<int>(UnaryOp::reciprocal) + 1;
static_assert(kUnaryOps == 19, "a new UnaryOp needs a case in unary_cases()");

TYPED_TEST(CudaParity, EveryUnaryOp) {
  std::set<int> covered;
  for (const Shape& shape : {Shape{4, 3, 5, 7}, Shape{37, 1031}, Shape{}}) {
    uint64_t seed = 100;
    for (const UnaryCase& c : unary_cases()) {
      covered.insert(static_cast<int>(c.op));
      Tensor x = uniform(shape, ++seed, this->dt, c.lo, c.hi);
      expect_close(ops::unary(c.op, x, c.a, c.b), ops::unary(c.op, dev(x), c.a, c.b),
                   std::string(c.name) + " " + shape_str(shape));
    }
  }
  EXPECT_EQ(static_cast<int>(covered.size()), kUnaryOps);
  // The named wrappers reach the same kernels.
  Tensor x = uniform({6, 7}, 1, this->dt, 0.5, 2);
  expect_close(ops::reciprocal(x), ops::reciprocal(dev(x)), "ops::reciprocal");
  expect_close(ops::pow(x, 1.5), ops::pow(dev(x), 1.5), "ops::pow");
  expect_close(ops::clamp(x, 0.7, 1.2), ops::clamp(dev(x), 0.7, 1.2), "ops::clamp");
  expect_close(ops::add_scalar(x, -3), ops::add_scalar(dev(x), -3), "ops::add_scalar");
  expect_close(ops::mul_scalar(x, 0.3), ops::mul_scalar(dev(x), 0.3), "ops::mul_scalar");
  expect_close(ops::log(x), ops::log(dev(x)), "ops::log");
  expect_close(ops::sqrt(x), ops::sqrt(dev(x)), "ops::sqrt");
}

// Zeros, bounds, NaN and infinities: the CPU's conventions (for example relu and max keep a NaN, as
// PyTorch) must hold on the GPU too, where fmax/fmin would silently drop it.
TYPED_TEST(CudaParity, UnaryOpsOnSpecialValues) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  Tensor x = Tensor::from_vector<double>({0.0, -0.0, 1, -1, 0.5, -0.5, 0.3, 0.7, 2, -2, 1e-30, -1e-30, 100, -100, 1e30,
                                          inf, -inf, nan},
                                         {18})
                 .to(this->dt);
  for (const UnaryCase& c : unary_cases())
    expect_close(ops::unary(c.op, x, c.a, c.b), ops::unary(c.op, dev(x), c.a, c.b),
                 std::string(c.name) + " on 0, +-1, bounds, tiny, huge, +-inf, NaN");
}

struct BinaryCase {
  BinaryOp op;
  const char* name;
};
const std::vector<BinaryCase>& binary_cases() {
  static const std::vector<BinaryCase> cases = {
      {BinaryOp::add, "add"}, {BinaryOp::sub, "sub"}, {BinaryOp::mul, "mul"},
      {BinaryOp::div, "div"}, {BinaryOp::maximum, "maximum"}, {BinaryOp::minimum, "minimum"},
      {BinaryOp::pow, "pow"}, {BinaryOp::gt, "gt"}, {BinaryOp::ge, "ge"},
      {BinaryOp::lt, "lt"}, {BinaryOp::le, "le"}, {BinaryOp::eq, "eq"},
      {BinaryOp::relu_grad, "relu_grad"}, {BinaryOp::add_relu, "add_relu"}};
  return cases;
}
static_assert(static_cast<int>(BinaryOp::add_relu) + 1 == 14, "a new BinaryOp needs a case in binary_cases()");

// Inputs for op: positive bases and exponents in [-2, 2) for pow, denominators away from 0 for div,
// values with ties for the comparisons and maximum/minimum.
std::pair<Tensor, Tensor> binary_inputs(BinaryOp op, const Shape& sa, const Shape& sb, uint64_t seed, DType dt) {
  switch (op) {
    case BinaryOp::pow: return {uniform(sa, seed, dt, 0.1, 3), uniform(sb, seed + 1, dt, -2, 2)};
    case BinaryOp::div: return {uniform(sa, seed, dt, -2, 2), uniform(sb, seed + 1, dt, 0.5, 2)};
    case BinaryOp::add: case BinaryOp::sub: case BinaryOp::mul:
      return {uniform(sa, seed, dt, -2, 2), uniform(sb, seed + 1, dt, -2, 2)};
    default: return {quantized(sa, seed, dt), quantized(sb, seed + 1, dt)};
  }
}

TYPED_TEST(CudaParity, EveryBinaryOpWithBroadcasting) {
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{4, 3, 5, 6}, {4, 3, 5, 6}}, {{4, 3, 5, 6}, {1, 3, 1, 1}}, {{1, 3, 1, 1}, {4, 3, 5, 6}},
      {{4, 1, 5, 1}, {1, 3, 1, 6}}, {{4, 3, 5, 6}, {}},           {{}, {4, 3, 5, 6}},
      {{5, 6}, {4, 3, 5, 6}},       {{4, 3, 5, 6}, {6}},          {{}, {}},
      {{300, 257}, {300, 1}}};
  uint64_t seed = 200;
  for (const BinaryCase& c : binary_cases())
    for (const auto& [sa, sb] : shapes) {
      auto [a, b] = binary_inputs(c.op, sa, sb, seed += 2, this->dt);
      expect_close(ops::binary(c.op, a, b), ops::binary(c.op, dev(a), dev(b)),
                   std::string(c.name) + " " + shape_str(sa) + " with " + shape_str(sb));
    }
  Tensor a = uniform({3, 4}, 1, this->dt), b = uniform({4}, 2, this->dt, 0.5, 1);
  expect_close(ops::add(a, b), ops::add(dev(a), dev(b)), "ops::add");
  expect_close(ops::sub(a, b), ops::sub(dev(a), dev(b)), "ops::sub");
  expect_close(ops::mul(a, b), ops::mul(dev(a), dev(b)), "ops::mul");
  expect_close(ops::div(a, b), ops::div(dev(a), dev(b)), "ops::div");
  expect_close(ops::maximum(a, b), ops::maximum(dev(a), dev(b)), "ops::maximum");
  expect_close(ops::minimum(a, b), ops::minimum(dev(a), dev(b)), "ops::minimum");
  expect_close(ops::expand(b, {2, 3, 4}), ops::expand(dev(b), {2, 3, 4}), "expand");
}

TYPED_TEST(CudaParity, BinaryOpsOnSpecialValues) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  std::vector<double> v = {0.0, -0.0, 1, -1, 2.5, -2.5, inf, -inf, nan};
  std::vector<double> av, bv;  // every pair
  for (double p : v)
    for (double q : v) {
      av.push_back(p);
      bv.push_back(q);
    }
  int64_t n = static_cast<int64_t>(av.size());
  Tensor a = Tensor::from_vector(av, {n}).to(this->dt), b = Tensor::from_vector(bv, {n}).to(this->dt);
  for (const BinaryCase& c : binary_cases())
    expect_close(ops::binary(c.op, a, b), ops::binary(c.op, dev(a), dev(b)),
                 std::string(c.name) + " on every pair of 0, -0, +-1, +-2.5, +-inf, NaN");
}

TYPED_TEST(CudaParity, Where) {
  Tensor a = uniform({4, 3, 5, 6}, 1, this->dt), b = uniform({1, 3, 1, 6}, 2, this->dt);
  Tensor cond_u8 = ops::unary(UnaryOp::gt_scalar, uniform({4, 1, 5, 1}, 3, DType::f64), 0).to(DType::u8);
  expect_close(ops::where(cond_u8, a, b), ops::where(dev(cond_u8), dev(a), dev(b)), "where, u8 condition");
  Tensor cond_float = ops::unary(UnaryOp::gt_scalar, uniform({4, 3, 5, 6}, 4, this->dt), 0);
  expect_close(ops::where(cond_float, b, a), ops::where(dev(cond_float), dev(b), dev(a)),
               "where, float condition");
}

// ---- optimizer update ----------------------------------------------------------------------------

// The fused SGD step (nn/optim's SGD::step): both backends round every product and sum on its own,
// so the parameter and the momentum buffer are the CPU's bit for bit (exact comparison), for the
// first step (buffer = d), later steps, Nesterov, and no momentum (no buffer).
TYPED_TEST(CudaParity, SgdStepBitForBit) {
  const Shape shape{1000, 37};
  const Tensor p0 = uniform(shape, 1, this->dt), g = uniform(shape, 2, this->dt, -1e-2, 1e-2);
  const Tensor b0 = uniform(shape, 3, this->dt, -1e-1, 1e-1);
  auto exact = [](const Tensor& cpu, const Tensor& cuda, const std::string& what) {
    const Tensor back = cuda.to(kCpu);
    EXPECT_EQ(std::memcmp(back.raw_data(), cpu.raw_data(), cpu.nbytes()), 0) << what;
    expect_close(cpu, cuda, what);  // names the worst element where the bits differ
  };
  for (double momentum : {0.0, 0.9})
    for (bool nesterov : {false, true})
      for (bool first : {false, true}) {
        if (momentum == 0 && (nesterov || first)) continue;
        const SgdStep s{0.05, 5e-4, momentum, 0.1, nesterov, first};
        Tensor p = p0.clone(), pd = dev(p0), buf, bufd;
        if (momentum != 0) {
          buf = first ? Tensor(shape, this->dt) : b0.clone();
          bufd = first ? Tensor(shape, this->dt, kCuda) : dev(b0);
        }
        ops::sgd_step_(p, g, buf, s);
        ops::sgd_step_(pd, dev(g), bufd, s);
        const std::string what = fmt::format("sgd_step momentum {} nesterov {} first {}", momentum, nesterov, first);
        exact(p, pd, what + ": the parameter");
        if (momentum != 0) exact(buf, bufd, what + ": the buffer");
      }
}

// Many parameters in one call (kSgdTensorsPerLaunch per launch, their elements end to end; sizes
// from 1 element up, more than one launch's worth): the CPU's bits for each.
TYPED_TEST(CudaParity, SgdStepOfManyParametersBitForBit) {
  const SgdStep s{0.05, 5e-4, 0.9, 0, true, false};
  std::vector<SgdTensors> cpu, gpu;
  for (int i = 0; i < 2 * kSgdTensorsPerLaunch + 5; ++i) {
    const Shape shape{1 + (i * 37) % 300, i % 3 + 1};
    const Tensor p = uniform(shape, 10 + i, this->dt), g = uniform(shape, 500 + i, this->dt, -1e-2, 1e-2);
    const Tensor b = uniform(shape, 900 + i, this->dt, -1e-1, 1e-1);
    cpu.push_back({p.clone(), g, b.clone()});
    gpu.push_back({dev(p), dev(g), dev(b)});
  }
  ops::sgd_step_(cpu, s);
  ops::sgd_step_(gpu, s);
  for (size_t i = 0; i < cpu.size(); ++i)
    for (auto [c, g, what] : {std::tuple{&cpu[i].param, &gpu[i].param, "parameter"},
                              std::tuple{&cpu[i].momentum_buffer, &gpu[i].momentum_buffer, "buffer"}}) {
      const Tensor back = g->to(kCpu);
      EXPECT_EQ(std::memcmp(back.raw_data(), c->raw_data(), c->nbytes()), 0) << what << " " << i;
    }
}

// Batch norm's running statistics and batch counter in one pass: the CPU's bits.
TYPED_TEST(CudaParity, UpdateRunningStatsBitForBit) {
  const Tensor rm = uniform({300}, 1, this->dt), rv = uniform({300}, 2, this->dt, 0.5, 2);
  const Tensor mean = uniform({300}, 3, this->dt, -5, 5), var = uniform({300}, 4, this->dt, 0, 3);
  Tensor m_cpu = rm.clone(), v_cpu = rv.clone(), count_cpu = Tensor::from_vector<int64_t>({7}, {});
  Tensor m_gpu = dev(rm), v_gpu = dev(rv), count_gpu = dev(count_cpu);
  ops::update_running_stats_(m_cpu, v_cpu, count_cpu, mean, var, 0.1, 0.1 * 256 / 255);
  ops::update_running_stats_(m_gpu, v_gpu, count_gpu, dev(mean), dev(var), 0.1, 0.1 * 256 / 255);
  for (auto [cpu, gpu, what] : {std::tuple{&m_cpu, &m_gpu, "running_mean"}, std::tuple{&v_cpu, &v_gpu, "running_var"}}) {
    const Tensor back = gpu->to(kCpu);
    EXPECT_EQ(std::memcmp(back.raw_data(), cpu->raw_data(), cpu->nbytes()), 0) << what;
    expect_close(*cpu, *gpu, what);
  }
  EXPECT_EQ(count_gpu.to(kCpu).item<int64_t>(), 8);
}

// An eval-mode batch norm folded into a convolution's weights in one pass: the CPU's bits.
TYPED_TEST(CudaParity, BnFoldBitForBit) {
  const int64_t K = 70;
  const Tensor w = uniform({K, 33, 3, 3}, 1, this->dt), bias = uniform({K}, 2, this->dt);
  const Tensor gamma = uniform({K}, 3, this->dt, 0.1, 2), beta = uniform({K}, 4, this->dt);
  const Tensor mean = uniform({K}, 5, this->dt), var = uniform({K}, 6, this->dt, 0, 3);
  for (bool with_bias : {false, true}) {
    const Tensor b = with_bias ? bias : Tensor();
    const ops::BnFold cpu = ops::bn_fold(w, b, gamma, beta, mean, var, 1e-5);
    const ops::BnFold gpu =
        ops::bn_fold(dev(w), with_bias ? dev(b) : Tensor(), dev(gamma), dev(beta), dev(mean), dev(var), 1e-5);
    for (auto [c, g, what] : {std::tuple{&cpu.weight, &gpu.weight, "weight"},
                              std::tuple{&cpu.shift, &gpu.shift, "shift"},
                              std::tuple{&cpu.invstd, &gpu.invstd, "invstd"}}) {
      const Tensor back = g->to(kCpu);
      EXPECT_EQ(std::memcmp(back.raw_data(), c->raw_data(), c->nbytes()), 0) << what << " bias " << with_bias;
      expect_close(*c, *g, what);
    }
  }
}

// The fused cross-entropy gradient: on the GPU the bits of the GPU's own separate ops (softmax, the
// one-hot row subtracted, times g), and the CPU's result within the tolerance (exp differs in the
// last bit between the two math libraries, so the devices are not compared bit for bit).
TYPED_TEST(CudaParity, CrossEntropyBackwardMatchesTheSeparateOps) {
  const Tensor z = normal({300, 10}, 70, this->dt, 0, 4), g = uniform({300}, 71, this->dt);
  std::vector<int64_t> y(300);
  for (int64_t i = 0; i < 300; ++i) y[i] = (i * 7) % 10;
  const Tensor labels = Tensor::from_vector<int64_t>(y, {300});
  const Tensor zd = dev(z), gd = dev(g), yd = dev(labels);
  const Tensor fused = ops::cross_entropy_backward(zd, yd, gd), back = fused.to(kCpu);
  const Tensor separate =
      ops::mul(ops::sub(ops::softmax(zd, 1), ops::one_hot(yd, 10, this->dt)), gd.reshape({300, 1})).to(kCpu);
  EXPECT_EQ(std::memcmp(back.raw_data(), separate.raw_data(), back.nbytes()), 0);
  expect_close(ops::cross_entropy_backward(z, labels, g), fused, "cross_entropy_backward");
}

// One projected sign step of Linf PGD in one pass: the CPU's bits (every step is a correctly
// rounded add or sub, or a comparison).
TYPED_TEST(CudaParity, LinfSignStepBitForBit) {
  const Shape shape{6, 3, 17, 17};
  const Tensor x0 = uniform(shape, 80, this->dt, 0, 1), g = normal(shape, 81, this->dt);
  const Tensor x = ops::add(x0, normal(shape, 82, this->dt, 0, 0.02));
  const Tensor steps = Tensor::from_vector<double>({0.01, 0, 0.5, 2.0 / 255, 0.1, 0.03,  // alpha
                                                    0.03, 0.1, 0.05, 0, 8.0 / 255, 0.3},  // eps
                                                   {2, 6}).to(this->dt);
  const Tensor cpu = ops::linf_sign_step(x0, x, g, steps);
  const Tensor gpu = ops::linf_sign_step(dev(x0), dev(x), dev(g), dev(steps));
  const Tensor back = gpu.to(kCpu);
  EXPECT_EQ(std::memcmp(back.raw_data(), cpu.raw_data(), cpu.nbytes()), 0);
  expect_close(cpu, gpu, "linf_sign_step");
}

// ---- reductions ----------------------------------------------------------------------------------

TYPED_TEST(CudaParity, SumToAndSumOverDims) {
  Tensor x = uniform({4, 3, 5, 6}, 1, this->dt), ax = ops::abs(x);
  for (const Shape& target : {Shape{1, 3, 1, 1}, Shape{4, 1, 5, 1}, Shape{1, 1, 1, 6}, Shape{3, 1, 1},
                              Shape{5, 6}, Shape{4, 3, 5, 1}, Shape{}, Shape{4, 3, 5, 6}})
    expect_close(ops::sum_to(x, target), ops::sum_to(dev(x), target), "sum_to " + shape_str(target),
                 ops::sum_to(ax, target));
  expect_close(ops::sum(x, {1, 3}), ops::sum(dev(x), {1, 3}), "sum dims {1, 3}", ops::sum(ax, {1, 3}));
  expect_close(ops::sum(x, {0}, true), ops::sum(dev(x), {0}, true), "sum dim 0 keepdim", ops::sum(ax, {0}, true));
  expect_close(ops::sum(x, {-1}), ops::sum(dev(x), {-1}), "sum dim -1", ops::sum(ax, {-1}));
  expect_close(ops::mean(x), ops::mean(dev(x)), "mean", ops::mean(ax));
  expect_close(ops::mean(x, {0, 2, 3}, true), ops::mean(dev(x), {0, 2, 3}, true), "mean over N, H, W",
               ops::mean(ax, {0, 2, 3}, true));
  // [N, C, H, W] -> [1, C, 1, 1] of a CIFAR-sized activation (the batch-norm / bias gradient pattern).
  Tensor act = normal({32, 64, 16, 16}, 2, this->dt);
  expect_close(ops::sum_to(act, {1, 64, 1, 1}), ops::sum_to(dev(act), {1, 64, 1, 1}), "sum_to [1, 64, 1, 1]",
               ops::sum_to(ops::abs(act), {1, 64, 1, 1}));
  // About a million elements into one: a multi-block reduction.
  Tensor big = uniform({1009, 997}, 3, this->dt);
  expect_close(ops::sum(big), ops::sum(dev(big)), "full sum of 1005973 elements", ops::sum(ops::abs(big)));
  Tensor big_row = uniform({1005973}, 4, this->dt, 0, 1);
  expect_close(ops::sum(big_row), ops::sum(dev(big_row)), "full sum of 1005973 positive elements");
}

// Values and indices; quantized inputs tie often and the first maximum must win on both devices.
TYPED_TEST(CudaParity, MaxAndArgmax) {
  Tensor x = quantized({4, 3, 5, 6}, 1, this->dt);
  for (int64_t dim = -1; dim < 4; ++dim) {
    auto [values, indices] = ops::max(x, dim);
    auto [cuda_values, cuda_indices] = ops::max(dev(x), dim);
    expect_close(values, cuda_values, "max values, dim " + std::to_string(dim));
    expect_close(indices, cuda_indices, "max indices, dim " + std::to_string(dim));
  }
  auto [vk, ik] = ops::max(x, 2, true);
  auto [cvk, cik] = ops::max(dev(x), 2, true);
  expect_close(vk, cvk, "max keepdim values");
  expect_close(ik, cik, "max keepdim indices");
  Tensor logits = normal({64, 1000}, 2, this->dt);
  expect_close(ops::argmax(logits, 1), ops::argmax(dev(logits), 1), "argmax of [64, 1000] over dim 1");
  Tensor ties = quantized({64, 1000}, 3, this->dt);
  expect_close(ops::argmax(ties, 1), ops::argmax(dev(ties), 1), "argmax with ties over 1000 classes");
  expect_close(ops::argmax(ties, 0), ops::argmax(dev(ties), 0), "argmax with ties over dim 0");
  // A NaN is the maximum (the first NaN wins), as on the CPU and in PyTorch.
  Tensor with_nan = Tensor::from_vector<double>({1, std::nan(""), 3, std::nan(""), 2, 5, 5, 0}, {2, 4}).to(this->dt);
  auto [nan_values, nan_indices] = ops::max(with_nan, 1);
  auto [cuda_nan_values, cuda_nan_indices] = ops::max(dev(with_nan), 1);
  expect_close(nan_values, cuda_nan_values, "max values with NaN");
  expect_close(nan_indices, cuda_nan_indices, "max indices with NaN");
}

// ---- linear algebra ------------------------------------------------------------------------------

TYPED_TEST(CudaParity, MatmulAllTransposes) {
  const int64_t M = 37, K = 53, N = 29;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Tensor a = uniform(ta ? Shape{K, M} : Shape{M, K}, 1, this->dt);
      Tensor b = uniform(tb ? Shape{N, K} : Shape{K, N}, 2, this->dt);
      expect_close(ops::matmul(a, b, ta, tb), ops::matmul(dev(a), dev(b), ta, tb),
                   "matmul 37x53x29 trans_a " + std::to_string(ta) + " trans_b " + std::to_string(tb),
                   ops::matmul(ops::abs(a), ops::abs(b), ta, tb));
    }
  for (const auto& [sa, sb] : std::vector<std::pair<Shape, Shape>>{
           {{1, 1}, {1, 1}}, {{1, 64}, {64, 10}}, {{128, 512}, {512, 10}}, {{256, 1}, {1, 3}}}) {
    Tensor a = uniform(sa, 3, this->dt), b = uniform(sb, 4, this->dt);
    expect_close(ops::matmul(a, b), ops::matmul(dev(a), dev(b)), "matmul " + shape_str(sa) + " x " + shape_str(sb),
                 ops::matmul(ops::abs(a), ops::abs(b)));
  }
}

// ---- convolution, batch norm, pooling ------------------------------------------------------------

struct ConvGeometry {
  Shape x, w;
  int64_t stride, padding;
};

TYPED_TEST(CudaParity, Conv2dForwardAndBothBackwardParts) {
  const std::vector<ConvGeometry> geometries = {
      {{3, 3, 9, 11}, {8, 3, 3, 3}, 1, 1},   // 3x3, pad 1, stride 1
      {{3, 3, 9, 11}, {8, 3, 3, 3}, 2, 1},   // 3x3, stride 2
      {{3, 3, 9, 11}, {8, 3, 1, 1}, 2, 0},   // 1x1, stride 2 (the ResNet shortcut)
      {{3, 3, 9, 11}, {8, 3, 5, 5}, 1, 0},   // 5x5, no padding
      {{3, 8, 10, 10}, {8, 8, 3, 3}, 2, 0},  // stride 2 without padding, 8 -> 8
      {{2, 3, 16, 16}, {16, 3, 3, 3}, 1, 1}, // CIFAR-ish stem
      {{2, 16, 16, 16}, {32, 16, 3, 3}, 2, 1},
  };
  uint64_t seed = 300;
  for (const ConvGeometry& g : geometries)
    for (bool with_bias : {true, false}) {
      Conv2dParams p{g.stride, g.padding};
      std::string what = "conv2d x " + shape_str(g.x) + " w " + shape_str(g.w) + " stride " +
                         std::to_string(g.stride) + " pad " + std::to_string(g.padding) +
                         (with_bias ? " with bias" : " without bias");
      Tensor x = normal(g.x, ++seed, this->dt), w = normal(g.w, ++seed, this->dt);
      Tensor bias = with_bias ? normal({g.w[0]}, ++seed, this->dt) : Tensor();
      Tensor y = ops::conv2d(x, w, bias, p);
      Tensor cuda_y = ops::conv2d(dev(x), dev(w), with_bias ? dev(bias) : Tensor(), p);
      expect_close(y, cuda_y, what + ": forward",
                   ops::conv2d(ops::abs(x), ops::abs(w), with_bias ? ops::abs(bias) : Tensor(), p));
      Tensor dy = normal(y.shape(), ++seed, this->dt), ady = ops::abs(dy);
      expect_close(ops::conv2d_backward_data(dy, w, g.x, p), ops::conv2d_backward_data(dev(dy), dev(w), g.x, p),
                   what + ": backward data", ops::conv2d_backward_data(ady, ops::abs(w), g.x, p));
      auto [dw, dbias] = ops::conv2d_backward_filter(dy, x, g.w, p, with_bias);
      auto [cuda_dw, cuda_dbias] = ops::conv2d_backward_filter(dev(dy), dev(x), g.w, p, with_bias);
      auto [mag_dw, mag_dbias] = ops::conv2d_backward_filter(ady, ops::abs(x), g.w, p, with_bias);
      expect_close(dw, cuda_dw, what + ": backward filter", mag_dw);
      EXPECT_EQ(cuda_dbias.defined(), with_bias) << what;
      if (with_bias) expect_close(dbias, cuda_dbias, what + ": backward bias", mag_dbias);
    }
}

TYPED_TEST(CudaParity, BatchNormTrainEvalAndBackward) {
  const double eps = 1e-5;
  uint64_t seed = 400;
  // [32, 16, 32, 32]: 32768 values per channel, which the kernels sum in several slices.
  for (const Shape& shape : {Shape{4, 3, 5, 6}, Shape{16, 5}, Shape{8, 64, 8, 8}, Shape{32, 16, 32, 32}}) {
    std::string what = "batch norm " + shape_str(shape);
    int64_t C = shape[1];
    // Activations with a mean of 3 and a standard deviation of 2: the variance must not cancel.
    Tensor x = normal(shape, ++seed, this->dt, 3, 2), gamma = uniform({C}, ++seed, this->dt, 0.5, 1.5);
    Tensor beta = uniform({C}, ++seed, this->dt);
    auto [y, stats] = ops::batch_norm_train(x, gamma, beta, eps);
    auto [cuda_y, cuda_stats] = ops::batch_norm_train(dev(x), dev(gamma), dev(beta), eps);
    expect_close(y, cuda_y, what + ": train forward y", flat_magnitude(y, max_abs(y)));
    expect_close(stats.mean, cuda_stats.mean, what + ": batch mean", flat_magnitude(stats.mean, 3 + 2));
    expect_close(stats.var, cuda_stats.var, what + ": batch variance");
    expect_close(stats.invstd, cuda_stats.invstd, what + ": invstd");
    // Eval mode with given statistics.
    Tensor mean = uniform({C}, ++seed, this->dt, 2, 4), invstd = uniform({C}, ++seed, this->dt, 0.3, 0.7);
    Tensor y_eval = ops::batch_norm_apply(x, gamma, beta, mean, invstd);
    expect_close(y_eval, ops::batch_norm_apply(dev(x), dev(gamma), dev(beta), dev(mean), dev(invstd)),
                 what + ": eval forward", flat_magnitude(y_eval, max_abs(y_eval)));
    // Backward with the CPU's statistics on both devices, so only the backward kernel is compared.
    Tensor dy = normal(shape, ++seed, this->dt);
    ops::BatchNormStats moved{dev(stats.mean), dev(stats.var), dev(stats.invstd)};
    ops::BatchNormGrads g = ops::batch_norm_backward(dy, x, gamma, stats, true, true, true);
    ops::BatchNormGrads cg = ops::batch_norm_backward(dev(dy), dev(x), dev(gamma), moved, true, true, true);
    // dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)) cancels; relative to its largest entry.
    expect_close(g.dx, cg.dx, what + ": dx", flat_magnitude(g.dx, max_abs(g.dx)));
    expect_close(g.dgamma, cg.dgamma, what + ": dgamma", flat_magnitude(g.dgamma, max_abs(g.dgamma)));
    Shape per_channel(shape.size(), 1);
    per_channel[1] = C;
    expect_close(g.dbeta, cg.dbeta, what + ": dbeta", ops::sum_to(ops::abs(dy), per_channel).reshape({C}));
    // Only what is asked for is computed.
    ops::BatchNormGrads only_dx = ops::batch_norm_backward(dev(dy), dev(x), dev(gamma), moved, true, false, false);
    expect_close(g.dx, only_dx.dx, what + ": dx alone", flat_magnitude(g.dx, max_abs(g.dx)));
    EXPECT_FALSE(only_dx.dgamma.defined() || only_dx.dbeta.defined()) << what;
    ops::BatchNormGrads only_params =
        ops::batch_norm_backward(dev(dy), dev(x), dev(gamma), moved, false, true, true);
    EXPECT_FALSE(only_params.dx.defined()) << what;
    expect_close(g.dgamma, only_params.dgamma, what + ": dgamma alone", flat_magnitude(g.dgamma, max_abs(g.dgamma)));
  }
}

TYPED_TEST(CudaParity, MaxPoolAndAvgPoolForwardAndBackward) {
  const std::vector<Pool2dParams> params = {{2, 2, 0}, {3, 2, 1}, {3, 1, 1}};
  uint64_t seed = 500;
  for (const Shape& shape : {Shape{3, 4, 8, 8}, Shape{2, 3, 9, 7}})
    for (const Pool2dParams& p : params) {
      const std::string what =
          fmt::format(" {} kernel {} stride {} pad {}", shape_str(shape), p.kernel, p.stride, p.padding);
      // Max pooling on values with ties (the first maximum in the window wins) and all-negative ones.
      for (bool negative : {false, true}) {
        Tensor x = quantized(shape, ++seed, this->dt);
        if (negative) x = ops::add_scalar(ops::neg(ops::abs(x)), -0.25);
        auto [y, idx] = ops::max_pool2d(x, p);
        auto [cuda_y, cuda_idx] = ops::max_pool2d(dev(x), p);
        expect_close(y, cuda_y, "max_pool2d" + what);
        expect_close(idx, cuda_idx, "max_pool2d indices" + what);
        Tensor dy = normal(y.shape(), ++seed, this->dt);
        Tensor dx = ops::max_pool2d_backward(dy, idx, shape), dx_scale = ops::max_pool2d_backward(ops::abs(dy), idx, shape);
        expect_close(dx, ops::max_pool2d_backward(dev(dy), dev(idx), shape), "max_pool2d backward" + what, dx_scale);
        // The deterministic mode's kernel (one thread per plane, no atomics) too.
        const bool old = deterministic();
        set_deterministic(true);
        Tensor det = ops::max_pool2d_backward(dev(dy), dev(idx), shape);
        set_deterministic(old);
        expect_close(dx, det, "deterministic max_pool2d backward" + what, dx_scale);
      }
      Tensor x = normal(shape, ++seed, this->dt);
      Tensor y = ops::avg_pool2d(x, p);
      expect_close(y, ops::avg_pool2d(dev(x), p), "avg_pool2d" + what, ops::avg_pool2d(ops::abs(x), p));
      Tensor dy = normal(y.shape(), ++seed, this->dt);
      expect_close(ops::avg_pool2d_backward(dy, shape, p), ops::avg_pool2d_backward(dev(dy), shape, p),
                   "avg_pool2d backward" + what, ops::avg_pool2d_backward(ops::abs(dy), shape, p));
    }
}

// ---- softmax and losses --------------------------------------------------------------------------

TYPED_TEST(CudaParity, SoftmaxLogSoftmaxAndCrossEntropy) {
  uint64_t seed = 600;
  for (const Shape& shape : {Shape{6, 10}, Shape{4, 3, 5}, Shape{64, 1000}, Shape{3, 1}})
    for (int64_t dim : {1, 0, -1}) {
      const std::string what = fmt::format(" {} dim {}", shape_str(shape), dim);
      Tensor x = normal(shape, ++seed, this->dt, 0, 3);
      expect_close(ops::softmax(x, dim), ops::softmax(dev(x), dim), "softmax" + what);
      // log_softmax = x - max - log(sum exp(x - max)) cancels near 0; relative to the largest |x|.
      Tensor ls = ops::log_softmax(x, dim);
      expect_close(ls, ops::log_softmax(dev(x), dim), "log_softmax" + what,
                   flat_magnitude(ls, max_abs(x) + max_abs(ls)));
    }
  for (const Shape& shape : {Shape{8, 10}, Shape{64, 1000}, Shape{5, 1}}) {
    Tensor logits = normal(shape, ++seed, this->dt, 0, 3);
    Tensor labels = random_index({shape[0]}, shape[1], ++seed);
    Tensor loss = ops::cross_entropy(logits, labels);
    expect_close(loss, ops::cross_entropy(dev(logits), dev(labels)), "cross_entropy " + shape_str(shape),
                 flat_magnitude(loss, max_abs(logits) + max_abs(loss)));
    expect_close(ops::one_hot(labels, shape[1], this->dt), ops::one_hot(dev(labels), shape[1], this->dt),
                 "one_hot " + shape_str(shape));
  }
}

// ---- indexing and slab copies --------------------------------------------------------------------

TYPED_TEST(CudaParity, GatherScatterIndexSelectIndexAdd) {
  Tensor x = uniform({6, 7}, 1, this->dt);
  Tensor i1 = random_index({6, 4}, 7, 2), i0 = random_index({3, 7}, 6, 3);
  expect_close(ops::gather(x, 1, i1), ops::gather(dev(x), 1, dev(i1)), "gather dim 1");
  expect_close(ops::gather(x, 0, i0), ops::gather(dev(x), 0, dev(i0)), "gather dim 0");
  Tensor x3 = uniform({4, 3, 5}, 4, this->dt);
  Tensor i3 = random_index({4, 3, 2}, 5, 5);
  expect_close(ops::gather(x3, 2, i3), ops::gather(dev(x3), 2, dev(i3)), "gather dim 2 of 3-D");
  // Scatter and index_add with repeated indices: several sources add into one element.
  Tensor src1 = uniform({6, 4}, 6, this->dt), src0 = uniform({3, 7}, 7, this->dt);
  expect_close(ops::scatter_add({6, 7}, 1, i1, src1), ops::scatter_add({6, 7}, 1, dev(i1), dev(src1)),
               "scatter_add dim 1", ops::scatter_add({6, 7}, 1, i1, ops::abs(src1)));
  expect_close(ops::scatter_add({6, 7}, 0, i0, src0), ops::scatter_add({6, 7}, 0, dev(i0), dev(src0)),
               "scatter_add dim 0", ops::scatter_add({6, 7}, 0, i0, ops::abs(src0)));
  Tensor many = random_index({512, 2}, 3, 8), src_many = uniform({512, 2}, 9, this->dt);
  expect_close(ops::scatter_add({3, 2}, 0, many, src_many), ops::scatter_add({3, 2}, 0, dev(many), dev(src_many)),
               "scatter_add, 512 rows into 3", ops::scatter_add({3, 2}, 0, many, ops::abs(src_many)));
  Tensor table = uniform({10, 6}, 10, this->dt), rows = random_index({25}, 10, 11);
  expect_close(ops::index_select(table, rows), ops::index_select(dev(table), dev(rows)), "index_select");
  Tensor src = uniform({25, 6}, 12, this->dt);
  expect_close(ops::index_add({10, 6}, rows, src), ops::index_add({10, 6}, dev(rows), dev(src)), "index_add",
               ops::index_add({10, 6}, rows, ops::abs(src)));
  Tensor rows_many = random_index({4096}, 4, 13), src_rows = uniform({4096, 3}, 14, this->dt);
  expect_close(ops::index_add({4, 3}, rows_many, src_rows), ops::index_add({4, 3}, dev(rows_many), dev(src_rows)),
               "index_add, 4096 rows into 4", ops::index_add({4, 3}, rows_many, ops::abs(src_rows)));
}

TYPED_TEST(CudaParity, CatNarrowAndViews) {
  Tensor a = uniform({2, 3, 4}, 1, this->dt), b = uniform({2, 5, 4}, 2, this->dt), c = uniform({2, 1, 4}, 3, this->dt);
  expect_close(cat({a, b, c}, 1), cat({dev(a), dev(b), dev(c)}, 1), "cat dim 1");
  expect_close(cat({a, a}, 0), cat({dev(a), dev(a)}, 0), "cat dim 0");
  expect_close(cat({a, ops::narrow(a, 2, 1, 2)}, 2), cat({dev(a), ops::narrow(dev(a), 2, 1, 2)}, 2), "cat dim 2");
  Tensor x = uniform({4, 5, 6, 7}, 4, this->dt);
  for (int64_t dim = 0; dim < 4; ++dim)
    expect_close(ops::narrow(x, dim, 1, 3), ops::narrow(dev(x), dim, 1, 3), "narrow dim " + std::to_string(dim));
  // Views with an offset: slice, select and reshape of a device tensor, and moving a CPU view.
  Tensor dx = dev(x);
  expect_close(x.slice(1, 3), dx.slice(1, 3), "slice of a device tensor");
  expect_close(x.slice(1, 3).clone(), dx.slice(1, 3).clone(), "clone of a device slice");
  expect_close(x.select(2), dx.select(2), "select of a device tensor");
  expect_close(x.select(3).reshape({-1}), dx.select(3).reshape({-1}), "reshape of a device select");
  expect_close(x.slice(2, 4), dev(x.slice(2, 4)), "a CPU slice moved to the device");
  expect_close(x.select(1).flatten(0), dev(x.select(1)).flatten(0), "flatten");
  // cat and narrow move any dtype.
  Tensor ints = random_index({3, 4}, 100, 5);
  expect_close(cat({ints, ints}, 1), cat({dev(ints), dev(ints)}, 1), "cat of i64");
  expect_close(ops::narrow(ints.to(DType::u8), 1, 1, 2), ops::narrow(dev(ints.to(DType::u8)), 1, 1, 2),
               "narrow of u8");
}

// ---- creation ------------------------------------------------------------------------------------

TEST_F(CudaParityFixed, FillZerosOnesFullArange) {
  for (DType dt : {DType::f32, DType::f64, DType::i64, DType::u8}) {
    std::string name = dtype_name(dt);
    expect_close(Tensor::zeros({3, 5}, dt), Tensor::zeros({3, 5}, dt, kCuda), "zeros " + name);
    expect_close(Tensor::ones({3, 5}, dt), Tensor::ones({3, 5}, dt, kCuda), "ones " + name);
    expect_close(Tensor::full({1001}, 7, dt), Tensor::full({1001}, 7, dt, kCuda), "full 7 " + name);
    expect_close(Tensor::scalar(3, dt), Tensor::scalar(3, dt, kCuda), "scalar " + name);
    // fill_ through a view with an offset touches only the view.
    Tensor host = Tensor::zeros({4, 6}, dt), device = Tensor::zeros({4, 6}, dt, kCuda);
    host.slice(1, 3).fill_(5);
    device.slice(1, 3).fill_(5);
    expect_close(host, device, "fill_ of rows 1..3 " + name);
    expect_close(Tensor::arange(0, 10, 1, dt), Tensor::arange(0, 10, 1, dt, kCuda), "arange 0..10 " + name);
    expect_close(Tensor::arange(10, 0, -3, dt), Tensor::arange(10, 0, -3, dt, kCuda), "arange 10..0 step -3 " + name);
  }
  expect_close(Tensor::full({5}, 2.5, DType::f32), Tensor::full({5}, 2.5, DType::f32, kCuda), "full 2.5 f32");
  expect_close(Tensor::full({5}, 0.1, DType::f64), Tensor::full({5}, 0.1, DType::f64, kCuda), "full 0.1 f64");
  for (DType dt : {DType::f32, DType::f64}) {
    expect_close(Tensor::arange(-3, 5, 0.5, dt), Tensor::arange(-3, 5, 0.5, dt, kCuda), "arange step 0.5");
    expect_close(Tensor::arange(0, 10000, 0.1, dt), Tensor::arange(0, 10000, 0.1, dt, kCuda),
                 "arange of 100000 with step 0.1");
  }
  expect_close(Tensor::arange(0, 300000, 1, DType::i64), Tensor::arange(0, 300000, 1, DType::i64, kCuda),
               "arange of 300000 i64");
}

// ---- copies and conversions ----------------------------------------------------------------------

// Values every dtype can hold: integers and fractions in [0, 250] (and negatives for the signed).
Tensor conversion_source(DType dt) {
  std::vector<double> v = {0, 1, 2, 3, 7, 100, 127, 128, 200, 250, 255};
  if (is_floating(dt)) v.insert(v.end(), {0.25, 0.5, 1.5, 2.5, 3.75, 99.999, 254.9});
  if (dt != DType::u8) v.insert(v.end(), {-1, -3, -128, -1000});
  if (dt == DType::f32 || dt == DType::f64) v.insert(v.end(), {-0.5, -2.7, 1e6 + 0.1, 1.0 / 3});
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}).to(dt);
}

TEST_F(CudaParityFixed, CopiesAndDtypeConversions) {
  const std::vector<DType> dtypes = {DType::f32, DType::f64, DType::i64, DType::u8};
  for (DType from : dtypes)
    for (DType to : dtypes) {
      std::string what = std::string(dtype_name(from)) + " -> " + dtype_name(to);
      // A negative or fractional value converted to u8 is undefined in C++: integers 0..255 only.
      Tensor src = to == DType::u8 ? conversion_source(DType::u8).to(from) : conversion_source(from);
      Tensor expected = src.to(to);
      // Converted on the device.
      expect_close(expected, dev(src).to(to), what + " on the device");
      // Converted during host -> device copy_.
      Tensor d(src.shape(), to, kCuda);
      d.copy_(src);
      expect_close(expected, d, what + " host -> device copy_");
      // Converted during device -> host copy_.
      Tensor h(src.shape(), to, kCpu);
      h.copy_(dev(src));
      expect_close(expected, dev(h), what + " device -> host copy_");
      // Device -> device copy_.
      Tensor dd(src.shape(), to, kCuda);
      dd.copy_(dev(src));
      expect_close(expected, dd, what + " device -> device copy_");
    }
  // Round trips are bit exact; f64 -> f32 rounds to nearest on both.
  Tensor x = normal({1000}, 1, DType::f64);
  expect_close(x, dev(x), "f64 host -> device");
  EXPECT_EQ(dev(x).to(kCpu).to_vector<double>(), x.to_vector<double>()) << "f64 round trip";
  expect_close(x.to(DType::f32), dev(x).to(DType::f32), "f64 -> f32 rounding");
  expect_close(x, dev(x).clone(), "clone on the device");
  // copy_ into a device view with an offset.
  Tensor host = Tensor::zeros({4, 3}, DType::f32), device = Tensor::zeros({4, 3}, DType::f32, kCuda);
  Tensor rows = normal({2, 3}, 2, DType::f32);
  host.slice(1, 3).copy_(rows);
  device.slice(1, 3).copy_(rows);
  expect_close(host, device, "copy_ into a device slice");
  // Element access reads through the device.
  EXPECT_EQ(dev(x).at<double>({17}), x.at<double>({17}));
  EXPECT_EQ(dev(Tensor::scalar(2.5, DType::f32)).item<float>(), 2.5f);
}

// ---- random numbers ------------------------------------------------------------------------------

TYPED_TEST(CudaParity, RandomNumbersMatchTheCpuStream) {
  for (const Shape& shape : {Shape{1}, Shape{3, 5, 7}, Shape{1001}, Shape{1 << 20}}) {
    const std::string what = fmt::format(" {}", shape_str(shape));
    Generator g_cpu(42, 7), g_cuda(42, 7);
    // Uniform [0, 1): bit-identical (the same integer lanes, the same scaling).
    Tensor u = rand(shape, g_cpu, this->dt), cu = rand(shape, g_cuda, this->dt, kCuda);
    EXPECT_EQ(cu.to(kCpu).template to_vector<TypeParam>(), u.template to_vector<TypeParam>()) << "rand" << what;
    // A second draw continues the stream on both.
    Tensor u2 = rand(shape, g_cpu, this->dt), cu2 = rand(shape, g_cuda, this->dt, kCuda);
    EXPECT_EQ(cu2.to(kCpu).template to_vector<TypeParam>(), u2.template to_vector<TypeParam>())
        << "second rand" << what;
    // low + (high - low) u: the product and the sum rounded separately on both (no fused
    // multiply-add: __fmul_rn / __fadd_rn there, -ffp-contract=off here), so bit-identical too.
    Tensor r = rand(shape, g_cpu, this->dt, kCpu, -2, 3), cr = rand(shape, g_cuda, this->dt, kCuda, -2, 3);
    EXPECT_EQ(cr.to(kCpu).template to_vector<TypeParam>(), r.template to_vector<TypeParam>()) << "rand in [-2, 3)" << what;
    // Normal: sqrt, log, cos, sin differ by a few ulp between libm and CUDA's math library.
    // |a - b| <= rel max(1, |b|), rel = 4e-6 (f32) or 1e-13 (f64): atol = rtol = rel, m = max(1, |b|).
    double rel = this->dt == DType::f64 ? 1e-13 : 4e-6;
    double loosen = rel / default_tol(this->dt).rtol;
    auto unit_floor = [](const Tensor& b) { return ops::maximum(ops::abs(b), Tensor::ones(b.shape(), b.dtype())); };
    Tensor n = randn(shape, g_cpu, this->dt), cn = randn(shape, g_cuda, this->dt, kCuda);
    expect_close(n, cn, "randn" + what, unit_floor(n), loosen);
    // mean + std z: z's error times std = 2.
    Tensor nm = randn(shape, g_cpu, this->dt, kCpu, 1.5, 2), cnm = randn(shape, g_cuda, this->dt, kCuda, 1.5, 2);
    expect_close(nm, cnm, "randn mean 1.5 std 2" + what, ops::mul_scalar(unit_floor(nm), 2), loosen);
    // Bernoulli thresholds the uniform stream: identical.
    Tensor bern = bernoulli(shape, 0.3, g_cpu, this->dt), cbern = bernoulli(shape, 0.3, g_cuda, this->dt, kCuda);
    EXPECT_EQ(cbern.to(kCpu).template to_vector<TypeParam>(), bern.template to_vector<TypeParam>()) << "bernoulli" << what;
  }
}

// ---- end to end: whole models --------------------------------------------------------------------

// Two copies of a model from one seed, the second moved to cuda:0. Train-mode forward (batch
// statistics, running statistics updated), backward of the cross-entropy, eval-mode forward: the
// logits, every parameter gradient and every buffer must agree.
template <class Model, class Config>
void check_model(const Config& config, DType dt, const Shape& input_shape, double loosen) {
  Generator g1(7), g2(7);
  auto cpu_model = std::make_shared<Model>(config, g1);
  auto cuda_model = std::make_shared<Model>(config, g2);
  cpu_model->to(dt);
  cuda_model->to(dt);
  cuda_model->to(kCuda);
  nn::NamedTensors cpu_state = cpu_model->state_dict(), cuda_state = cuda_model->state_dict();
  ASSERT_EQ(cpu_state.size(), cuda_state.size());
  for (size_t i = 0; i < cpu_state.size(); ++i) expect_close(cpu_state[i].second, cuda_state[i].second, "initial " + cpu_state[i].first);

  Generator gx(8);
  Tensor x = rand(input_shape, gx, dt);
  Tensor labels = random_index({input_shape[0]}, config.num_classes, 9);
  // Gradients and logits are sums with cancellation: compared relative to the tensor's largest entry.
  auto compare = [&](const Tensor& cpu, const Tensor& cuda, const std::string& what) {
    expect_close(cpu, cuda, what, flat_magnitude(cpu, max_abs(cpu)), loosen);
  };
  cpu_model->train();
  cuda_model->train();
  Var cpu_logits = cpu_model->forward(Var(x)), cuda_logits = cuda_model->forward(Var(dev(x)));
  compare(cpu_logits.data(), cuda_logits.data(), "train-mode logits");
  cross_entropy(cpu_logits, labels).backward();
  cross_entropy(cuda_logits, dev(labels)).backward();
  nn::NamedVars cpu_params = cpu_model->named_parameters(), cuda_params = cuda_model->named_parameters();
  ASSERT_EQ(cpu_params.size(), cuda_params.size());
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    const std::string& name = cpu_params[i].first;
    ASSERT_TRUE(cpu_params[i].second.grad().defined()) << name;
    ASSERT_TRUE(cuda_params[i].second.grad().defined()) << name << " has no gradient on cuda:0";
    compare(cpu_params[i].second.grad(), cuda_params[i].second.grad(), "gradient of " + name);
  }
  nn::NamedTensors cpu_buffers = cpu_model->named_buffers(), cuda_buffers = cuda_model->named_buffers();
  ASSERT_EQ(cpu_buffers.size(), cuda_buffers.size());
  for (size_t i = 0; i < cpu_buffers.size(); ++i)
    if (is_floating(cpu_buffers[i].second.dtype()))
      compare(cpu_buffers[i].second, cuda_buffers[i].second, "buffer " + cpu_buffers[i].first + " after a train step");
    else
      expect_close(cpu_buffers[i].second, cuda_buffers[i].second, "buffer " + cpu_buffers[i].first);
  cpu_model->eval();
  cuda_model->eval();
  NoGradGuard no_grad;
  compare(cpu_model->forward(Var(x)).data(), cuda_model->forward(Var(dev(x))).data(), "eval-mode logits");
}

TYPED_TEST(CudaParity, SmallCnnForwardAndBackward) {
  nn::SmallCNNConfig config;
  config.channels1 = 8;
  config.channels2 = 16;
  config.hidden = 32;
  check_model<nn::SmallCNN>(config, this->dt, {4, 1, 28, 28}, 1);
}

// f32 uses 100x the default tolerance (1e-4 + 1e-3 m): cuDNN and cuBLAS sum in another order than
// im2col + OpenBLAS, and the differences compound over 20 layers and 8 train-mode batch norms that
// divide by batch standard deviations; f64 keeps the default.
TYPED_TEST(CudaParity, ResNet18CifarForwardAndBackward) {
  check_model<nn::ResNet18>(nn::ResNetConfig::cifar(10), this->dt, {2, 3, 32, 32},
                            this->dt == DType::f32 ? 100 : 1);
}

}  // namespace
