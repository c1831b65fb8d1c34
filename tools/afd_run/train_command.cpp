// afd_run train: flags -> TrainConfig -> Trainer::fit, with progress, metrics.jsonl, checkpoints,
// an optional validation split with best-checkpoint selection, several seeds, --resume and Ctrl-C.
#include <fmt/format.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>

#include "afd/dist/communicator.h"
#include "afd/dist/data_parallel.h"
#include "afd/train/trainer.h"
#include "tensor/cuda/cuda_info.h"
#include "tensor/error.h"
#include "tools/afd_run/common.h"

#ifndef AFD_VERSION
#define AFD_VERSION "unknown"
#endif

namespace afd::cli {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- resolution ------------------------------------------------------------------------------

namespace {

std::string last_value(const std::vector<Assignment>& given, const std::string& name, const std::string& fallback) {
  std::string v = fallback;
  for (const Assignment& a : given)
    if (a.name == name) v = a.value;
  return v;
}

train::TrainConfig base_config(const std::vector<Assignment>& given) {
  const std::string preset = last_value(given, "preset", "paper");
  const std::string dataset = last_value(given, "dataset", "mnist");
  const train::Method method = train::parse_method(last_value(given, "method", "afd"));
  if (preset == "paper") return train::presets(dataset, method);
  train::TrainConfig c;
  c.dataset = dataset;
  c.method = method;
  return c;
}

}  // namespace

std::map<std::string, std::string> train_defaults(const FlagSet& set, const std::vector<Assignment>& given) {
  const train::TrainConfig base = base_config(given);
  std::map<std::string, std::string> d;
  for (const Flag* f : set.flags()) {
    if (f->get_train) d[f->name] = f->get_train(base);
    else if (f->get_attack) d[f->name] = f->get_attack(base.attack_config);
  }
  d["data-dir"] = default_data_dir(base.dataset);
  d["out"] = fmt::format("runs/{}_{}", base.dataset, train::method_name(base.method));
  return d;
}

TrainPlan resolve_train(const FlagSet& set, const std::vector<Assignment>& given) {
  TrainPlan plan;
  plan.options = Options(set, train_defaults(set, given), given);
  train::TrainConfig c = base_config(given);
  for (const Flag* f : set.flags()) {
    if (f->set_train) f->set_train(c, plan.options.get(f->name));
    else if (f->set_attack) f->set_attack(c.attack_config, plan.options.get(f->name));
  }
  c.out_dir = plan.options.get("out");
  try {
    c.validate();
  } catch (const Error& e) {
    throw UsageError(clean_message(e.what()));
  }
  // --width sets the base width of the ResNets; SmallCNN and the WideResNets have theirs fixed, and
  // a width they would ignore is an error rather than a silently different model.
  const bool resnet = c.model == "resnet18-mnist" || c.model == "resnet18-cifar" || c.model == "preact-resnet18";
  if (c.width != 0 && !resnet)
    throw UsageError(fmt::format("--width {}: {} has a fixed width (--width sets the base width of resnet18-mnist, "
                                 "resnet18-cifar and preact-resnet18)",
                                 c.width, c.model));
  plan.config = c;
  return plan;
}

// ---- Ctrl-C and SIGTERM -------------------------------------------------------------------------

namespace {

// Data parallel (--world-size > 1): this process's rank's communicator, and whether it is rank 0,
// the one that writes the run's files (the Trainer writes checkpoints on rank 0 only itself).
// Set by train_command for its duration (DistScope).
struct DistRun {
  std::shared_ptr<dist::Communicator> comm;
  bool lead = true;
};
DistRun g_dist;

class DistScope {
 public:
  explicit DistScope(DistRun run) { g_dist = std::move(run); }
  ~DistScope() { g_dist = DistRun(); }
  DistScope(const DistScope&) = delete;
  DistScope& operator=(const DistScope&) = delete;
};

void lead_write_text(const std::string& path, const std::string& text) {
  if (g_dist.lead) write_text(path, text);
}
void lead_append_line(const std::string& path, const std::string& line) {
  if (g_dist.lead) append_line(path, line);
}

// A run stopped without a checkpoint of its last steps (killed, or --checkpoint-every > 1) logged
// steps and epochs that its resume trains again: their lines go, so that every step and epoch
// appears once. Kept: step lines up to the checkpoint's global step, epoch lines up to its epoch
// (1-based in the file), and lines of other kinds.
void trim_metrics_to_checkpoint(const fs::path& path, int64_t global_step, int64_t epochs_done) {
  if (!g_dist.lead || !fs::exists(path)) return;
  std::ifstream in(path);
  std::string kept, line;
  int64_t dropped = 0;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    const std::string type = j.is_object() ? j.value("type", "") : "";
    const bool stale = (type == "step" && j.value("step", int64_t(0)) > global_step) ||
                       (type == "epoch" && j.value("epoch", int64_t(0)) > epochs_done);
    if (stale) ++dropped;
    else kept += line + "\n";
  }
  if (dropped > 0) write_text(path.string(), kept);
}

std::atomic<train::Trainer*> g_trainer{nullptr};
// The signal that asked the run to stop (0: none): SIGINT (Ctrl-C) or SIGTERM (what a batch
// scheduler sends before it kills a job at its time limit). Either one finishes the current step
// and writes a checkpoint; the exit status is 128 + the signal, as a shell reports it.
std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int sig) {
  g_stop_signal.store(sig);
  if (train::Trainer* t = g_trainer.load()) t->request_stop();
  static const char ctrl_c[] =
      "\nafd_run: Ctrl-C: finishing the current step, then writing a checkpoint (Ctrl-C again aborts)\n";
  static const char term[] = "\nafd_run: SIGTERM: finishing the current step, then writing a checkpoint\n";
  ssize_t ignored = sig == SIGINT ? ::write(2, ctrl_c, sizeof ctrl_c - 1) : ::write(2, term, sizeof term - 1);
  (void)ignored;
}

