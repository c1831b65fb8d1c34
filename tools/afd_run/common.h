// What afd_run's subcommands share: errors with exit status 1, devices and threads, data folders,
// output folders, model loading, JSON lines and the progress line.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "afd/data/dataset.h"
#include "afd/train/config.h"
#include "nn/module.h"
#include "tensor/device.h"
#include "tools/afd_run/cli.h"

namespace afd::cli {

// A run that cannot go on (missing data, unwritable folder, bad checkpoint): exit status 1.
class RunError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Subcommand entry points (train_command.cpp, eval_command.cpp, data_command.cpp).
int train_command(const std::vector<std::string>& args, Io io);
int eval_command(const std::vector<std::string>& args, Io io);
int attack_command(const std::vector<std::string>& args, Io io);
int data_command(const std::vector<std::string>& args, Io io);
// afd_run train --nproc N (launch.cpp): runs N workers `afd_run train ARGS --rank R --world-size N
// --rendezvous DIR`, waits, and on a worker's failure stops the rest and throws RunError naming it.
int launch_workers(const std::vector<std::string>& args, int64_t nproc, const Options& opt, Io io);

// Parses --device, checks the backend exists (RunError naming the flag otherwise) and sets the
// CPU thread count (0 = every core).
// Parses --device (and checks that it is there), applies --threads, --precision, --deterministic
// and --check-numerics.
Device setup_device(const Options& opt);

// data/<folder> for a dataset name (mnist -> data/mnist, tiny-imagenet-32 -> data/tiny-imagenet-200).
std::string default_data_dir(const std::string& dataset);
// afd_run help attacks: every registered attack with its evaluation setting on MNIST and CIFAR.
std::string attacks_text();
// The command that fetches a dataset ("afd_run data --dataset D --fetch" or what to do by hand).
std::string fetch_hint(const std::string& dataset, const std::string& dir);
// Loads one split; a missing folder or file is a RunError naming it and the fetch command. The
// loader's notes (a partial CIFAR-10 set) go to stderr unless the caller shows them itself.
data::Dataset load_split(const std::string& dataset, const std::string& dir, data::Split split, bool print_notes = true);
// Rows [begin, end) of a dataset (views, no copy).
data::Dataset rows(const data::Dataset& d, int64_t begin, int64_t end, const std::string& name);

// Creates `dir` and proves it writable (RunError naming `flag` and the folder otherwise).
void prepare_out_dir(const std::string& dir, const std::string& flag);
// Atomic text write (temp file + rename) and JSON-lines append.
void write_text(const std::string& path, const std::string& text);
void append_line(const std::string& path, const std::string& line);

// A classifier loaded from a checkpoint folder (model.safetensors + its config) or a file.
struct LoadedModel {
  std::string name, path;
  std::string crc32;  // of the model file's bytes, hex: the same weights under another path match
  std::string position;  // "epoch E batch B" of the training run that wrote it ("" if not recorded)
  train::TrainConfig config;
  std::shared_ptr<nn::Classifier> model;
};
// "epoch E batch B" from the metadata the trainer writes into its exports ("" when absent).
std::string training_position(const std::map<std::string, std::string>& meta);
// A model's name in reports: its run's folder name (runs/x/checkpoint -> x), else the file's stem.
std::string default_model_name(const std::string& checkpoint);
// Whether `dir` holds a training run (its checkpoint, final.json or metrics.jsonl): eval and attack
// refuse such an --out, whose resolved.flags they would replace.
bool holds_training_run(const std::string& dir);
// Removes the files an earlier eval or attack wrote into `dir` (reports, tables, plots), so that
// none of them is left stale next to the new ones; AutoAttack's resumable state stays.
void clear_report_files(const std::string& dir);
// The model file of a checkpoint folder (its model.safetensors) or the file itself; a RunError
// naming `flag` when there is none.
std::string checkpoint_model_file(const std::string& checkpoint, const std::string& flag);
LoadedModel load_model(const std::string& checkpoint, const std::string& model_override, int64_t width_override,
                       const data::Dataset& test, Device device);

// The images of rows [0, n) as f32 [n, C, H, W] in [0, 1] and labels i64 [n], on `device`.
std::pair<Tensor, Tensor> as_tensors(const data::Dataset& d, int64_t n, Device device);

// CPU time (user + system) of this process so far, in seconds: on a busy machine the compute a
// run took, where wall time also counts the waits for a core.
double cpu_seconds();
// "1h02m", "3m05s", "12.3s".
std::string duration(double seconds);
// 0.9712 -> "97.12"
std::string percent(double fraction);
// NaN-safe JSON number (null for NaN).
nlohmann::json number(double v);
// An error message without the library's trailing " (file.cpp:123)".
std::string clean_message(const std::string& what);

// The progress line: live (rewritten with \r on a terminal) or plain lines every `every` calls.
class ProgressLine {
 public:
  ProgressLine(Io io, const std::string& mode, int64_t every);
  void update(const std::string& text, bool force = false);  // one progress report
  void finish();                                              // ends a live line
  bool enabled() const { return mode_ != "none"; }

 private:
  Io io_;
  std::string mode_;
  int64_t every_, calls_ = 0;
  bool open_ = false;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace afd::cli
