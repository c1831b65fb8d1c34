// CUDA convolutions through cuDNN 9 (its convolution API: cudnnConvolutionForward and the two
// backward calls). Per input shape a ConvPlan holds the descriptors and the algorithms chosen
// once by cuDNN's heuristics (cudnnGet*Algorithm_v7: the first algorithm that runs, fits the
// workspace limit and meets the precision and determinism settings) or, in benchmark mode
// (set_conv_benchmark, not with deterministic), by timing them (cudnnFind*Algorithm: the fastest
// that fits); it is cached under a key that includes those settings. Workspaces come from the
// caching allocator (cudnnFind* allocates its own trial memory, once per shape).
//
// Precision: strict f32 uses CUDNN_FMA_MATH (no tensor cores, so no TF32), as PyTorch does with
// allow_tf32 off; tf32 uses CUDNN_DEFAULT_MATH, under which cuDNN may use TF32 tensor cores.
#include <cstdio>
#include <cstdlib>
#include <iterator>

#include <fmt/format.h>

#include "tensor/cuda/check.h"
#include "tensor/cuda/cuda_backend.h"
#include "tensor/cuda/kernels.cuh"

namespace afd::cuda {

namespace {
constexpr size_t kMaxWorkspace = size_t(1) << 30;  // 1 GiB

// RAII owners of the descriptors: each is created with its object and destroyed with it (not copyable).
template <class Handle, cudnnStatus_t (*Create)(Handle*), cudnnStatus_t (*Destroy)(Handle)>
struct Descriptor {
  Handle d = nullptr;
  Descriptor() { AFD_CUDNN_CHECK(Create(&d)); }
  ~Descriptor() { Destroy(d); }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
};
using TensorDesc = Descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDesc = Descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvDesc = Descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                            cudnnDestroyConvolutionDescriptor>;

int as_int(int64_t v, const char* what) {
  AFD_CHECK(v >= 0 && v <= INT32_MAX, "cuda conv2d: {} = {} does not fit cuDNN's int", what, v);
  return static_cast<int>(v);
}

// Picks the first result (heuristics: in cuDNN's order of preference; timed: fastest first) that
// cuDNN can run under the settings.
template <class Perf>
std::pair<Perf, bool> choose(const Perf* perf, int returned, bool need_deterministic) {
  for (int i = 0; i < returned; ++i) {
    const Perf& p = perf[i];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > kMaxWorkspace) continue;
    if (need_deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
    return {p, true};
  }
  return {Perf{}, false};
}
}  // namespace

struct ConvPlan {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  size_t fwd_bytes = 0, bwd_data_bytes = 0, bwd_filter_bytes = 0;
};

void ConvPlanDeleter::operator()(ConvPlan* plan) const { delete plan; }

ConvPlan& CudaBackend::conv_plan(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dParams& p) {
  const bool f32 = x.dtype() == DType::f32, strict = precision() == Precision::strict, det = deterministic();
  const bool timed = conv_benchmark() && !det;
  std::string key = fmt::format("{} {} {} {} {} {} {} {}", dtype_name(x.dtype()), shape_str(x.shape()),
                                shape_str(w.shape()), p.stride, p.padding, strict, det, timed);
  auto it = conv_plans_.find(key);
  if (it != conv_plans_.end()) return *it->second;

  std::unique_ptr<ConvPlan, ConvPlanDeleter> plan(new ConvPlan);
  cudnnDataType_t type = f32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
  AFD_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->x.d, CUDNN_TENSOR_NCHW, type, as_int(x.size(0), "N"),
                                             as_int(x.size(1), "C"), as_int(x.size(2), "H"), as_int(x.size(3), "W")));
  AFD_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->y.d, CUDNN_TENSOR_NCHW, type, as_int(y.size(0), "N"),
                                             as_int(y.size(1), "K"), as_int(y.size(2), "P"), as_int(y.size(3), "Q")));
  AFD_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w.d, type, CUDNN_TENSOR_NCHW, as_int(w.size(0), "K"),
                                             as_int(w.size(1), "C"), as_int(w.size(2), "R"), as_int(w.size(3), "S")));
  int pad = as_int(p.padding, "padding"), stride = as_int(p.stride, "stride");
  AFD_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(plan->conv.d, pad, pad, stride, stride, 1, 1,
                                                  CUDNN_CROSS_CORRELATION, type));
  plan->math = f32 && strict ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
  AFD_CUDNN_CHECK(cudnnSetConvolutionMathType(plan->conv.d, plan->math));

  constexpr int kMax = 16;
  int returned = 0;
  std::string what = fmt::format("x {} w {} stride {} padding {} ({}{}{})", shape_str(x.shape()),
                                 shape_str(w.shape()), p.stride, p.padding, strict ? "strict" : "tf32",
                                 det ? ", deterministic" : "", timed ? ", timed" : "");
  {
    cudnnConvolutionFwdAlgoPerf_t perf[kMax];
    if (timed)
      AFD_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(cudnn_, plan->x.d, plan->w.d, plan->conv.d, plan->y.d, kMax,
                                                           &returned, perf));
    else
      AFD_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(cudnn_, plan->x.d, plan->w.d, plan->conv.d, plan->y.d,
                                                             kMax, &returned, perf));
    auto [best, ok] = choose(perf, returned, det);
    AFD_CHECK(ok, "cuDNN offers no forward algorithm for {}", what);
    plan->fwd = best.algo;
    AFD_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(cudnn_, plan->x.d, plan->w.d, plan->conv.d, plan->y.d,
                                                            plan->fwd, &plan->fwd_bytes));
  }
  {
    cudnnConvolutionBwdDataAlgoPerf_t perf[kMax];
    if (timed)
      AFD_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(cudnn_, plan->w.d, plan->y.d, plan->conv.d, plan->x.d,
                                                                kMax, &returned, perf));
    else
      AFD_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnn_, plan->w.d, plan->y.d, plan->conv.d,
                                                                  plan->x.d, kMax, &returned, perf));
    auto [best, ok] = choose(perf, returned, det);
    AFD_CHECK(ok, "cuDNN offers no backward-data algorithm for {}", what);
    plan->bwd_data = best.algo;
    AFD_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(cudnn_, plan->w.d, plan->y.d, plan->conv.d,
                                                                 plan->x.d, plan->bwd_data, &plan->bwd_data_bytes));
  }
  {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
    if (timed)
      AFD_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(cudnn_, plan->x.d, plan->y.d, plan->conv.d,
                                                                  plan->w.d, kMax, &returned, perf));
    else
      AFD_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnn_, plan->x.d, plan->y.d, plan->conv.d,
                                                                    plan->w.d, kMax, &returned, perf));
    auto [best, ok] = choose(perf, returned, det);
    AFD_CHECK(ok, "cuDNN offers no backward-filter algorithm for {}", what);
    plan->bwd_filter = best.algo;
    AFD_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
        cudnn_, plan->x.d, plan->y.d, plan->conv.d, plan->w.d, plan->bwd_filter, &plan->bwd_filter_bytes));
  }
  // AFD_LOG_CUDNN=1: one line per new plan, to tell which algorithms a run (or a parity test that
  // misses its tolerance: FFT and Winograd round differently from a direct sum) used.
  static const bool log = std::getenv("AFD_LOG_CUDNN") != nullptr && *std::getenv("AFD_LOG_CUDNN") != '\0';
  if (log) {
    static const char* const kFwd[] = {"implicit_gemm", "implicit_precomp_gemm", "gemm", "direct",
                                       "fft", "fft_tiling", "winograd", "winograd_nonfused"};
    static const char* const kBwdData[] = {"algo_0", "algo_1", "fft", "fft_tiling", "winograd", "winograd_nonfused"};
    static const char* const kBwdFilter[] = {"algo_0", "algo_1", "fft", "algo_3", "winograd", "winograd_nonfused",
                                             "fft_tiling"};
    auto name = [](const char* const* names, size_t n, int a) { return a >= 0 && size_t(a) < n ? names[a] : "?"; };
    std::fprintf(stderr, "[ cudnn ] %s: forward %s (%zu B), data gradient %s (%zu B), filter gradient %s (%zu B)\n",
                 what.c_str(), name(kFwd, std::size(kFwd), plan->fwd), plan->fwd_bytes,
                 name(kBwdData, std::size(kBwdData), plan->bwd_data), plan->bwd_data_bytes,
                 name(kBwdFilter, std::size(kBwdFilter), plan->bwd_filter), plan->bwd_filter_bytes);
  }
  return *conv_plans_.emplace(key, std::move(plan)).first->second;
}

