// The single-process communicator, the options check and connect(): which implementation a device
// gets (communicator.h).
#include "afd/dist/communicator.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "tensor/error.h"

namespace afd::dist {

namespace {

// World size 1: the sum over one rank is the tensor itself, rank 0 is its own root.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* backend() const override { return "single"; }
  void all_reduce_sum(Tensor& t) override {
    AFD_CHECK(t.defined(), "all_reduce_sum: undefined tensor");
  }
  void broadcast(Tensor& t, int root) override {
    AFD_CHECK(t.defined(), "broadcast: undefined tensor");
    AFD_CHECK(root == 0, "broadcast: root {} outside a world of size 1", root);
  }
  void barrier() override {}
};

}  // namespace

void DistOptions::validate() const {
  AFD_CHECK(world_size >= 1, "distributed: world size {} (expected >= 1)", world_size);
  AFD_CHECK(rank >= 0 && rank < world_size, "distributed: rank {} outside [0, {}) (world size {})", rank, world_size,
            world_size);
  AFD_CHECK(world_size == 1 || !rendezvous.empty(),
            "distributed: world size {} needs a rendezvous directory shared by every rank", world_size);
  AFD_CHECK(timeout_seconds > 0, "distributed: timeout {} s (expected > 0)", timeout_seconds);
}

std::unique_ptr<Communicator> make_single_process() { return std::make_unique<SingleProcess>(); }

namespace {

namespace fs = std::filesystem;

// What a rank wrote into <rendezvous>/afd-rank-<r>: its world size and kind of device.
struct Marker {
  int world = 0;
  std::string device;  // "cpu" or "cuda": Gloo and NCCL ranks cannot meet
};

// The ranks whose marker files <rendezvous>/afd-rank-<r> exist, and what each wrote. A file is
// never seen half-written: it is written under a temporary name and linked to its final one.
std::map<int, Marker> read_markers(const fs::path& dir) {
  std::map<int, Marker> markers;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::string prefix = "afd-rank-";
    if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size() ||
        name.find_first_not_of("0123456789", prefix.size()) != std::string::npos)
      continue;
    std::ifstream f(it->path());
    std::string word, device_word;
    Marker m;
    if (f >> word >> m.world >> device_word >> m.device && word == "world-size" && device_word == "device")
      markers[std::stoi(name.substr(prefix.size()))] = m;
  }
  return markers;
}

}  // namespace

void meet_at_rendezvous(const DistOptions& o, Device device) {
  const fs::path dir(o.rendezvous);
  std::error_code ec;
  fs::create_directories(dir, ec);
  AFD_CHECK(!ec, "rendezvous {}: cannot create the folder ({})", o.rendezvous, ec.message());
  const fs::path mine = dir / fmt::format("afd-rank-{}", o.rank);
  const std::string my_device = device.is_cuda() ? "cuda" : "cpu";
  {
    const fs::path tmp = mine.string() + fmt::format(".tmp.{}", ::getpid());
    std::ofstream f(tmp);
    f << "world-size " << o.world_size << "\ndevice " << my_device << "\n";
    AFD_CHECK(f.flush().good(), "rendezvous {}: cannot write {}", o.rendezvous, tmp.string());
    f.close();
    // link() fails if the name exists, at once and for one process only (a check, then rename,
    // would let two processes of one rank both pass).
    const bool taken = ::link(tmp.c_str(), mine.c_str()) != 0;
    const int err = errno;
    fs::remove(tmp, ec);
    AFD_CHECK(!taken || err != EEXIST,
              "rendezvous {}: holds files of an earlier run ({} exists already; or another process was started with "
              "rank {}): every run needs an empty rendezvous folder, a fresh one for each start",
              o.rendezvous, mine.string(), o.rank);
    AFD_CHECK(!taken, "rendezvous {}: cannot write {} ({})", o.rendezvous, mine.string(), std::strerror(err));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.timeout_seconds);
  while (true) {
    const std::map<int, Marker> markers = read_markers(dir);
    for (const auto& [rank, m] : markers) {
      // Named in rank order, so that both ranks give the same message.
      const bool first = o.rank < rank;
      AFD_CHECK(m.world == o.world_size,
                "rendezvous {}: rank {} was started with world size {} and rank {} with {}: every rank needs the "
                "same --world-size",
                o.rendezvous, first ? o.rank : rank, first ? o.world_size : m.world, first ? rank : o.rank,
                first ? m.world : o.world_size);
      AFD_CHECK(m.device == my_device,
                "rendezvous {}: rank {} runs on {} and rank {} on {}: every rank needs the same kind of --device "
                "(Gloo connects CPU ranks, NCCL GPU ranks)",
                o.rendezvous, first ? o.rank : rank, first ? my_device : m.device, first ? rank : o.rank,
                first ? m.device : my_device);
      AFD_CHECK(rank < o.world_size, "rendezvous {}: a rank {} joined, outside [0, {}) (world size {})", o.rendezvous,
                rank, o.world_size, o.world_size);
    }
    if (int64_t(markers.size()) == o.world_size) return;
    if (std::chrono::steady_clock::now() >= deadline) {
      std::string missing;
      for (int r = 0; r < o.world_size; ++r)
        if (!markers.count(r)) missing += fmt::format("{}{}", missing.empty() ? "" : ", ", r);
      AFD_FAIL("rendezvous {}: rank {} waited {} s (the timeout) and these ranks never came: {}", o.rendezvous, o.rank,
               o.timeout_seconds, missing);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::unique_ptr<Communicator> connect(const DistOptions& options, Device device) {
  options.validate();
  if (options.world_size == 1) return make_single_process();
  meet_at_rendezvous(options, device);
  return device.is_cuda() ? make_nccl(options, device) : make_gloo(options);
}

}  // namespace afd::dist