// Installs on_stop_signal for SIGINT and SIGTERM for its lifetime. A second Ctrl-C takes the
// default action (SA_RESETHAND: the user means it); a second SIGTERM does not, since schedulers and
// `timeout` signal the whole process group and a --nproc worker then gets the launcher's copy too
// (the launcher's SIGKILL after 120 s remains the backstop).
class StopSignalGuard {
 public:
  explicit StopSignalGuard(train::Trainer& t) {
    g_trainer.store(&t);
    struct sigaction sa = {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, &previous_int_);
    sa.sa_flags = 0;
    sigaction(SIGTERM, &sa, &previous_term_);
    if (g_stop_signal.load()) t.request_stop();
  }
  ~StopSignalGuard() {
    g_trainer.store(nullptr);
    sigaction(SIGINT, &previous_int_, nullptr);
    sigaction(SIGTERM, &previous_term_, nullptr);
  }
  StopSignalGuard(const StopSignalGuard&) = delete;
  StopSignalGuard& operator=(const StopSignalGuard&) = delete;

 private:
  struct sigaction previous_int_ = {}, previous_term_ = {};
};

// ---- reporting -------------------------------------------------------------------------------

std::string method_label(const train::TrainConfig& c) {
  std::string m = train::method_name(c.method);
  if (c.method == train::Method::afd) m += fmt::format("-{}", gan_loss_name(c.gan_loss));
  for (char& ch : m) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  return m;  // "AFD-WGAN", "AT", ...
}

std::string attack_label(const train::TrainConfig& c) {
  const auto& a = c.attack_config;
  return fmt::format("{} {} eps {} x{}", c.attack, attacks::norm_name(a.norm), format_real(a.eps), a.steps);
}

// The running numbers a line shows, by method: "L_C 0.512 L_D -0.021 L_F 0.034 D clean/adv 0.62/0.71 adv 0.41".
std::string metrics_text(const train::StepMetrics& m, train::Method method) {
  std::string s;
  auto add = [&](const char* label, double v, int digits = 3) {
    if (!std::isnan(v)) s += fmt::format("{}{} {:.{}f}", s.empty() ? "" : " ", label, v, digits);
  };
  if (method == train::Method::afd) {
    add("L_C", m.loss);
    add("L_D", m.l_d);
    add("L_F", m.l_f);
    add("GP", m.gp);
    if (!std::isnan(m.d_acc_clean))
      s += fmt::format(" D clean/adv {:.2f}/{:.2f}", m.d_acc_clean, m.d_acc_adv);
  } else {
    add("loss", m.loss);
    if (method == train::Method::trades) add("KL", m.kl);
    if (method == train::Method::norm) add("dist", m.distance);
  }
  add("clean", m.clean_acc, 2);
  add("adv", m.adv_acc, 2);
  return s;
}

json metrics_json(const train::StepMetrics& m) {
  json j = json::object();
  for (const auto& [name, value] : m.named()) j[name] = number(value);
  return j;
}

json eval_json(const train::EvalResult& r, const train::TrainConfig& c) {
  return json{{"count", r.count},          {"clean_acc", number(r.clean_acc)},
              {"adv_acc", number(r.adv_acc)}, {"clean_loss", number(r.clean_loss)},
              {"attack", c.attack},          {"eps", c.attack_config.eps},
              {"steps", c.attack_config.steps}, {"seconds", r.seconds}};
}

