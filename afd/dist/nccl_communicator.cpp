// Communicator over NCCL for CUDA tensors: one process per GPU. Built only with the CUDA backend
// (meson.build); nccl_stub.cpp stands in for make_nccl otherwise.
//
// Rendezvous: rank 0 draws the ncclUniqueId and writes it to <rendezvous>/nccl-unique-id (temp file
// + rename, so a reader never sees half of it); the others poll for that file until the timeout.
// The communicator is made non-blocking (ncclConfig_t.blocking = 0) so that no NCCL call can hang
// this process: after each call we poll ncclCommGetAsyncError (and the stream) until the work is
// done, an error appears, or DistOptions::timeout_seconds pass; on an error or a timeout the
// communicator is aborted (ncclCommAbort) and afd::Error is thrown naming the rank and the call.
//
// Stream order: the tensor backend runs its kernels on its own stream (tensor/cuda), which this
// file cannot see, so each collective first waits for the whole device (cudaDeviceSynchronize),
// then runs on this communicator's stream and waits for it. Simple and correct; no overlap. Each
// collective is called on its own, outside ncclGroupStart/End: a call that fails inside a group
// would leave the group open on this thread.
//
// UNVERIFIED: compiled and linked on a machine without a GPU; never run (see README).
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <thread>

#include "afd/dist/communicator.h"
#include "tensor/cuda/check.h"
#include "tensor/error.h"

namespace afd::dist {

namespace {

namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::i64: return ncclInt64;
    default: AFD_FAIL("NCCL all_reduce_sum: dtype {} (expected f32, f64 or i64)", dtype_name(t));
  }
}