namespace {
// cuDNN takes alpha and beta as host values of the compute type.
struct Scalars {
  float f1 = 1, f0 = 0;
  double d1 = 1, d0 = 0;
  const void* one(DType t) const { return t == DType::f32 ? static_cast<const void*>(&f1) : &d1; }
  const void* zero(DType t) const { return t == DType::f32 ? static_cast<const void*>(&f0) : &d0; }
};
}  // namespace

void CudaBackend::conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
                                 Tensor& y) {
  activate();
  ConvPlan& plan = conv_plan(x, w, y, p);
  Tensor work({static_cast<int64_t>(std::max<size_t>(plan.fwd_bytes, 1))}, DType::u8, device());
  Scalars s;
  AFD_CUDNN_CHECK(cudnnConvolutionForward(cudnn_, s.one(x.dtype()), plan.x.d, x.raw_data(), plan.w.d, w.raw_data(),
                                          plan.conv.d, plan.fwd, work.raw_data(), plan.fwd_bytes,
                                          s.zero(x.dtype()), plan.y.d, y.raw_data()));
  if (bias.defined()) {  // y = y + bias[k] over [N, K, P, Q] (then relu): one broadcasting pass, in place
    Tensor b4 = bias.reshape({1, bias.numel(), 1, 1});
    binary(p.relu ? BinaryOp::add_relu : BinaryOp::add, y, b4, y);
  } else if (p.relu) {
    unary(UnaryOp::relu, y, y, 0, 0);
  }
}

