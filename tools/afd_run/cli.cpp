// afd_run's dispatcher, help pages, version, and the helpers the subcommands share (common.h).
#include "tools/afd_run/cli.h"

#include <fmt/format.h>
#include <zlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>

#include "afd/train/trainer.h"
#include "attacks/attack.h"
#include "autograd/var.h"
#include "nn/checkpoint.h"
#include "nn/safetensors.h"
#include "tensor/backend.h"
#include "tensor/cuda/cuda_info.h"
#include "tensor/error.h"
#include "tools/afd_run/common.h"

#ifndef AFD_VERSION
#define AFD_VERSION "unknown"
#endif

namespace afd::cli {

namespace fs = std::filesystem;

// ---- help ------------------------------------------------------------------------------------

namespace {

const char* summary(Command c) {
  switch (c) {
    case kTrain: return "train a classifier with AFD or a baseline (NT, AT, TRADES, norm), resumable";
    case kEval: return "clean and robust accuracy of checkpoints under attacks over eps grids";
    case kAttack: return "run one attack on the first N test points: robust accuracy, success, norms, x_adv";
    case kData: return "fetch, verify (md5) and describe a dataset";
    default: return "";
  }
}

const char* notes(Command c) {
  switch (c) {
    case kTrain:
      return "Defaults come from --preset paper for --dataset and --method (shown here for the ones given);\n"
             "any flag overrides them, wherever it stands. The run writes OUT/resolved.flags (rerun it with\n"
             "--flagfile), OUT/metrics.jsonl, OUT/checkpoint/ (every --checkpoint-every epochs, at the end and\n"
             "on Ctrl-C or SIGTERM: the current step finishes, a checkpoint is written, exit status 130 or 143),\n"
             "OUT/final.json.\n"
             "--resume OUT continues a run bit-identically (on the CPU); flags given with it override the run's.\n";
    case kEval:
      return "Defaults of the attack settings: the paper's evaluation setting of each attack for the\n"
             "checkpoint's dataset (afd_run help attacks); any --attack-* flag overrides it for every attack.\n"
             "Writes OUT/eval.json and OUT/eval.md (clean accuracy, robust accuracy per eps, AUC).\n";
    case kAttack:
      return "Defaults of the attack settings: the paper's evaluation setting of --attack (afd_run help attacks) at\n"
             "the dataset's Table 1 budget in the attack's norm (Linf 0.3 MNIST, 8/255 CIFAR, 0.015 Tiny-ImageNet;\n"
             "L2 1.0; L1 10). Writes OUT/attack.json (and OUT/x_adv.safetensors with --save-adv).\n";
    case kData:
      return "Without --fetch it checks what is in --data-dir. Fetching wraps tools/fetch_data.sh.\n";
    default: return "";
  }
}

std::string flag_usage(const Flag& f) {
  if (f.type == FlagType::boolean) return "--[no-]" + f.name;
  std::string t = f.type == FlagType::choice ? "choice" : type_name(f.type);
  return fmt::format("--{} <{}>", f.name, t);
}

std::string choices_text(const Flag& f) {
  if (f.type != FlagType::choice) return "";
  std::string out;
  for (const auto& c : f.allowed()) out += fmt::format("{}{}", out.empty() ? "" : "|", c);
  return out;
}

std::string range_text(const Flag& f) {
  if (f.min && f.max) return fmt::format("in [{}, {}]", format_real(*f.min), format_real(*f.max));
  if (f.min) return fmt::format("{} {}", f.min_exclusive ? ">" : ">=", format_real(*f.min));
  return "";
}

}  // namespace

std::string help_text(Command command, const std::map<std::string, std::string>& defaults) {
  FlagSet set(flag_table(), command);
  std::string out = fmt::format("afd_run {}: {}\n\nUsage: afd_run {} [--flag value | --flag=value | --flag | --no-flag | "
                                "--flagfile FILE]...\n\n{}",
                                command_name(command), summary(command), command_name(command), notes(command));
  std::string group;
  for (const Flag* f : set.flags()) {
    if (f->group != group) {
      group = f->group;
      out += "\n" + group + ":\n";
    }
    auto it = defaults.find(f->name);
    const std::string def = it != defaults.end() ? it->second : f->fallback;
    std::string extra;
    if (!choices_text(*f).empty()) extra += " {" + choices_text(*f) + "}";
    if (!range_text(*f).empty()) extra += " (" + range_text(*f) + ")";
    out += fmt::format("  {:<34} default: {}\n      {}{}\n", flag_usage(*f), def.empty() ? "\"\"" : def, f->help, extra);
  }
  out += "\n  --flagfile <path>                  read flags from a file, one per line (# comments), in place\n"
         "  --help                             this page\n";
  return out;
}

std::string overview_text() {
  std::string out = fmt::format(
      "afd_run {}: adversarial feature desensitisation (AFD) and its baselines, from scratch\n\n"
      "Usage: afd_run <command> [--flag value]...     afd_run <command> --help for its flags\n\n"
      "Commands:\n",
      AFD_VERSION);
  for (Command c : {kTrain, kEval, kAttack, kData}) out += fmt::format("  {:<8} {}\n", command_name(c), summary(c));
  out += "  help     afd_run help [command | attacks | flags-markdown]\n"
         "\nGlobal: --help, --version. Exit status: 0 ok, 1 a run failed, 2 a usage error, 130 stopped by Ctrl-C,\n"
         "143 stopped by SIGTERM (train: after writing a checkpoint).\n";
  return out;
}

std::string markdown_reference() {
  std::string out =
      "# afd_run flags\n\n"
      "Generated by `afd_run help flags-markdown` from the flag table (tools/afd_run/flag_table.cpp); a test\n"
      "checks that this file matches it. Defaults of `train` are those of `--preset paper --dataset mnist\n"
      "--method afd`; other datasets and methods change the preset columns (`afd_run train --dataset cifar10\n"
      "--method at --help` shows them). Syntax: `--flag value`, `--flag=value`, booleans `--flag` / `--no-flag`,\n"
      "`--flagfile FILE` (one flag per line, `#` comments; later flags override earlier ones).\n";
  for (Command c : {kTrain, kEval, kAttack, kData}) {
    FlagSet set(flag_table(), c);
    std::map<std::string, std::string> defaults;
    if (c == kTrain) defaults = train_defaults(set, {});
    out += fmt::format("\n## afd_run {}\n\n{}\n\n| flag | type | default | meaning |\n|---|---|---|---|\n", command_name(c),
                       summary(c));
    for (const Flag* f : set.flags()) {
      auto it = defaults.find(f->name);
      std::string def = it != defaults.end() ? it->second : f->fallback;
      std::string type = f->type == FlagType::choice ? choices_text(*f) : type_name(f->type);
      if (f->choices_fn) type = "attack name";
      std::string meaning = f->help;
      if (!range_text(*f).empty()) meaning += " (" + range_text(*f) + ")";
      std::replace(type.begin(), type.end(), '|', ',');
      std::string cell = meaning;
      for (size_t p = cell.find('|'); p != std::string::npos; p = cell.find('|', p + 2)) cell.replace(p, 1, "\\|");
      out += fmt::format("| `--{}` | {} | `{}` | {} |\n", f->name, type, def.empty() ? "\"\"" : def, cell);
    }
  }
  return out;
}

// ---- dispatcher ------------------------------------------------------------------------------

int run(const std::vector<std::string>& args, Io io) {
  std::string command = args.empty() ? "" : args[0];
  const std::vector<std::string> rest(args.begin() + (args.empty() ? 0 : 1), args.end());
  const std::string who = command.empty() ? "afd_run" : "afd_run " + command;
  try {
    if (command.empty() || command == "--help" || command == "-h") {
      io.out << overview_text();
      return command.empty() ? 2 : 0;
    }
    if (command == "--version" || command == "version") {
      io.out << fmt::format("afd_run {} (CUDA backend compiled: {}; CPU BLAS: {})\n", AFD_VERSION,
                            cuda::built_with_cuda() ? "yes" : "no", cpu_blas_info());
      return 0;
    }
    if (command == "help") {
      const std::string topic = rest.empty() ? "" : rest[0];
      if (topic.empty()) io.out << overview_text();
      else if (topic == "train") io.out << help_text(kTrain, train_defaults(FlagSet(flag_table(), kTrain), {}));
      else if (topic == "eval") io.out << help_text(kEval);
      else if (topic == "attack") io.out << help_text(kAttack);
      else if (topic == "data") io.out << help_text(kData);
      else if (topic == "flags-markdown") io.out << markdown_reference();
      else if (topic == "attacks") {
        io.out << attacks_text();
      } else {
        throw UsageError(fmt::format("help: unknown topic '{}' (train, eval, attack, data, attacks, flags-markdown)", topic));
      }
      return 0;
    }
    if (command == "train") return train_command(rest, io);
    if (command == "eval") return eval_command(rest, io);
    if (command == "attack") return attack_command(rest, io);
    if (command == "data") return data_command(rest, io);
    std::string guess;
    for (const char* c : {"train", "eval", "attack", "data", "help"})
      if (edit_distance(command, c) <= 2) guess = c;
    throw UsageError(fmt::format("unknown command '{}'{} (commands: train, eval, attack, data, help)", command,
                                 guess.empty() ? "" : " (did you mean '" + guess + "'?)"));
  } catch (const UsageError& e) {
    io.err << who << ": error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    io.err << who << ": error: " << clean_message(e.what()) << "\n";
    return 1;
  }
}

// ---- shared helpers --------------------------------------------------------------------------

Device setup_device(const Options& opt) {
  const std::string text = opt.get("device");
  Device device;
  try {
    device = Device::parse(text);
  } catch (const Error&) {
    throw UsageError(fmt::format("--device: '{}' is not one of cpu, cuda, cuda:N", text));
  }
  if (!backend_available(device)) {
    const std::string why = !cuda::built_with_cuda() ? "this build has no CUDA (meson -Dcuda=enabled on a machine with nvcc)"
                                                     : fmt::format("{} CUDA device(s) visible", cuda::device_count());
    throw RunError(fmt::format("--device {}: not available: {}; use --device cpu", text, why));
  }
  if (int64_t threads = opt.get_int("threads"); threads > 0) set_num_threads(int(threads));
  set_precision(parse_precision(opt.get("precision")));
  set_deterministic(opt.get_bool("deterministic"));
  set_conv_benchmark(opt.get_bool("cudnn-benchmark"));
  set_check_numerics(opt.get_bool("check-numerics"));
  return device;
}

std::string attacks_text() {
  // Each attack's evaluation setting (eval_preset): the paper's for MNIST and CIFAR, what afd_run
  // eval and afd_run attack use unless --eps or an --attack-* flag says otherwise.
  auto eps_text = [](double v) {  // CIFAR's k/255 as such
    const double k = v * 255;
    return v > 0 && v < 1 && std::abs(k - std::round(k)) < 1e-9 && format_real(v).size() > 6
               ? fmt::format("{}/255", std::llround(k))
               : format_real(v);
  };
  std::string out =
      "Attacks (registry names) and the paper's evaluation setting of each on MNIST and CIFAR: the eps grid of\n"
      "afd_run eval, the single eps of afd_run attack, the iterations.\n\n";
  for (const auto& info : attacks::attack_registry()) {
    out += fmt::format("{:<14} {}\n", info.name, info.summary);
    for (const char* dataset : {"mnist", "cifar10"}) {
      const EvalPreset p = eval_preset(info.name, dataset);
      const attacks::AttackConfig& c = p.config;
      std::string grid;
      for (double e : p.eps) {
        if (!grid.empty()) grid += ',';
        grid += eps_text(e);
      }
      const std::string work = info.name == "square"       ? fmt::format("{} queries", c.n_queries)
                               : info.name == "autoattack" ? fmt::format("APGD and FAB {} steps, Square {} queries",
                                                                         c.steps, c.n_queries)
                                                           : fmt::format("{} step{}{}", c.steps, c.steps == 1 ? "" : "s",
                                                                         c.random_start ? ", random start" : "");
      out += fmt::format("    {:<8} {} eps grid {}; attack eps {}; {}\n", dataset, attacks::norm_name(c.norm), grid,
                         eps_text(c.eps), work);
    }
  }
  return out;
}

std::string default_data_dir(const std::string& dataset) {
  if (dataset == "tiny-imagenet-32" || dataset == "tiny-imagenet") return "data/tiny-imagenet-200";
  return "data/" + dataset;
}

std::string fetch_hint(const std::string& dataset, const std::string& dir) {
  if (dataset == "fashion-mnist") return fmt::format("put the four Fashion-MNIST IDX files into {}", dir);
  return fmt::format("fetch it with: afd_run data --dataset {} --fetch --data-dir {}", dataset, dir);
}

data::Dataset load_split(const std::string& dataset, const std::string& dir, data::Split split, bool print_notes) {
  if (!fs::is_directory(dir))
    throw RunError(fmt::format("--data-dir {}: no such folder (the {} files are expected there; {})", dir, dataset,
                               fetch_hint(dataset, dir)));
  data::Dataset d;
  try {
    d = data::load_dataset(dataset, dir, split);
  } catch (const Error& e) {
    // tools/fetch_data.sh replaces MNIST and CIFAR-10 files whose md5 differs, but keeps an existing
    // CIFAR-100 or Tiny-ImageNet folder as it is: a damaged one must be deleted first.
    const bool kept = dataset.rfind("cifar100", 0) == 0 || dataset.rfind("tiny-imagenet", 0) == 0;
    throw RunError(fmt::format("--data-dir {}: cannot load the {} {} split: {} ({}{})", dir, dataset, data::split_name(split),
                               clean_message(e.what()), kept ? "if its files are damaged, delete the folder and " : "",
                               fetch_hint(dataset, dir)));
  }
  if (print_notes)
    for (const std::string& note : d.notes) fmt::print(stderr, "note: {}\n", note);
  return d;
}

data::Dataset rows(const data::Dataset& d, int64_t begin, int64_t end, const std::string& name) {
  data::Dataset out = d;
  out.images = d.images.slice(begin, end);
  out.labels = d.labels.slice(begin, end);
  out.name = name;
  return out;
}

void prepare_out_dir(const std::string& dir, const std::string& flag) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw RunError(fmt::format("{} {}: cannot create the folder ({})", flag, dir, ec.message()));
  const fs::path probe = fs::path(dir) / fmt::format(".afd_run_probe.{}", ::getpid());
  {
    std::ofstream f(probe);
    if (!f || !(f << "ok") || !f.flush())
      throw RunError(fmt::format("{} {}: cannot write into the folder ({})", flag, dir, std::strerror(errno)));
  }
  fs::remove(probe, ec);
}