std::string eval_text(const train::EvalResult& r, const train::TrainConfig& c) {
  std::string s = fmt::format("clean {}%", percent(r.clean_acc));
  if (!std::isnan(r.adv_acc)) s += fmt::format(" {}({}) {}%", c.attack, format_real(c.attack_config.eps), percent(r.adv_acc));
  return s + fmt::format(" ({} pts, {})", r.count, duration(r.seconds));
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string flagfile_header(const std::string& out) {
  return fmt::format(
      "# afd_run train, fully resolved ({} , afd_run {}).\n"
      "# Rerun from scratch: afd_run train --flagfile {}/resolved.flags --overwrite\n"
      "# Continue this run:  afd_run train --resume {}\n",
      utc_now(), AFD_VERSION, out, out);
}

bool has_run(const fs::path& dir) {
  return fs::exists(dir / "resolved.flags") || fs::exists(dir / "checkpoint" / "trainer.safetensors") ||
         fs::exists(dir / "final.json") || fs::exists(dir / "metrics.jsonl");
}

// --out: writable, and free unless the run continues (--resume) or starts afresh (--overwrite).
void check_out_dir(const fs::path& out, const std::string& resume, bool overwrite) {
  prepare_out_dir(out.string(), "--out");
  if (resume.empty() && has_run(out) && !overwrite)
    throw RunError(fmt::format("--out {}: holds a run already; continue it with --resume {} or start afresh with --overwrite",
                               out.string(), out.string()));
}

void remove_run(const fs::path& dir) {
  std::error_code ec;
  for (const char* name : {"checkpoint", "best", "metrics.jsonl", "final.json", "best.json", "summary.json", "resolved.flags"})
    fs::remove_all(dir / name, ec);
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_directory() && e.path().filename().string().rfind("seed-", 0) == 0) fs::remove_all(e.path(), ec);
}

struct SeedOutcome {
  bool stopped = false;
  json final;
};