void CudaBackend::conv2d_backward_data(const Tensor& dy, const Tensor& w, const Conv2dParams& p, Tensor& dx) {
  activate();
  ConvPlan& plan = conv_plan(dx, w, dy, p);
  Tensor work({static_cast<int64_t>(std::max<size_t>(plan.bwd_data_bytes, 1))}, DType::u8, device());
  Scalars s;
  AFD_CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn_, s.one(dy.dtype()), plan.w.d, w.raw_data(), plan.y.d,
                                               dy.raw_data(), plan.conv.d, plan.bwd_data, work.raw_data(),
                                               plan.bwd_data_bytes, s.zero(dy.dtype()), plan.x.d, dx.raw_data()));
}

void CudaBackend::conv2d_backward_filter(const Tensor& dy, const Tensor& x, const Conv2dParams& p, Tensor& dw,
                                         Tensor& dbias) {
  activate();
  if (dw.defined()) {
    ConvPlan& plan = conv_plan(x, dw, dy, p);
    Tensor work({static_cast<int64_t>(std::max<size_t>(plan.bwd_filter_bytes, 1))}, DType::u8, device());
    Scalars s;
    AFD_CUDNN_CHECK(cudnnConvolutionBackwardFilter(cudnn_, s.one(dy.dtype()), plan.x.d, x.raw_data(), plan.y.d,
                                                   dy.raw_data(), plan.conv.d, plan.bwd_filter, work.raw_data(),
                                                   plan.bwd_filter_bytes, s.zero(dy.dtype()), plan.w.d,
                                                   dw.raw_data()));
  }
  if (dbias.defined()) {  // dbias[k] = sum of dy over N, P, Q: the deterministic sum_to
    Tensor db4 = dbias.reshape({1, dbias.numel(), 1, 1});
    sum_to(dy, db4);
  }
}

}  // namespace afd::cuda
