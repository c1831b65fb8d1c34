// afd_run data: fetch (tools/fetch_data.sh), verify (md5 of the official files) and describe
// (counts, shapes, class histogram) a dataset.
#include <fmt/format.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "afd/data/md5.h"
#include "afd/data/readers.h"
#include "tools/afd_run/common.h"

#ifndef AFD_SOURCE_DIR
#define AFD_SOURCE_DIR "."
#endif

namespace afd::cli {

namespace fs = std::filesystem;

namespace {

// The official per-file md5 sums (docs/data.md; the same as tools/fetch_data.sh).
const std::map<std::string, std::string>& official_md5(const std::string& dataset) {
  static const std::map<std::string, std::string> mnist = {
      {"train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"},
      {"train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"},
      {"t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"},
      {"t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"}};
  static const std::map<std::string, std::string> cifar10 = {
      {"data_batch_1.bin", "5dd7e06a14cb22eb9f671a540d1b7c25"}, {"data_batch_2.bin", "5ea93a67294ea407fff1d09f752e9692"},
      {"data_batch_3.bin", "942cd6a4bcdd0dd3c604fbe906cb4421"}, {"data_batch_4.bin", "ae636b3ba5c66a11e91e8cb52e771fcb"},
      {"data_batch_5.bin", "53f37980c15c3d472c316c40844f3f0d"}, {"test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d"}};
  static const std::map<std::string, std::string> none;
  if (dataset == "mnist") return mnist;
  if (dataset == "cifar10") return cifar10;
  return none;
}

std::string fetch_name(const std::string& dataset) {
  if (dataset == "mnist" || dataset == "cifar10" || dataset == "cifar100") return dataset;
  if (dataset == "tiny-imagenet-32") return "tinyimagenet";
  return "";
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string fetch_script() {
  for (const fs::path& p : {fs::path("tools/fetch_data.sh"), fs::path(AFD_SOURCE_DIR) / "tools/fetch_data.sh"})
    if (fs::exists(p)) return p.string();
  throw RunError("--fetch: tools/fetch_data.sh not found (run afd_run from the repository root)");
}

}  // namespace

int data_command(const std::vector<std::string>& args, Io io) {
  FlagSet set(flag_table(), kData);
  bool help = false;
  const std::vector<Assignment> given = set.parse_args(args, &help);
  const Options opt(set, {}, given);
  if (help) {
    io.out << help_text(kData);
    return 0;
  }
  const std::string dataset = opt.get("dataset");
  const std::string dir = opt.get("data-dir").empty() ? default_data_dir(dataset) : opt.get("data-dir");

  if (opt.get_bool("fetch")) {
    const std::string name = fetch_name(dataset);
    if (name.empty()) throw RunError(fmt::format("--fetch: tools/fetch_data.sh cannot fetch {}; {}", dataset, fetch_hint(dataset, dir)));
    std::string cmd = fmt::format("bash {} {} --dir {}", shell_quote(fetch_script()), name, shell_quote(dir));
    if (!opt.get("from").empty()) cmd += " --from " + shell_quote(opt.get("from"));
    io.err << "afd_run data: " << cmd << "\n" << std::flush;
    const int status = std::system(cmd.c_str());
    if (status != 0) {
      // std::system returns a wait status (exit code 1 reads 256), or -1 when no shell started.
      const std::string how = status == -1          ? "could not be started"
                              : WIFEXITED(status)   ? fmt::format("exit status {}", WEXITSTATUS(status))
                              : WIFSIGNALED(status) ? fmt::format("killed by signal {}", WTERMSIG(status))
                                                    : fmt::format("wait status {}", status);
      throw RunError(fmt::format("--fetch: {} failed ({}; its message is above)", cmd, how));
    }
  }
  if (!fs::is_directory(dir))
    throw RunError(fmt::format("--data-dir {}: no such folder ({})", dir, fetch_hint(dataset, dir)));

  bool ok = true;
  if (opt.get_bool("verify")) {
    const auto& sums = official_md5(dataset);
    if (sums.empty()) {
      io.out << fmt::format("md5: no official per-file sums for {} (tools/fetch_data.sh checks the official archive's "
                            "md5 when it fetches)\n",
                            dataset);
    }
    int64_t missing_batches = 0;
    for (const auto& [file, md5] : sums) {
      const fs::path p = fs::path(dir) / file;
      if (!fs::exists(p)) {
        // The CIFAR-10 reader takes a partial training set (some of the five data_batch files).
        const bool optional = dataset == "cifar10" && file.rfind("data_batch_", 0) == 0;
        io.out << fmt::format("md5: {:<28} missing{}\n", file, optional ? " (a partial training set)" : "");
        ok &= optional;
        missing_batches += optional;
        continue;
      }
      const std::string got = data::md5_hex(data::read_file(p.string()));
      io.out << fmt::format("md5: {:<28} {} {}\n", file, got, got == md5 ? "ok" : "MISMATCH (expected " + md5 + ")");
      ok &= got == md5;
    }
    if (missing_batches == 5) {
      io.out << "md5: no CIFAR-10 training batch at all\n";
      ok = false;
    }
  }
  if (opt.get_bool("describe")) {
    for (data::Split split : {data::Split::train, data::Split::test}) {
      const data::Dataset d = load_split(dataset, dir, split, /*print_notes=*/false);  // shown below
      io.out << fmt::format("{}: {} images, shape [{}, {}, {}] u8, {} classes\n", d.name, d.size(), d.images.size(1),
                            d.images.size(2), d.images.size(3), d.classes);
      const std::vector<int64_t> h = d.label_histogram();
      std::string line = "  class histogram:";
      for (size_t k = 0; k < h.size(); ++k) {
        const std::string label = k < d.class_names.size() ? d.class_names[k] : std::to_string(k);
        line += fmt::format(" {}:{}", label, h[k]);
        if (line.size() > 100 && k + 1 < h.size()) {
          io.out << line << "\n";
          line = "   ";
        }
      }
      io.out << line << "\n";
      for (const auto& note : d.notes) io.out << "  note: " << note << "\n";
    }
  }
  if (!ok) {
    io.err << fmt::format("afd_run data: error: {} in {} does not match the official files (see above; delete the files "
                          "that differ and fetch again: afd_run data --dataset {} --fetch --data-dir {})\n",
                          dataset, dir, dataset, dir);
    return 1;
  }
  return 0;
}

}  // namespace afd::cli
