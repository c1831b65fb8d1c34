// afd_run's flags: one table (flag_table() in commands.cpp) gives every flag its name, type,
// default, range and meaning; the parser, the --help pages, docs/cli.md and every run's
// resolved.flags are all generated from it, so they cannot drift apart.
//
//   afd_run train --flagfile configs/mnist_afd_wgan.flags --epochs=5 --no-flip --attack-steps 10
//
// Syntax: every option is a flag, `--name value` or `--name=value`; a boolean is `--name` (true),
// `--no-name` (false) or `--name=true|false`. `--flagfile FILE` reads flags from FILE, one per line
// (`--name value`, `--name=value`, `--name`, `--no-name`; blank lines and `#` comments ignored),
// in place: what comes later on the command line (or later in the file) overrides it.
//
// Errors are UsageError (exit status 2): unknown flag (with the closest known name), missing or
// mistyped value, out-of-range value, each naming the flag, the value and, for a flagfile, the
// file and line.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "afd/train/config.h"
#include "attacks/attack.h"

namespace afd::cli {

// A mistake on the command line or in a flagfile: afd_run prints it on one line and exits with 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class FlagType { integer, real, boolean, text, choice, int_list, real_list, path };
const char* type_name(FlagType type);  // "int", "float", "bool", "string", "choice", "int list", ...

// The subcommands a flag belongs to (a bit mask).
enum Command : unsigned { kTrain = 1, kEval = 2, kAttack = 4, kData = 8, kAll = 15 };
const char* command_name(Command command);

struct Flag {
  std::string name;     // without the leading "--"
  FlagType type = FlagType::text;
  unsigned commands = 0;
  std::string group;    // the section of the help page
  std::string help;     // one line
  std::string fallback; // the default when no preset supplies one ("" = empty)
  std::vector<std::string> choices;          // FlagType::choice (empty: computed, see choices_fn)
  std::function<std::vector<std::string>()> choices_fn;  // e.g. the attack registry's names
  std::optional<double> min, max;            // inclusive bounds of numbers (and of list elements)
  bool min_exclusive = false;                // min is a strict bound (> instead of >=)
  bool increasing = false;                   // a list's elements must strictly increase
  bool resolved = true;  // written into resolved.flags (false: --flagfile, --resume, --help, ...)
  // Flags that mirror a field of TrainConfig (train) or of the attacks::AttackConfig of the
  // training or evaluation attack: read the default from the preset's struct, write the value back.
  std::function<std::string(const train::TrainConfig&)> get_train;
  std::function<void(train::TrainConfig&, const std::string&)> set_train;
  std::function<std::string(const attacks::AttackConfig&)> get_attack;
  std::function<void(attacks::AttackConfig&, const std::string&)> set_attack;

  std::vector<std::string> allowed() const { return choices_fn ? choices_fn() : choices; }
};

// One "--name value" as given, and where it came from ("command line" or "FILE:LINE").
struct Assignment {
  std::string name, value, source;
};

// Parsed typed values (the parse functions throw UsageError naming `flag` and the text).
int64_t parse_int(const std::string& flag, const std::string& text);
double parse_real(const std::string& flag, const std::string& text);  // also "8/255"
bool parse_bool(const std::string& flag, const std::string& text);
std::vector<int64_t> parse_int_list(const std::string& flag, const std::string& text);   // "50,80"
std::vector<double> parse_real_list(const std::string& flag, const std::string& text);   // "0,0.1,8/255"
std::vector<std::string> parse_text_list(const std::string& text);                        // "a,b"

// Exact text forms that parse back to the same value (doubles with 17 significant digits).
std::string format_real(double v);
std::string format_bool(bool v);
std::string format_int_list(const std::vector<int64_t>& v);
std::string format_real_list(const std::vector<double>& v);

// Levenshtein distance, for "did you mean".
size_t edit_distance(const std::string& a, const std::string& b);

// The flags of one subcommand, looked up by name.
class FlagSet {
 public:
  FlagSet(const std::vector<Flag>& table, Command command);
  Command command() const { return command_; }
  const std::vector<const Flag*>& flags() const { return flags_; }
  const Flag* find(const std::string& name) const;
  // The known flag closest to `name` ("" when nothing is close).
  std::string closest(const std::string& name) const;

  // argv (after the subcommand) -> assignments in order, flagfiles expanded where they stand.
  // "--help"/"-h" and "--version" are reported through the flags below instead.
  std::vector<Assignment> parse_args(const std::vector<std::string>& args, bool* help = nullptr) const;
  // A flagfile's assignments (nested --flagfile lines are followed, relative to the file's folder).
  std::vector<Assignment> read_flagfile(const std::string& path, int depth = 0) const;
  // Checks the value of one assignment against the flag's type and range (throws UsageError).
  void check(const Flag& flag, const std::string& value, const std::string& source) const;

 private:
  Assignment make(const std::string& name, std::optional<std::string> value, const std::string& source,
                  const std::vector<std::string>& args, size_t* i) const;
  Command command_;
  std::vector<const Flag*> flags_;
};

// The resolved values of every flag of a subcommand: explicit ones (last assignment wins) over
// defaults. Typed getters; a flag not in the set is a programming error.
class Options {
 public:
  Options() = default;
  Options(const FlagSet& set, std::map<std::string, std::string> defaults, const std::vector<Assignment>& given);

  const std::string& get(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  double get_real(const std::string& name) const;
  bool get_bool(const std::string& name) const;
  std::vector<int64_t> get_int_list(const std::string& name) const;
  std::vector<double> get_real_list(const std::string& name) const;
  std::vector<std::string> get_list(const std::string& name) const;
  bool given(const std::string& name) const { return given_.count(name) > 0; }
  void set(const std::string& name, const std::string& value);  // a value the command decided
  const std::map<std::string, std::string>& values() const { return values_; }

  // The flagfile that reruns this: every resolved flag of the set, in table order, "--name=value".
  std::string resolved_flagfile(const std::string& header) const;

 private:
  const FlagSet* set_ = nullptr;
  std::map<std::string, std::string> values_;
  std::set<std::string> given_;
};

}  // namespace afd::cli