void write_text(const std::string& path, const std::string& text) {
  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f || !(f << text) || !f.flush()) throw RunError(fmt::format("{}: cannot write ({})", path, std::strerror(errno)));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw RunError(fmt::format("{}: cannot write ({})", path, ec.message()));
}

void append_line(const std::string& path, const std::string& line) {
  std::ofstream f(path, std::ios::app);
  if (!f || !(f << line << "\n") || !f.flush())
    throw RunError(fmt::format("{}: cannot append ({})", path, std::strerror(errno)));
}

std::string training_position(const std::map<std::string, std::string>& meta) {
  return meta.count("epoch") && meta.count("batch") ? fmt::format("epoch {} batch {}", meta.at("epoch"), meta.at("batch"))
                                                    : "";
}

std::string default_model_name(const std::string& checkpoint) {
  const fs::path p(checkpoint);
  const fs::path folder =
      p.filename() == "checkpoint" || p.filename() == "best" ? p.parent_path().filename() : p.stem();
  return folder.string().empty() ? checkpoint : folder.string();
}

bool holds_training_run(const std::string& dir) {
  const fs::path d(dir);
  return fs::exists(d / "checkpoint" / "trainer.safetensors") || fs::exists(d / "trainer.safetensors") ||
         fs::exists(d / "final.json") || fs::exists(d / "metrics.jsonl");
}

