// afd_run (issue 8, acceptance 4 and the CLI half): the flag parser and flagfiles, preset
// resolution, one clear line and the right exit status for every bad input (unknown flag, wrong
// type, out-of-range value, missing data folder, unwritable output folder, a checkpoint of another
// model, an unavailable device), help pages and docs/cli.md generated from the one flag table, and
// whole runs of train / eval / attack / data on tiny synthetic MNIST files, in-process; Ctrl-C and
// resume through the real binary.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "afd/data/dataset.h"
#include "afd/data/synthetic.h"
#include "afd/eval/stats.h"
#include "afd/report/image_grid.h"
#include "afd/report/png.h"
#include "afd/train/config.h"
#include "nn/safetensors.h"
#include "tensor/backend.h"
#include "tests/data/temp_dir.h"
#include "tests/support/safetensors_checks.h"
#include "tests/support/xml.h"
#include "tools/afd_run/cli.h"
#include "tools/afd_run/eval_report.h"

namespace afd::cli {
namespace {

namespace fs = std::filesystem;
using afd::testing::TempDir;
using nlohmann::json;
using afd::testing::expect_files_close;

struct Result {
  int code;
  std::string out, err;
};

Result run_cli(std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = run(args, {out, err, false});
  return {code, out.str(), err.str()};
}

// Runs the afd_run binary, sending `sig` once stderr shows `trigger` (defined below).
int run_binary(const std::vector<std::string>& args, const std::string& trigger, std::string* err_text,
               int sig = SIGINT);

size_t lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// One line on stderr that contains every one of `parts`.
void expect_one_line(const Result& r, int code, std::initializer_list<std::string> parts) {
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  for (const auto& p : parts) EXPECT_NE(r.err.find(p), std::string::npos) << "'" << p << "' not in: " << r.err;
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_text_file(const fs::path& p, const std::string& text) {
  std::ofstream f(p);
  f << text;
}

// Tiny MNIST-format files: n_train / n_test images 28 x 28 (the synthetic pixel pattern), labels i % 10.
void write_mnist(const fs::path& dir, int64_t n_train = 64, int64_t n_test = 32) {
  fs::create_directories(dir);
  auto labels = [](int64_t n) {
    std::vector<uint8_t> l;
    for (int64_t i = 0; i < n; ++i) l.push_back(uint8_t(i % 10));
    return l;
  };
  data::write_idx_images((dir / "train-images-idx3-ubyte").string(), n_train, 28, 28);
  data::write_idx_labels((dir / "train-labels-idx1-ubyte").string(), labels(n_train));
  data::write_idx_images((dir / "t10k-images-idx3-ubyte").string(), n_test, 28, 28);
  data::write_idx_labels((dir / "t10k-labels-idx1-ubyte").string(), labels(n_test));
}

// Tiny MNIST-format files whose class can be learnt: image i (label i % 10) is dark (the
// synthetic pattern / 8) but for a bright 4 x 12 bar at one of 10 places, one per class.
void write_learnable_mnist(const fs::path& dir, int64_t n_train = 64, int64_t n_test = 32) {
  fs::create_directories(dir);
  auto write = [&](const std::string& stem, int64_t n) {
    std::vector<uint8_t> pixels, labels;
    for (int64_t i = 0; i < n; ++i) {
      int64_t l = i % 10, top = 2 + 5 * (l % 5), left = l < 5 ? 1 : 15;
      labels.push_back(uint8_t(l));
      for (int64_t y = 0; y < 28; ++y)
        for (int64_t x = 0; x < 28; ++x) {
          bool bar = y >= top && y < top + 4 && x >= left && x < left + 12;
          pixels.push_back(bar ? 255 : uint8_t(data::synthetic_pixel(i, 0, y, x) / 8));
        }
    }
    data::write_bytes((dir / (stem + "-images-idx3-ubyte")).string(),
                      data::idx_bytes(data::IdxType::u8, {uint32_t(n), 28, 28}, pixels));
    data::write_idx_labels((dir / (stem + "-labels-idx1-ubyte")).string(), labels);
  };
  write("train", n_train);
  write("t10k", n_test);
}

// The flags of a run that takes well under a second.
std::vector<std::string> tiny_run(const fs::path& data, const fs::path& out) {
  return {"train", "--data-dir", data.string(), "--out", out.string(), "--width", "2", "--epochs", "2",
          "--batch-size", "16", "--milestones", "1", "--attack", "pgd-linf", "--attack-steps", "1",
          "--attack-step-size", "0.1", "--eval-batch-size", "16", "--progress", "none", "--threads", "1"};
}

// ---- parser ----------------------------------------------------------------------------------

TEST(CliFlags, BothValueFormsBooleansAndLaterOverrides) {
  FlagSet set(flag_table(), kTrain);
  auto given = set.parse_args({"--epochs", "3", "--lr=0.05", "--flip", "--no-drop-last", "--epochs=7",
                               "--milestones", "2,4", "--attack-eps", "8/255"});
  TrainPlan p = resolve_train(set, given);
  EXPECT_EQ(p.config.epochs, 7);
  EXPECT_EQ(p.config.lr, 0.05);
  EXPECT_TRUE(p.config.flip);
  EXPECT_FALSE(p.config.drop_last);
  EXPECT_EQ(p.config.milestones, (std::vector<int64_t>{2, 4}));
  EXPECT_DOUBLE_EQ(p.config.attack_config.eps, 8.0 / 255);
  EXPECT_TRUE(p.options.given("lr"));
  EXPECT_FALSE(p.options.given("momentum"));
}

TEST(CliFlags, FlagfileCommentsNestingAndOrder) {
  TempDir dir;
  fs::create_directories(dir / "sub");
  write_text_file(dir / "sub/base.flags", "# the base\n--epochs 5   # trailing comment\n\n--lr=0.2\n--no-flip\n");
  write_text_file(dir / "run.flags", "--flagfile sub/base.flags\n--epochs 9\n--attack-steps 3\n");
  FlagSet set(flag_table(), kTrain);
  TrainPlan p = resolve_train(set, set.parse_args({"--lr", "0.3", "--flagfile", dir / "run.flags", "--attack-steps=4"}));
  EXPECT_EQ(p.config.epochs, 9);                 // the outer file overrides the nested one
  EXPECT_EQ(p.config.lr, 0.2);                   // the file comes after --lr 0.3 on the command line
  EXPECT_EQ(p.config.attack_config.steps, 4);    // later on the command line wins
  EXPECT_FALSE(p.config.flip);
}

TEST(CliFlags, PresetFillsDefaultsAndEveryFlagOverrides) {
  FlagSet set(flag_table(), kTrain);
  TrainPlan afd = resolve_train(set, set.parse_args({}));
  train::TrainConfig ref = train::presets("mnist", train::Method::afd);
  ref.out_dir = "runs/mnist_afd";
  EXPECT_EQ(train::config_to_json(afd.config), train::config_to_json(ref));

  // --lr before --method still overrides the preset that --method selects.
  TrainPlan trades = resolve_train(set, set.parse_args({"--lr", "0.07", "--method", "trades"}));
  EXPECT_EQ(trades.config.lr, 0.07);
  EXPECT_EQ(trades.config.trades_beta, 1);
  EXPECT_EQ(trades.config.epochs, 100);
  EXPECT_EQ(trades.config.milestones, (std::vector<int64_t>{54, 74, 89}));

  TrainPlan cifar = resolve_train(set, set.parse_args({"--dataset", "cifar10", "--method", "at"}));
  EXPECT_EQ(cifar.config.model, "resnet18-cifar");
  EXPECT_DOUBLE_EQ(cifar.config.attack_config.eps, 8.0 / 255);
  EXPECT_EQ(cifar.options.get("data-dir"), "data/cifar10");
  EXPECT_EQ(cifar.options.get("out"), "runs/cifar10_at");

  TrainPlan none = resolve_train(set, set.parse_args({"--preset", "none", "--method", "nt"}));
  train::TrainConfig plain;
  EXPECT_EQ(none.config.epochs, plain.epochs);
  EXPECT_EQ(none.config.method, train::Method::nt);
}

TEST(CliFlags, ResolvedFlagfileReproducesTheConfig) {
  TempDir dir;
  FlagSet set(flag_table(), kTrain);
  TrainPlan a = resolve_train(set, set.parse_args({"--method", "at", "--lr", "0.1234567890123", "--attack-eps", "1/3",
                                                   "--milestones", "", "--gan-loss", "hinge", "--seed", "17"}));
  write_text_file(dir / "resolved.flags", a.options.resolved_flagfile("# header\n"));
  TrainPlan b = resolve_train(set, set.read_flagfile(dir / "resolved.flags"));
  EXPECT_EQ(train::config_to_json(a.config), train::config_to_json(b.config));
  EXPECT_TRUE(a.config.milestones.empty());
  // Every resolved flag is in the file.
  const std::string text = read_text(dir / "resolved.flags");
  for (const Flag* f : set.flags())
    if (f->resolved) {
      EXPECT_NE(text.find("--" + f->name + "="), std::string::npos) << f->name;
    }
}

TEST(CliFlags, TypedValueParsing) {
  EXPECT_EQ(parse_int("x", " 42"), 42);
  EXPECT_THROW(parse_int("x", "4.2"), UsageError);
  EXPECT_THROW(parse_int("x", ""), UsageError);
  EXPECT_DOUBLE_EQ(parse_real("x", "2/255"), 2.0 / 255);
  EXPECT_THROW(parse_real("x", "1/0"), UsageError);
  EXPECT_THROW(parse_real("x", "nan"), UsageError);
  EXPECT_THROW(parse_bool("x", "maybe"), UsageError);
  EXPECT_EQ(parse_real_list("x", "0, .1,0.3"), (std::vector<double>{0, 0.1, 0.3}));
  for (double v : {0.1, 1.0 / 3, 8.0 / 255, 1e-300, 123456.789}) EXPECT_EQ(parse_real("x", format_real(v)), v);
  EXPECT_EQ(format_real(0.1), "0.1");
  EXPECT_EQ(edit_distance("epoch", "epochs"), 1u);
}

// ---- errors: one line, exit 2 for usage, 1 for the run -------------------------------------------

TEST(CliErrors, UnknownFlagSuggestsTheClosest) {
  expect_one_line(run_cli({"train", "--epoch", "3"}), 2, {"unknown flag --epoch", "did you mean --epochs?"});
  expect_one_line(run_cli({"eval", "--attack-step", "3"}), 2, {"unknown flag --attack-step", "--attack-steps"});
  expect_one_line(run_cli({"trian"}), 2, {"unknown command 'trian'", "did you mean 'train'?"});
  expect_one_line(run_cli({"train", "epochs"}), 2, {"unexpected argument 'epochs'"});
}

TEST(CliErrors, WrongType) {
  expect_one_line(run_cli({"train", "--epochs", "ten"}), 2, {"--epochs: expected an integer, got 'ten'"});
  expect_one_line(run_cli({"train", "--lr=fast"}), 2, {"--lr: expected a finite number", "'fast'"});
  expect_one_line(run_cli({"train", "--flip=sometimes"}), 2, {"--flip: expected true or false, got 'sometimes'"});
  expect_one_line(run_cli({"train", "--milestones", "50,x"}), 2, {"--milestones: expected an integer, got 'x'"});
  expect_one_line(run_cli({"train", "--epochs"}), 2, {"--epochs: needs a value (int)"});
  expect_one_line(run_cli({"train", "--no-epochs"}), 2, {"unknown flag --no-epochs"});
}

TEST(CliErrors, OutOfRangeAndBadChoice) {
  expect_one_line(run_cli({"train", "--batch-size", "0"}), 2, {"--batch-size: must be >= 1, got 0"});
  expect_one_line(run_cli({"train", "--lr", "-0.1"}), 2, {"--lr: must be >= 0, got -0.1"});
  expect_one_line(run_cli({"train", "--lr-gamma", "0"}), 2, {"--lr-gamma: must be > 0, got 0"});
  expect_one_line(run_cli({"train", "--attack-sparsity", "1.5"}), 2, {"--attack-sparsity: must be <= 1, got 1.5"});
  expect_one_line(run_cli({"train", "--method", "adf"}), 2, {"--method: 'adf' is not one of", "did you mean 'afd'?"});
  expect_one_line(run_cli({"train", "--attack", "pgd"}), 2, {"--attack: 'pgd' is not one of", "pgd-linf"});
  expect_one_line(run_cli({"train", "--device", "gpu0"}), 2, {"--device: 'gpu0' is not one of cpu, cuda, cuda:N"});
  expect_one_line(run_cli({"train", "--milestones", "80,50"}), 2, {"milestones must increase"});
  // An eps grid out of order gave a wrong AUC and a zig-zag curve; a repeated eps, two entries.
  expect_one_line(run_cli({"eval", "--eps", "0,0.03,0.01"}), 2, {"--eps: must increase, got 0.01 after 0.03"});
  expect_one_line(run_cli({"eval", "--eps", "0.1,0.1"}), 2, {"--eps: must increase, got 0.1 after 0.1"});
  expect_one_line(run_cli({"eval", "--checkpoint", "a", "--names", "AT|2"}), 2, {"--names: 'AT|2' holds a '|'"});
  expect_one_line(run_cli({"train", "--nproc", "2", "--rank", "1"}), 2, {"--nproc 2 numbers its own ranks", "give no --rank"});
  expect_one_line(run_cli({"eval", "--sanity-points", "-1"}), 2, {"--sanity-points: must be >= 0, got -1"});
  // Data parallel bounds: 1e11 workers asked for memory until the OOM killer came, 1e6 forked
  // thousands; a timeout of 1e10 s overflowed into "Timed out waiting 10000000000000ms" at once.
  expect_one_line(run_cli({"train", "--nproc", "99999999999"}), 2, {"--nproc: must be <= 256, got 99999999999"});
  expect_one_line(run_cli({"train", "--nproc", "1000000"}), 2, {"--nproc: must be <= 256, got 1000000"});
  expect_one_line(run_cli({"train", "--dist-timeout", "1e10"}), 2, {"--dist-timeout: must be <= 604800, got 1e10"});
  expect_one_line(run_cli({"train", "--dist-timeout", "1e16"}), 2, {"--dist-timeout: must be <= 604800, got 1e16"});
  // A width the model would ignore.
  expect_one_line(run_cli({"train", "--model", "small-cnn", "--width", "4"}), 2,
                  {"--width 4: small-cnn has a fixed width", "resnet18-mnist"});
  expect_one_line(run_cli({"train", "--dataset", "cifar10", "--model", "wrn-28-10", "--width", "1"}), 2,
                  {"--width 1: wrn-28-10 has a fixed width"});
}

TEST(CliErrors, FlagfileErrorsNameTheFileAndLine) {
  TempDir dir;
  write_text_file(dir / "bad.flags", "--epochs 3\n# fine\n--lrr 0.1\n");
  expect_one_line(run_cli({"train", "--flagfile", dir / "bad.flags"}), 2,
                  {dir / "bad.flags:3", "unknown flag --lrr", "did you mean --lr?"});
  write_text_file(dir / "bad2.flags", "--epochs -1\n");
  expect_one_line(run_cli({"train", "--flagfile", dir / "bad2.flags"}), 2, {dir / "bad2.flags:1", "must be >= 0"});
  expect_one_line(run_cli({"train", "--flagfile", dir / "missing.flags"}), 2, {"missing.flags: cannot read the file"});
  // A device or a huge file is read through a 1 MiB cap instead of hanging (found by fuzz/fuzz_flagfile's reasoning).
  expect_one_line(run_cli({"train", "--flagfile", "/dev/zero"}), 2, {"--flagfile /dev/zero: larger than 1 MiB"});
}

TEST(CliErrors, MissingDataDirectoryNamesTheFetchCommand) {
  TempDir dir;
  expect_one_line(run_cli({"train", "--data-dir", dir / "nothing", "--out", dir / "out"}), 1,
                  {"--data-dir " + dir / "nothing" + ": no such folder", "afd_run data --dataset mnist --fetch"});
  fs::create_directories(dir / "empty");
  expect_one_line(run_cli({"train", "--data-dir", dir / "empty", "--out", dir / "out2"}), 1,
                  {"--data-dir " + dir / "empty", "train-images-idx3-ubyte", "--fetch"});
  expect_one_line(run_cli({"data", "--data-dir", dir / "nothing"}), 1, {"no such folder", "--fetch"});
}

TEST(CliErrors, DataOnAPartialCifar10Set) {
  // The CIFAR-10 reader takes some of the five training batches (tools/fetch_data.sh installs such
  // sets): their absence is reported, not counted as a failure; a missing test batch is one.
  TempDir dir;
  fs::create_directories(dir / "c10");
  data::write_cifar(dir / "c10/data_batch_1.bin", data::CifarKind::cifar10, {1, 2});
  data::write_cifar(dir / "c10/test_batch.bin", data::CifarKind::cifar10, {3});
  Result d = run_cli({"data", "--dataset", "cifar10", "--data-dir", dir / "c10"});
  EXPECT_EQ(d.code, 1);  // synthetic files: MISMATCH
  EXPECT_NE(d.out.find("data_batch_2.bin             missing (a partial training set)"), std::string::npos) << d.out;
  const size_t first = d.out.find("training set is partial");
  ASSERT_NE(first, std::string::npos) << d.out;
  EXPECT_EQ(d.out.find("training set is partial", first + 1), std::string::npos) << "the note twice:\n" << d.out;
  EXPECT_NE(d.err.find("fetch again: afd_run data --dataset cifar10 --fetch --data-dir " + dir / "c10"), std::string::npos)
      << d.err;
  fs::remove(dir / "c10/test_batch.bin");
  Result t = run_cli({"data", "--dataset", "cifar10", "--data-dir", dir / "c10", "--no-describe"});
  EXPECT_EQ(t.code, 1);
  EXPECT_NE(t.out.find("test_batch.bin               missing\n"), std::string::npos) << t.out;
}

TEST(CliErrors, TestImagesOfAnotherShape) {
  // A 14 x 56 test split next to 28 x 28 training images trained and evaluated without a word.
  TempDir dir;
  write_mnist(dir / "odd");
  data::write_idx_images(dir / "odd/t10k-images-idx3-ubyte", 32, 14, 56);
  expect_one_line(run_cli({"train", "--data-dir", dir / "odd", "--out", dir / "x"}), 1,
                  {"the training images are [1, 28, 28] of 10 classes, the test images [1, 14, 56] of 10",
                   "must come from one dataset"});
  // A checkpoint records the shape of its training images; eval and attack refuse others.
  write_mnist(dir / "mnist");
  ASSERT_EQ(run_cli(tiny_run(dir / "mnist", dir / "run")).code, 0);
  for (const char* command : {"eval", "attack"})
    expect_one_line(run_cli({command, "--checkpoint", dir / "run/checkpoint", "--data-dir", dir / "odd", "--out",
                             dir / command}),
                    1, {"trained on images [1, 28, 28], the test split's are [1, 14, 56]"});
}

TEST(CliErrors, EvalOutputFolders) {
  TempDir dir;
  write_mnist(dir / "mnist");
  // Two models of one name (the --seeds layout runs/a/seed-0, runs/b/seed-0): refused before any work.
  expect_one_line(run_cli({"eval", "--checkpoint", dir / "a/seed-0/checkpoint," + dir / "b/seed-0/checkpoint"}), 2,
                  {"are both named 'seed-0'", "--names"});
  expect_one_line(run_cli({"eval", "--checkpoint", "p,q", "--names", "X,X"}), 2, {"are both named 'X'"});
  // A training run's folder as --out: its resolved.flags would be replaced (then --resume failed).
  ASSERT_EQ(run_cli(tiny_run(dir / "mnist", dir / "run")).code, 0);
  const std::string flags = read_text(dir / "run/resolved.flags");
  for (const char* command : {"eval", "attack"})
    expect_one_line(run_cli({command, "--checkpoint", dir / "run/checkpoint", "--data-dir", dir / "mnist", "--out",
                             dir / "run"}),
                    1, {"--out " + dir / "run" + ": holds a training run"});
  EXPECT_EQ(read_text(dir / "run/resolved.flags"), flags);
  expect_one_line(run_cli({"eval", "--checkpoint", dir / "run/checkpoint", "--data-dir", dir / "mnist", "--out",
                           dir / "run/checkpoint"}),
                  1, {"holds a training run"});
  // The run's folder for its checkpoint folder: the message names the one meant.
  expect_one_line(run_cli({"eval", "--checkpoint", dir / "run", "--data-dir", dir / "mnist", "--out", dir / "e0"}), 1,
                  {"did you mean " + dir / "run/checkpoint" + "?"});
  // Files of an earlier report in --out do not outlive a new evaluation there; a user's own stay.
  fs::create_directories(dir / "e/plots");
  write_text_file(dir / "e/table_a3.csv", "stale\n");
  write_text_file(dir / "e/plots/accuracy_vs_eps_old.svg", "<svg/>");
  write_text_file(dir / "e/plots/custom.svg", "<svg/>");
  ASSERT_EQ(run_cli({"eval", "--checkpoint", dir / "run/checkpoint", "--attacks", "fgsm", "--count", "4",
                     "--sanity-points", "0", "--data-dir", dir / "mnist", "--out", dir / "e", "--progress", "none"})
                .code,
            0);
  EXPECT_FALSE(fs::exists(dir / "e/table_a3.csv"));
  EXPECT_FALSE(fs::exists(dir / "e/plots/accuracy_vs_eps_old.svg"));
  EXPECT_TRUE(fs::exists(dir / "e/plots/accuracy_vs_eps_fgsm.svg"));
  EXPECT_TRUE(fs::exists(dir / "e/plots/custom.svg"));
}

TEST(CliErrors, AMissingCheckpointIsNamedBeforeTheData) {
  // Before: "cannot load the mnist test split" (the dataset comes from the checkpoint's config).
  TempDir dir;
  for (const char* command : {"eval", "attack"})
    expect_one_line(run_cli({command, "--checkpoint", dir / "nope", "--data-dir", dir / "nothing", "--out", dir / command}),
                    1, {"--checkpoint " + dir / "nope", "does not exist"});
}

TEST(CliErrors, UnwritableOutputDirectory) {
  TempDir dir;
  write_mnist(dir / "mnist");
  write_text_file(dir / "a_file", "x");  // a folder cannot be made under a file, even by root
  auto args = tiny_run(dir / "mnist", dir / "a_file/run");
  expect_one_line(run_cli(args), 1, {"--out " + dir / "a_file/run" + ": cannot create the folder"});
  expect_one_line(run_cli({"eval", "--checkpoint", "x", "--out", dir / "a_file/e"}), 1, {"--out", "cannot create"});
}

TEST(CliErrors, ACheckpointOfAnotherModel) {
  TempDir dir;
  write_mnist(dir / "mnist");
  auto args = tiny_run(dir / "mnist", dir / "run");
  ASSERT_EQ(run_cli(args).code, 0);
  // Resuming with another width: the checkpoint's model does not match this run's.
  expect_one_line(run_cli({"train", "--resume", dir / "run", "--width", "4", "--epochs", "3"}), 1,
                  {"--resume " + dir / "run", "was written by a run with model resnet18-mnist (width 2",
                   "this trainer has resnet18-mnist (width 4"});
  expect_one_line(run_cli({"train", "--resume", dir / "run", "--method", "at"}), 1, {"method afd", "this trainer has at"});
  // Evaluating its weights as another architecture.
  expect_one_line(run_cli({"eval", "--checkpoint", dir / "run/checkpoint", "--model", "small-cnn", "--data-dir",
                           dir / "mnist", "--out", dir / "e", "--progress", "none"}),
                  1, {"--checkpoint " + dir / "run/checkpoint", "does not fit a small-cnn"});
  expect_one_line(run_cli({"eval", "--checkpoint", dir / "nowhere", "--data-dir", dir / "mnist", "--out", dir / "e"}), 1,
                  {"--checkpoint " + dir / "nowhere", "does not exist"});
  // A folder that is no run.
  expect_one_line(run_cli({"train", "--resume", dir / "mnist"}), 1, {"--resume " + dir / "mnist", "no resolved.flags"});
  // Fewer epochs than the run has trained: refused (it rewrote final.json to say 1 epoch).
  expect_one_line(run_cli({"train", "--resume", dir / "run", "--epochs", "1"}), 1,
                  {"has trained 2 epochs already, more than the 1 asked for"});
  // Another drop_last: refused, named.
  expect_one_line(run_cli({"train", "--resume", dir / "run", "--drop-last"}), 1,
                  {"batch size 16, this trainer has 16 (drop_last)"});
}

TEST(CliRun, ZeroEpochsAndADiscriminatorOfAnotherStep) {
  TempDir dir;
  write_mnist(dir / "mnist");
  // --epochs 0: the initial weights are the checkpoint (final.json named one that did not exist).
  std::vector<std::string> zero = tiny_run(dir / "mnist", dir / "zero");
  for (const char* a : {"--epochs", "0"}) zero.push_back(a);
  ASSERT_EQ(run_cli(zero).code, 0);
  EXPECT_TRUE(fs::exists(dir / "zero/checkpoint/trainer.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "zero/checkpoint/discriminator.safetensors"));
  // A run stopped between writing model.safetensors and discriminator.safetensors leaves D of an
  // earlier step: eval leaves D out with a warning; --resume writes both again.
  ASSERT_EQ(run_cli(tiny_run(dir / "mnist", dir / "run")).code, 0);
  fs::copy_file(dir / "zero/checkpoint/discriminator.safetensors", dir / "run/checkpoint/discriminator.safetensors",
                fs::copy_options::overwrite_existing);
  const std::vector<std::string> eval = {"eval", "--checkpoint", dir / "run/checkpoint", "--attacks", "fgsm", "--count", "8",
                                         "--sanity-points", "0", "--data-dir", dir / "mnist", "--out", dir / "e",
                                         "--progress", "none"};
  std::string err;
  ASSERT_EQ(run_binary(eval, "", &err), 0) << err;
  EXPECT_NE(err.find("discriminator.safetensors is of epoch 0 batch 0, the classifier of epoch 2 batch 0"),
            std::string::npos) << err;
  EXPECT_FALSE(json::parse(read_text(dir / "e/eval.json"))["models"][0].contains("h_divergence"));
  ASSERT_EQ(run_cli({"train", "--resume", dir / "run"}).code, 0);
  ASSERT_EQ(run_binary(eval, "", &err), 0) << err;
  EXPECT_EQ(err.find("warning"), std::string::npos) << err;
  EXPECT_TRUE(json::parse(read_text(dir / "e/eval.json"))["models"][0].contains("h_divergence"));
}

TEST(CliRun, ALearningRateGivenOnResumeTakesEffect) {
  // It was read into the config and resolved.flags, but the optimizers kept the checkpoint's lr.
  TempDir dir;
  write_mnist(dir / "mnist");
  // A one-epoch run in `name`, resumed to 2 epochs with `flags`: the lr of the last epoch record.
  auto resumed_lr = [&](const std::string& name, const std::vector<std::string>& flags) {
    std::vector<std::string> args = tiny_run(dir / "mnist", dir / name);
    for (const char* a : {"--epochs", "1"}) args.push_back(a);
    EXPECT_EQ(run_cli(args).code, 0);
    std::vector<std::string> resume = {"train", "--resume", dir / name, "--epochs", "2", "--progress", "none"};
    resume.insert(resume.end(), flags.begin(), flags.end());
    Result r = run_cli(resume);
    EXPECT_EQ(r.code, 0) << r.err;
    json last;
    std::ifstream metrics(dir / (name + "/metrics.jsonl"));
    for (std::string line; std::getline(metrics, line);)
      if (json j = json::parse(line); j["type"] == "epoch") last = j;
    EXPECT_EQ(last["epoch"], 2);
    return last["lrs"][0].get<double>();
  };
  EXPECT_DOUBLE_EQ(resumed_lr("run", {"--lr", "0.5"}), 0.5 * 0.1);  // the new base lr after milestone 1
  // Another schedule on resume takes effect too: without milestones, no decay of the preset's 0.1.
  EXPECT_DOUBLE_EQ(resumed_lr("run2", {"--milestones", ""}), 0.1);
}

TEST(CliErrors, ExistingRunIsNeverOverwrittenSilently) {
  TempDir dir;
  write_mnist(dir / "mnist");
  auto args = tiny_run(dir / "mnist", dir / "run");
  ASSERT_EQ(run_cli(args).code, 0);
  expect_one_line(run_cli(args), 1, {"--out " + dir / "run" + ": holds a run already", "--resume", "--overwrite"});
  args.push_back("--overwrite");
  EXPECT_EQ(run_cli(args).code, 0);
}

TEST(CliErrors, UnavailableDevice) {
  // No machine has 1001 GPUs; the message says why (no CUDA in the build, or how many are visible).
  expect_one_line(run_cli({"train", "--device", "cuda:1000"}), 1, {"--device cuda:1000: not available", "use --device cpu"});
  if (backend_available(Device::cuda(0))) return;
  expect_one_line(run_cli({"train", "--device", "cuda:0"}), 1, {"--device cuda:0: not available", "use --device cpu"});
  expect_one_line(run_cli({"eval", "--device", "cuda", "--checkpoint", "x"}), 1, {"--device cuda: not available"});
}

// ---- help and docs ---------------------------------------------------------------------------

TEST(CliHelp, EveryFlagWithTypeAndDefault) {
  for (Command c : {kTrain, kEval, kAttack, kData}) {
    Result r = run_cli({command_name(c), "--help"});
    EXPECT_EQ(r.code, 0);
    const FlagSet set(flag_table(), c);
    for (const Flag* f : set.flags()) {
      EXPECT_NE(r.out.find(f->type == FlagType::boolean ? "--[no-]" + f->name + " " : "--" + f->name + " <"), std::string::npos)
          << command_name(c) << " --" << f->name;
      EXPECT_NE(r.out.find(f->help.substr(0, 20)), std::string::npos) << f->name;
    }
  }
  // Defaults follow the preset of the flags given before --help.
  Result trades = run_cli({"train", "--method", "trades", "--help"});
  EXPECT_NE(trades.out.find("--lr <float>                       default: 0.01"), std::string::npos) << trades.out;
  EXPECT_EQ(run_cli({"--version"}).code, 0);
  EXPECT_NE(run_cli({"--version"}).out.find("afd_run "), std::string::npos);
  EXPECT_EQ(run_cli({"help", "attacks"}).code, 0);
  EXPECT_NE(run_cli({"help", "attacks"}).out.find("apgd-ce"), std::string::npos);
  // With each attack's evaluation setting, as eval_preset gives it (CIFAR's eps as k/255).
  const std::string attacks = run_cli({"help", "attacks"}).out;
  for (const char* line : {"    mnist    linf eps grid 0,0.1,0.3,0.35,0.4,0.45,0.5; attack eps 0.3; 40 steps, random start",
                           "    cifar10  linf eps grid 0,2/255,4/255,8/255,16/255,32/255; attack eps 8/255; 20 steps",
                           "    cifar10  l2 eps grid 0,1,2,5; attack eps 1; 20 steps"})
    EXPECT_NE(attacks.find(line), std::string::npos) << line << "\nnot in:\n" << attacks;
  EXPECT_EQ(run_cli({}).code, 2);
}

TEST(CliHelp, DocsMatchTheFlagTable) {
  const std::string path = std::string(AFD_SOURCE_DIR) + "/docs/cli.md";
  ASSERT_TRUE(fs::exists(path)) << path;
  EXPECT_EQ(read_text(path), markdown_reference())
      << "docs/cli.md is stale: regenerate it with build/afd_run help flags-markdown > docs/cli.md";
}

TEST(CliHelp, EvalPresetsAreThePapers) {
  EvalPreset p = eval_preset("pgd-linf", "mnist");
  EXPECT_EQ(p.eps, (std::vector<double>{0, .1, .3, .35, .4, .45, .5}));
  EXPECT_EQ(p.config.steps, 40);
  EXPECT_DOUBLE_EQ(p.config.step_for(0.3), 0.01);
  EXPECT_TRUE(p.config.random_start);
  EvalPreset c = eval_preset("pgd-linf", "cifar10");
  EXPECT_EQ(c.config.steps, 20);
  EXPECT_DOUBLE_EQ(c.config.step_for(8.0 / 255), 2.0 / 255);
  EXPECT_EQ(eval_preset("cw-l2", "mnist").eps, (std::vector<double>{0, 1, 2, 5}));
  EXPECT_EQ(eval_preset("autoattack", "mnist").eps, (std::vector<double>{0.3}));
  // afd_run attack's one eps: Table 1's budget in the attack's own norm (it was the Linf budget for
  // every attack: pgd-l2 on CIFAR ran at an L2 eps of 8/255).
  EXPECT_DOUBLE_EQ(eval_preset("pgd-linf", "mnist").config.eps, 0.3);
  EXPECT_DOUBLE_EQ(eval_preset("apgd-ce", "cifar10").config.eps, 8.0 / 255);
  EXPECT_DOUBLE_EQ(eval_preset("fgsm", "tiny-imagenet").config.eps, 0.015);
  EXPECT_DOUBLE_EQ(eval_preset("pgd-linf", "tiny-imagenet-32").config.eps, 0.015);
  for (const char* l2 : {"pgd-l2", "mim-l2", "ddn", "deepfool-l2", "cw-l2"}) {
    EXPECT_EQ(eval_preset(l2, "cifar10").config.norm, afd::attacks::Norm::l2) << l2;
    EXPECT_DOUBLE_EQ(eval_preset(l2, "cifar10").config.eps, 1.0) << l2;
    EXPECT_DOUBLE_EQ(eval_preset(l2, "mnist").config.eps, 1.0) << l2;
  }
  for (const char* l1 : {"pgd-l1", "sparse-l1"}) EXPECT_DOUBLE_EQ(eval_preset(l1, "mnist").config.eps, 10.0) << l1;
  EXPECT_DOUBLE_EQ(curve_auc({0, 1, 2}, {1, 0.5, 0}), 0.5);
  auto [m, s] = mean_std({1, 2, 3});
  EXPECT_DOUBLE_EQ(m, 2);
  EXPECT_DOUBLE_EQ(s, 1);
}

TEST(CliHelp, PaperConfigsEqualThePresets) {
  int checked = 0;
  for (const auto& e : fs::directory_iterator(std::string(AFD_SOURCE_DIR) + "/configs")) {
    const std::string name = e.path().stem().string();
    if (e.path().extension() != ".flags") continue;
    FlagSet set(flag_table(), kTrain);
    TrainPlan p = resolve_train(set, set.read_flagfile(e.path().string()));  // every config parses
    if (name.rfind("main_job", 0) == 0) continue;
    train::TrainConfig ref = train::presets(p.config.dataset, p.config.method);
    ref.out_dir = p.config.out_dir;
    ref.gan_loss = p.config.gan_loss;  // the one choice the preset leaves open (wgan or dcgan)
    EXPECT_EQ(train::config_to_json(p.config), train::config_to_json(ref)) << name;
    EXPECT_EQ(p.config.out_dir, "runs/" + name);
    ++checked;
  }
  EXPECT_GE(checked, 10);
}

// ---- whole runs ------------------------------------------------------------------------------

TEST(CliRun, TrainWritesFlagsMetricsCheckpointAndFinal) {
  TempDir dir;
  write_mnist(dir / "mnist");
  Result r = run_cli(tiny_run(dir / "mnist", dir / "run"));
  ASSERT_EQ(r.code, 0) << r.err;
  const fs::path run = dir / "run";
  EXPECT_TRUE(fs::exists(run / "checkpoint/trainer.safetensors"));
  EXPECT_TRUE(fs::exists(run / "checkpoint/model.safetensors"));
  EXPECT_TRUE(fs::exists(run / "checkpoint/discriminator.safetensors"));
  json fin = json::parse(read_text(run / "final.json"));
  EXPECT_EQ(fin["test"]["count"], 32);
  EXPECT_TRUE(fin["test"]["adv_acc"].is_number());
  int epochs = 0, steps = 0;
  std::ifstream m(run / "metrics.jsonl");
  for (std::string line; std::getline(m, line);) {
    json j = json::parse(line);
    if (j["type"] == "epoch") {
      ++epochs;
      EXPECT_TRUE(j["train"].contains("l_d"));
      EXPECT_TRUE(j["test"].contains("clean_acc"));
    }
    steps += j["type"] == "step";
  }
  EXPECT_EQ(epochs, 2);
  EXPECT_EQ(steps, 8);  // 64 images / 16, two epochs
  EXPECT_NE(r.err.find("epoch 2/2 done"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("AFD-WGAN over 1 seed(s)"), std::string::npos) << r.out;
  // The resolved flags rerun the same config.
  FlagSet set(flag_table(), kTrain);
  TrainPlan again = resolve_train(set, set.read_flagfile(run / "resolved.flags"));
  EXPECT_EQ(again.config.width, 2);
  EXPECT_EQ(again.config.attack, "pgd-linf");
}

TEST(CliRun, SeedsReportMeanAndStd) {
  TempDir dir;
  write_mnist(dir / "mnist");
  auto args = tiny_run(dir / "mnist", dir / "run");
  for (const char* a : {"--seeds", "2", "--seed", "5", "--method", "at", "--epochs", "1"}) args.push_back(a);
  Result r = run_cli(args);
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* s : {"seed-5", "seed-6"}) {
    EXPECT_TRUE(fs::exists(fs::path(dir / "run") / s / "final.json")) << s;
    EXPECT_NE(read_text(fs::path(dir / "run") / s / "resolved.flags").find("--seeds=1"), std::string::npos);
  }
  json sum = json::parse(read_text(dir / "run/summary.json"));
  EXPECT_EQ(sum["seeds"].size(), 2u);
  EXPECT_TRUE(sum["clean_acc"]["std"].is_number());
  EXPECT_TRUE(sum["adv_acc"]["mean"].is_number());
  // --flip on MNIST is allowed, with a warning.
  auto flipped = tiny_run(dir / "mnist", dir / "flipped");
  for (const char* a : {"--epochs", "1", "--flip"}) flipped.push_back(a);
  Result f = run_cli(flipped);
  ASSERT_EQ(f.code, 0) << f.err;
  EXPECT_NE(f.err.find("warning: --flip on mnist"), std::string::npos) << f.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  // --resume of the finished run: every seed is found finished, none trained again.
  const std::string weights = read_text(dir / "run/seed-5/checkpoint/model.safetensors");
  Result again = run_cli({"train", "--resume", dir / "run"});
  ASSERT_EQ(again.code, 0) << again.err;
  for (const char* s : {"[seed 5] already finished", "[seed 6] already finished"})
    EXPECT_NE(again.err.find(s), std::string::npos) << again.err;
  EXPECT_EQ(read_text(dir / "run/seed-5/checkpoint/model.safetensors"), weights);
  // A run of one seed resumed with several: its seed lives in OUT itself, not in OUT/seed-N.
  auto one = tiny_run(dir / "mnist", dir / "single");
  for (const char* a : {"--epochs", "1"}) one.push_back(a);
  ASSERT_EQ(run_cli(one).code, 0);
  expect_one_line(run_cli({"train", "--resume", dir / "single", "--seeds", "2"}), 2,
                  {"--seeds 2: the run trained one seed, in", "(--seed N --out ANOTHER)"});
  EXPECT_FALSE(fs::exists(dir / "single/seed-0"));
  // And a run of several seeds resumed with one.
  expect_one_line(run_cli({"train", "--resume", dir / "run", "--seeds", "1"}), 2,
                  {"--seeds 1: the run trains several seeds, in", "seed-5, ..."});
}

TEST(CliRun, ValidationSplitKeepsTheBestCheckpoint) {
  TempDir dir;
  write_mnist(dir / "mnist");
  auto args = tiny_run(dir / "mnist", dir / "run");
  for (const char* a : {"--val-size", "16", "--select-best", "clean"}) args.push_back(a);
  Result r = run_cli(args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "run/best/model.safetensors"));
  json best = json::parse(read_text(dir / "run/best.json"));
  EXPECT_GE(best["epoch"].get<int>(), 1);
  json fin = json::parse(read_text(dir / "run/final.json"));
  EXPECT_EQ(fin["train_images"], 48);
  EXPECT_TRUE(fin.contains("best"));
  // Resumed with the other criterion, its scores would be compared with the stored clean score.
  expect_one_line(run_cli({"train", "--resume", dir / "run", "--epochs", "3", "--select-best", "adv"}), 1,
                  {"--select-best adv: the run chose its best epoch by clean", "resume with --select-best clean"});
  EXPECT_NE(read_text(dir / "run/resolved.flags").find("--select-best=clean\n"), std::string::npos)  // left as it was
      << read_text(dir / "run/resolved.flags");
  expect_one_line(run_cli({"train", "--data-dir", dir / "mnist", "--out", dir / "x", "--val-size", "64"}), 2,
                  {"--val-size 64: the training split has only 64 images"});
  expect_one_line(run_cli({"train", "--data-dir", dir / "mnist", "--out", dir / "y", "--val-size", "16",
                           "--train-subset", "60"}),
                  2, {"--train-subset 60: only 48 training images"});
}

TEST(CliRun, EvalAttackAndData) {
  TempDir dir;
  write_mnist(dir / "mnist");
  ASSERT_EQ(run_cli(tiny_run(dir / "mnist", dir / "run")).code, 0);
  Result e = run_cli({"eval", "--checkpoint", dir / "run/checkpoint", "--names", "tiny", "--attacks", "pgd-linf,fgsm",
                      "--eps", "0,0.1", "--attack-steps", "2", "--data-dir", dir / "mnist", "--out", dir / "eval",
                      "--progress", "none"});
  ASSERT_EQ(e.code, 0) << e.err;
  json ev = json::parse(read_text(dir / "eval/eval.json"));
  ASSERT_EQ(ev["models"].size(), 1u);
  EXPECT_EQ(ev["models"][0]["name"], "tiny");
  EXPECT_EQ(ev["models"][0]["attacks"].size(), 2u);
  EXPECT_EQ(ev["models"][0]["attacks"][0]["config"]["steps"], 2);
  EXPECT_EQ(ev["models"][0]["attacks"][0]["robust_acc"][0], ev["models"][0]["clean_acc"]);  // eps 0 = clean
  EXPECT_NE(read_text(dir / "eval/eval.md").find("| tiny |"), std::string::npos);
  // The report names the CPU's BLAS and its kernels, in eval.json and in eval.md's timing line.
  EXPECT_EQ(ev["blas"], cpu_blas_info());
  EXPECT_NE(read_text(dir / "eval/eval.md").find(", " + cpu_blas_info() + "."), std::string::npos)
      << read_text(dir / "eval/eval.md");
  // Without --source-checkpoint: no black-box section, Table 1's BB columns empty.
  EXPECT_FALSE(ev["models"][0].contains("black_box"));
  EXPECT_NE(read_text(dir / "eval/table1.csv").find("\ntiny,32,"), std::string::npos) << read_text(dir / "eval/table1.csv");
  EXPECT_TRUE(fs::exists(dir / "eval/per_sample.safetensors"));
  // Table A4's representation numbers: the width-2 MNIST ResNet18 has 4 x width = 8 feature dims.
  const json& rep = ev["models"][0]["representation"];
  EXPECT_EQ(rep["features"], 8);
  EXPECT_GE(rep["nonzero"].get<int64_t>(), 1);
  EXPECT_LE(rep["nonzero"].get<int64_t>(), 8);
  EXPECT_GE(rep["pca_99"].get<int64_t>(), 1);
  EXPECT_NE(read_text(dir / "eval/eval.md").find("PCA components for 99% variance"), std::string::npos);
  // The sanity report runs at the end of every evaluation, in the first attack's threat model.
  const json& sanity = ev["models"][0]["sanity"];
  EXPECT_EQ(sanity["norm"], "linf");
  EXPECT_EQ(sanity["eps"], 0.1);
  std::vector<std::string> checks;
  for (const json& item : sanity["items"]) checks.push_back(item["check"]);
  EXPECT_EQ(checks, (std::vector<std::string>{"randomised forward", "logits", "gradients", "unbounded budget",
                                              "convergence", "iterative vs single step"}));
  EXPECT_NE(read_text(dir / "eval/eval.md").find("Sanity report for tiny (linf eps 0.1"), std::string::npos);
  EXPECT_NE(e.err.find("[ok] randomised forward"), std::string::npos) << e.err;

  // AutoAttack reports each component's cumulative robust accuracy.
  Result aa = run_cli({"eval", "--checkpoint", dir / "run/checkpoint", "--attacks", "autoattack", "--count", "4",
                       "--data-dir", dir / "mnist", "--out", dir / "eval_aa", "--progress", "none"});
  ASSERT_EQ(aa.code, 0) << aa.err;
  json aj0 = json::parse(read_text(dir / "eval_aa/eval.json"))["models"][0]["attacks"][0];
  EXPECT_EQ(aj0["eps"], (std::vector<double>{0.3}));
  ASSERT_EQ(aj0["components"].size(), 4u);
  EXPECT_EQ(aj0["components"][0]["attack"], "apgd-ce");
  EXPECT_FALSE(fs::exists(dir / "eval_aa/autoattack-state"));  // its state file goes once it is through
  // Stopped after its first batch (killed by SIGINT; a batch of one point, so that most of the work
  // is still ahead when the signal lands), the same command resumes from the state file in
  // OUT/autoattack-state and ends with the numbers of a run never stopped.
  auto aa_args = [&](const std::string& out) {
    return std::vector<std::string>{"eval", "--checkpoint", dir / "run/checkpoint", "--attacks", "autoattack",
                                    "--count", "32", "--eval-batch-size", "1", "--sanity-points", "0", "--data-dir",
                                    dir / "mnist", "--out", dir / out, "--progress", "lines"};
  };
  std::string aa_err;
  ASSERT_EQ(run_binary(aa_args("eval_aa_straight"), "", &aa_err), 0) << aa_err;
  // --progress lines (a log file): a line per batch, no carriage returns.
  EXPECT_EQ(aa_err.find('\r'), std::string::npos) << aa_err;
  // (of as many points as the model gets right, which varies a little between machines)
  EXPECT_NE(aa_err.find("\n  apgd-ce: 2/"), std::string::npos) << aa_err;
  EXPECT_EQ(run_binary(aa_args("eval_aa_stopped"), "apgd-ce: 1/", &aa_err), 130) << aa_err;
  ASSERT_TRUE(fs::exists(dir / "eval_aa_stopped/autoattack-state")) << aa_err;
  ASSERT_EQ(run_binary(aa_args("eval_aa_stopped"), "", &aa_err), 0) << aa_err;
  EXPECT_NE(aa_err.find("autoattack: resuming from " + dir / "eval_aa_stopped/autoattack-state/"), std::string::npos)
      << aa_err;
  const json straight = json::parse(read_text(dir / "eval_aa_straight/eval.json"))["models"][0]["attacks"][0];
  const json resumed = json::parse(read_text(dir / "eval_aa_stopped/eval.json"))["models"][0]["attacks"][0];
  EXPECT_EQ(resumed["robust_acc"], straight["robust_acc"]);
  for (size_t c = 0; c < 4; ++c)
    EXPECT_EQ(resumed["components"][c]["robust_acc"], straight["components"][c]["robust_acc"]) << c;
  EXPECT_FALSE(fs::exists(dir / "eval_aa_stopped/autoattack-state"));
  // After AutoAttack the report adds the Square-vs-white-box check; --sanity-points 0 turns it off.
  const json aa_sanity = json::parse(read_text(dir / "eval_aa/eval.json"))["models"][0]["sanity"];
  EXPECT_EQ(aa_sanity["items"].back()["check"], "square vs white-box");
  // The tiny AFD run has D: AutoAttack's x_adv also gets the H-divergence estimate, over the points
  // classified right (null numbers when the tiny model gets none of the 4 right).
  const json aa_model = json::parse(read_text(dir / "eval_aa/eval.json"))["models"][0];
  ASSERT_EQ(aa_model["h_divergence"].size(), 1u);
  const json& aa_h = aa_model["h_divergence"][0];
  EXPECT_EQ(aa_h["attack"], "autoattack");
  EXPECT_EQ(aa_h["eps"], 0.3);
  EXPECT_EQ(aa_h["points"].get<double>(), std::round(aa_model["clean_acc"].get<double>() * 4));
  EXPECT_EQ(aa_h["alpha"].is_null(), aa_h["points"] == 0);
  EXPECT_DOUBLE_EQ(aa_h["error_gap"].get<double>(),
                   aa_model["clean_acc"].get<double>() - aa_model["attacks"][0]["robust_acc"][0].get<double>());
  Result off = run_cli({"eval", "--checkpoint", dir / "run/checkpoint", "--attacks", "fgsm", "--count", "4",
                        "--sanity-points", "0", "--data-dir", dir / "mnist", "--out", dir / "eval_off", "--progress", "none"});
  ASSERT_EQ(off.code, 0) << off.err;
  EXPECT_FALSE(json::parse(read_text(dir / "eval_off/eval.json"))["models"][0].contains("sanity"));

  Result a = run_cli({"attack", "--checkpoint", dir / "run/checkpoint", "--attack", "pgd-l2", "--attack-eps", "1",
                      "--count", "20", "--eval-batch-size", "8", "--save-adv", "--data-dir", dir / "mnist", "--out",
                      dir / "atk", "--progress", "none"});
  ASSERT_EQ(a.code, 0) << a.err;
  json aj = json::parse(read_text(dir / "atk/attack.json"));
  EXPECT_EQ(aj["count"], 20);
  EXPECT_EQ(aj["config"]["norm"], "l2");
  SafetensorsFile adv = read_safetensors((dir / "atk/x_adv.safetensors"));
  EXPECT_EQ(adv.get("x_adv").shape(), (Shape{20, 1, 28, 28}));
  EXPECT_EQ(adv.get("norms").shape(), (Shape{20}));
  EXPECT_EQ(aj["success_within"], "eps");
  // --attack-norm: an attack whose name fixes the norm ignores it (the report said l2 for a Linf
  // FGSM); one that takes the config's norm moves to that norm's budget (apgd-ce ran L2 at 0.3).
  for (const auto& [attack, norm, eps] : {std::tuple{"fgsm", "linf", 0.3}, std::tuple{"apgd-ce", "l2", 1.0}}) {
    const std::string out = dir / (std::string("atk_norm_") + attack);
    Result n = run_cli({"attack", "--checkpoint", dir / "run/checkpoint", "--attack", attack, "--attack-norm", "l2",
                        "--attack-steps", "2", "--count", "4", "--data-dir", dir / "mnist", "--out", out, "--progress",
                        "none"});
    ASSERT_EQ(n.code, 0) << n.err;
    const json cfg = json::parse(read_text(out + "/attack.json"))["config"];
    EXPECT_EQ(cfg["norm"], norm) << attack;
    EXPECT_DOUBLE_EQ(cfg["eps"].get<double>(), eps) << attack;
  }
  // A minimal-norm attack's successes are at any norm; robust accuracy clips them to eps: both said.
  Result m = run_cli({"attack", "--checkpoint", dir / "run/checkpoint", "--attack", "deepfool-l2", "--attack-steps", "5",
                      "--count", "4", "--save-adv", "--data-dir", dir / "mnist", "--out", dir / "atk_df", "--progress", "none"});
  ASSERT_EQ(m.code, 0) << m.err;
  EXPECT_NE(m.out.find("robust at eps 1 "), std::string::npos) << m.out;  // L2 budget, not MNIST's Linf 0.3
  EXPECT_NE(m.out.find("at any norm (minimal-norm attack; robust accuracy clips to eps)"), std::string::npos) << m.out;
  EXPECT_EQ(json::parse(read_text(dir / "atk_df/attack.json"))["success_within"], "any norm (minimal-norm attack)");
  EXPECT_EQ(read_safetensors(dir / "atk_df/x_adv.safetensors").metadata.count("x_adv"), 1u);

  Result d = run_cli({"data", "--data-dir", dir / "mnist", "--no-verify"});
  EXPECT_EQ(d.code, 0) << d.err;
  EXPECT_NE(d.out.find("mnist/train: 64 images, shape [1, 28, 28] u8, 10 classes"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("class histogram: 0:7 1:7 2:7 3:7 4:6"), std::string::npos) << d.out;
  Result v = run_cli({"data", "--data-dir", dir / "mnist", "--no-describe"});
  EXPECT_EQ(v.code, 1);  // synthetic files are not the official ones
  EXPECT_NE(v.out.find("MISMATCH"), std::string::npos);
}

TEST(CliRun, AttackPicturesAndEvalPlots) {
  TempDir dir;
  write_mnist(dir / "mnist");
  ASSERT_EQ(run_cli(tiny_run(dir / "mnist", dir / "run")).code, 0);
  auto attack = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> a = {"attack", "--checkpoint", dir / "run/checkpoint", "--attack", "pgd-linf",
                                  "--attack-eps", "0.3", "--attack-steps", "2", "--count", "8", "--eval-batch-size", "3",
                                  "--data-dir", dir / "mnist", "--out", dir / out, "--progress", "none"};
    a.insert(a.end(), extra.begin(), extra.end());
    return run_cli(a);
  };
  // The first 4 of 8 points, over batches of 3: a valid PNG of 4 rows of 28 x 28 images at scale 4.
  Result a = attack("atk", {"--save-images", "4"});
  ASSERT_EQ(a.code, 0) << a.err;
  const report::Image img = report::read_png(dir / "atk/adversarial.png");
  const report::GridLayout layout{1, 28, 28, 4};
  EXPECT_EQ(img.width, layout.pad() + 3 * (layout.column_width() + layout.pad()));
  EXPECT_EQ(img.height, layout.header_height() + layout.pad() + 4 * layout.row_height());
  // The clean cell of row 2 is test image 2 upscaled.
  const data::Dataset test = data::load_mnist(dir / "mnist", data::Split::test);
  const std::vector<uint8_t> pixels = test.images.to_vector<uint8_t>();
  const report::Point o = report::cell_origin(layout, 2, 0);
  for (int64_t j = 0; j < 28 * 4; j += 3)
    for (int64_t i = 0; i < 28 * 4; i += 3)
      ASSERT_EQ(img.at(o.x + i, o.y + j, 0), pixels[size_t(2 * 28 * 28 + (j / 4) * 28 + i / 4)]) << i << ", " << j;
  const json images = json::parse(read_text(dir / "atk/attack.json"))["images"];
  EXPECT_EQ(images["points"], 4);
  EXPECT_EQ(images["labels"], (std::vector<int>{0, 1, 2, 3}));
  ASSERT_EQ(images["max_abs_delta"].size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_LE(images["max_abs_delta"][i].get<double>(), 0.3 + 1e-6);
    if (images["max_abs_delta"][i].get<double>() > 0) {
      EXPECT_NEAR(images["amplification"][i].get<double>(), 1 / (2 * images["max_abs_delta"][i].get<double>()), 1e-9);
    }
  }
  EXPECT_NE(a.out.find("4 points drawn to"), std::string::npos) << a.out;
  EXPECT_FALSE(fs::exists(dir / "atk0"));
  // None by default; bad counts name the flag.
  ASSERT_EQ(attack("atk0", {}).code, 0);
  EXPECT_FALSE(fs::exists(dir / "atk0/adversarial.png"));
  EXPECT_FALSE(json::parse(read_text(dir / "atk0/attack.json")).contains("images"));
  expect_one_line(attack("bad", {"--save-images", "-1"}), 2, {"--save-images: must be >= 0, got -1"});
  expect_one_line(attack("bad", {"--save-images", "9"}), 2, {"--save-images 9: more than the 8 points attacked"});
  expect_one_line(attack("bad", {"--save-images", "2", "--image-scale", "0"}), 2, {"--image-scale: must be >= 1"});

  // eval: one SVG per attack with one line per model, linked from eval.md.
  Result e = run_cli({"eval", "--checkpoint", dir / "run/checkpoint," + dir / "run/checkpoint", "--names", "first,second <2>",
                      "--attacks", "pgd-linf,fgsm", "--eps", "0,0.1,0.2", "--attack-steps", "2", "--count", "8",
                      "--sanity-points", "0", "--data-dir", dir / "mnist", "--out", dir / "eval", "--progress", "none"});
  ASSERT_EQ(e.code, 0) << e.err;
  const std::string md = read_text(dir / "eval/eval.md");
  const json ev = json::parse(read_text(dir / "eval/eval.json"));
  for (const std::string attack_name : {"pgd-linf", "fgsm"}) {
    const std::string file = "plots/accuracy_vs_eps_" + attack_name + ".svg";
    EXPECT_NE(md.find("](" + file + ")"), std::string::npos) << md;
    ASSERT_TRUE(fs::exists(dir / ("eval/" + file))) << file;
    afd::testing::XmlElement svg;
    ASSERT_NO_THROW(svg = afd::testing::parse_xml(read_text(dir / ("eval/" + file)))) << file;
    const auto paths = svg.all("path");
    ASSERT_EQ(paths.size(), 2u) << file;
    EXPECT_EQ(paths[0]->attrs.at("data-series"), "first");
    EXPECT_EQ(paths[1]->attrs.at("data-series"), "second <2>");
    EXPECT_EQ(svg.all("circle").size(), 6u);  // 3 eps per model
  }
  EXPECT_EQ(ev["models"][1]["name"], "second <2>");
}

// Lines of a CSV file without quoted fields, split at commas (a trailing empty field kept).
std::vector<std::vector<std::string>> read_csv(const fs::path& p) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(read_text(p));
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> fields(1);
    for (char c : line) {
      if (c == ',')
        fields.emplace_back();
      else
        fields.back() += c;
    }
    rows.push_back(fields);
  }
  return rows;
}

// Wilson 95% bounds stored in eval.json: contain the estimate and equal the formula on n points.
void expect_wilson(const json& acc, const json& ci, int64_t n) {
  ASSERT_TRUE(ci.is_array()) << ci;
  const eval::Interval want = eval::wilson_interval(acc.get<double>(), n);
  EXPECT_LE(ci[0].get<double>(), acc.get<double>());
  EXPECT_GE(ci[1].get<double>(), acc.get<double>());
  EXPECT_DOUBLE_EQ(ci[0].get<double>(), want.lo);
  EXPECT_DOUBLE_EQ(ci[1].get<double>(), want.hi);
}

// Issue 9's reports: Wilson intervals on every accuracy, Table 1 and Table 2 (Markdown and CSV),
// per-sample flags and norms, black-box transfer from a source checkpoint, Figure 3's H-divergence
// and error gap with their plots.
TEST(CliRun, EvalTablesIntervalsPerSampleAndTransfer) {
  TempDir dir;
  write_learnable_mnist(dir / "mnist");
  ASSERT_EQ(run_cli(tiny_run(dir / "mnist", dir / "run")).code, 0);
  const std::string ck = dir / "run/checkpoint";
  Result e = run_cli({"eval", "--checkpoint", ck + "," + ck, "--names", "a,b", "--attacks", "pgd-linf,cw-l2",
                      "--eps", "0,0.3,1", "--attack-steps", "2", "--count", "20", "--eval-batch-size", "7",
                      "--source-checkpoint", ck, "--sanity-points", "0", "--data-dir", dir / "mnist", "--out",
                      dir / "eval", "--progress", "none"});
  ASSERT_EQ(e.code, 0) << e.err;
  const json ev = json::parse(read_text(dir / "eval/eval.json"));
  const int64_t n = 20;
  ASSERT_EQ(ev["models"].size(), 2u);
  ASSERT_EQ(ev["black_box_sources"].size(), 1u);
  EXPECT_EQ(ev["black_box_sources"][0]["name"], "run");  // the checkpoint's run folder
  EXPECT_EQ(ev["black_box_sources"][0]["attacks"].size(), 2u);
  for (const json& model : ev["models"]) {
    expect_wilson(model["clean_acc"], model["clean_acc_ci"], n);
    for (const char* section : {"attacks", "black_box"}) {
      ASSERT_EQ(model[section].size(), 2u) << section;
      for (const json& a : model[section]) {
        ASSERT_EQ(a["robust_acc_ci"].size(), 3u);
        for (size_t j = 0; j < 3; ++j) expect_wilson(a["robust_acc"][j], a["robust_acc_ci"][j], n);
        EXPECT_EQ(a["robust_acc"][0], model["clean_acc"]) << "eps 0 is the clean accuracy";
      }
    }
  }
  const json& m0 = ev["models"][0];

  // Table 1: 2 + 6 x 3 columns; AutoAttack not evaluated -> empty; the rest equal eval.json's numbers.
  const auto t1 = read_csv(dir / "eval/table1.csv");
  ASSERT_EQ(t1.size(), 3u);
  const std::vector<std::string> want_header = {
      "model", "n", "clean", "clean_ci_lo", "clean_ci_hi", "pgd_linf_wb", "pgd_linf_wb_ci_lo", "pgd_linf_wb_ci_hi",
      "cw_l2_wb", "cw_l2_wb_ci_lo", "cw_l2_wb_ci_hi", "aa_linf_wb", "aa_linf_wb_ci_lo", "aa_linf_wb_ci_hi",
      "pgd_linf_bb", "pgd_linf_bb_ci_lo", "pgd_linf_bb_ci_hi", "cw_l2_bb", "cw_l2_bb_ci_lo", "cw_l2_bb_ci_hi"};
  EXPECT_EQ(t1[0], want_header);
  auto pct = [](const json& v) { return fmt::format("{:.2f}", 100 * v.get<double>()); };
  for (size_t r = 1; r < 3; ++r) {
    const json& model = ev["models"][r - 1];
    ASSERT_EQ(t1[r].size(), want_header.size());
    EXPECT_EQ(t1[r][0], model["name"]);
    EXPECT_EQ(t1[r][1], "20");
    EXPECT_EQ(t1[r][2], pct(model["clean_acc"]));
    EXPECT_EQ(t1[r][3], pct(model["clean_acc_ci"][0]));
    EXPECT_EQ(t1[r][5], pct(model["attacks"][0]["robust_acc"][1]));   // pgd-linf at 0.3
    EXPECT_EQ(t1[r][8], pct(model["attacks"][1]["robust_acc"][2]));   // cw-l2 at 1
    EXPECT_EQ(t1[r][11], "");
    EXPECT_EQ(t1[r][13], "");
    EXPECT_EQ(t1[r][14], pct(model["black_box"][0]["robust_acc"][1]));
    EXPECT_EQ(t1[r][17], pct(model["black_box"][1]["robust_acc"][2]));
    for (size_t c = 2; c < want_header.size(); c += 3)  // lo <= value <= hi where present
      if (!t1[r][c].empty()) {
        EXPECT_LE(std::stod(t1[r][c + 1]), std::stod(t1[r][c]));
        EXPECT_GE(std::stod(t1[r][c + 2]), std::stod(t1[r][c]));
      }
  }
  // Table 2: the normalised AUC of each attack, 3 decimals.
  const auto t2 = read_csv(dir / "eval/table2.csv");
  ASSERT_EQ(t2.size(), 3u);
  EXPECT_EQ(t2[0], (std::vector<std::string>{"model", "pgd-linf", "cw-l2"}));
  EXPECT_EQ(t2[1][1], fmt::format("{:.3f}", m0["attacks"][0]["auc"].get<double>()));
  EXPECT_EQ(t2[2][2], fmt::format("{:.3f}", ev["models"][1]["attacks"][1]["auc"].get<double>()));
  const std::string md = read_text(dir / "eval/eval.md");
  for (const char* part : {"## Table 1", "## Table 2", "PGD-Linf WB (0.3)", "C&W-L2 BB (1)", "## Black-box (transfer from",
                           "Wilson 95%", "(trapezoid area under accuracy(eps)"})
    EXPECT_NE(md.find(part), std::string::npos) << part << " not in:\n" << md;

  // Per-sample results recompute every accuracy.
  const SafetensorsFile ps = read_safetensors(dir / "eval/per_sample.safetensors");
  const json eps_of = json::parse(ps.metadata.at("eps"));
  EXPECT_EQ(json::parse(ps.metadata.at("models")), (std::vector<std::string>{"a", "b"}));
  const std::vector<uint8_t> clean = ps.get("m0.clean").to_vector<uint8_t>();
  ASSERT_EQ(clean.size(), size_t(n));
  auto mean_row = [&](const std::vector<uint8_t>& flags, size_t row) {
    double s = 0;
    for (size_t i = 0; i < size_t(n); ++i) s += flags[row * size_t(n) + i];
    return s / double(n);
  };
  EXPECT_DOUBLE_EQ(mean_row(clean, 0), m0["clean_acc"].get<double>());
  const std::vector<std::tuple<std::string, std::string, size_t>> tables = {
      {"m0.wb.pgd-linf.robust", "attacks", 0}, {"m0.wb.cw-l2.robust", "attacks", 1},
      {"m0.bb.run.pgd-linf.robust", "black_box", 0}, {"m0.bb.run.cw-l2.robust", "black_box", 1}};
  for (const auto& [name, section, k] : tables) {
    const Tensor& t = ps.get(name);
    ASSERT_EQ(t.shape(), (Shape{3, n})) << name;
    EXPECT_EQ(eps_of[name], (std::vector<double>{0, 0.3, 1})) << name;
    const std::vector<uint8_t> flags = t.to_vector<uint8_t>();
    for (size_t j = 0; j < 3; ++j)
      EXPECT_DOUBLE_EQ(mean_row(flags, j), m0[section][k]["robust_acc"][j].get<double>()) << name << " eps " << j;
    for (size_t i = 0; i < flags.size(); ++i) EXPECT_LE(flags[i], clean[i % size_t(n)]) << name;  // robust => clean-correct
  }
  // C&W-L2 is minimal-norm: its norms, 0 for clean mistakes; a point robust at eps has norm > eps
  // (or none found) unless clipping changed the verdict, so only the clean mistakes are checked.
  const std::vector<double> norms = ps.get("m0.wb.cw-l2.norms").to_vector<double>();
  ASSERT_EQ(norms.size(), size_t(n));
  for (size_t i = 0; i < norms.size(); ++i) {
    EXPECT_GE(norms[i], 0.0);
    if (!clean[i]) {
      EXPECT_EQ(norms[i], 0.0) << i;
    }
  }
  EXPECT_FALSE(ps.contains("m0.wb.pgd-linf.norms"));

  // Figure 3: the tiny run is AFD (the default method), so its checkpoint holds D; one entry per
  // white-box attack and eps > 0, with d_hat = 2 |alpha - 1| and the gap = clean - robust accuracy.
  ASSERT_TRUE(fs::exists(dir / "run/checkpoint/discriminator.safetensors"));
  const json& hd = m0["h_divergence"];
  ASSERT_EQ(hd.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const json& a = m0["attacks"][i / 2];
    const size_t j = 1 + i % 2;
    EXPECT_EQ(hd[i]["attack"], a["attack"]);
    EXPECT_EQ(hd[i]["eps"], a["eps"][j]);
    const double alpha = hd[i]["alpha"];
    EXPECT_GE(alpha, 0.0);
    EXPECT_LE(alpha, 2.0);
    EXPECT_DOUBLE_EQ(hd[i]["d_hat"].get<double>(), 2 * std::abs(alpha - 1));
    EXPECT_DOUBLE_EQ(alpha, hd[i]["clean_right"].get<double>() + hd[i]["adv_right"].get<double>());
    EXPECT_DOUBLE_EQ(hd[i]["error_gap"].get<double>(), m0["clean_acc"].get<double>() - a["robust_acc"][j].get<double>());
    EXPECT_EQ(hd[i]["points"], std::lround(m0["clean_acc"].get<double>() * n));  // the clean-correct points
    // The fitted estimate (tests/eval for its values): alpha in [0, 2] and d_hat = 2 |alpha - 1|.
    // Its 2-fold cross-fitting needs 2 points, or it is NaN (written as null). The tiny model is
    // near chance; 20 points, two of each class, give 2 to a model that answers one class always.
    if (hd[i]["points"].get<int64_t>() < 2) {
      EXPECT_TRUE(hd[i]["alpha_fitted"].is_null() && hd[i]["d_hat_fitted"].is_null()) << hd[i];
      continue;
    }
    const double fitted = hd[i]["alpha_fitted"];
    EXPECT_GE(fitted, 0.0);
    EXPECT_LE(fitted, 2.0);
    EXPECT_DOUBLE_EQ(hd[i]["d_hat_fitted"].get<double>(), 2 * std::abs(fitted - 1));
  }
  for (const std::string file :
       {"h_divergence_vs_eps", "error_gap_vs_eps", "d_hat_vs_error_gap", "d_hat_fitted_vs_error_gap"}) {
    afd::testing::XmlElement svg;
    ASSERT_NO_THROW(svg = afd::testing::parse_xml(read_text(dir / ("eval/plots/" + file + ".svg")))) << file;
    const auto paths = svg.all("path");
    ASSERT_EQ(paths.size(), 4u) << file;  // 2 models x 2 attacks
    EXPECT_EQ(paths[0]->attrs.at("data-series"), "a / pgd-linf");
    EXPECT_EQ(paths[0]->attrs.at("stroke") == "none", file.starts_with("d_hat_")) << file;
    EXPECT_NE(md.find("](plots/" + file + ".svg)"), std::string::npos) << file;
  }
  EXPECT_NE(md.find("Pearson r(d_hat, error gap)"), std::string::npos);
  // An NT checkpoint has no D: no h_divergence entries, no Figure 3.
  std::vector<std::string> nt = tiny_run(dir / "mnist", dir / "nt");
  nt.insert(nt.end(), {"--method", "nt"});
  ASSERT_EQ(run_cli(nt).code, 0);
  Result e_nt = run_cli({"eval", "--checkpoint", dir / "nt/checkpoint", "--attacks", "fgsm", "--eps", "0,0.3", "--count", "8",
                         "--sanity-points", "0", "--data-dir", dir / "mnist", "--out", dir / "eval_nt", "--progress", "none"});
  ASSERT_EQ(e_nt.code, 0) << e_nt.err;
  EXPECT_FALSE(json::parse(read_text(dir / "eval_nt/eval.json"))["models"][0].contains("h_divergence"));
  EXPECT_FALSE(fs::exists(dir / "eval_nt/plots/d_hat_vs_error_gap.svg"));

  // Errors name the flag.
  expect_one_line(run_cli({"eval", "--checkpoint", ck, "--source-checkpoint", ck, "--bb-attacks", "pgd-lnf",
                           "--data-dir", dir / "mnist", "--out", dir / "bad", "--progress", "none"}),
                  2, {"--bb-attacks: unknown attack 'pgd-lnf'"});
  expect_one_line(run_cli({"eval", "--checkpoint", ck, "--source-checkpoint", ck + "," + ck, "--data-dir",
                           dir / "mnist", "--out", dir / "bad3", "--progress", "none"}),
                  2, {"--source-checkpoint: two sources are named 'run'", "--source-names"});
  expect_one_line(run_cli({"eval", "--checkpoint", ck, "--source-checkpoint", ck + "," + ck, "--source-names", "S",
                           "--data-dir", dir / "mnist", "--out", dir / "bad4", "--progress", "none"}),
                  2, {"--source-names: 1 names for 2 source checkpoints"});
  expect_one_line(run_cli({"eval", "--checkpoint", ck, "--attacks", "fgsm,pgd-linf,fgsm", "--data-dir", dir / "mnist",
                           "--out", dir / "bad2", "--progress", "none"}),
                  2, {"--attacks: 'fgsm' is listed twice"});
}

// A long evaluation runs as parts (one model and attack each, plus a black-box part) that
// `eval --merge` joins: the merged report equals the one-run report, number for number, and it
// judges the paper's claims (AFD against AT) from the per-sample flags.
TEST(CliRun, EvalMergeOfPartsEqualsOneRunAndJudgesClaims) {
  TempDir dir;
  write_learnable_mnist(dir / "mnist");
  for (const char* method : {"afd", "at", "nt"}) {
    std::vector<std::string> args = tiny_run(dir / "mnist", dir / method);
    args.insert(args.end(), {"--method", method});
    ASSERT_EQ(run_cli(args).code, 0) << method;
  }
  const std::string afd = dir / "afd/checkpoint", at = dir / "at/checkpoint", nt = dir / "nt/checkpoint";
  auto eval = [&](const std::string& out, const std::string& checkpoints, const std::string& names,
                  const std::string& attacks, const std::string& sources) {
    std::vector<std::string> args = {"eval", "--checkpoint", checkpoints, "--names", names, "--attacks", attacks,
                                     "--eps", "0,0.3,1", "--attack-steps", "2", "--count", "20", "--eval-batch-size",
                                     "7", "--sanity-points", "0", "--data-dir", dir / "mnist", "--out", dir / out,
                                     "--progress", "none"};
    if (!sources.empty()) args.insert(args.end(), {"--source-checkpoint", sources, "--bb-attacks", "pgd-linf"});
    Result r = run_cli(args);
    EXPECT_EQ(r.code, 0) << out << ": " << r.err;
  };
  const std::string all = afd + "," + at + "," + nt;
  // Black-box from AT and NT (Table A3; Table 1 takes NT's though it is listed second); the parts
  // transfer from one source each.
  eval("one", all, "A,B,C", "fgsm,pgd-l2", at + "," + nt);
  eval("p1", all, "A,B,C", "fgsm", "");
  eval("p2", at, "B", "pgd-l2", "");
  eval("p3", afd + "," + nt, "A,C", "pgd-l2", "");
  eval("p4", all, "A,B,C", "none", at);  // black-box only
  eval("p4n", all, "A,B,C", "none", nt);
  const std::string parts = dir / "p1" + "," + dir / "p2" + "," + dir / "p3" + "," + dir / "p4" + "," + dir / "p4n";
  Result m = run_cli({"eval", "--merge", parts, "--out", dir / "merged"});
  ASSERT_EQ(m.code, 0) << m.err;

  // The same numbers, tables and flags as one run.
  const json one = json::parse(read_text(dir / "one/eval.json"));
  const json merged = json::parse(read_text(dir / "merged/eval.json"));
  ASSERT_EQ(merged["models"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const json &a = one["models"][i], &b = merged["models"][i];
    EXPECT_EQ(a["name"], b["name"]);
    EXPECT_EQ(a["clean_acc"], b["clean_acc"]);
    EXPECT_EQ(a["representation"], b["representation"]);
    for (const char* section : {"attacks", "black_box"}) {
      ASSERT_EQ(a[section].size(), b[section].size()) << section;
      for (size_t k = 0; k < a[section].size(); ++k)
        for (const char* key : {"attack", "eps", "robust_acc", "robust_acc_ci", "auc"})
          EXPECT_EQ(a[section][k][key], b[section][k][key]) << a["name"] << " " << section << " " << k << " " << key;
    }
    EXPECT_EQ(a.contains("h_divergence"), i == 0);  // the AFD model holds D
    EXPECT_EQ(a.value("h_divergence", json()), b.value("h_divergence", json())) << "Figure 3's entries";
    EXPECT_EQ(a["sensitivity"].size(), 4u);  // fgsm and pgd-l2 at eps 0.3 and 1
    EXPECT_EQ(a["sensitivity"], b["sensitivity"]) << "Figure A4's entries";
  }
  for (const char* file : {"table1.csv", "table2.csv", "table_a3.csv"})
    EXPECT_EQ(read_text(fs::path(dir / "one") / file), read_text(fs::path(dir / "merged") / file)) << file;
  // Table 1's black-box column is the NT source's; Table A3 has one per source, AT's first.
  ASSERT_EQ(one["black_box_sources"].size(), 2u);
  EXPECT_EQ(one["black_box_sources"][1]["name"], "nt");
  EXPECT_EQ(one["black_box_sources"][1]["method"], "nt");
  const auto t1 = read_csv(dir / "one/table1.csv"), a3 = read_csv(dir / "one/table_a3.csv");
  ASSERT_EQ(a3.size(), 4u);
  EXPECT_EQ(a3[0], (std::vector<std::string>{"model", "n", "pgd_linf_from_at", "pgd_linf_from_at_ci_lo",
                                             "pgd_linf_from_at_ci_hi", "cw_l2_from_at", "cw_l2_from_at_ci_lo",
                                             "cw_l2_from_at_ci_hi", "pgd_linf_from_nt", "pgd_linf_from_nt_ci_lo",
                                             "pgd_linf_from_nt_ci_hi", "cw_l2_from_nt", "cw_l2_from_nt_ci_lo",
                                             "cw_l2_from_nt_ci_hi"}));
  auto pct = [](const json& v) { return fmt::format("{:.2f}", 100 * v.get<double>()); };
  for (size_t r = 1; r < 4; ++r) {
    const json& bb = one["models"][r - 1]["black_box"];  // pgd-linf from at, then from nt; eps 0, 0.3, 1
    ASSERT_EQ(bb.size(), 2u);
    EXPECT_EQ(bb[0]["source"], "at");
    EXPECT_EQ(bb[1]["source"], "nt");
    EXPECT_EQ(a3[r][2], pct(bb[0]["robust_acc"][1]));
    EXPECT_EQ(a3[r][8], pct(bb[1]["robust_acc"][1]));
    EXPECT_EQ(a3[r][5], "");  // no C&W-L2
    EXPECT_EQ(t1[r][14], pct(bb[1]["robust_acc"][1]));
  }
  const std::string md_one = read_text(dir / "one/eval.md"), md_merged = read_text(dir / "merged/eval.md");
  EXPECT_EQ(md_one.substr(0, md_one.find("## Timing")), md_merged.substr(0, md_merged.find("## Timing")));
  const SafetensorsFile ps_one = read_safetensors(dir / "one/per_sample.safetensors");
  const SafetensorsFile ps_merged = read_safetensors(dir / "merged/per_sample.safetensors");
  ASSERT_EQ(ps_one.tensors.size(), ps_merged.tensors.size());
  for (const auto& [name, t] : ps_one.tensors) {
    ASSERT_TRUE(ps_merged.contains(name)) << name;
    const std::vector<double> u = t.to(DType::f64).to_vector<double>(), v = ps_merged.get(name).to(DType::f64).to_vector<double>();
    EXPECT_TRUE(std::equal(u.begin(), u.end(), v.begin(), v.end(),
                           [](double p, double q) { return p == q || (std::isnan(p) && std::isnan(q)); }))
        << name;  // the shifts are NaN where an attack did not run
  }
  EXPECT_EQ(ps_one.metadata.at("eps"), ps_merged.metadata.at("eps"));

  // The claims: AFD (A) against AT (B). Unseen attacks are those other than PGD-Linf (the training
  // attack here): fgsm and pgd-l2. A point's AUC score averages to the attack's AUC.
  const json& claims = merged["claims"];
  EXPECT_EQ(claims, one["claims"]);
  int seen = 0;
  for (const json& c : claims) {
    EXPECT_EQ(c["afd"], "A");
    const std::string verdict = c["verdict"];
    EXPECT_TRUE(verdict == "holds" || verdict == "does not hold" || verdict == "inconclusive") << verdict;
    if (c["claim"] == "auc_unseen_attacks") {
      ++seen;
      ASSERT_EQ(c["attacks"].size(), 2u);
      int higher = 0, lower = 0;
      for (size_t k = 0; k < 2; ++k) {
        const json& a = c["attacks"][k];
        EXPECT_EQ(a["attack"], k == 0 ? "fgsm" : "pgd-l2");
        EXPECT_NEAR(a["afd_auc"].get<double>(), merged["models"][0]["attacks"][k]["auc"].get<double>(), 1e-12);
        EXPECT_NEAR(a["baseline_auc"].get<double>(), merged["models"][1]["attacks"][k]["auc"].get<double>(), 1e-12);
        EXPECT_NEAR(a["difference"].get<double>(), a["afd_auc"].get<double>() - a["baseline_auc"].get<double>(), 1e-12);
        EXPECT_LE(a["ci"][0].get<double>(), a["difference"].get<double>());
        higher += a["ci"][0].get<double>() > 0, lower += a["ci"][1].get<double>() < 0;
      }
      EXPECT_EQ(verdict, lower == 0 && higher >= 1 ? "holds" : lower > higher ? "does not hold" : "inconclusive");
    } else if (c["claim"] == "clean_accuracy_not_below_at") {
      ++seen;
      const double d = merged["models"][0]["clean_acc"].get<double>() - merged["models"][1]["clean_acc"].get<double>();
      EXPECT_NEAR(c["difference"].get<double>(), d, 1e-12);
      EXPECT_EQ(verdict, d >= 0 ? "holds" : c["ci"][1].get<double>() < 0 ? "does not hold" : "inconclusive");
    } else if (c["claim"] == "lower_dimensional_features") {
      ++seen;
      const int64_t pa = merged["models"][0]["representation"]["pca_99"];
      const int64_t pb = merged["models"][1]["representation"]["pca_99"], pc = merged["models"][2]["representation"]["pca_99"];
      EXPECT_EQ(verdict, pa < pb && pa < pc ? "holds" : pa > pb || pa > pc ? "does not hold" : "inconclusive");
    } else if (c["claim"] == "less_sensitive_features") {
      ++seen;  // against AT (B), over both attacks; lower is AFD's side
      EXPECT_EQ(c["baseline"], "B");
      ASSERT_EQ(c["attacks"].size(), 2u);
      int higher = 0, lower = 0;
      for (const json& a : c["attacks"]) {
        EXPECT_GE(a["afd_shift"].get<double>(), 0.0);
        EXPECT_NEAR(a["difference"].get<double>(), a["afd_shift"].get<double>() - a["baseline_shift"].get<double>(), 1e-12);
        EXPECT_LE(a["ci"][0].get<double>(), a["difference"].get<double>());
        higher += a["ci"][0].get<double>() > 0, lower += a["ci"][1].get<double>() < 0;
      }
      EXPECT_EQ(verdict, higher == 0 && lower >= 1 ? "holds" : higher > lower ? "does not hold" : "inconclusive");
    } else {
      EXPECT_EQ(c["claim"], "h_divergence_predicts_error_gap");  // 4 (attack, eps) pairs
      EXPECT_EQ(c["estimator"], seen == 3 ? "d_hat" : "d_hat_fitted");  // Eq. 6, then the fitted threshold
      EXPECT_EQ(c["pairs"], 4);
      ++seen;
    }
  }
  // Claim 4 with the fitted estimate needs its values (2 or more clean-correct points, see above).
  // Claim 5 needs 2 or more points both models classify correctly; these tiny models have fewer
  // (CliReport.FeatureShiftClaim below judges it on chosen numbers).
  EXPECT_EQ(seen, merged["models"][0]["h_divergence"][0]["alpha_fitted"].is_null() ? 4 : 5);
  for (const char* part : {"## The paper's claims", "### 1. AFD's AUC on unseen attacks", "### 2. AFD's clean accuracy",
                           "### 3. AFD's features", "### 4. The estimated H-divergence", "## Timing",
                           "## Feature sensitivity (Figure A4)", "plots/feature_shift_vs_eps_pgd-l2.svg"})
    EXPECT_NE(md_merged.find(part), std::string::npos) << part;

  // Parts that overlap or disagree are refused, naming the folder.
  expect_one_line(run_cli({"eval", "--merge", dir / "p1" + "," + dir / "one", "--out", dir / "bad"}), 1,
                  {"white-box attack 'fgsm' of model 'A' is in both", dir / "one"});
  fs::copy(dir / "afd", dir / "moved", fs::copy_options::recursive);  // the same weights elsewhere
  eval("p6", dir / "moved/checkpoint", "A", "pgd-l2", "");
  EXPECT_EQ(run_cli({"eval", "--merge", dir / "p1" + "," + dir / "p6", "--out", dir / "moved_ok"}).code, 0);
  eval("p5", at, "A", "pgd-l2", "");  // another model under A's name
  expect_one_line(run_cli({"eval", "--merge", dir / "p1" + "," + dir / "p5", "--out", dir / "bad"}), 1,
                  {"model 'A' is", "one name must mean one model"});
  fs::copy(dir / "at", dir / "p7src", fs::copy_options::recursive);  // another source under nt's name
  Result p7 = run_cli({"eval", "--checkpoint", at, "--names", "B", "--attacks", "none", "--source-checkpoint",
                       dir / "p7src/checkpoint", "--source-names", "nt", "--bb-attacks", "fgsm", "--count", "20",
                       "--data-dir", dir / "mnist", "--out", dir / "p7", "--progress", "none"});
  ASSERT_EQ(p7.code, 0) << p7.err;
  expect_one_line(run_cli({"eval", "--merge", dir / "p4n" + "," + dir / "p7", "--out", dir / "bad"}), 1,
                  {"black-box source 'nt' is", "one name must mean one source"});
  // The same source weights in another folder are the same source (their crc32).
  fs::copy(dir / "p7src", dir / "p8src", fs::copy_options::recursive);
  Result p8 = run_cli({"eval", "--checkpoint", dir / "afd/checkpoint", "--names", "A", "--attacks", "none",
                       "--source-checkpoint", dir / "p8src/checkpoint", "--source-names", "nt", "--bb-attacks", "fgsm",
                       "--count", "20", "--data-dir", dir / "mnist", "--out", dir / "p8", "--progress", "none"});
  ASSERT_EQ(p8.code, 0) << p8.err;
  EXPECT_EQ(run_cli({"eval", "--merge", dir / "p7" + "," + dir / "p8", "--out", dir / "moved_source"}).code, 0);
  // An eval.json of before several sources held one "black_box_source": it merges as that source.
  fs::copy(dir / "p4n", dir / "p4old", fs::copy_options::recursive);
  json old_part = json::parse(read_text(dir / "p4old/eval.json"));
  old_part["black_box_source"] = old_part["black_box_sources"][0];
  old_part.erase("black_box_sources");
  write_text_file(dir / "p4old/eval.json", old_part.dump());
  ASSERT_EQ(run_cli({"eval", "--merge", dir / "p1" + "," + dir / "p4old", "--out", dir / "old_ok"}).code, 0);
  const json old_merged = json::parse(read_text(dir / "old_ok/eval.json"));
  ASSERT_EQ(old_merged["black_box_sources"].size(), 1u);
  EXPECT_EQ(old_merged["black_box_sources"][0]["name"], "nt");
  EXPECT_EQ(read_csv(dir / "old_ok/table1.csv")[1][14], read_csv(dir / "merged/table1.csv")[1][14]);  // BB from NT
  expect_one_line(run_cli({"eval", "--merge", dir / "p1" + "," + dir / "nowhere", "--out", dir / "bad"}), 1,
                  {"--merge: cannot read", "nowhere/eval.json"});
  expect_one_line(run_cli({"eval", "--merge", parts, "--checkpoint", afd, "--out", dir / "bad"}), 2,
                  {"--merge", "drop --checkpoint"});
  expect_one_line(run_cli({"eval", "--checkpoint", afd, "--attacks", "none", "--data-dir", dir / "mnist", "--out",
                           dir / "bad", "--progress", "none"}),
                  2, {"--attacks", "'none' only with --source-checkpoint"});
}

// ---- Ctrl-C and resume through the binary ----------------------------------------------------

// Runs afd_run with `args`; once a line containing `trigger` appears on its stderr, sends `sig`.
// Returns the exit status.
int run_binary(const std::vector<std::string>& args, const std::string& trigger, std::string* err_text, int sig) {
  int pipefd[2];
  EXPECT_EQ(::pipe(pipefd), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipefd[1], 2);
    if (int null = ::open("/dev/null", O_WRONLY); null >= 0) ::dup2(null, 1);
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    std::vector<char*> argv;
    std::string exe = AFD_RUN_PATH;
    argv.push_back(exe.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::string text;
  bool sent = false;
  char buf[4096];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;) {
    text.append(buf, size_t(n));
    if (!sent && !trigger.empty() && text.find(trigger) != std::string::npos) {
      ::kill(pid, sig);
      sent = true;
    }
  }
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (err_text) *err_text = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The report writer on chosen numbers: n points (all of class 0), a three-eps grid, the models and
// per-sample tensors a test adds; write_report() writes OUT/eval.md as afd_run eval would.
class CliReport : public ::testing::Test {
 protected:
  CliReport() { ps.labels.assign(size_t(n), 0); }
  std::string write_report(const std::string& folder = "out") {
    fs::create_directories(dir / (folder + "/plots"));  // as prepare_out_dir leaves it
    return write_eval_report(report, ps, dir / folder);
  }
  // Adds the per-sample flags `name`, u8 [E, N], with kept(i, j) for point i at eps j; returns the
  // accuracy at each eps (the flags' row means).
  std::vector<double> add_flags(const std::string& name, const std::function<bool(int64_t, size_t)>& kept) {
    std::vector<uint8_t> flags;
    std::vector<double> acc;
    for (size_t j = 0; j < eps.size(); ++j) {
      int64_t count = 0;
      for (int64_t i = 0; i < n; ++i) {
        flags.push_back(kept(i, j) ? 1 : 0);
        count += flags.back();
      }
      acc.push_back(double(count) / double(n));
    }
    ps.tensors.emplace_back(name, Tensor::from_vector<uint8_t>(flags, {int64_t(eps.size()), n}));
    ps.eps[name] = eps;
    return acc;
  }
  TempDir dir;
  const int64_t n = 40;
  const std::vector<double> eps = {0, 0.5, 1};
  json report{{"dataset", "mnist"}, {"count", n}, {"models", json::array()}};
  PerSample ps;
};

// Claim 5 (Figure A4) on chosen per-point shifts, through the report writer: AFD's features move
// half as far as AT's on both attacks (holds); TRADES' move as far as AFD's under PGD-L2 (no
// difference) and half as far under FGSM (AFD higher: does not hold). A point AT misclassifies
// (NaN) drops out of that comparison only.
TEST_F(CliReport, FeatureShiftClaimFromPerPointShifts) {
  const std::vector<std::string> attacks = {"pgd-l2", "fgsm"};
  const std::vector<std::pair<std::string, std::string>> models = {{"AFD-WGAN", "afd"}, {"AT", "at"}, {"TRADES", "trades"}};
  // afd_shift(i, j): point i at eps j; the others scale it.
  auto afd_shift = [](int64_t i, size_t j) { return j == 0 ? 0.0 : 0.1 * double(j) + 0.003 * double(i % 7); };
  for (size_t m = 0; m < models.size(); ++m) {
    json mj{{"name", models[m].first}, {"method", models[m].second}, {"clean_acc", 1.0}, {"attacks", json::array()},
            {"sensitivity", json::array()}};
    if (models[m].second == "afd") mj["gan"] = "wgan";
    for (const std::string& attack : attacks) {
      const double scale = m == 0 ? 1.0 : m == 1 ? 2.0 : attack == "fgsm" ? 0.5 : 1.0;
      std::vector<double> rows;  // [E, N]
      for (size_t j = 0; j < eps.size(); ++j)
        for (int64_t i = 0; i < n; ++i) rows.push_back(m == 1 && i == 0 ? NAN : scale * afd_shift(i, j));
      const std::string name = fmt::format("m{}.wb.{}.shift", m, attack);
      ps.tensors.emplace_back(name, Tensor::from_vector<double>(rows, {int64_t(eps.size()), n}));
      ps.eps[name] = eps;
      mj["attacks"].push_back(json{{"attack", attack}, {"config", {{"norm", attack == "fgsm" ? "linf" : "l2"}}},
                                   {"eps", eps}, {"robust_acc", {1.0, 1.0, 1.0}}, {"auc", 1.0}, {"seconds", 1.0}});
      for (size_t j = 1; j < eps.size(); ++j)
        mj["sensitivity"].push_back(json{{"attack", attack}, {"eps", eps[j]}, {"shift", scale * afd_shift(1, j)},
                                         {"relative_shift", scale * afd_shift(1, j)}, {"points", n}});
    }
    report["models"].push_back(mj);
  }
  const std::string md = write_report();
  std::map<std::string, std::string> verdicts;
  for (const json& c : report["claims"]) {
    if (c["claim"] != "less_sensitive_features") continue;
    verdicts[c["baseline"]] = c["verdict"];
    ASSERT_EQ(c["attacks"].size(), 2u);
    for (const json& a : c["attacks"]) {
      // A point's score is the trapezoid mean over eps: 0.5 s(0.5) + 0.25 s(1) here.
      double mean = 0;
      const int64_t first = c["baseline"] == "AT" ? 1 : 0, points = n - first;
      for (int64_t i = first; i < n; ++i) mean += (0.5 * afd_shift(i, 1) + 0.25 * afd_shift(i, 2)) / double(points);
      EXPECT_NEAR(a["afd_shift"].get<double>(), mean, 1e-12) << c["baseline"] << " " << a["attack"];
      const double scale = c["baseline"] == "AT" ? 2.0 : a["attack"] == "fgsm" ? 0.5 : 1.0;
      EXPECT_NEAR(a["baseline_shift"].get<double>(), scale * mean, 1e-12);
      EXPECT_EQ(a["outcome"], scale > 1 ? "lower" : scale < 1 ? "higher" : "no significant difference");
    }
  }
  EXPECT_EQ(verdicts, (std::map<std::string, std::string>{{"AT", "holds"}, {"TRADES", "does not hold"}}));
  for (const char* part : {"### 5. AFD's features move less under attack", "## Feature sensitivity (Figure A4)",
                           "| AFD-WGAN | 0.103 | 0.203 |", "plots/feature_shift_vs_eps_fgsm.svg"})
    EXPECT_NE(md.find(part), std::string::npos) << part;
  EXPECT_TRUE(fs::exists(dir / "out/plots/feature_shift_vs_eps_pgd-l2.svg"));
  // AT's FGSM evaluated over another grid (merged parts run with different --eps): areas over
  // different ranges are not comparable, so that attack leaves AT's claim (it was compared).
  ps.eps["m1.wb.fgsm.shift"] = std::vector<double>{0, 0.5, 2};
  report.erase("claims");
  write_report("out2");
  for (const json& c : report["claims"]) {
    if (c["claim"] != "less_sensitive_features") continue;
    ASSERT_EQ(c["attacks"].size(), c["baseline"] == "AT" ? 1u : 2u) << c;
    EXPECT_EQ(c["attacks"][0]["attack"], "pgd-l2");
  }
}

// Claim 6 (Sec. 4.6) on chosen per-point flags: AFD keeps every point under both attacks; the norm
// baseline loses the odd points at eps 0.5 and all at eps 1 under PGD-Linf (AFD higher) and equals
// AFD under FGSM (no difference): holds. The norm model is not one of claim 3's baselines: its
// fewer PCA components do not make that claim fail.
TEST_F(CliReport, NormBaselineClaimFromPerPointFlags) {
  const std::vector<std::string> attacks = {"pgd-linf", "fgsm"};
  const std::vector<std::tuple<std::string, std::string, int64_t>> models = {
      {"AFD-WGAN", "afd", 5}, {"NT", "nt", 20}, {"NORM", "norm", 3}};  // name, method, PCA components
  auto robust = [](size_t m, const std::string& attack, int64_t i, size_t j) {
    if (m == 0 || attack == "fgsm" || j == 0) return 1;
    if (m == 1) return 0;
    return j == 1 && i % 2 == 0 ? 1 : 0;
  };
  for (size_t m = 0; m < models.size(); ++m) {
    const auto& [label, method, pca] = models[m];
    json mj{{"name", label}, {"method", method}, {"clean_acc", 1.0}, {"attacks", json::array()},
            {"representation", {{"features", 64}, {"nonzero", 64}, {"pca_99", pca}}}};
    if (method == "afd") mj["gan"] = "wgan";
    ps.tensors.emplace_back(fmt::format("m{}.clean", m), Tensor::from_vector<uint8_t>(std::vector<uint8_t>(n, 1), {1, n}));
    for (const std::string& attack : attacks) {
      const std::vector<double> acc = add_flags(fmt::format("m{}.wb.{}.robust", m, attack),
                                                [&](int64_t i, size_t j) { return robust(m, attack, i, j) == 1; });
      mj["attacks"].push_back(json{{"attack", attack}, {"config", {{"norm", "linf"}}}, {"eps", eps}, {"robust_acc", acc},
                                   {"auc", 0.5}, {"seconds", 1.0}});
    }
    report["models"].push_back(mj);
  }
  const std::string md = write_report();
  std::map<std::string, std::string> verdicts;
  for (const json& c : report["claims"]) {
    verdicts[c["claim"].get<std::string>() + " " + c.value("baseline", "")] = c["verdict"];
    if (c["claim"] != "auc_above_norm_baseline") continue;
    EXPECT_EQ(c["baseline"], "NORM");
    ASSERT_EQ(c["attacks"].size(), 2u);  // PGD-Linf counts here
    // Per point: AFD's area 1; NORM's under PGD-Linf, the trapezoid over eps 0, 0.5, 1: 0.75 for
    // the even points (flags 1, 1, 0) and 0.25 for the odd ones (1, 0, 0), 0.5 on average.
    EXPECT_EQ(c["attacks"][0]["attack"], "pgd-linf");
    EXPECT_NEAR(c["attacks"][0]["afd_auc"].get<double>(), 1.0, 1e-12);
    EXPECT_NEAR(c["attacks"][0]["baseline_auc"].get<double>(), 0.5, 1e-12);
    EXPECT_EQ(c["attacks"][0]["outcome"], "higher");
    EXPECT_EQ(c["attacks"][1]["outcome"], "no significant difference");
  }
  EXPECT_EQ(verdicts, (std::map<std::string, std::string>{{"auc_above_norm_baseline NORM", "holds"},
                                                          {"lower_dimensional_features ", "holds"}}));
  EXPECT_NE(md.find("### 6. AFD generalises further than the norm baseline"), std::string::npos);
  EXPECT_NE(md.find("| AFD-WGAN | 5 | NT 20 | **holds** |"), std::string::npos) << md;
}

// Claim 7 (Table A3) on chosen black-box flags, sources AT and TRADES: AFD is judged against AT on
// TRADES' adversarials only and against TRADES on AT's only. Under TRADES' PGD-Linf, AT loses the odd
// points at eps 1 and AFD none (higher; C&W-L2 equal): holds. Under AT's PGD-Linf, AFD loses them and
// TRADES none (lower): does not hold. The models' flags on their own adversarials (all lost) would
// turn both verdicts if they were used.
TEST_F(CliReport, TransferClaimFromPerPointFlags) {
  const std::vector<std::string> names = {"AFD-WGAN", "AT", "TRADES"}, methods = {"afd", "at", "trades"};
  report["black_box_sources"] = json::array();
  for (size_t s = 1; s < 3; ++s)
    report["black_box_sources"].push_back(json{{"name", names[s] + "-src"}, {"method", methods[s]},
                                               {"checkpoint", "moved/" + names[s]}, {"weights_crc32", names[s]},
                                               {"attacks", json::array({json{{"attack", "pgd-linf"}, {"seconds", 1.0}},
                                                                        json{{"attack", "cw-l2"}, {"seconds", 1.0}}})}});
  // kept(m, source, attack, i, j): model m keeps point i at eps j of the source's attack.
  auto kept = [](size_t m, size_t source, const std::string& attack, int64_t i, size_t j) {
    if (j == 0) return true;
    if (m == source) return false;  // its own adversarials: white-box, never judged
    if (attack == "cw-l2") return true;
    const size_t loser = source == 2 ? 1 : 0;  // AT under TRADES' attack, AFD under AT's
    return !(m == loser && j == 2 && i % 2 == 1);
  };
  for (size_t m = 0; m < 3; ++m) {
    // A source and its model share the weights' checksum, not the name or the path.
    json mj{{"name", names[m]}, {"method", methods[m]}, {"checkpoint", names[m]}, {"weights_crc32", names[m]},
            {"clean_acc", 1.0}, {"attacks", json::array()}, {"black_box", json::array()}};
    if (m == 0) mj["gan"] = "wgan";
    for (size_t source = 1; source < 3; ++source)
      for (const std::string attack : {"pgd-linf", "cw-l2"}) {
        const std::vector<double> acc =
            add_flags(fmt::format("m{}.bb.{}-src.{}.robust", m, names[source], attack),
                      [&](int64_t i, size_t j) { return kept(m, source, attack, i, j); });
        mj["black_box"].push_back(json{{"attack", attack}, {"source", names[source] + "-src"},
                                       {"config", {{"norm", attack == "cw-l2" ? "l2" : "linf"}}}, {"eps", eps},
                                       {"robust_acc", acc}, {"auc", 0.5}});
      }
    report["models"].push_back(mj);
  }
  const std::string md = write_report();
  std::map<std::string, std::string> verdicts;
  for (const json& c : report["claims"]) {
    if (c["claim"] != "auc_transfer_from_robust_models") continue;
    verdicts[c["baseline"]] = c["verdict"];
    const std::string other = c["baseline"] == "AT" ? "TRADES" : "AT";
    ASSERT_EQ(c["attacks"].size(), 2u);
    EXPECT_EQ(c["attacks"][0]["attack"], "pgd-linf from " + other + "-src");
    EXPECT_EQ(c["attacks"][1]["attack"], "cw-l2 from " + other + "-src");
    EXPECT_EQ(c["attacks"][1]["outcome"], "no significant difference");
    // The loser's points average 0.875 (odd points 0.75, even ones 1).
    EXPECT_NEAR(c["attacks"][0]["difference"].get<double>(), c["baseline"] == "AT" ? 0.125 : -0.125, 1e-12);
  }
  EXPECT_EQ(verdicts, (std::map<std::string, std::string>{{"AT", "holds"}, {"TRADES", "does not hold"}}));
  EXPECT_NE(md.find("### 7. AFD resists transfer from the robust models"), std::string::npos);
  EXPECT_NE(md.find("## Table A3"), std::string::npos);
}

// The report over training seeds (afd_run eval --over-seeds) on three chosen seed folders.
// AFD-WGAN and AT were retrained for each (3 runs a side); TRADES has the same weights in all
// three (1 run: not judged). Under PGD-L2 a model keeps point i at eps 0.5 when i < half and at
// eps 1 when i < full (every point clean), so a point scores 1, 0.75 or 0.25 and a run's AUC is
// (0.25 n + 0.5 half + 0.25 full) / n; AFD keeps about twice as many points as AT. Under FGSM AFD
// keeps exactly AT's points. Claim 1 then holds (higher on PGD-L2, no difference on FGSM).
TEST_F(CliReport, ClaimsOverSeedsPoolRunsAndPoints) {
  struct Cuts {
    int64_t half, full;
  };
  const std::vector<std::vector<Cuts>> cuts = {// per folder: AFD-WGAN, AT, TRADES
                                               {{32, 24}, {16, 8}, {20, 10}},
                                               {{34, 26}, {17, 9}, {20, 10}},
                                               {{30, 25}, {15, 8}, {20, 10}}};
  const std::vector<std::string> names = {"AFD-WGAN", "AT", "TRADES"}, methods = {"afd", "at", "trades"};
  auto scores = [&](Cuts c) {  // per point: the area under its flags
    std::vector<double> s;
    for (int64_t i = 0; i < n; ++i) s.push_back(0.25 + 0.5 * (i < c.half) + 0.25 * (i < c.full));
    return s;
  };
  auto mean = [](const std::vector<double>& v) {
    double m = 0;
    for (double x : v) m += x / double(v.size());
    return m;
  };
  std::vector<std::string> folders;
  // `tweak` changes a folder's report before it is written (the error cases below).
  auto write_folder = [&](size_t s, const std::string& folder, const std::function<void()>& tweak) {
    report = json{{"dataset", "mnist"}, {"count", n}, {"models", json::array()}};
    ps = PerSample{};
    ps.labels.assign(size_t(n), 0);
    for (size_t m = 0; m < 3; ++m) {
      const std::string crc = m == 2 ? "trades0" : fmt::format("{}{}", methods[m], s);
      json mj{{"name", names[m]}, {"method", methods[m]}, {"checkpoint", "seed" + crc}, {"weights_crc32", crc},
              {"clean_acc", 1.0}, {"train_attack", "apgd-ce"}, {"attacks", json::array()}};
      if (m == 0) mj["gan"] = "wgan";
      ps.tensors.emplace_back(fmt::format("m{}.clean", m), Tensor::full({1, n}, 1, DType::u8));
      for (const std::string attack : {"pgd-l2", "fgsm"}) {
        const Cuts c = attack == "fgsm" && m == 0 ? cuts[s][1] : cuts[s][m];
        const std::vector<double> acc = add_flags(fmt::format("m{}.wb.{}.robust", m, attack), [&](int64_t i, size_t j) {
          return j == 0 || (j == 1 && i < c.half) || (j == 2 && i < c.full);
        });
        mj["attacks"].push_back(json{{"attack", attack}, {"config", {{"norm", attack == "fgsm" ? "linf" : "l2"}}},
                                     {"eps", eps}, {"robust_acc", acc}, {"auc", mean(scores(c))}, {"seconds", 1.0}});
      }
      report["models"].push_back(mj);
    }
    if (tweak) tweak();
    write_report(folder);
    return dir / folder;
  };
  for (size_t s = 0; s < 3; ++s) folders.push_back(write_folder(s, fmt::format("seed{}", s), nullptr));

  const Result r = run_cli({"eval", "--over-seeds", folders[0] + "," + folders[1] + "," + folders[2], "--out",
                            dir / "seeds"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json out = json::parse(read_text(dir / "seeds/seeds.json"));
  EXPECT_EQ(out["folders"].size(), 3u);
  // Runs: the checksums tell them apart; TRADES is one run in all three folders.
  EXPECT_NE(r.out.find("| AT | AT | 3 | 1 (at0); 2 (at1); 3 (at2) |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| TRADES | TRADES | 1 | 1, 2, 3 (trades0) |"), std::string::npos) << r.out;
  // Table 2 over the runs: AFD's PGD-L2 AUCs 0.8, 0.8375 and 0.78125: mean 0.80625, sd 0.028641.
  EXPECT_NEAR(out["models"][0]["auc"]["pgd-l2"]["mean"].get<double>(), 0.80625, 1e-12);
  EXPECT_NEAR(out["models"][0]["auc"]["pgd-l2"]["sd"].get<double>(), std::sqrt(8.203125e-4), 1e-12);
  EXPECT_NE(r.out.find("| AFD-WGAN | 3 | 0.806 ± 0.029 |"), std::string::npos) << r.out;
  // Figure 2 with every run: a line per model and run, one for TRADES' single run.
  const std::string svg = read_text(dir / "seeds/plots/accuracy_vs_eps_pgd-l2.svg");
  for (const char* series : {"AFD-WGAN #1", "AT #3", "TRADES\""})
    EXPECT_NE(svg.find(std::string("data-series=\"") + series), std::string::npos) << series;
  EXPECT_EQ(svg.find("TRADES #"), std::string::npos);

  const json* unseen = nullptr;
  for (const json& c : out["claims"])
    if (c["claim"] == "auc_unseen_attacks") unseen = &c;
  ASSERT_NE(unseen, nullptr) << out.dump(1);
  EXPECT_EQ((*unseen)["baseline"], "AT");
  EXPECT_EQ((*unseen)["verdict"], "holds");
  EXPECT_EQ((*unseen)["single_folder_verdicts"], json({"holds", "holds", "holds"}));
  const json& pgd = (*unseen)["attacks"][0];
  EXPECT_EQ(pgd["attack"], "pgd-l2");
  // The runs' means, and the points' variance: each folder's sd(a - b)^2 / n, averaged.
  std::vector<double> runs_a, runs_b, var_points;
  for (size_t s = 0; s < 3; ++s) {
    const std::vector<double> a = scores(cuts[s][0]), b = scores(cuts[s][1]);
    runs_a.push_back(mean(a)), runs_b.push_back(mean(b));
    std::vector<double> d;
    for (int64_t i = 0; i < n; ++i) d.push_back(a[size_t(i)] - b[size_t(i)]);
    double ss = 0;
    for (double x : d) ss += (x - mean(d)) * (x - mean(d));
    var_points.push_back(ss / double(n - 1) / double(n));
  }
  for (size_t s = 0; s < 3; ++s) EXPECT_NEAR(runs_a[s], std::vector<double>({0.8, 0.8375, 0.78125})[s], 1e-15);
  EXPECT_EQ(pgd["afd_runs"].get<std::vector<double>>(), runs_a);
  EXPECT_EQ(pgd["baseline_runs"].get<std::vector<double>>(), runs_b);
  const eval::RunsDifference want = eval::difference_over_runs(runs_a, runs_b, mean(var_points), n, 1 - 0.05 / 2);
  EXPECT_NEAR(pgd["difference"].get<double>(), 0.80625 - 0.5020833333333333, 1e-12);
  EXPECT_NEAR(pgd["var_points"].get<double>(), mean(var_points), 1e-15);
  EXPECT_NEAR(pgd["df"].get<double>(), want.df, 1e-9);
  EXPECT_NEAR(pgd["ci"][0].get<double>(), want.ci.lo, 1e-12);
  EXPECT_NEAR(pgd["ci"][1].get<double>(), want.ci.hi, 1e-12);
  EXPECT_EQ(pgd["outcome"], "higher");
  // FGSM: the same points in every run, so the difference is 0 and only the runs' spread is left.
  const json& fgsm = (*unseen)["attacks"][1];
  EXPECT_EQ(fgsm["difference"].get<double>(), 0.0);
  EXPECT_EQ(fgsm["var_points"].get<double>(), 0.0);
  EXPECT_GT(fgsm["var_runs_afd"].get<double>(), 0.0);
  EXPECT_EQ(fgsm["outcome"], "no significant difference");
  // One TRADES run: not judged, and said so.
  EXPECT_EQ(out["not_judged"][0], (json{{"claim", "auc_unseen_attacks"}, {"afd", "AFD-WGAN"}, {"baseline", "TRADES"},
                                        {"afd_runs", 3}, {"baseline_runs", 1}}));
  EXPECT_NE(r.out.find("Not judged over the runs (fewer than 2 runs a side): AFD-WGAN vs TRADES (auc_unseen_attacks: 3 "
                       "and 1 runs)"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(read_text(dir / "seeds/seeds.md"), r.out);

  // Bad input: one folder, other points, a name that changes method.
  expect_one_line(run_cli({"eval", "--over-seeds", folders[0], "--out", dir / "x"}), 2,
                  {"--over-seeds", "2 or more report folders", "got 1"});
  expect_one_line(run_cli({"eval", "--over-seeds", folders[0] + "," + folders[0], "--out", dir / "x"}), 2,
                  {"--over-seeds", "is named twice", "each report folder once"});
  const std::string moved = write_folder(1, "moved", [&] { ps.labels[3] = 7; });
  expect_one_line(run_cli({"eval", "--over-seeds", folders[0] + "," + moved, "--out", dir / "x"}), 1,
                  {"--over-seeds", moved, "the runs must share the dataset, the count and the points"});
  const std::string renamed = write_folder(1, "renamed", [&] { report["models"][1]["method"] = "trades"; });
  expect_one_line(run_cli({"eval", "--over-seeds", folders[0] + "," + renamed, "--out", dir / "x"}), 1,
                  {"--over-seeds", "model 'AT' is method trades in " + renamed, "one name must mean one method"});
  expect_one_line(run_cli({"eval", "--over-seeds", folders[0] + "," + folders[1], "--checkpoint", "c", "--out",
                           dir / "x"}),
                  2, {"--over-seeds", "drop --checkpoint"});
}

TEST(CliRun, CtrlCOrSigtermWritesACheckpointAndResumeEndsBitIdentical) {
  TempDir dir;
  write_mnist(dir / "mnist", 256, 16);
  auto flags = [&](const fs::path& out) {
    std::vector<std::string> a = tiny_run(dir / "mnist", out);
    a.erase(a.begin());  // "train"
    a.insert(a.begin(), "train");
    for (const char* x : {"--batch-size", "8", "--epochs", "2", "--progress", "lines", "--progress-every", "1",
                          "--test-subset", "8"})
      a.push_back(x);
    return a;
  };
  std::string err;
  ASSERT_EQ(run_binary(flags(dir / "straight"), "", &err), 0) << err;
  const int code = run_binary(flags(dir / "stopped"), "batch 2/32", &err);
  ASSERT_EQ(code, 130) << err;
  EXPECT_NE(err.find("Ctrl-C: finishing the current step"), std::string::npos) << err;
  EXPECT_NE(err.find("checkpoint written to"), std::string::npos) << err;
  ASSERT_TRUE(fs::exists(dir / "stopped/checkpoint/trainer.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "stopped/final.json"));
  // A run killed later than its last checkpoint has logged steps (and epochs) that the resume trains
  // again: made up here, they must not stay in metrics.jsonl next to the new ones.
  {
    std::ofstream m(dir / "stopped/metrics.jsonl", std::ios::app);
    m << R"({"type":"step","epoch":1,"batch":30,"step":30,"stale":true})" << "\n"
      << R"({"type":"epoch","epoch":1,"stale":true})" << "\n";
  }
  ASSERT_EQ(run_binary({"train", "--resume", dir / "stopped", "--progress", "none"}, "", &err), 0) << err;
  EXPECT_NE(err.find("resumed from"), std::string::npos) << err;
  std::map<int64_t, int> steps, epochs;
  std::ifstream metrics(dir / "stopped/metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    json j = json::parse(line);
    EXPECT_FALSE(j.contains("stale")) << line;
    if (j["type"] == "step") ++steps[j["step"].get<int64_t>()];
    if (j["type"] == "epoch") ++epochs[j["epoch"].get<int64_t>()];
  }
  EXPECT_EQ(steps.size(), 64u);  // 2 epochs of 32 batches, each step once
  for (const auto& [step, n] : steps) EXPECT_EQ(n, 1) << "step " << step;
  EXPECT_EQ(epochs, (std::map<int64_t, int>{{1, 1}, {2, 1}}));

  // SIGTERM (a batch scheduler's notice before its SIGKILL) stops the run the same way, exit 143.
  ASSERT_EQ(run_binary(flags(dir / "terminated"), "batch 5/32", &err, SIGTERM), 143) << err;
  EXPECT_NE(err.find("SIGTERM: finishing the current step"), std::string::npos) << err;
  ASSERT_TRUE(fs::exists(dir / "terminated/checkpoint/trainer.safetensors")) << err;
  ASSERT_EQ(run_binary({"train", "--resume", dir / "terminated", "--progress", "none"}, "", &err), 0) << err;

  SafetensorsFile a = read_safetensors(dir / "straight/checkpoint/trainer.safetensors");
  for (const char* run : {"stopped", "terminated"}) {
    SafetensorsFile b = read_safetensors(dir / (std::string(run) + "/checkpoint/trainer.safetensors"));
    ASSERT_EQ(a.tensors.size(), b.tensors.size());
    for (size_t i = 0; i < a.tensors.size(); ++i) {
      const Tensor& ta = a.tensors[i].second;
      const Tensor& tb = b.tensors[i].second;
      ASSERT_EQ(a.tensors[i].first, b.tensors[i].first);
      ASSERT_EQ(ta.nbytes(), tb.nbytes());
      EXPECT_EQ(std::memcmp(ta.raw_data(), tb.raw_data(), ta.nbytes()), 0) << run << ": " << a.tensors[i].first;
    }
  }
}

// ---- The CPU runtime settings afd_run restarts itself with -----------------------------------

// stdout and stderr of a shell command line.
std::string shell_output(const std::string& command) {
  std::string text;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  EXPECT_NE(pipe, nullptr) << command;
  if (!pipe) return text;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) text.append(buf, n);
  ::pclose(pipe);
  return text;
}

TEST(CliRun, OpenBlasGetsTheKernelsOfThisCpuUnlessTheUserChose) {
  // OPENBLAS_VERBOSE=2 makes OpenBLAS print "Core: NAME" each time it loads: once, or twice when
  // afd_run restarted itself with OPENBLAS_CORETYPE because OpenBLAS fell back to "Prescott".
  const std::string exe = AFD_RUN_PATH;
  const std::string out = shell_output("env -u OPENBLAS_CORETYPE OPENBLAS_VERBOSE=2 " + exe + " version");
  std::vector<std::string> cores;
  for (size_t at = out.find("Core: "); at != std::string::npos; at = out.find("Core: ", at + 1))
    cores.push_back(out.substr(at + 6, out.find('\n', at) - at - 6));
  ASSERT_FALSE(cores.empty()) << out;
  const bool wide = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool restarted = cores.front() == "Prescott" && wide;
  ASSERT_EQ(cores.size(), restarted ? 2u : 1u) << out;
  if (restarted) {
    EXPECT_TRUE(cores.back() == "SkylakeX" || cores.back() == "Haswell") << out;
  }
  EXPECT_NE(out.find("CPU BLAS: OpenBLAS"), std::string::npos) << out;
  EXPECT_NE(out.find(cores.back() + " kernels"), std::string::npos) << out;
  // A kernel set the user chose is kept, even the slow one.
  const std::string chosen = shell_output("OPENBLAS_CORETYPE=Prescott " + exe + " version");
  EXPECT_NE(chosen.find("Prescott kernels"), std::string::npos) << chosen;
}

// A float64 run's checkpoint (f64 weights, and D's) evaluates and attacks: the f32 images go to
// each model in its dtype, here beside an f32 model and with the f64 one as the black-box source.
TEST(CliRun, EvaluatesAndAttacksAFloat64Checkpoint) {
  TempDir dir;
  write_learnable_mnist(dir / "mnist");
  std::vector<std::string> f64 = tiny_run(dir / "mnist", dir / "f64");
  f64.insert(f64.end(), {"--dtype", "f64"});
  ASSERT_EQ(run_cli(f64).code, 0);
  ASSERT_EQ(run_cli(tiny_run(dir / "mnist", dir / "f32")).code, 0);
  const std::string ck64 = dir / "f64/checkpoint", ck32 = dir / "f32/checkpoint";
  const Result e = run_cli({"eval", "--checkpoint", ck64 + "," + ck32, "--attacks", "fgsm", "--eps", "0,0.3", "--count",
                            "8", "--source-checkpoint", ck64, "--sanity-points", "0", "--data-dir", dir / "mnist",
                            "--out", dir / "eval", "--progress", "none"});
  ASSERT_EQ(e.code, 0) << e.err;
  const json ev = json::parse(read_text(dir / "eval/eval.json"));
  ASSERT_EQ(ev["models"].size(), 2u);
  EXPECT_EQ(ev["models"][0]["h_divergence"].size(), 1u);  // D loaded in f64 too
  const Result a = run_cli({"attack", "--checkpoint", ck64, "--attack", "pgd-linf", "--count", "4", "--data-dir",
                            dir / "mnist", "--out", dir / "attack", "--progress", "none"});
  EXPECT_EQ(a.code, 0) << a.err;
}

// ---- on a GPU: the same runs as on the CPU ---------------------------------------------------
// afd_run train and eval with --device cuda against the same commands on the CPU, in float64 with
// --deterministic: the whole pipeline on the GPU (the loader's uploads, the model, the training
// attack, AFD's discriminator and three optimizers, the checkpoint; every kind of attack of the
// evaluation, AutoAttack's four included, the sanity report and the feature shifts). Skipped where
// no CUDA device is visible; tools/device_check.sh runs them on a GPU machine.

// The two devices compared, and their folders' names.
const std::vector<std::pair<std::string, std::string>> kDevices = {{"cpu", "cpu"}, {"cuda", "gpu"}};

// Training for 2 epochs of 4 steps, each method: parameters, optimizer state and discriminator
// within 1e-9 + 1e-7 |b| (float64; cuDNN and the CPU sum in other orders). The training attack takes
// no gradient step here (--attack-steps 0: the random start, the success check and the keep-failed
// rule): on this data the fresh model saturates the softmax of 4 of 16 images, whose gradients are
// rounding noise that sign() makes into full steps, and the devices then train on other images
// (seen on an H200, 2026-11-29). tests/train/test_train_cuda.cpp compares the attack's gradient steps
// on data where every gradient is well above the noise, and says so when it is not.
TEST(CliGpu, TrainingOnCudaMatchesTheCpu) {
  if (!backend_available(Device::cuda(0))) GTEST_SKIP() << "no CUDA device is visible on this machine";

  TempDir dir;
  write_learnable_mnist(dir / "mnist");
  for (const std::string method : {"nt", "at", "afd"}) {
    for (const auto& [device, name] : kDevices) {
      std::vector<std::string> args = tiny_run(dir / "mnist", dir / (method + "-" + name));
      for (const char* s : {"--method", method.c_str(), "--attack-steps", "0", "--dtype", "f64", "--deterministic",
                            "--device", device.c_str()})
        args.push_back(s);
      const Result r = run_cli(args);
      ASSERT_EQ(r.code, 0) << method << " on " << device << ": " << r.err;
    }
    const fs::path gpu = dir / (method + "-gpu/checkpoint"), cpu = dir / (method + "-cpu/checkpoint");
    EXPECT_GT(expect_files_close(gpu / "model.safetensors", cpu / "model.safetensors", 1e-9, 1e-7), 1000) << method;
    EXPECT_GT(expect_files_close(gpu / "trainer.safetensors", cpu / "trainer.safetensors", 1e-9, 1e-7), 1000) << method;
    if (method == "afd") {
      EXPECT_GT(expect_files_close(gpu / "discriminator.safetensors", cpu / "discriminator.safetensors", 1e-9, 1e-7), 100);
    }
  }
}

// Evaluation of one AFD checkpoint (trained on the CPU, 15 epochs: about half of the points right) on
// 16 test points: the same accuracy at every eps of every attack, the same per-point flags, feature
// shifts within 1e-7 + 1e-5 |b|.
TEST(CliGpu, EvaluationOnCudaMatchesTheCpu) {
  if (!backend_available(Device::cuda(0))) GTEST_SKIP() << "no CUDA device is visible on this machine";

  TempDir dir;
  write_learnable_mnist(dir / "mnist");
  std::vector<std::string> train = tiny_run(dir / "mnist", dir / "run");
  for (const char* s : {"--dtype", "f64", "--epochs", "15"}) train.push_back(s);
  ASSERT_EQ(run_cli(train).code, 0);
  for (const auto& [device, name] : kDevices) {
    const Result r = run_cli({"eval", "--checkpoint", dir / "run/checkpoint", "--attacks",
                              "fgsm,pgd-linf,pgd-l2,pgd-l1,mim-linf,deepfool-linf,ddn,cw-l2,autoattack", "--count", "8",
                              "--attack-steps", "5", "--deterministic", "--device", device, "--data-dir", dir / "mnist",
                              "--out", dir / ("eval-" + name), "--progress", "none"});
    ASSERT_EQ(r.code, 0) << device << ": " << r.err;
  }
  const json cpu = json::parse(read_text(dir / "eval-cpu/eval.json"))["models"][0];
  const json gpu = json::parse(read_text(dir / "eval-gpu/eval.json"))["models"][0];
  EXPECT_EQ(gpu["clean_acc"], cpu["clean_acc"]);
  ASSERT_GE(cpu["clean_acc"].get<double>(), 0.25) << "the attacks need clean-correct points to work on";
  ASSERT_EQ(gpu["attacks"].size(), cpu["attacks"].size());
  for (size_t i = 0; i < cpu["attacks"].size(); ++i)
    EXPECT_EQ(gpu["attacks"][i]["robust_acc"], cpu["attacks"][i]["robust_acc"]) << cpu["attacks"][i]["attack"];
  EXPECT_GT(expect_files_close(dir / "eval-gpu/per_sample.safetensors", dir / "eval-cpu/per_sample.safetensors", 1e-7,
                               1e-5, /*all_dtypes=*/true),
            100);
}

}  // namespace
}  // namespace afd::cli
