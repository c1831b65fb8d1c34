// The readers under fuzzing take a path: each input is written to one file per process, removed
// when the fuzzer exits normally.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace afd::fuzz {

class ScratchFile {
 public:
  explicit ScratchFile(const std::string& stem) : path_("/tmp/" + stem + "_" + std::to_string(::getpid())) {}
  ~ScratchFile() { std::remove(path_.c_str()); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  // Replaces the file's bytes with data[0, size); false if it cannot be written.
  bool write(const uint8_t* data, size_t size) const {
    FILE* f = std::fopen(path_.c_str(), "wb");
    if (!f) return false;
    const bool ok = size == 0 || std::fwrite(data, 1, size, f) == size;
    return std::fclose(f) == 0 && ok;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace afd::fuzz