void clear_report_files(const std::string& dir) {
  std::error_code ec;
  for (const char* name : {"eval.json", "eval.md", "table1.csv", "table2.csv", "table_a3.csv", "per_sample.safetensors",
                           "seeds.md", "seeds.json", "attack.json", "x_adv.safetensors", "adversarial.png"})
    fs::remove(fs::path(dir) / name, ec);
  // Only the plots afd_run writes (docs/evaluation.md): a user's own files there stay.
  const fs::path plots = fs::path(dir) / "plots";
  if (fs::is_directory(plots))
    for (const auto& e : fs::directory_iterator(plots, ec)) {
      const std::string name = e.path().filename().string();
      const bool ours = e.path().extension() == ".svg" &&
                        (name.rfind("accuracy_vs_eps_", 0) == 0 || name.rfind("feature_shift_vs_eps_", 0) == 0 ||
                         name == "h_divergence_vs_eps.svg" || name == "error_gap_vs_eps.svg" ||
                         name.rfind("d_hat_", 0) == 0);
      if (ours) fs::remove(e.path(), ec);
    }
}

std::string checkpoint_model_file(const std::string& checkpoint, const std::string& flag) {
  fs::path p(checkpoint);
  if (fs::is_directory(p)) p /= "model.safetensors";
  if (!fs::is_regular_file(p)) {
    // A run's folder instead of its checkpoint folder: say which one to give.
    const fs::path inner = fs::path(checkpoint) / "checkpoint" / "model.safetensors";
    throw RunError(fmt::format("{} {}: {} does not exist ({})", flag, checkpoint, p.string(),
                               fs::is_regular_file(inner)
                                   ? fmt::format("did you mean {}?", (fs::path(checkpoint) / "checkpoint").string())
                                   : "expected a checkpoint folder from afd_run train, e.g. runs/x/checkpoint, or a model "
                                     ".safetensors file"));
  }
  return p.string();
}

