// The flag parser of afd_run: command line and flagfiles -> checked assignments -> Options.
#include "tools/afd_run/flags.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace afd::cli {

namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string joined(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (const auto& s : v) out += fmt::format("{}{}", out.empty() ? "" : sep, s);
  return out;
}

// "--epochs" or "configs/x.flags:3: --epochs" for messages.
std::string where(const std::string& flag, const std::string& source) {
  return source.empty() || source == "command line" ? "--" + flag : source + ": --" + flag;
}

}  // namespace

const char* type_name(FlagType type) {
  switch (type) {
    case FlagType::integer: return "int";
    case FlagType::real: return "float";
    case FlagType::boolean: return "bool";
    case FlagType::text: return "string";
    case FlagType::choice: return "choice";
    case FlagType::int_list: return "int list";
    case FlagType::real_list: return "float list";
    case FlagType::path: return "path";
  }
  return "?";
}

const char* command_name(Command command) {
  switch (command) {
    case kTrain: return "train";
    case kEval: return "eval";
    case kAttack: return "attack";
    case kData: return "data";
    default: return "?";
  }
}

// ---- typed values ------------------------------------------------------------------------------

int64_t parse_int(const std::string& flag, const std::string& text) {
  const std::string t = trim(text);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || end != t.data() + t.size())
    throw UsageError(fmt::format("--{}: expected an integer, got '{}'", flag, text));
  return v;
}

double parse_real(const std::string& flag, const std::string& text) {
  const std::string t = trim(text);
  auto number = [&](const std::string& s, double& out) {
    if (s.empty()) return false;
    char* end = nullptr;
    out = std::strtod(s.c_str(), &end);
    return end == s.c_str() + s.size() && std::isfinite(out);
  };
  double v = 0;
  const size_t slash = t.find('/');
  if (slash == std::string::npos) {
    if (number(t, v)) return v;
  } else {
    double num = 0, den = 0;  // "8/255": a fraction, as the paper writes CIFAR's eps
    if (number(t.substr(0, slash), num) && number(t.substr(slash + 1), den) && den != 0) return num / den;
  }
  throw UsageError(fmt::format("--{}: expected a finite number (e.g. 0.3 or 8/255), got '{}'", flag, text));
}

bool parse_bool(const std::string& flag, const std::string& text) {
  const std::string t = trim(text);
  if (t == "true" || t == "1" || t == "yes" || t == "on") return true;
  if (t == "false" || t == "0" || t == "no" || t == "off") return false;
  throw UsageError(fmt::format("--{}: expected true or false, got '{}'", flag, text));
}

std::vector<std::string> parse_text_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::vector<int64_t> parse_int_list(const std::string& flag, const std::string& text) {
  std::vector<int64_t> out;
  for (const auto& s : parse_text_list(text)) out.push_back(parse_int(flag, s));
  return out;
}

std::vector<double> parse_real_list(const std::string& flag, const std::string& text) {
  std::vector<double> out;
  for (const auto& s : parse_text_list(text)) out.push_back(parse_real(flag, s));
  return out;
}

