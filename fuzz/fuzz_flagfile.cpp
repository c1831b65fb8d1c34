// libFuzzer target: afd_run's flagfile parser (comments, "--flag value" and "--flag=value", nested
// --flagfile lines, every value type with its bounds and choices) on arbitrary text. Any input must
// give either assignments or a UsageError naming the file and line, never a crash or a hang.
// A small table with one flag of each type stands in for afd_run's (the parser is the same).

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/scratch_file.h"
#include "tools/afd_run/flags.h"

using namespace afd::cli;

namespace {
std::vector<Flag> table() {
  auto flag = [](std::string name, FlagType type) {
    Flag f;
    f.name = std::move(name);
    f.type = type;
    f.commands = kAll;
    return f;
  };
  std::vector<Flag> t;
  Flag epochs = flag("epochs", FlagType::integer);
  epochs.min = 1;
  epochs.max = 100000;
  t.push_back(epochs);
  Flag lr = flag("lr", FlagType::real);
  lr.min = 0;
  lr.min_exclusive = true;
  t.push_back(lr);
  t.push_back(flag("flip", FlagType::boolean));
  t.push_back(flag("out", FlagType::path));
  t.push_back(flag("name", FlagType::text));
  Flag method = flag("method", FlagType::choice);
  method.choices = {"nt", "at", "trades", "afd"};
  t.push_back(method);
  t.push_back(flag("milestones", FlagType::int_list));
  Flag eps = flag("eps", FlagType::real_list);
  eps.min = 0;
  t.push_back(eps);
  return t;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const afd::fuzz::ScratchFile file("afd_fuzz_flagfile");
  static const std::vector<Flag> flags = table();
  static const FlagSet set(flags, kTrain);
  if (!file.write(data, size)) return 0;
  try {
    std::vector<Assignment> got = set.read_flagfile(file.path());
    for (const Assignment& a : got) (void)a.value.size();
  } catch (const UsageError&) {
  }
  return 0;
}