LoadedModel load_model(const std::string& checkpoint, const std::string& model_override, int64_t width_override,
                       const data::Dataset& test, Device device) {
  LoadedModel m;
  m.path = checkpoint_model_file(checkpoint, "--checkpoint");
  {
    std::ifstream f(m.path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    m.crc32 = fmt::format("{:08x}", crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), uInt(bytes.size())));
  }
  SafetensorsFile file;  // read and validated once: the config from its metadata, then the weights
  try {
    file = read_safetensors(m.path);
  } catch (const Error& e) {
    throw RunError(fmt::format("--checkpoint {}: {}", checkpoint, clean_message(e.what())));
  }
  const std::map<std::string, std::string>& meta = file.metadata;
  m.position = training_position(meta);
  if (meta.count("config")) {
    try {
      m.config = train::config_from_json(meta.at("config"));
    } catch (const Error& e) {
      throw RunError(fmt::format("--checkpoint {}: bad config metadata: {}", m.path, clean_message(e.what())));
    }
  } else if (model_override.empty()) {
    throw RunError(fmt::format("--checkpoint {}: {} holds no afd config; name the architecture with --model (and --width)",
                               checkpoint, m.path));
  }
  // The images the weights were trained on (recorded since 2026-11-29; older files say nothing).
  const std::string test_shape = shape_str(test.image_shape());
  if (meta.count("image_shape") && meta.at("image_shape") != test_shape)
    throw RunError(fmt::format("--checkpoint {}: trained on images {}, the test split's are {}: evaluate it on its own "
                               "dataset (--dataset, --data-dir)",
                               checkpoint, meta.at("image_shape"), test_shape));
  if (!model_override.empty()) m.config.model = model_override;
  if (width_override >= 0) m.config.width = width_override;
  m.config.device = device;
  Generator gen(0);
  try {
    m.model = train::make_classifier(m.config, test.images.size(1), test.images.size(2), test.classes, gen);
  } catch (const Error& e) {
    throw RunError(fmt::format("--model {}: {}", m.config.model, clean_message(e.what())));
  }
  // The model is made in f32: to the checkpoint's dtype first (a float64 run's weights are f64).
  if (m.config.dtype != DType::f32) m.model->to(m.config.dtype);
  try {
    m.model->load_state_dict(file.tensors, /*strict=*/true);
  } catch (const Error& e) {
    throw RunError(fmt::format("--checkpoint {}: does not fit a {} (width {}) for {} classes: {}", checkpoint, m.config.model,
                               m.config.width, test.classes, clean_message(e.what())));
  }
  if (!device.is_cpu()) m.model->to(device);
  m.model->eval();
  m.name = default_model_name(checkpoint);
  return m;
}