std::string format_real(double v) {
  // The shortest of %.15g / %.17g that reads back exactly, so 0.1 stays "0.1".
  std::string s = fmt::format("{:.15g}", v);
  if (std::strtod(s.c_str(), nullptr) != v) s = fmt::format("{:.17g}", v);
  return s;
}
std::string format_bool(bool v) { return v ? "true" : "false"; }
std::string format_int_list(const std::vector<int64_t>& v) {
  std::string out;
  for (int64_t x : v) out += fmt::format("{}{}", out.empty() ? "" : ",", x);
  return out;
}
std::string format_real_list(const std::vector<double>& v) {
  std::string out;
  for (double x : v) out += fmt::format("{}{}", out.empty() ? "" : ",", format_real(x));
  return out;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  // Optimal string alignment: insertions, deletions, substitutions and swaps of neighbours
  // ("adf" -> "afd" is 1) each cost 1.
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// ---- FlagSet -----------------------------------------------------------------------------------

FlagSet::FlagSet(const std::vector<Flag>& table, Command command) : command_(command) {
  for (const Flag& f : table)
    if (f.commands & command) flags_.push_back(&f);
}

const Flag* FlagSet::find(const std::string& name) const {
  for (const Flag* f : flags_)
    if (f->name == name) return f;
  return nullptr;
}

std::string FlagSet::closest(const std::string& name) const {
  std::string best;
  size_t best_d = std::string::npos;
  for (const Flag* f : flags_) {
    size_t d = edit_distance(name, f->name);
    // A flag that starts with (or contains) what was typed is a good guess too.
    if (f->name.find(name) != std::string::npos || name.find(f->name) != std::string::npos)
      d = std::min(d, size_t(2));
    if (d < best_d) best_d = d, best = f->name;
  }
  return best_d <= std::max<size_t>(3, name.size() / 3) ? best : "";
}

void FlagSet::check(const Flag& flag, const std::string& value, const std::string& source) const {
  const std::string at = where(flag.name, source);
  auto in_range = [&](double v, const std::string& text) {
    if (flag.min && (flag.min_exclusive ? !(v > *flag.min) : !(v >= *flag.min)))
      throw UsageError(fmt::format("{}: must be {} {}, got {}", at, flag.min_exclusive ? ">" : ">=",
                                   format_real(*flag.min), text));
    if (flag.max && !(v <= *flag.max))
      throw UsageError(fmt::format("{}: must be <= {}, got {}", at, format_real(*flag.max), text));
  };
  try {
    switch (flag.type) {
      case FlagType::integer: in_range(double(parse_int(flag.name, value)), value); break;
      case FlagType::real: in_range(parse_real(flag.name, value), value); break;
      case FlagType::boolean: parse_bool(flag.name, value); break;
      case FlagType::int_list:
        for (int64_t v : parse_int_list(flag.name, value)) in_range(double(v), std::to_string(v));
        break;
      case FlagType::real_list: {
        const std::vector<double> v = parse_real_list(flag.name, value);
        for (size_t i = 0; i < v.size(); ++i) {
          in_range(v[i], format_real(v[i]));
          if (flag.increasing && i > 0 && !(v[i] > v[i - 1]))
            throw UsageError(fmt::format("{}: must increase, got {} after {}", at, format_real(v[i]), format_real(v[i - 1])));
        }
        break;
      }
      case FlagType::choice: {
        const std::vector<std::string> allowed = flag.allowed();
        if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
          std::string hint;
          size_t best = std::string::npos;
          for (const auto& a : allowed)
            if (size_t d = edit_distance(value, a); d < best && d <= 3) best = d, hint = a;
          throw UsageError(fmt::format("{}: '{}' is not one of {}{}", at, value, joined(allowed),
                                       hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
        }
        break;
      }
      case FlagType::text:
      case FlagType::path: break;
    }
  } catch (const UsageError& e) {
    // Type errors from parse_* name the flag only; add the flagfile position.
    const std::string msg = e.what();
    if (source.empty() || source == "command line" || msg.rfind(at, 0) == 0) throw;
    throw UsageError(source + ": " + msg);
  }
}

Assignment FlagSet::make(const std::string& raw, std::optional<std::string> value, const std::string& source,
                         const std::vector<std::string>& args, size_t* i) const {
  std::string name = raw;
  const Flag* flag = find(name);
  bool negated = false;
  if (!flag && name.rfind("no-", 0) == 0) {
    const Flag* base = find(name.substr(3));
    if (base && base->type == FlagType::boolean) flag = base, negated = true, name = name.substr(3);
  }
  if (!flag) {
    const std::string guess = closest(name);
    const std::string prefix = source == "command line" ? "" : source + ": ";
    throw UsageError(fmt::format("{}unknown flag --{} for '{}'{}", prefix, raw, command_name(command_),
                                 guess.empty() ? " (afd_run " + std::string(command_name(command_)) + " --help lists them)"
                                               : " (did you mean --" + guess + "?)"));
  }
  if (flag->type == FlagType::boolean) {
    if (negated && value) throw UsageError(fmt::format("{}: --no-{} takes no value", where(name, source), name));
    if (!value) value = negated ? "false" : "true";
  } else if (!value) {
    if (!args.empty() && i && *i + 1 < args.size()) {
      value = args[++*i];
    } else {
      throw UsageError(fmt::format("{}: needs a value ({})", where(name, source), type_name(flag->type)));
    }
  }
  check(*flag, *value, source);
  return {name, *value, source};
}

std::vector<Assignment> FlagSet::parse_args(const std::vector<std::string>& args, bool* help) const {
  std::vector<Assignment> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      if (help) *help = true;
      continue;
    }
    if (a.rfind("--", 0) != 0 || a.size() == 2)
      throw UsageError(fmt::format("unexpected argument '{}' for '{}' (every option is a --flag; afd_run {} --help)", a,
                                   command_name(command_), command_name(command_)));
    std::string body = a.substr(2);
    std::optional<std::string> value;
    if (size_t eq = body.find('='); eq != std::string::npos) value = body.substr(eq + 1), body = body.substr(0, eq);
    if (body == "flagfile") {
      if (!value) {
        if (i + 1 >= args.size()) throw UsageError("--flagfile: needs a value (path)");
        value = args[++i];
      }
      for (Assignment& x : read_flagfile(*value)) out.push_back(std::move(x));
      continue;
    }
    out.push_back(make(body, value, "command line", args, &i));
  }
  return out;
}