// One seed's run in `dir`: fresh, or continued from dir/checkpoint when `resume`.
SeedOutcome run_seed(const TrainPlan& plan, const train::TrainConfig& config, const fs::path& dir, bool resume,
                     const data::Dataset& train_set, const data::Dataset& test_set, const std::optional<data::Dataset>& val_set,
                     Io io, const std::string& tag, const std::function<void()>& commit) {
  const Options& opt = plan.options;
  SeedOutcome outcome;
  train::Trainer trainer(config, train_set, g_dist.comm);
  // Validation state survives a resume through best.json (read before anything is written: a
  // refused resume leaves the run as it was).
  double best_score = -1, best_clean = -1;
  if (val_set && fs::exists(dir / "best.json")) {
    std::ifstream f(dir / "best.json");
    json b = json::parse(f);
    // A score of the other criterion would be compared with this one's (clean with adversarial).
    if (b.value("select", "") != opt.get("select-best"))
      throw RunError(fmt::format("--select-best {}: the run chose its best epoch by {} ({}); resume with --select-best {}",
                                 opt.get("select-best"), b.value("select", "?"), (dir / "best.json").string(),
                                 b.value("select", "?")));
    best_score = b.value("score", -1.0);
    best_clean = b.value("clean_acc", -1.0);
  }
  const fs::path ckpt = dir / "checkpoint";
  // Killed before its first checkpoint, a resumed run starts from scratch: its old lines go.
  if (resume && !fs::exists(ckpt / "trainer.safetensors")) trim_metrics_to_checkpoint(dir / "metrics.jsonl", 0, 0);
  if (resume && fs::exists(ckpt / "trainer.safetensors")) {
    try {
      trainer.load_checkpoint(ckpt.string());  // checks that the checkpoint is this run's
    } catch (const Error& e) {
      throw RunError(fmt::format("--resume {}: {}", dir.string(), clean_message(e.what())));
    }
    if (trainer.finished() && fs::exists(dir / "final.json")) {
      std::ifstream f(dir / "final.json");
      outcome.final = json::parse(f);
      if (outcome.final.value("epochs", int64_t(-1)) == config.epochs) {
        trainer.export_networks(ckpt.string());  // in case they were replaced or left of another step
        io.err << fmt::format("{}already finished: {}\n", tag, (dir / "final.json").string());
        return outcome;
      }
    }
    commit();
    trim_metrics_to_checkpoint(dir / "metrics.jsonl", trainer.global_step(), trainer.epoch());
    trainer.export_networks(ckpt.string());  // a stop while they were written left them of other steps
    io.err << fmt::format("{}resumed from {} at epoch {} batch {} (step {})\n", tag, ckpt.string(), trainer.epoch() + 1,
                          trainer.batch(), trainer.global_step());
  }
  commit();  // the flags are this run's: resolved.flags and the header (once)


  const std::string metrics_path = (dir / "metrics.jsonl").string();
  const bool log_steps = opt.get_bool("metrics-steps");
  const int64_t epochs = config.epochs;
  ProgressLine progress(io, opt.get("progress"), opt.get_int("progress-every"));
  std::optional<train::EvalResult> last_test;
  int64_t last_test_epoch = -1;

  train::FitOptions fit;
  fit.test = &test_set;
  fit.eval.limit = opt.get_int("test-subset");
  fit.eval.attack = opt.get_bool("epoch-eval-attack");
  fit.eval.progress = [&](int64_t done, int64_t total) {
    progress.update(fmt::format("{}evaluating the test split {}/{}", tag, done, total));
  };
  fit.on_batch = [&](const train::Progress& p) {
    const std::string line = fmt::format("{}epoch {}/{} batch {}/{} | {:.1f} img/s | ETA {} | {}", tag, p.epoch + 1, epochs,
                                         p.batch + 1, p.batches, p.images_per_second, duration(p.eta_seconds),
                                         metrics_text(p.running, config.method));
    progress.update(line, p.batch + 1 == p.batches);
    if (log_steps) {
      json j{{"type", "step"},  {"seed", config.seed},        {"epoch", p.epoch + 1},
             {"batch", p.batch + 1}, {"step", p.global_step}, {"images_per_second", p.images_per_second}};
      j.update(metrics_json(p.step));
      lead_append_line(metrics_path, j.dump());
    }
  };
  double cpu_mark = cpu_seconds();
  fit.on_epoch = [&](const train::EpochSummary& s) {
    progress.finish();
    const double cpu_now = cpu_seconds();
    json j{{"type", "epoch"},
           {"seed", config.seed},
           {"epoch", s.train.epoch + 1},
           {"seconds", s.train.seconds},
           {"cpu_seconds", cpu_now - cpu_mark},  // training and the test evaluation of this epoch
           {"images", s.train.images},
           {"train", metrics_json(s.train.mean)},
           {"lrs", s.lrs},
           {"checkpoint", s.checkpoint}};
    std::string line = fmt::format("{}epoch {}/{} done in {} | train {}", tag, s.train.epoch + 1, epochs,
                                   duration(s.train.seconds), metrics_text(s.train.mean, config.method));
    if (s.test) {
      j["test"] = eval_json(*s.test, config);
      line += " | test " + eval_text(*s.test, config);
      last_test = s.test;
      last_test_epoch = s.train.epoch + 1;
    }
    if (val_set) {
      train::EvalOptions vo;
      vo.attack = opt.get_bool("epoch-eval-attack") || opt.get("select-best") == "adv";
      train::EvalResult v = trainer.evaluate(*val_set, vo);
      const double score = opt.get("select-best") == "adv" ? v.adv_acc : v.clean_acc;
      const bool better = score > best_score || (score == best_score && v.clean_acc > best_clean);
      j["val"] = eval_json(v, config);
      line += " | val " + eval_text(v, config);
      if (better) {
        best_score = score, best_clean = v.clean_acc;
        trainer.save_checkpoint((dir / "best").string());
        json b{{"epoch", s.train.epoch + 1}, {"score", score}, {"select", opt.get("select-best")}, {"clean_acc", v.clean_acc},
               {"adv_acc", number(v.adv_acc)}, {"checkpoint", (dir / "best").string()}};
        lead_write_text((dir / "best.json").string(), b.dump(2) + "\n");
        line += " (best)";
        j["best"] = true;
      }
    }
    if (!s.lrs.empty()) line += fmt::format(" | next lr {}", format_real(s.lrs[0]));  // the schedule's, for the next epoch
    lead_append_line(metrics_path, j.dump());
    io.err << line << "\n" << std::flush;
    cpu_mark = cpu_seconds();
  };

  train::FitResult r;
  {
    StopSignalGuard guard(trainer);
    r = trainer.fit(fit);
  }
  progress.finish();
  if (r.stopped) {
    outcome.stopped = true;
    const int64_t world = g_dist.comm ? g_dist.comm->size() : 1;
    io.err << fmt::format("{}stopped at epoch {} batch {}: checkpoint written to {}; continue with: afd_run train --resume {}{}\n",
                          tag, r.epoch + 1, r.batch, r.checkpoint.empty() ? "(none)" : r.checkpoint,
                          plan.options.get("out"),
                          world > 1 ? fmt::format(" (it starts the recorded {} processes again; with an external launcher, "
                                                  "start every rank with --resume and a fresh --rendezvous)",
                                                  world)
                                    : "");
    return outcome;
  }
  if (!last_test || last_test_epoch != epochs) {
    train::EvalOptions eo = fit.eval;
    eo.progress = {};
    last_test = trainer.evaluate(test_set, eo);
  }
  json fin{{"seed", config.seed},
           {"method", train::method_name(config.method)},
           {"label", method_label(config)},
           {"dataset", config.dataset},
           {"epochs", epochs},
           {"train_images", train_set.size()},
           {"checkpoint", (dir / "checkpoint").string()},
           {"cpu_seconds", cpu_seconds()},  // of the whole process (all seeds so far)
           {"test", eval_json(*last_test, config)}};
  if (val_set && fs::exists(dir / "best.json")) {
    std::ifstream f(dir / "best.json");
    fin["best"] = json::parse(f);
  }
  lead_write_text((dir / "final.json").string(), fin.dump(2) + "\n");
  outcome.final = fin;
  return outcome;
}

}  // namespace

