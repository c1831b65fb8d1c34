// Every flag of afd_run, once: name, type, subcommands, default (or the TrainConfig / AttackConfig
// field that supplies it), range and meaning. Parser, help pages, docs/cli.md and resolved.flags
// are generated from this table.
#include <fmt/format.h>

#include <cmath>

#include "afd/train/config.h"
#include "attacks/attack.h"
#include "nn/optim/losses.h"
#include "tools/afd_run/cli.h"

namespace afd::cli {

namespace {

using train::TrainConfig;
using attacks::AttackConfig;

Flag flag(std::string name, FlagType type, unsigned commands, std::string group, std::string help,
          std::string fallback = "") {
  Flag f;
  f.name = std::move(name);
  f.type = type;
  f.commands = commands;
  f.group = std::move(group);
  f.help = std::move(help);
  f.fallback = std::move(fallback);
  return f;
}

Flag& at_least(Flag& f, double min) { return f.min = min, f; }
Flag& above(Flag& f, double min) { return f.min = min, f.min_exclusive = true, f; }
Flag& within(Flag& f, double min, double max) { return f.min = min, f.max = max, f; }

// Flags mirroring a TrainConfig member.
Flag train_int(const char* name, int64_t TrainConfig::*m, std::string group, std::string help, double min) {
  Flag f = flag(name, FlagType::integer, kTrain, std::move(group), std::move(help));
  f.min = min;
  f.get_train = [m](const TrainConfig& c) { return std::to_string(c.*m); };
  f.set_train = [m, name](TrainConfig& c, const std::string& s) { c.*m = parse_int(name, s); };
  return f;
}
Flag train_real(const char* name, double TrainConfig::*m, std::string group, std::string help, double min = 0) {
  Flag f = flag(name, FlagType::real, kTrain, std::move(group), std::move(help));
  f.min = min;
  f.get_train = [m](const TrainConfig& c) { return format_real(c.*m); };
  f.set_train = [m, name](TrainConfig& c, const std::string& s) { c.*m = parse_real(name, s); };
  return f;
}
Flag train_bool(const char* name, bool TrainConfig::*m, std::string group, std::string help) {
  Flag f = flag(name, FlagType::boolean, kTrain, std::move(group), std::move(help));
  f.get_train = [m](const TrainConfig& c) { return format_bool(c.*m); };
  f.set_train = [m, name](TrainConfig& c, const std::string& s) { c.*m = parse_bool(name, s); };
  return f;
}

// Flags mirroring an AttackConfig member (the training attack in `train`, the evaluation attack
// in `eval` and `attack`).
template <class T>
Flag attack_flag(const char* name, T AttackConfig::*m, unsigned commands, std::string help) {
  FlagType type = std::is_same_v<T, bool> ? FlagType::boolean : std::is_same_v<T, double> ? FlagType::real : FlagType::integer;
  Flag f = flag(name, type, commands, "attack settings", std::move(help));
  f.get_attack = [m](const AttackConfig& a) {
    if constexpr (std::is_same_v<T, bool>) return format_bool(a.*m);
    else if constexpr (std::is_same_v<T, double>) return format_real(a.*m);
    else return std::to_string(a.*m);
  };
  f.set_attack = [m, name](AttackConfig& a, const std::string& s) {
    if constexpr (std::is_same_v<T, bool>) a.*m = parse_bool(name, s);
    else if constexpr (std::is_same_v<T, double>) a.*m = parse_real(name, s);
    else a.*m = static_cast<T>(parse_int(name, s));
  };
  return f;
}

std::vector<std::string> attack_names() {
  std::vector<std::string> names;
  for (const auto& info : attacks::attack_registry()) names.push_back(info.name);
  return names;
}

const std::vector<std::string> kDatasets = {"mnist", "fashion-mnist", "cifar10", "cifar100", "tiny-imagenet-32"};
const std::vector<std::string> kModels = {"resnet18-mnist", "resnet18-cifar", "small-cnn",
                                          "preact-resnet18", "wrn-28-10", "wrn-34-10"};

std::vector<Flag> build_table() {
  std::vector<Flag> t;
  const unsigned kModelCmds = kEval | kAttack;

  // ---- run (every subcommand) ----
  {
    Flag f = flag("dataset", FlagType::choice, kTrain | kData, "run",
                  "dataset: selects the preset, the data folder and the reader", "mnist");
    f.choices = kDatasets;
    f.set_train = [](TrainConfig& c, const std::string& s) { c.dataset = s; };
    t.push_back(f);
    Flag e = flag("dataset", FlagType::text, kModelCmds, "run",
                  "dataset of the test split (\"\" = the checkpoint's own)");
    t.push_back(e);
  }
  t.push_back(flag("data-dir", FlagType::path, kAll, "run",
                   "folder with the dataset's files (\"\" = data/DATASET; fetch with afd_run data --fetch)"));
  {
    Flag f = flag("method", FlagType::choice, kTrain, "run",
                  "nt (natural), at (Madry), trades, afd (feature desensitisation), norm (paper 4.6)", "afd");
    f.choices = {"nt", "at", "trades", "afd", "norm"};
    f.set_train = [](TrainConfig& c, const std::string& s) { c.method = train::parse_method(s); };
    t.push_back(f);
    Flag p = flag("preset", FlagType::choice, kTrain, "run",
                  "paper: every default from the authors' settings for --dataset and --method "
                  "(afd_run train --dataset D --method M --help shows them); none: TrainConfig's plain defaults",
                  "paper");
    p.choices = {"paper", "none"};
    t.push_back(p);
  }
  t.push_back(flag("out", FlagType::path, kTrain, "run",
                   "run folder: resolved.flags, metrics.jsonl, checkpoint/, best/, final.json (\"\" = runs/DATASET_METHOD)"));
  t.push_back(flag("out", FlagType::path, kEval, "run",
                   "output folder: resolved.flags, eval.json, eval.md, table1.csv, table2.csv, per_sample.safetensors, "
                   "plots/*.svg (docs/evaluation.md)",
                   "runs/eval"));
  t.push_back(flag("out", FlagType::path, kAttack, "run", "output folder: resolved.flags, attack.json, x_adv.safetensors, adversarial.png",
                   "runs/attack"));
  {
    Flag r = flag("resume", FlagType::path, kTrain, "run",
                  "continue the run in this folder: its resolved.flags, then these flags, then its checkpoint");
    r.resolved = false;
    t.push_back(r);
    Flag o = flag("overwrite", FlagType::boolean, kTrain, "run", "start afresh in an --out folder that holds a run",
                  "false");
    o.resolved = false;
    t.push_back(o);
  }
  {
    Flag s = flag("seed", FlagType::integer, kTrain | kModelCmds, "run",
                  "the one seed: model init, data order, attack starts", "0");
    s.min = 0;
    s.set_train = [](TrainConfig& c, const std::string& v) { c.seed = uint64_t(parse_int("seed", v)); };
    t.push_back(s);
    Flag n = flag("seeds", FlagType::integer, kTrain, "run",
                  "repeat the run with seeds seed .. seed+N-1 (in OUT/seed-S/) and report mean and std", "1");
    at_least(n, 1);
    t.push_back(n);
  }
  {
    Flag d = flag("device", FlagType::text, kTrain | kModelCmds, "run", "cpu or cuda:N", "cpu");
    t.push_back(d);
    Flag th = flag("threads", FlagType::integer, kTrain | kModelCmds, "run", "CPU threads (0 = all cores)", "0");
    at_least(th, 0);
    t.push_back(th);
    Flag pr = flag("precision", FlagType::choice, kTrain | kModelCmds, "run",
                   "f32 convolutions and matrix products on a GPU: tf32 (tensor cores, as PyTorch's default for "
                   "convolutions) or strict (full fp32)", "tf32");
    pr.choices = {"tf32", "strict"};
    t.push_back(pr);
    t.push_back(flag("deterministic", FlagType::boolean, kTrain | kModelCmds, "run",
                     "on a GPU, only deterministic cuDNN algorithms and reductions: a run repeats bit for bit", "false"));
    t.push_back(flag("cudnn-benchmark", FlagType::boolean, kTrain | kModelCmds, "run",
                     "on a GPU, choose each convolution shape's cuDNN algorithms by timing them once (as PyTorch's "
                     "cudnn.benchmark) instead of by cuDNN's heuristics; ignored with --deterministic", "false"));
    t.push_back(flag("check-numerics", FlagType::boolean, kTrain | kModelCmds, "run",
                     "debug: check every op's output and gradient for NaN/Inf and stop naming the op that made it "
                     "(slow)", "false"));
  }

  // ---- data parallel (train; README "Multi-process and multi-GPU training") ----
  {
    auto dist_flag = [&](std::string name, FlagType type, std::string help, std::string fallback) -> Flag& {
      Flag f = flag(std::move(name), type, kTrain, "data parallel", std::move(help), std::move(fallback));
      f.resolved = false;  // how a run was launched is not part of what it is
      t.push_back(f);
      return t.back();
    };
    // At most 256: each worker is a whole process with its own copy of the data, and Gloo connects
    // every pair of ranks (N (N - 1) / 2 sockets); far more would exhaust the machine before training.
    Flag& nproc = within(dist_flag("nproc", FlagType::integer,
                                   "launch N local worker processes, one rank each (data parallel; --batch-size is the "
                                   "global batch, a multiple of N); recorded in resolved.flags, so --resume starts as "
                                   "many again", "1"), 1, 256);
    nproc.resolved = true;  // the process count changes what is trained (per-rank BN, per-rank random starts)
    at_least(dist_flag("rank", FlagType::integer,
                       "advanced (set by --nproc or an external launcher): this process's rank in [0, --world-size)",
                       "0"), 0);
    at_least(dist_flag("world-size", FlagType::integer,
                       "advanced: the number of ranks (processes) of the run, on every machine together", "1"), 1);
    dist_flag("rendezvous", FlagType::path,
              "advanced: an empty folder every rank can read and write (a shared filesystem across machines), "
              "where the ranks find each other (\"\" = a fresh temporary one with --nproc)", "");
    dist_flag("dist-host", FlagType::text,
              "advanced: the address the other ranks reach this rank at (Gloo; set it on each machine of a "
              "multi-machine run)", "127.0.0.1");
    // At most 7 days (604800 s): the timeout becomes milliseconds in a 64-bit count, and far larger
    // values overflow it (1e10 s timed out at once) or are refused by Gloo (1e16: "Invalid timeout").
    Flag& timeout = above(dist_flag("dist-timeout", FlagType::real,
                                    "advanced: seconds a collective (or the rendezvous) may wait for the other ranks "
                                    "before the run stops with an error (at most 7 days)", "300"), 0);
    timeout.max = 7 * 24 * 3600;
    // Part of what the run is (it changes the statistics BN trains with): resolved, saved in the checkpoint.
    t.push_back(train_bool("sync-bn", &TrainConfig::sync_bn, "data parallel",
                           "synchronised BatchNorm: train-mode BN statistics over the global batch (every rank's rows) "
                           "instead of each rank's own, so a model with BN trains as one process would; two "
                           "all-reduces per BN layer in each forward and backward; only meaningful with --nproc or "
                           "--world-size > 1"));
  }

  // ---- model and data subset (train) ----
  {
    Flag m = flag("model", FlagType::choice, kTrain, "model", "classifier architecture");
    m.choices = kModels;
    m.get_train = [](const TrainConfig& c) { return c.model; };
    m.set_train = [](TrainConfig& c, const std::string& s) { c.model = s; };
    t.push_back(m);
    t.push_back(train_int("width", &TrainConfig::width, "model",
                          "base width of resnet18-mnist, resnet18-cifar and preact-resnet18 (0 = the paper's: 16 "
                          "MNIST, 64 CIFAR); the other models have fixed widths",
                          0));
    Flag dt = flag("dtype", FlagType::choice, kTrain, "model", "parameter and input precision");
    dt.choices = {"f32", "f64"};
    dt.get_train = [](const TrainConfig& c) { return std::string(dtype_name(c.dtype)); };
    dt.set_train = [](TrainConfig& c, const std::string& s) { c.dtype = s == "f64" ? DType::f64 : DType::f32; };
    t.push_back(dt);
    Flag sub = flag("train-subset", FlagType::integer, kTrain, "model",
                    "train on the first N images of the training split (0 = all)", "0");
    at_least(sub, 0);
    t.push_back(sub);
    Flag val = flag("val-size", FlagType::integer, kTrain, "model",
                    "hold out the LAST N training images as a validation split, evaluated after each epoch; "
                    "the best epoch's checkpoint goes to OUT/best (0 = none)",
                    "0");
    at_least(val, 0);
    t.push_back(val);
    Flag sel = flag("select-best", FlagType::choice, kTrain, "model",
                    "what --val-size selects on: adv (training-attack accuracy, then clean) or clean", "adv");
    sel.choices = {"adv", "clean"};
    t.push_back(sel);
  }
  // ---- model override for eval / attack ----
  {
    Flag m = flag("checkpoint", FlagType::text, kEval, "model",
                  "checkpoint folders (or model .safetensors files), comma separated");
    t.push_back(m);
    Flag n = flag("names", FlagType::text, kEval, "model", "labels for the checkpoints, comma separated (\"\" = folder names)");
    t.push_back(n);
    Flag src = flag("source-checkpoint", FlagType::text, kEval, "model",
                    "black-box (transfer) sources, comma separated: adversarials crafted on each, evaluated on every "
                    "--checkpoint (\"\" = no black-box evaluation; Table 1 uses the NT source, Table A3 them all)");
    t.push_back(src);
    Flag sn = flag("source-names", FlagType::text, kEval, "model",
                   "labels for the source checkpoints, comma separated (\"\" = folder names)");
    t.push_back(sn);
    Flag mg = flag("merge", FlagType::text, kEval, "model",
                   "report only: merge the eval.json and per_sample.safetensors of earlier afd_run eval folders, "
                   "comma separated (one model and attack per folder, say), into one report in --out; no "
                   "--checkpoint");
    t.push_back(mg);
    Flag os = flag("over-seeds", FlagType::text, kEval, "model",
                   "report only: judge the paper's claims over training seeds from earlier afd_run eval reports, "
                   "comma separated (one folder per seed, on the same points; models matched by name), into "
                   "--out/seeds.md and seeds.json; no --checkpoint");
    t.push_back(os);
    Flag c = flag("checkpoint", FlagType::text, kAttack, "model", "checkpoint folder (or model .safetensors file)");
    t.push_back(c);
    Flag mo = flag("model", FlagType::text, kModelCmds, "model",
                   "architecture to load the weights into (\"\" = the checkpoint's config)");
    t.push_back(mo);
    Flag w = flag("width", FlagType::integer, kModelCmds, "model", "base width (-1 = the checkpoint's config)", "-1");
    at_least(w, -1);
    t.push_back(w);
  }

  // ---- optimisation (train) ----
  t.push_back(train_int("epochs", &TrainConfig::epochs, "optimisation", "training epochs", 0));
  t.push_back(train_int("batch-size", &TrainConfig::batch_size, "optimisation", "training batch size", 1));
  t.push_back(train_bool("drop-last", &TrainConfig::drop_last, "optimisation", "drop each epoch's last partial batch"));
  t.push_back(train_real("lr", &TrainConfig::lr, "optimisation", "learning rate of the classifier (AFD: the C step)"));
  t.push_back(train_real("lr-d", &TrainConfig::lr_d, "optimisation", "learning rate of AFD's D step"));
  t.push_back(train_real("lr-f", &TrainConfig::lr_f, "optimisation", "learning rate of AFD's F step"));
  t.push_back(train_real("momentum", &TrainConfig::momentum, "optimisation", "SGD momentum (every optimizer)"));
  t.push_back(train_real("weight-decay", &TrainConfig::weight_decay, "optimisation",
                         "weight decay of the classifier's optimizer (not D's, not F's)"));
  {
    Flag m = flag("milestones", FlagType::int_list, kTrain, "optimisation",
                  "epochs at which every learning rate is multiplied by --lr-gamma (\"\" = none)");
    m.min = 1;
    m.get_train = [](const TrainConfig& c) { return format_int_list(c.milestones); };
    m.set_train = [](TrainConfig& c, const std::string& s) { c.milestones = parse_int_list("milestones", s); };
    t.push_back(m);
    Flag g = train_real("lr-gamma", &TrainConfig::gamma, "optimisation", "learning-rate factor at each milestone");
    above(g, 0);
    t.push_back(g);
  }

  // ---- method terms (train) ----
  {
    Flag g = flag("gan-loss", FlagType::choice, kTrain, "method", "AFD's adversarial loss");
    g.choices = {"wgan", "dcgan", "hinge"};
    g.get_train = [](const TrainConfig& c) { return std::string(gan_loss_name(c.gan_loss)); };
    g.set_train = [](TrainConfig& c, const std::string& s) { c.gan_loss = parse_gan_loss(s); };
    t.push_back(g);
  }
  t.push_back(train_real("gp-lambda", &TrainConfig::gp_lambda, "method", "AFD gradient-penalty weight (0 = off)"));
  t.push_back(train_real("trades-beta", &TrainConfig::trades_beta, "method", "TRADES' KL weight beta"));
  t.push_back(train_real("norm-lambda", &TrainConfig::norm_lambda, "method", "norm baseline's weight lambda"));
  {
    auto trades = [&](const char* name, const char* help, auto member, FlagType type) {
      Flag f = flag(name, type, kTrain, "method", help);
      f.min = 0;
      f.get_train = [member, type](const TrainConfig& c) {
        return type == FlagType::integer ? std::to_string(int64_t(c.trades_attack.*member)) : format_real(c.trades_attack.*member);
      };
      f.set_train = [member, name](TrainConfig& c, const std::string& s) {
        using V = std::remove_reference_t<decltype(c.trades_attack.*member)>;
        if constexpr (std::is_same_v<V, int>) c.trades_attack.*member = int(parse_int(name, s));
        else c.trades_attack.*member = parse_real(name, s);
      };
      t.push_back(f);
    };
    trades("trades-eps", "eps of TRADES' KL-PGD attack", &train::TradesAttack::eps, FlagType::real);
    trades("trades-steps", "steps of TRADES' KL-PGD attack", &train::TradesAttack::steps, FlagType::integer);
    trades("trades-step-size", "step size of TRADES' KL-PGD attack", &train::TradesAttack::step_size, FlagType::real);
    trades("trades-init-std", "std of TRADES' random start x + std N(0, 1)", &train::TradesAttack::init_std, FlagType::real);
  }

  // ---- the attack ----
  {
    Flag a = flag("attack", FlagType::choice, kTrain, "attack",
                  "the training attack (any registered attack; TRADES uses its own)");
    a.choices_fn = attack_names;
    a.get_train = [](const TrainConfig& c) { return c.attack; };
    a.set_train = [](TrainConfig& c, const std::string& s) { c.attack = s; };
    t.push_back(a);
    Flag k = flag("adv-keep-failed", FlagType::choice, kTrain, "attack",
                  "what the training attack returns where it failed: the clean image (reference) or its last iterate");
    k.choices = {"clean", "last"};
    k.get_train = [](const TrainConfig& c) { return std::string(train::keep_failed_name(c.keep_failed)); };
    k.set_train = [](TrainConfig& c, const std::string& s) { c.keep_failed = train::parse_keep_failed(s); };
    t.push_back(k);
    Flag e = flag("attacks", FlagType::text, kEval, "attack",
                  "attacks to evaluate, comma separated (registry names; afd_run help attacks; 'none': black-box "
                  "only, with --source-checkpoint)", "pgd-linf");
    t.push_back(e);
    Flag bb = flag("bb-attacks", FlagType::text, kEval, "attack",
                   "attacks crafted on --source-checkpoint for the black-box evaluation, comma separated",
                   "pgd-linf,cw-l2");
    t.push_back(bb);
    Flag g = flag("eps", FlagType::real_list, kEval, "attack",
                  "eps grid for every attack, increasing (\"\" = each attack's grid from the paper: afd_run help attacks)");
    g.min = 0;
    g.increasing = true;  // the curves, their AUC and the report's columns read the grid in order
    t.push_back(g);
    Flag one = flag("attack", FlagType::choice, kAttack, "attack", "the attack to run", "pgd-linf");
    one.choices_fn = attack_names;
    t.push_back(one);
  }
  {
    Flag n = flag("attack-norm", FlagType::choice, kTrain | kModelCmds, "attack settings",
                  "threat model (attacks whose name fixes it, e.g. pgd-l2, ignore this)");
    n.choices = {"linf", "l2", "l1"};
    n.get_attack = [](const AttackConfig& a) { return std::string(attacks::norm_name(a.norm)); };
    n.set_attack = [](AttackConfig& a, const std::string& s) { a.norm = attacks::parse_norm(s); };
    t.push_back(n);
  }
  const unsigned kA = kTrain | kModelCmds;
  {
    Flag e = attack_flag("attack-eps", &AttackConfig::eps, kA, "perturbation budget (in the attack's norm; e.g. 0.3, 8/255)");
    at_least(e, 0);
    t.push_back(e);
    Flag s = attack_flag("attack-steps", &AttackConfig::steps, kA, "iterations");
    at_least(s, 0);
    t.push_back(s);
    Flag z = attack_flag("attack-step-size", &AttackConfig::step_size, kA,
                         "step size (absolute; a multiple of eps with --attack-rel-step; C&W: Adam's learning rate)");
    at_least(z, 0);
    t.push_back(z);
    t.push_back(attack_flag("attack-rel-step", &AttackConfig::relative_step, kA, "step = step-size x eps (Foolbox's rel_stepsize)"));
    t.push_back(attack_flag("attack-random-start", &AttackConfig::random_start, kA, "start at a uniform point of the eps-ball"));
    Flag r = attack_flag("attack-restarts", &AttackConfig::restarts, kA, "random restarts (the per-sample best is kept)");
    at_least(r, 1);
    t.push_back(r);
  }
  {
    Flag l = flag("attack-loss", FlagType::choice, kA, "attack settings", "loss ascended (apgd-* names fix it)");
    l.choices = {"ce", "cw", "dlr", "dlr-targeted", "kl"};
    l.get_attack = [](const AttackConfig& a) { return std::string(attacks::loss_name(a.loss)); };
    l.set_attack = [](AttackConfig& a, const std::string& s) { a.loss = attacks::parse_loss(s); };
    t.push_back(l);
  }
  t.push_back(attack_flag("attack-targeted", &AttackConfig::targeted, kModelCmds,
                          "targeted: target (y + 1) mod K (apgd-t, fab-t pick their own targets)"));
  {
    Flag d = attack_flag("attack-decay", &AttackConfig::decay, kA, "MIM: momentum decay");
    at_least(d, 0);
    t.push_back(d);
    Flag sp = attack_flag("attack-sparsity", &AttackConfig::sparsity, kA, "sparse-l1: fraction of coordinates left out");
    within(sp, 0, 1);
    t.push_back(sp);
    Flag q = attack_flag("attack-quantile", &AttackConfig::quantile, kA, "sparse-l1: per-sample |grad| quantile (0 = use sparsity)");
    within(q, 0, 0.999999);
    t.push_back(q);
    Flag rho = attack_flag("attack-rho", &AttackConfig::rho, kA, "APGD: oscillation threshold rho");
    within(rho, 1e-12, 1);
    t.push_back(rho);
    Flag tc = attack_flag("attack-n-target-classes", &AttackConfig::n_target_classes, kA, "APGD-T / FAB-T: target classes tried");
    at_least(tc, 1);
    t.push_back(tc);
    Flag c = attack_flag("attack-candidates", &AttackConfig::candidates, kA, "DeepFool: candidate classes");
    at_least(c, 1);
    t.push_back(c);
    Flag o = attack_flag("attack-overshoot", &AttackConfig::overshoot, kA, "DeepFool: overshoot");
    at_least(o, 0);
    t.push_back(o);
    Flag g = attack_flag("attack-gamma", &AttackConfig::gamma, kA, "DDN: norm update factor gamma");
    at_least(g, 0);
    t.push_back(g);
    Flag in = attack_flag("attack-init-norm", &AttackConfig::init_norm, kA, "DDN: initial norm");
    at_least(in, 0);
    t.push_back(in);
    Flag bs = attack_flag("attack-binary-steps", &AttackConfig::binary_steps, kA, "C&W: binary search steps over c");
    at_least(bs, 0);
    t.push_back(bs);
    Flag ic = attack_flag("attack-initial-const", &AttackConfig::initial_const, kA, "C&W: initial c");
    at_least(ic, 0);
    t.push_back(ic);
    Flag cf = attack_flag("attack-confidence", &AttackConfig::confidence, kA, "C&W: margin kappa");
    at_least(cf, 0);
    t.push_back(cf);
    t.push_back(attack_flag("attack-abort-early", &AttackConfig::abort_early, kA, "C&W: stop a search step once the loss stalls"));
    Flag fe = attack_flag("attack-fab-eta", &AttackConfig::fab_eta, kA, "FAB: extrapolation eta");
    at_least(fe, 0);
    t.push_back(fe);
    Flag fa = attack_flag("attack-fab-alpha-max", &AttackConfig::fab_alpha_max, kA, "FAB: alpha_max");
    at_least(fa, 0);
    t.push_back(fa);
    Flag fb = attack_flag("attack-fab-beta", &AttackConfig::fab_beta, kA, "FAB: beta");
    at_least(fb, 0);
    t.push_back(fb);
    Flag nq = attack_flag("attack-n-queries", &AttackConfig::n_queries, kA, "Square: query budget");
    at_least(nq, 1);
    t.push_back(nq);
    Flag pi = attack_flag("attack-p-init", &AttackConfig::p_init, kA, "Square: initial fraction of pixels per window");
    within(pi, 0, 1);
    t.push_back(pi);
  }

  // ---- data (train) ----
  t.push_back(train_int("crop-padding", &TrainConfig::crop_padding, "data", "random crop with this zero padding (0 = off)", 0));
  t.push_back(train_bool("flip", &TrainConfig::flip, "data", "random horizontal flip"));
  t.push_back(train_int("prefetch", &TrainConfig::prefetch, "data", "batches the loader prepares ahead (0 = no thread)", 0));

  // ---- evaluation and output ----
  {
    Flag eb = train_int("eval-batch-size", &TrainConfig::eval_batch_size, "evaluation",
                        "batch size of evaluation (and of the attacks in eval / attack)", 1);
    t.push_back(eb);
    Flag eb2 = flag("eval-batch-size", FlagType::integer, kModelCmds, "evaluation", "batch size of the attacks", "500");
    at_least(eb2, 1);
    t.push_back(eb2);
    Flag ts = flag("test-subset", FlagType::integer, kTrain, "evaluation",
                   "points of the test split evaluated after each epoch, from the first (0 = all)", "0");
    at_least(ts, 0);
    t.push_back(ts);
    t.push_back(flag("epoch-eval-attack", FlagType::boolean, kTrain, "evaluation",
                     "also the training attack's accuracy on the test split after each epoch", "true"));
    t.push_back(train_int("checkpoint-every", &TrainConfig::checkpoint_every, "evaluation",
                          "epochs between checkpoints in OUT/checkpoint (one is also written at the end and on Ctrl-C)", 1));
    Flag cnt = flag("count", FlagType::integer, kEval, "evaluation", "the first N points of the test split (0 = all)", "0");
    at_least(cnt, 0);
    t.push_back(cnt);
    Flag cnt2 = flag("count", FlagType::integer, kAttack, "evaluation", "the first N points of the test split (0 = all)", "1000");
    at_least(cnt2, 0);
    t.push_back(cnt2);
    Flag sp = flag("sanity-points", FlagType::integer, kEval, "evaluation",
                   "after each model's attacks, the sanity report (attacks/sanity.h: randomised forward, logits, "
                   "gradients, unbounded budget, convergence, FGSM vs PGD, Square vs white-box) on the first N "
                   "points, in the first attack's norm at its largest eps (0 = off)",
                   "200");
    at_least(sp, 0);
    t.push_back(sp);
    t.push_back(flag("save-adv", FlagType::boolean, kAttack, "evaluation",
                     "save x_adv, labels, success and norms to OUT/x_adv.safetensors", "false"));
    Flag si = flag("save-images", FlagType::integer, kAttack, "evaluation",
                   "draw the first N points to OUT/adversarial.png: a row per point with the clean image, the "
                   "perturbation shown as 0.5 + delta / (2 max|delta|) per image and the adversarial image, "
                   "captioned with the true label (Y) and the predictions (P) (0 = none)",
                   "0");
    at_least(si, 0);
    t.push_back(si);
    Flag sc = flag("image-scale", FlagType::integer, kAttack, "evaluation",
                   "--save-images: each image pixel becomes an S x S square (nearest neighbour)", "4");
    within(sc, 1, 32);
    t.push_back(sc);
    Flag pr = flag("progress", FlagType::choice, kTrain | kModelCmds, "evaluation",
                   "progress on stderr: live (one line rewritten per batch), lines (a line every --progress-every "
                   "batches), none; auto = live on a terminal, else lines",
                   "auto");
    pr.choices = {"auto", "live", "lines", "none"};
    pr.resolved = false;
    t.push_back(pr);
    Flag pe = flag("progress-every", FlagType::integer, kTrain, "evaluation", "batches between progress lines in lines mode", "20");
    at_least(pe, 1);
    pe.resolved = false;
    t.push_back(pe);
    t.push_back(flag("metrics-steps", FlagType::boolean, kTrain, "evaluation",
                     "also append every step's numbers to metrics.jsonl (not only the epochs')", "true"));
  }

  // ---- data subcommand ----
  {
    t.push_back(flag("fetch", FlagType::boolean, kData, "data",
                     "fetch the dataset with tools/fetch_data.sh into --data-dir (md5-checked)", "false"));
    t.push_back(flag("from", FlagType::path, kData, "data", "fetch from this folder of official files instead of the network"));
    t.push_back(flag("verify", FlagType::boolean, kData, "data", "check the files' md5 against the official sums", "true"));
    t.push_back(flag("describe", FlagType::boolean, kData, "data",
                     "load both splits: counts, shapes, class histogram", "true"));
  }
  return t;
}

}  // namespace

const std::vector<Flag>& flag_table() {
  static const std::vector<Flag> table = build_table();
  return table;
}

// ---- the paper's evaluation settings (specs/afd.md, "Evaluation protocol") ------------------------

double table1_eps(attacks::Norm norm, const std::string& dataset) {
  // Linf: Table 1's PGD budget; L2: its C&W budget; L1 (no Table 1 column): the first non-zero eps
  // of the paper's L1 grid.
  if (norm == attacks::Norm::l2) return 1.0;
  if (norm == attacks::Norm::l1) return 10.0;
  const bool mnist = dataset == "mnist" || dataset == "fashion-mnist";
  const bool tiny = dataset.rfind("tiny-imagenet", 0) == 0;  // tiny-imagenet (64x64) and tiny-imagenet-32
  return mnist ? 0.3 : tiny ? 0.015 : 8.0 / 255;
}

EvalPreset eval_preset(const std::string& attack, const std::string& dataset) {
  const bool mnist = dataset == "mnist" || dataset == "fashion-mnist";
  const double budget = table1_eps(attacks::Norm::linf, dataset);
  auto over255 = [](std::vector<double> v) {
    for (double& x : v) x /= 255;
    return v;
  };
  const std::vector<double> linf_grid = mnist ? std::vector<double>{0, .1, .3, .35, .4, .45, .5}
                                              : over255({0, 2, 4, 8, 16, 32});
  const std::vector<double> fgsm_grid = mnist ? linf_grid : over255({0, 2, 4, 8, 16, 32, 64});
  const std::vector<double> l2_grid = mnist ? std::vector<double>{0, 2, 5, 10, 20} : std::vector<double>{0, 1, 2, 5, 10, 20};
  const std::vector<double> l1_grid = {0, 10, 50, 100, 200, 400};
  const std::vector<double> ddn_grid = mnist ? std::vector<double>{0, 1, 2, 5, 10} : std::vector<double>{0, 2, 5, 10, 15};

  EvalPreset p;
  AttackConfig& c = p.config;
  c.norm = attacks::Norm::linf;
  c.eps = budget;
  c.random_start = false;
  c.restarts = 1;
  p.eps = {budget};
  if (attack == "pgd-linf") {
    p.eps = linf_grid;
    c.random_start = true;
    if (mnist) c.steps = 40, c.step_size = 0.01 / 0.3, c.relative_step = true;  // 0.01 at eps 0.3
    else c.steps = 20, c.step_size = 2.0 / 255;
  } else if (attack == "pgd-l2" || attack == "pgd-l1" || attack == "sparse-l1") {
    p.eps = attack == "pgd-l2" ? l2_grid : l1_grid;
    c.norm = attack == "pgd-l2" ? attacks::Norm::l2 : attacks::Norm::l1;
    c.steps = 50, c.step_size = 0.025, c.relative_step = true, c.random_start = true;
  } else if (attack == "fgsm") {
    p.eps = fgsm_grid;
    c.steps = 1, c.random_start = mnist;
  } else if (attack == "mim-linf" || attack == "mim-l2") {
    p.eps = attack == "mim-linf" ? linf_grid : l2_grid;
    c.norm = attack == "mim-linf" ? attacks::Norm::linf : attacks::Norm::l2;
    c.decay = 1.0;
    if (attack == "mim-l2") c.steps = 40, c.step_size = 0.025, c.relative_step = true;
    else if (mnist) c.steps = 40, c.step_size = 0.01;
    else c.steps = 20, c.step_size = 2.0 / 255;
  } else if (attack == "ddn") {
    p.eps = ddn_grid;
    c.norm = attacks::Norm::l2;
    c.steps = 100, c.init_norm = 1, c.gamma = 0.05;
  } else if (attack == "deepfool-linf" || attack == "deepfool-l2") {
    p.eps = attack == "deepfool-linf" ? (mnist ? std::vector<double>{0, .01, .1, .3, .5, 1} : fgsm_grid) : ddn_grid;
    c.norm = attack == "deepfool-linf" ? attacks::Norm::linf : attacks::Norm::l2;
    c.steps = 50, c.candidates = 10, c.overshoot = 0.02;
  } else if (attack == "cw-l2") {
    p.eps = {0, 1, 2, 5};
    c.norm = attacks::Norm::l2;
    c.steps = mnist ? 50 : 20, c.step_size = mnist ? 0.05 : 0.01;
    c.binary_steps = 9, c.initial_const = 1e-3;
  } else if (attack.rfind("apgd", 0) == 0 || attack.rfind("fab", 0) == 0 || attack == "autoattack") {
    c.steps = 100, c.n_target_classes = 9, c.n_queries = 5000;  // AutoAttack's standard settings
  } else if (attack == "square") {
    c.n_queries = 5000, c.p_init = 0.8;
  }
  // The single eps of `afd_run attack` (and the config eval.json records): Table 1's budget in the
  // attack's norm.
  c.eps = table1_eps(c.norm, dataset);
  return p;
}

double curve_auc(const std::vector<double>& eps, const std::vector<double>& accuracy) {
  if (eps.size() < 2 || eps.back() <= eps.front()) return std::nan("");
  double area = 0;
  for (size_t i = 1; i < eps.size(); ++i) area += 0.5 * (accuracy[i] + accuracy[i - 1]) * (eps[i] - eps[i - 1]);
  return area / (eps.back() - eps.front());
}

std::pair<double, double> mean_std(const std::vector<double>& v) {
  if (v.empty()) return {std::nan(""), std::nan("")};
  double mean = 0;
  for (double x : v) mean += x;
  mean /= double(v.size());
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return {mean, v.size() > 1 ? std::sqrt(ss / double(v.size() - 1)) : 0.0};
}

}  // namespace afd::cli