std::pair<Tensor, Tensor> as_tensors(const data::Dataset& d, int64_t n, Device device) {
  data::LoaderOptions lo;
  lo.batch_size = std::max<int64_t>(n, 1);
  lo.shuffle = false;
  lo.prefetch = 0;
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  data::Batch b = data::make_batch(d, lo, 0, 0, order);
  return {b.images.to(device), b.labels.to(device)};
}

double cpu_seconds() {
  struct rusage u = {};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return double(t.tv_sec) + 1e-6 * double(t.tv_usec); };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

std::string duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) return fmt::format("{:.1f}s", s);
  const int64_t t = int64_t(std::llround(s));
  if (t < 3600) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}h{:02d}m", t / 3600, (t % 3600) / 60);
}

std::string percent(double f) { return std::isfinite(f) ? fmt::format("{:.2f}", 100 * f) : "-"; }

nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

std::string clean_message(const std::string& what) {
  static const std::regex location(R"( \([A-Za-z0-9_./-]+\.(cpp|h|cu):[0-9]+\)$)");
  std::string s = std::regex_replace(what, location, "");
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

ProgressLine::ProgressLine(Io io, const std::string& mode, int64_t every) : io_(io), mode_(mode), every_(every) {
  if (mode_ == "auto") mode_ = io.tty ? "live" : "lines";
}

void ProgressLine::update(const std::string& text, bool force) {
  ++calls_;
  if (mode_ == "none") return;
  const auto now = std::chrono::steady_clock::now();
  if (mode_ == "live") {
    // At most ~10 redraws a second.
    if (!force && open_ && now - last_ < std::chrono::milliseconds(100)) return;
    io_.err << "\r" << text << "\033[K" << std::flush;
    open_ = true;
  } else {
    if (!force && calls_ % every_ != 0) return;
    io_.err << text << "\n" << std::flush;
  }
  last_ = now;
}

void ProgressLine::finish() {
  if (open_) io_.err << "\n" << std::flush;
  open_ = false;
}

}  // namespace afd::cli