// ---- the command -----------------------------------------------------------------------------

namespace {

// NCCL runs one rank per GPU: ranks that share a GPU fail in ncclCommInitRank ("duplicate GPU",
// invalid usage). --nproc's ranks all run on this machine, so the launcher can tell beforehand.
// (With --rank/--world-size from an external launcher it cannot: ranks may be on other machines.)
void check_one_gpu_per_rank(const std::string& device, int64_t nproc) {
  if (device.rfind("cuda", 0) != 0) return;
  if (device != "cuda")
    throw UsageError(fmt::format("--nproc {} --device {}: every rank would run on that one GPU, and NCCL needs a GPU "
                                 "per rank; give --device cuda (rank r on cuda:r)",
                                 nproc, device));
  const int gpus = cuda::device_count();
  if (nproc > gpus)
    throw UsageError(fmt::format("--nproc {} --device cuda: NCCL needs a GPU per rank and {} {} visible; give "
                                 "--nproc {} at most, or --device cpu (Gloo)",
                                 nproc, gpus, gpus == 1 ? "is" : "are", std::max(1, gpus)));
}

// --dist-host: with --nproc every rank runs here, so it must be an address of this machine that a
// socket can bind to (what each rank's Gloo device does).
void check_local_host(const std::string& host) {
  addrinfo hints = {};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0)
    throw UsageError(fmt::format("--dist-host {}: cannot resolve the name ({})", host, ::gai_strerror(rc)));
  std::string why = "no address";
  bool bound = false;
  for (addrinfo* a = found; a && !bound; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    bound = ::bind(fd, a->ai_addr, a->ai_addrlen) == 0;  // port 0 (getaddrinfo without a service)
    if (!bound) why = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (!bound)
    throw UsageError(fmt::format("--dist-host {}: not an address of this machine ({}); --nproc runs every rank here, "
                                 "give 127.0.0.1 or one of this machine's addresses",
                                 host, why));
}

// What the workers would each find wrong, checked once in the launcher before any of them starts
// (one message, the usual exit status, instead of N interleaved ones): the config was validated by
// resolve_train already; here the batch split, --out and --dist-host.
void check_before_launch(const TrainPlan& plan, const std::string& resume) {
  const Options& opt = plan.options;
  const int64_t nproc = opt.get_int("nproc"), batch = plan.config.batch_size;
  if (batch % nproc != 0)
    throw UsageError(fmt::format("--batch-size {}: the global batch does not divide by --nproc {}: every rank trains on "
                                 "batch_size / nproc images; choose a multiple of {}",
                                 batch, nproc, nproc));
  check_local_host(opt.get("dist-host"));
  check_out_dir(opt.get("out"), resume, opt.get_bool("overwrite"));
}

// Flags that may differ between the ranks of one run: the resources of each rank's machine and
// where it finds things there (--threads, the GPU index of --device, --data-dir, --out: a shared
// filesystem may be mounted elsewhere; rank 0 alone writes --out), and its terminal display (only
// rank 0 shows progress). Everything else decides what is trained, so every rank must agree.
bool differs_per_rank(const std::string& flag) {
  return flag == "threads" || flag == "device" || flag == "data-dir" || flag == "out" || flag == "progress" ||
         flag == "progress-every";
}

// Every rank stops with the same error unless all of them were given the same run: ranks with
// different flags would otherwise train a corrupted model without a word (another --lr or --seed),
// or fail inside the first collective whose size depends on the flags (another --model or --dtype:
// the parameter broadcast). So this runs before any such collective.
void check_ranks_agree(dist::Communicator& comm, const Options& opt, const FlagSet& set, bool resuming, Device device) {
  std::vector<std::pair<std::string, std::string>> fields;
  for (const Flag* f : set.flags())
    if (f->resolved && !differs_per_rank(f->name)) fields.push_back({"--" + f->name, opt.get(f->name)});
  // Whether the rank resumes (a resumed rank and a fresh one would take different numbers of
  // steps). The kind of device was compared already, in the rendezvous (dist::meet_at_rendezvous).
  fields.push_back({"--resume (given or not)", resuming ? "yes" : "no"});
  std::vector<dist::Disagreement> differ;
  try {
    differ = dist::disagreements(comm, fields, device);
  } catch (const Error& e) {
    throw RunError(clean_message(e.what()));
  }
  if (differ.empty()) return;
  std::string which;
  for (const dist::Disagreement& d : differ) {
    std::string names;
    for (const std::string& n : d.fields) names += (names.empty() ? "" : ", ") + n;
    which += fmt::format("{}rank {} {}", which.empty() ? "" : "; ", d.rank,
                         names.empty() ? std::string("differs (another afd_run version?)") : "differs in " + names);
  }
  throw RunError(fmt::format("--world-size {}: the ranks were started with different flags: {} (compared with rank 0): "
                             "every rank needs the same flags (only --rank, --threads, --device's GPU index, "
                             "--data-dir, --out, --progress, --dist-host may differ)",
                             comm.size(), which));
}

// --resume with another --seeds than the run's layout: one seed trains in OUT itself, several in
// OUT/seed-N. A run of one seed resumed with --seeds 2 trained its seed again from scratch in
// OUT/seed-N beside the finished one; refused instead, as is the other way round.
void check_seed_layout(const std::string& resume, int64_t seeds) {
  const fs::path out(resume);
  const bool single = fs::exists(out / "checkpoint" / "trainer.safetensors") || fs::exists(out / "final.json");
  std::vector<std::string> seed_dirs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(out, ec))
    if (e.is_directory() && e.path().filename().string().rfind("seed-", 0) == 0)
      seed_dirs.push_back(e.path().filename().string());
  std::sort(seed_dirs.begin(), seed_dirs.end());
  if (seeds > 1 && single)
    throw UsageError(fmt::format("--resume {} --seeds {}: the run trained one seed, in {} itself; train the other seeds "
                                 "as their own run (--seed N --out ANOTHER), or all of them with --seeds in a new --out",
                                 resume, seeds, resume));
  if (seeds == 1 && !seed_dirs.empty())
    throw UsageError(fmt::format("--resume {} --seeds 1: the run trains several seeds, in {}/{}{}; resume it with its "
                                 "--seeds (as resolved.flags says), or resume one seed's folder",
                                 resume, resume, seed_dirs[0], seed_dirs.size() > 1 ? ", ..." : ""));
}

}  // namespace

