// Communicator over Gloo (Debian's libgloo-dev, the engine PyTorch uses for CPU processes): TCP
// transport, rendezvous through a gloo FileStore in the rendezvous directory.
//
// Gloo facts this relies on (gloo 0.5.0, git 2022-05-18, as Debian 12 ships it): transports tcp and
// ibverbs are built in (tcp used here); the stores are FileStore, HashStore, PrefixStore and
// RedisStore (no TCP store), hence the shared folder. Context::setTimeout bounds both the
// rendezvous (connectFullMesh waits for the other ranks' addresses) and every collective; a peer
// whose process dies closes its sockets, so the others fail at once rather than at the timeout
// (SIGPIPE is ignored so that writing to such a socket is an error, not a silent death).
// Gloo reports failures as gloo::Exception or gloo::EnforceNotMet: both become afd::Error here
// (guarded). Failures on Gloo's own I/O thread reach the calling thread as such exceptions too.
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/common/logging.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include <signal.h>

#include <chrono>
#include <filesystem>

#include "afd/dist/communicator.h"
#include "tensor/error.h"

namespace afd::dist {

namespace {

class GlooCommunicator final : public Communicator {
 public:
  explicit GlooCommunicator(const DistOptions& o) : rank_(o.rank), size_(o.world_size) {
    // Gloo writes to its sockets without MSG_NOSIGNAL: a write to a dead peer would raise SIGPIPE
    // and kill this process silently. Ignored (process-wide), the write fails with EPIPE and Gloo
    // throws, which names the failure.
    ::signal(SIGPIPE, SIG_IGN);
    const auto timeout = std::chrono::milliseconds(int64_t(o.timeout_seconds * 1000));
    guarded("rendezvous", [&] {
      std::filesystem::create_directories(o.rendezvous);
      gloo::transport::tcp::attr attr;
      attr.hostname = o.host;
      auto device = gloo::transport::tcp::CreateDevice(attr);
      gloo::rendezvous::FileStore files(o.rendezvous);
      gloo::rendezvous::PrefixStore store("gloo", files);
      auto context = std::make_shared<gloo::rendezvous::Context>(rank_, size_);
      context->setTimeout(timeout);
      context->connectFullMesh(store, device);
      context_ = context;
    }, fmt::format(" (rank {} of {}, rendezvous {}, host {})", rank_, size_, o.rendezvous, o.host));
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "gloo"; }

  void all_reduce_sum(Tensor& t) override {
    check_cpu(t, "all_reduce_sum");
    switch (t.dtype()) {
      case DType::f32: all_reduce<float>(t); break;
      case DType::f64: all_reduce<double>(t); break;
      case DType::i64: all_reduce<int64_t>(t); break;
      default: AFD_FAIL("all_reduce_sum: dtype {} (expected f32, f64 or i64)", dtype_name(t.dtype()));
    }
  }

  void broadcast(Tensor& t, int root) override {
    check_cpu(t, "broadcast");
    AFD_CHECK(root >= 0 && root < size_, "broadcast: root {} outside [0, {})", root, size_);
    if (t.numel() == 0) return;
    guarded("broadcast", [&] {
      gloo::BroadcastOptions opts(context_);
      opts.setOutput(static_cast<uint8_t*>(t.raw_data()), t.nbytes());  // in place, on the root too
      opts.setRoot(root);
      opts.setTag(next_tag());
      gloo::broadcast(opts);
    }, fmt::format(" ({} bytes from rank {})", t.nbytes(), root));
  }

  void barrier() override {
    guarded("barrier", [&] {
      gloo::BarrierOptions opts(context_);
      opts.setTag(next_tag());
      gloo::barrier(opts);
    });
  }

 private:
  template <class T>
  void all_reduce(Tensor& t) {
    if (t.numel() == 0) return;
    guarded("all_reduce_sum", [&] {
      gloo::AllreduceOptions opts(context_);
      opts.setOutput(t.data<T>(), size_t(t.numel()));  // in place
      void (*fn)(void*, const void*, const void*, size_t) = &gloo::sum<T>;
      opts.setReduceFunction(fn);
      opts.setTag(next_tag());
      gloo::allreduce(opts);
    }, fmt::format(" ({} values of {})", t.numel(), dtype_name(t.dtype())));
  }

  void check_cpu(const Tensor& t, const char* op) const {
    AFD_CHECK(t.defined(), "{}: undefined tensor", op);
    AFD_CHECK(t.device().is_cpu(), "{}: the Gloo communicator takes CPU tensors, got {}", op, t.str());
  }

  // Runs a Gloo call; its exceptions become afd::Error naming the operation, this rank and `what`.
  // Gloo throws gloo::IoException (a socket or store failed: a peer died), gloo::TimeoutException,
  // other gloo::Exception (runtime_error) and gloo::EnforceNotMet (a failed GLOO_ENFORCE, which
  // derives from std::exception only); any of them left uncaught would abort the process.
  template <class Fn>
  void guarded(const char* op, Fn&& fn, const std::string& what = "") {
    const std::string where = fmt::format("gloo {} failed on rank {} of {}{}", op, rank_, size_, what);
    try {
      fn();
    } catch (const Error&) {
      throw;
    } catch (const gloo::IoException& e) {
      AFD_FAIL("{}: {} (a peer died or stopped answering?)", where, e.what());
    } catch (const gloo::EnforceNotMet& e) {
      AFD_FAIL("{}: {} (the ranks disagree about this collective: started with different flags?)", where, e.what());
    } catch (const std::exception& e) {
      AFD_FAIL("{}: {} (a peer died or stopped answering?)", where, e.what());
    } catch (...) {
      AFD_FAIL("{}: an exception of unknown type", where);
    }
  }

  // Every collective gets its own tag (as PyTorch's ProcessGroupGloo does); all ranks issue the
  // same collectives in the same order, so the tags agree.
  uint32_t next_tag() { return tag_++; }

  int rank_, size_;
  std::shared_ptr<gloo::Context> context_;
  uint32_t tag_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_gloo(const DistOptions& options) {
  options.validate();
  return std::make_unique<GlooCommunicator>(options);
}

}  // namespace afd::dist