ncclUniqueId exchange_unique_id(const DistOptions& o) {
  const fs::path path = fs::path(o.rendezvous) / "nccl-unique-id";
  ncclUniqueId id;
  if (o.rank == 0) {
    AFD_NCCL_CHECK(ncclGetUniqueId(&id));
    fs::create_directories(o.rendezvous);
    const fs::path tmp = path.string() + ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary);
      f.write(reinterpret_cast<const char*>(&id), sizeof id);
      AFD_CHECK(f.good(), "NCCL rendezvous: cannot write {}", tmp.string());
    }
    fs::rename(tmp, path);
    return id;
  }
  const auto deadline = clock::now() + std::chrono::milliseconds(int64_t(o.timeout_seconds * 1000));
  while (true) {
    std::ifstream f(path, std::ios::binary);
    if (f && f.read(reinterpret_cast<char*>(&id), sizeof id) && f.gcount() == sizeof id) return id;
    AFD_CHECK(clock::now() < deadline, "NCCL rendezvous: rank {} found no {} within {} s (is rank 0 running?)", o.rank,
              path.string(), o.timeout_seconds);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// The communicator is non-blocking (config.blocking = 0): its initialisation and collectives may
// return ncclInProgress, meaning "started": wait() then polls them to the end. Any other result
// but success is an error.
#define AFD_NCCL_STARTED(call)                                                                      \
  do {                                                                                             \
    const ncclResult_t afd_nccl_ = (call);                                                         \
    if (afd_nccl_ != ncclSuccess && afd_nccl_ != ncclInProgress)                                   \
      ::afd::cuda::throw_gpu_error(#call, ncclGetErrorString(afd_nccl_), "NCCL", __FILE__, __LINE__); \
  } while (0)

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const DistOptions& o, Device device)
      : rank_(o.rank), size_(o.world_size), device_(device.index),
        timeout_(std::chrono::milliseconds(int64_t(o.timeout_seconds * 1000))) {
    AFD_CHECK(device.is_cuda(), "NCCL communicator: device {} is not a CUDA device", device.str());
    AFD_CUDA_CHECK(cudaSetDevice(device_));
    AFD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    try {
      const ncclUniqueId id = exchange_unique_id(o);
      ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
      config.blocking = 0;
      AFD_NCCL_STARTED(ncclCommInitRankConfig(&comm_, size_, id, rank_, &config));
      wait("ncclCommInitRankConfig", nullptr);
    } catch (...) {
      release(/*abort=*/true);  // no destructor runs after a constructor throws
      throw;
    }
  }
  // While an exception unwinds (this rank failed alone, say in a checkpoint write), the peers may
  // still be inside a collective: ncclCommDestroy would wait for them (NCCL's proxy thread stays
  // while peers are connected), ncclCommAbort does not.
  ~NcclCommunicator() override { release(/*abort=*/std::uncaught_exceptions() > 0); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "nccl"; }

  void all_reduce_sum(Tensor& t) override {
    check_device(t, "all_reduce_sum");
    const ncclDataType_t type = nccl_type(t.dtype());
    if (t.numel() == 0) return;
    start_collective();
    AFD_NCCL_STARTED(ncclAllReduce(t.raw_data(), t.raw_data(), size_t(t.numel()), type, ncclSum, comm_, stream_));
    wait("ncclAllReduce", stream_);
  }

  void broadcast(Tensor& t, int root) override {
    check_device(t, "broadcast");
    AFD_CHECK(root >= 0 && root < size_, "broadcast: root {} outside [0, {})", root, size_);
    if (t.numel() == 0) return;
    start_collective();
    AFD_NCCL_STARTED(ncclBroadcast(t.raw_data(), t.raw_data(), t.nbytes(), ncclUint8, root, comm_, stream_));
    wait("ncclBroadcast", stream_);
  }

  // A one-value all-reduce: returns once every rank has issued it.
  void barrier() override {
    Tensor one = Tensor::ones({1}, DType::f32, Device::cuda(device_));
    all_reduce_sum(one);
  }

 private:
  void check_device(const Tensor& t, const char* op) const {
    AFD_CHECK(t.defined(), "{}: undefined tensor", op);
    AFD_CHECK(t.device().is_cuda() && t.device().index == device_,
              "{}: the NCCL communicator of rank {} takes tensors on cuda:{}, got {}", op, rank_, device_, t.str());
  }

  // Before a collective: the communicator is still usable, and the backend's stream (which this
  // file cannot see) has produced the tensor on this rank's device.
  void start_collective() {
    AFD_CHECK(comm_ != nullptr, "NCCL communicator of rank {} was aborted after an earlier error", rank_);
    AFD_CUDA_CHECK(cudaSetDevice(device_));
    AFD_CUDA_CHECK(cudaDeviceSynchronize());
  }

  // Polls until the communicator has no operation in progress (and `stream`, when given, is done);
  // aborts and throws on an asynchronous error or after the timeout.
  void wait(const char* call, cudaStream_t stream) {
    const auto deadline = clock::now() + timeout_;
    while (true) {
      ncclResult_t async = ncclSuccess;
      AFD_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
      if (async != ncclSuccess && async != ncclInProgress) {
        // NCCL keeps its last warning even when NCCL_DEBUG is unset ("Duplicate GPU detected" for
        // two ranks on one GPU, say): the cause, which the error code alone does not give.
        const char* last = ncclGetLastError(comm_);
        const std::string detail = last && *last ? fmt::format(": {}", last) : "";
        ncclCommAbort(comm_);
        comm_ = nullptr;
        AFD_FAIL("{} failed on rank {} of {}: {}{} (a peer died?)", call, rank_, size_, ncclGetErrorString(async),
                 detail);
      }
      bool done = async == ncclSuccess;
      if (done && stream) {
        const cudaError_t s = cudaStreamQuery(stream);
        if (s != cudaErrorNotReady) AFD_CUDA_CHECK(s);
        done = s == cudaSuccess;
      }
      if (done) return;
      if (clock::now() > deadline) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        AFD_FAIL("{} on rank {} of {} did not finish within {} ms: aborted (a peer hung or died)", call, rank_, size_,
                 timeout_.count());
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  // Ends the communicator (abort: without waiting for the peers), then the stream: never throws.
  void release(bool abort) {
    if (comm_ && abort) ncclCommAbort(comm_);
    if (comm_ && !abort) ncclCommDestroy(comm_);
    comm_ = nullptr;
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }

  int rank_, size_, device_;
  std::chrono::milliseconds timeout_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl(const DistOptions& options, Device device) {
  options.validate();
  return std::make_unique<NcclCommunicator>(options, device);
}

}  // namespace afd::dist
