// Collectives between the processes of one data-parallel run: one process per device (a CPU
// process or one GPU), `size()` processes numbered 0 .. size() - 1.
//
//   dist::DistOptions o;  o.rank = 1;  o.world_size = 4;  o.rendezvous = "/shared/run7/rdv";
//   std::unique_ptr<dist::Communicator> comm = dist::connect(o, Device::cpu());   // Gloo over TCP
//   Tensor g = ...;                       // f32 or f64, contiguous (every Tensor is)
//   comm->all_reduce_sum(g);              // in place: g = sum over ranks of g
//   comm->broadcast(params, /*root=*/0);  // in place: every rank gets rank 0's values
//   comm->barrier();
//
// Implementations:
//   SingleProcess  world size 1: every collective is the identity (no copies, no threads)
//   Gloo           CPU tensors; TCP (gloo/transport/tcp) on loopback or a network; rendezvous
//                  through a gloo FileStore in the rendezvous directory (a folder every rank can
//                  read and write: local, or a shared filesystem across machines)
//   NCCL           CUDA tensors (afd/dist/nccl_communicator.cpp, only in CUDA builds); the NCCL
//                  unique id travels through the file <rendezvous>/nccl-unique-id
// Every call is blocking: when it returns the tensor holds the result. A peer that dies or stops
// answering makes the call throw afd::Error after at most DistOptions::timeout_seconds (Gloo: its
// context timeout, or at once when the peer's socket closes; NCCL: ncclCommGetAsyncError polling,
// then ncclCommAbort), never a silent hang.
//
// Rendezvous directory: one EMPTY folder per run (stale files from an earlier run would point the
// ranks at dead addresses; connect() refuses a folder that holds this rank's file of an earlier
// run). afd_run train --nproc makes a fresh one itself.
#pragma once
#include <memory>
#include <string>

#include "tensor/device.h"
#include "tensor/tensor.h"

namespace afd::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* backend() const = 0;  // "single", "gloo", "nccl"

  // t = sum over every rank of t, in place. dtype f32, f64 or i64.
  virtual void all_reduce_sum(Tensor& t) = 0;
  // t = rank `root`'s t, in place, on every rank (any dtype: the bytes are copied).
  virtual void broadcast(Tensor& t, int root) = 0;
  // Returns on every rank once every rank has entered it.
  virtual void barrier() = 0;
};

struct DistOptions {
  int rank = 0;
  int world_size = 1;
  std::string rendezvous;          // folder shared by the ranks (unused when world_size == 1)
  std::string host = "127.0.0.1";  // Gloo: the address the OTHER ranks reach this rank at
  double timeout_seconds = 300;    // a collective (or the rendezvous) waiting longer throws
  // Throws naming the bad field: rank outside [0, world_size), world_size < 1, no rendezvous.
  void validate() const;
};

// World size 1: the identity.
std::unique_ptr<Communicator> make_single_process();
// Gloo over TCP; blocks until all world_size ranks have joined (or the timeout passes).
std::unique_ptr<Communicator> make_gloo(const DistOptions& options);
// NCCL on CUDA device `device` (one per rank). Throws in a build without CUDA.
std::unique_ptr<Communicator> make_nccl(const DistOptions& options, Device device);
// world_size 1: single process; a CPU device: Gloo; a CUDA device: NCCL. Several ranks meet first
// through meet_at_rendezvous.
std::unique_ptr<Communicator> connect(const DistOptions& options, Device device);

// The check before a backend's own rendezvous, which would fail on these mistakes with messages
// about its internals (Gloo: "File already exists", "sizeof(impl_) == bytes.size()") or hang until
// the timeout: this rank writes <rendezvous>/afd-rank-<rank> ("world-size W", "device cpu|cuda")
// and waits until every rank of [0, W) has written its own. Throws at once when its own file is
// there already (a folder left from an earlier run, or two processes with one rank) and, on every
// rank that sees it, when a rank wrote another world size or kind of device; after
// timeout_seconds it throws naming the ranks that never came. (A file of another rank left from an
// earlier run counts as that rank: a rendezvous folder must be fresh.)
void meet_at_rendezvous(const DistOptions& options, Device device);

}  // namespace afd::dist
