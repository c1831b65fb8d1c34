// Folders shared by the tests of one program (fixtures made once and kept in a static), removed
// when that program exits. A test that owns its folder removes it itself (tests/data/temp_dir.h).
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace afd::testing {

// Registers `dir` for removal at the normal exit of the process that calls this. A forked rank
// that exits normally does not remove its parent's folders: the owner's pid is checked.
inline void remove_at_exit(const std::filesystem::path& dir) {
  struct Registry {
    pid_t owner = ::getpid();
    std::vector<std::filesystem::path> dirs;
    ~Registry() {
      if (::getpid() != owner) return;
      std::error_code ec;
      for (const auto& d : dirs) std::filesystem::remove_all(d, ec);
    }
  };
  static Registry registry;
  registry.dirs.push_back(dir);
}

}  // namespace afd::testing