int train_command(const std::vector<std::string>& args, Io io_in) {
  FlagSet set(flag_table(), kTrain);
  bool help = false;
  std::vector<Assignment> given = set.parse_args(args, &help);
  const std::string resume = last_value(given, "resume", "");
  if (!resume.empty()) {
    const fs::path flags = fs::path(resume) / "resolved.flags";
    if (!fs::exists(flags))
      throw RunError(fmt::format("--resume {}: no resolved.flags there (not a folder written by afd_run train)", resume));
    std::vector<Assignment> all = set.read_flagfile(flags.string());
    bool out_given = false;
    for (const Assignment& a : given) out_given |= a.name == "out";
    if (!out_given) all.push_back({"out", resume, "--resume"});
    all.insert(all.end(), given.begin(), given.end());
    given = std::move(all);
  }
  // A --nproc read from a file (resolved.flags of a --resume folder or a --flagfile) is the process
  // count the run was trained with: `--resume OUT` starts as many processes again. One rank of a
  // launch (--rank or --world-size on the command line) is what those flags say instead.
  bool one_rank = false;
  for (const Assignment& a : given) one_rank |= (a.name == "world-size" || a.name == "rank") && a.source == "command line";
  if (one_rank) std::erase_if(given, [](const Assignment& a) { return a.name == "nproc" && a.source != "command line"; });
  if (help) {
    io_in.out << help_text(kTrain, train_defaults(set, given));
    return 0;
  }
  TrainPlan plan = resolve_train(set, given);
  const Options& opt = plan.options;
  if (!resume.empty()) check_seed_layout(resume, opt.get_int("seeds"));
  const int64_t nproc = opt.get_int("nproc"), world = opt.get_int("world-size"), rank = opt.get_int("rank");
  if (nproc > 1) {
    if (world != 1)
      throw UsageError(fmt::format("--nproc {} starts its own {} ranks: give no --world-size (it is {})", nproc, nproc, world));
    if (rank != 0)
      throw UsageError(fmt::format("--nproc {} numbers its own ranks 0 to {}: give no --rank (it is {})", nproc, nproc - 1,
                                   rank));
    check_one_gpu_per_rank(opt.get("device"), nproc);
    check_before_launch(plan, resume);
    return launch_workers(args, nproc, opt, io_in);
  }
  if (rank >= world) throw UsageError(fmt::format("--rank {}: outside [0, --world-size {})", rank, world));
  if (world > 1 && opt.get("rendezvous").empty())
    throw UsageError(fmt::format("--world-size {}: needs --rendezvous DIR, a folder every rank can reach", world));
  plan.config.device = setup_device(opt);
  // --device cuda (no index) with several ranks: one GPU per rank, rank r on cuda:(r mod the
  // visible devices) (on each machine of a multi-machine run, ranks should then be numbered so that
  // a machine's ranks are consecutive).
  if (world > 1 && plan.config.device.is_cuda() && opt.get("device") == "cuda")
    plan.config.device = Device::cuda(int(rank % std::max(1, cuda::device_count())));
  // Data parallel: join the other ranks first (before the data load, so that they meet early).
  DistRun dist_run;
  if (world > 1) {
    dist::DistOptions d;
    d.rank = int(rank);
    d.world_size = int(world);
    d.rendezvous = opt.get("rendezvous");
    d.host = opt.get("dist-host");
    d.timeout_seconds = opt.get_real("dist-timeout");
    try {
      dist_run.comm = dist::connect(d, plan.config.device);
    } catch (const Error& e) {
      throw RunError(clean_message(e.what()));
    }
    dist_run.lead = rank == 0;
    // resolved.flags records the process count (as --nproc: `--resume OUT` starts as many again).
    plan.options.set("nproc", std::to_string(world));
    check_ranks_agree(*dist_run.comm, opt, set, !resume.empty(), plan.config.device);
  }
  DistScope dist_scope(dist_run);
  // Only rank 0 talks: the other ranks' progress and summaries go nowhere (errors still reach stderr).
  static std::ostream quiet(nullptr);
  const bool lead = dist_run.lead;
  Io io = lead ? io_in : Io{quiet, quiet, false};
  const std::string dataset = opt.get("dataset");
  const std::string data_dir = opt.get("data-dir");

  // Output folder first: a typo there should not cost a data load.
  const fs::path out(opt.get("out"));
  if (lead) check_out_dir(out, resume, opt.get_bool("overwrite"));
  if (lead && resume.empty() && has_run(out)) remove_run(out);  // --overwrite (checked above)

  // Digits are not mirror images of themselves (a flipped 2 is no 2): the paper augments CIFAR and
  // Tiny-ImageNet only. Allowed, but said.
  if (dataset == "mnist" && plan.config.flip)
    io.err << "afd_run train: warning: --flip on mnist: a mirrored digit is often no digit of its class (the paper "
              "flips CIFAR and Tiny-ImageNet only)\n";
  const data::Dataset full = load_split(dataset, data_dir, data::Split::train);
  const data::Dataset test = load_split(dataset, data_dir, data::Split::test);
  // The model is built for the training images; a test split of another shape would be evaluated
  // (a ResNet pools any size) with numbers that mean nothing.
  const Shape train_image = full.image_shape(), test_image = test.image_shape();
  if (train_image != test_image || full.classes != test.classes)
    throw RunError(fmt::format("--data-dir {}: the training images are {} of {} classes, the test images {} of {}: "
                               "the two splits must come from one dataset",
                               data_dir, shape_str(train_image), full.classes, shape_str(test_image), test.classes));
  const int64_t n = full.size(), val_size = opt.get_int("val-size"), subset = opt.get_int("train-subset");
  if (val_size >= n) throw UsageError(fmt::format("--val-size {}: the training split has only {} images", val_size, n));
  if (subset > n - val_size)
    throw UsageError(fmt::format("--train-subset {}: only {} training images{}", subset, n - val_size,
                                 val_size ? fmt::format(" outside the --val-size {} validation split", val_size) : ""));
  const int64_t used = subset > 0 ? subset : n - val_size;
  const data::Dataset train_set = rows(full, 0, used, fmt::format("{}/train[0:{}]", dataset, used));
  std::optional<data::Dataset> val_set;
  if (val_size > 0) val_set = rows(full, n - val_size, n, fmt::format("{}/train[{}:{}]", dataset, n - val_size, n));

  const train::TrainConfig& c = plan.config;
  const int64_t seeds = opt.get_int("seeds");
  const int64_t eval_points = opt.get_int("test-subset") > 0 ? std::min(opt.get_int("test-subset"), test.size()) : test.size();
  // Written once the run is known to be this one (a resume whose checkpoint does not match must not
  // rewrite the run's resolved.flags).
  bool committed = false;
  auto commit = [&] {
    if (committed) return;
    committed = true;
    lead_write_text((out / "resolved.flags").string(), opt.resolved_flagfile(flagfile_header(out.string())));
    io.err << fmt::format(
        "afd_run train: {} on {} ({} of {} training images{}, test {} per epoch), {} width {}, {} epochs x {} batches of "
        "{}, {}, seed {}{}, {} with {} threads{} -> {}\n",
        method_label(c), dataset, used, n, val_size ? fmt::format(", validation {}", val_size) : "", eval_points, c.model,
        c.width, c.epochs, (used + (c.drop_last ? 0 : c.batch_size - 1)) / c.batch_size, c.batch_size,
        c.method == train::Method::nt ? "no attack"
        : c.method == train::Method::trades
            ? fmt::format("TRADES KL-PGD eps {} x{}", format_real(c.trades_attack.eps), c.trades_attack.steps)
            : "attack " + attack_label(c),
        c.seed, seeds > 1 ? fmt::format(" (+{} more seeds)", seeds - 1) : "", c.device.str(), num_threads(),
        c.device.is_cuda() ? "" : " (" + cpu_blas_info() + ")", out.string());
  };

  std::vector<json> finals;
  for (int64_t k = 0; k < seeds; ++k) {
    train::TrainConfig config = plan.config;
    config.seed = plan.config.seed + uint64_t(k);
    fs::path dir = out;
    std::string tag;
    if (seeds > 1) {
      dir = out / fmt::format("seed-{}", config.seed);
      tag = fmt::format("[seed {}] ", config.seed);
      if (lead) prepare_out_dir(dir.string(), "--out");
    }
    config.out_dir = dir.string();
    bool seed_committed = false;
    auto commit_seed = [&] {
      commit();
      if (seeds == 1 || seed_committed) return;
      seed_committed = true;
      Options one = opt;
      one.set("seed", std::to_string(config.seed));
      one.set("seeds", "1");
      one.set("out", dir.string());
      lead_write_text((dir / "resolved.flags").string(), one.resolved_flagfile(flagfile_header(dir.string())));
    };
    SeedOutcome o = run_seed(plan, config, dir, !resume.empty(), train_set, test, val_set, io, tag, commit_seed);
    if (o.stopped) return 128 + (g_stop_signal.load() ? g_stop_signal.load() : SIGINT);
    finals.push_back(o.final);
    const json& t = o.final["test"];
    io.err << fmt::format("{}final: {} on {} test points: clean {}%{}\n", tag, method_label(config), t.value("count", 0),
                          percent(t.value("clean_acc", NAN)),
                          t["adv_acc"].is_number()
                              ? fmt::format(", {}({}) {}%", c.attack, format_real(c.attack_config.eps), percent(t["adv_acc"].get<double>()))
                              : "");
  }

  json summary{{"method", train::method_name(c.method)}, {"label", method_label(c)}, {"dataset", dataset},
               {"seeds", json::array()}};
  std::vector<double> clean, adv;
  for (const json& f : finals) {
    summary["seeds"].push_back(f);
    clean.push_back(f["test"].value("clean_acc", NAN));
    if (f["test"]["adv_acc"].is_number()) adv.push_back(f["test"]["adv_acc"].get<double>());
  }
  auto [cm, cs] = mean_std(clean);
  summary["clean_acc"] = {{"mean", number(cm)}, {"std", number(cs)}};
  std::string line = fmt::format("afd_run train: {} over {} seed(s): clean {} +- {} %", method_label(c), finals.size(),
                                 percent(cm), percent(cs));
  if (adv.size() == clean.size() && !adv.empty()) {
    auto [am, as] = mean_std(adv);
    summary["adv_acc"] = {{"mean", number(am)}, {"std", number(as)}};
    line += fmt::format(", {}({}) {} +- {} %", c.attack, format_real(c.attack_config.eps), percent(am), percent(as));
  }
  summary["std"] = "sample standard deviation over seeds (n - 1)";
  lead_write_text((out / "summary.json").string(), summary.dump(2) + "\n");
  io.out << line << " (std over seeds, n-1; " << (out / "summary.json").string() << ")\n";
  return 0;
}

}  // namespace afd::cli