std::vector<Assignment> FlagSet::read_flagfile(const std::string& path, int depth) const {
  if (depth > 8) throw UsageError(fmt::format("--flagfile {}: flagfiles nested more than 8 deep (a cycle?)", path));
  std::ifstream file(path, std::ios::binary);
  if (!file) throw UsageError(fmt::format("--flagfile {}: cannot read the file", path));
  // Read at most kMaxFlagfile bytes: a device (/dev/zero) or a huge file is not a flagfile, and
  // must not hang the parser or fill the memory; pipes (--flagfile <(...)) still work.
  constexpr std::streamsize kMaxFlagfile = 1 << 20;
  std::string text(size_t(kMaxFlagfile) + 1, '\0');
  file.read(text.data(), kMaxFlagfile + 1);
  text.resize(size_t(file.gcount()));
  if (text.size() > size_t(kMaxFlagfile))
    throw UsageError(fmt::format("--flagfile {}: larger than 1 MiB, not a flagfile", path));
  std::istringstream in(text);
  std::vector<Assignment> out;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    // A comment starts with '#' at the line's start or after a blank.
    for (size_t p = line.find('#'); p != std::string::npos; p = line.find('#', p + 1))
      if (p == 0 || line[p - 1] == ' ' || line[p - 1] == '\t') {
        line = line.substr(0, p);
        break;
      }
    line = trim(line);
    if (line.empty()) continue;
    const std::string source = fmt::format("{}:{}", path, number);
    if (line.rfind("--", 0) != 0)
      throw UsageError(fmt::format("{}: expected '--flag value', got '{}'", source, line));
    std::string body = line.substr(2);
    std::optional<std::string> value;
    size_t eq = body.find('='), space = body.find_first_of(" \t");
    if (eq != std::string::npos && (space == std::string::npos || eq < space)) {
      value = body.substr(eq + 1), body = body.substr(0, eq);
    } else if (space != std::string::npos) {
      value = trim(body.substr(space)), body = body.substr(0, space);
    }
    if (body == "flagfile") {
      if (!value) throw UsageError(fmt::format("{}: --flagfile needs a path", source));
      std::filesystem::path nested(*value);
      if (nested.is_relative()) nested = std::filesystem::path(path).parent_path() / nested;
      for (Assignment& x : read_flagfile(nested.string(), depth + 1)) out.push_back(std::move(x));
      continue;
    }
    out.push_back(make(body, value, source, {}, nullptr));
  }
  return out;
}

// ---- Options -----------------------------------------------------------------------------------

Options::Options(const FlagSet& set, std::map<std::string, std::string> defaults, const std::vector<Assignment>& given)
    : set_(&set), values_(std::move(defaults)) {
  for (const Flag* f : set.flags())
    if (!values_.count(f->name)) values_[f->name] = f->fallback;
  for (const Assignment& a : given) {
    values_[a.name] = a.value;
    given_.insert(a.name);
  }
}

const std::string& Options::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw std::logic_error("afd_run: no flag --" + name + " in this subcommand");
  return it->second;
}
int64_t Options::get_int(const std::string& name) const { return parse_int(name, get(name)); }
double Options::get_real(const std::string& name) const { return parse_real(name, get(name)); }
bool Options::get_bool(const std::string& name) const { return parse_bool(name, get(name)); }
std::vector<int64_t> Options::get_int_list(const std::string& name) const { return parse_int_list(name, get(name)); }
std::vector<double> Options::get_real_list(const std::string& name) const { return parse_real_list(name, get(name)); }
std::vector<std::string> Options::get_list(const std::string& name) const { return parse_text_list(get(name)); }

void Options::set(const std::string& name, const std::string& value) {
  get(name);
  values_[name] = value;
}

std::string Options::resolved_flagfile(const std::string& header) const {
  std::string out = header;
  std::string group;
  for (const Flag* f : set_->flags()) {
    if (!f->resolved) continue;
    if (f->group != group) {
      group = f->group;
      out += "\n# " + group + "\n";
    }
    out += fmt::format("--{}={}\n", f->name, get(f->name));
  }
  return out;
}

}  // namespace afd::cli
