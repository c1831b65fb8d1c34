// The docs test (issue 12, acceptance 2): every command shown in README.md and docs/tour.md runs
// as shown, every file and symbol the tour names exists, and every test that the bad-input
// catalogue (docs/bad-inputs.md, issue 11) names is defined.
//
// Commands are the lines of the fenced blocks without a language (or sh / bash) and the "Run:"
// lines of the tour. They run from a temporary folder that holds tiny MNIST files where a reader
// looks for the real ones (data/mnist), so relative paths (runs/..., data/...) stay inside it:
//   afd_run ...          (or build/afd_run ...) in-process, as shown, with flags appended that make it tiny (later flags
//                        win: one epoch, width 2, a few points, one or two attack steps); `data`
//                        runs without --fetch and with --no-verify (fetching needs the network,
//                        and tiny files are not the official ones: tests/data covers both)
//   bash tools/X.sh ...  the script exists and parses (bash -n); not run: the main job takes 15
//                        minutes (its two trainings run tiny from its flagfiles instead, so the
//                        commands that use its checkpoints run), tools/test.sh is this suite,
//                        fetch_data.sh needs the network
//   build/examples/X     the example's source and its built program exist (tests/examples runs them)
// A command of any other shape fails the test, so a new kind of command gets a rule here.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "afd/data/synthetic.h"
#include "tests/data/temp_dir.h"
#include "tools/afd_run/cli.h"

namespace {

namespace fs = std::filesystem;
const fs::path kSource = AFD_SOURCE_DIR;
const fs::path kBuild = AFD_BUILD_DIR;

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> out;
  std::istringstream in(read_text(p));
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

struct Command {
  std::string text;
  std::string where;  // "README.md:120"
};

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// The commands of a Markdown file: fenced shell blocks and "Run: `...`" lines.
std::vector<Command> commands_in(const std::string& file) {
  std::vector<Command> out;
  std::vector<std::string> lines = lines_of(kSource / file);
  bool in_fence = false, shell = false;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string where = file + ":" + std::to_string(i + 1);
    const std::string line = trim(lines[i]);
    if (line.rfind("```", 0) == 0) {
      if (!in_fence) {
        const std::string lang = line.substr(3);
        shell = lang.empty() || lang == "sh" || lang == "bash";
      }
      in_fence = !in_fence;
      continue;
    }
    if (in_fence && shell) {
      std::string cmd = line;
      // A comment after the command: "  # ...".
      static const std::regex comment(R"(\s+#.*$)");
      cmd = trim(std::regex_replace(cmd, comment, ""));
      if (!cmd.empty() && cmd[0] != '#') out.push_back({cmd, where});
    } else if (!in_fence && line.rfind("Run: ", 0) == 0) {
      static const std::regex code("`([^`]+)`");
      for (std::sregex_iterator it(line.begin(), line.end(), code), end; it != end; ++it)
        out.push_back({(*it)[1].str(), where});
    }
  }
  return out;
}

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> w;
  for (std::string t; in >> t;) w.push_back(t);
  return w;
}

// Flags that make each afd_run command tiny; appended, so they win over the command's own.
std::vector<std::string> tiny_flags(const std::string& command) {
  if (command == "train")
    return {"--width", "2", "--epochs", "1", "--batch-size", "16", "--train-subset", "32", "--test-subset", "16",
            "--eval-batch-size", "16", "--attack-steps", "1", "--progress", "none", "--threads", "1"};
  if (command == "eval")
    return {"--count", "8", "--eval-batch-size", "8", "--attack-steps", "2", "--attack-binary-steps", "2",
            "--sanity-points", "0", "--threads", "1"};
  if (command == "attack") return {"--count", "8", "--attack-steps", "2", "--threads", "1"};
  if (command == "data") return {"--no-verify"};  // the tiny files are not the official ones
  return {};
}

// Tiny MNIST-format files where the readers look for the real ones.
void write_tiny_mnist(const fs::path& dir) {
  fs::create_directories(dir);
  auto labels = [](int64_t n) {
    std::vector<uint8_t> l;
    for (int64_t i = 0; i < n; ++i) l.push_back(uint8_t(i % 10));
    return l;
  };
  afd::data::write_idx_images((dir / "train-images-idx3-ubyte").string(), 64, 28, 28);
  afd::data::write_idx_labels((dir / "train-labels-idx1-ubyte").string(), labels(64));
  afd::data::write_idx_images((dir / "t10k-images-idx3-ubyte").string(), 32, 28, 28);
  afd::data::write_idx_labels((dir / "t10k-labels-idx1-ubyte").string(), labels(32));
}

// Runs (or checks) one command; returns what was done, for the log.
std::string try_command(const Command& c) {
  std::vector<std::string> w = words(c.text);
  if (w.empty()) return "empty";
  if (w[0] == "afd_run" || w[0] == "build/afd_run") {
    std::vector<std::string> args(w.begin() + 1, w.end());
    const std::string command = args.empty() ? "" : args[0];
    // Flagfiles named relative to the repository.
    for (std::string& a : args)
      if (a.rfind("configs/", 0) == 0) a = (kSource / a).string();
    if (command == "data") std::erase(args, std::string("--fetch"));
    for (const std::string& f : tiny_flags(command)) args.push_back(f);
    std::ostringstream out, err;
    auto start = std::chrono::steady_clock::now();
    int code = afd::cli::run(args, {out, err, false});
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(code, 0) << c.where << ": `" << c.text << "` failed:\n" << err.str();
    return "ran in-process, tiny (" + std::to_string(seconds).substr(0, 4) + " s)";
  }
  if (w[0] == "bash" && w.size() >= 2 && w[1].rfind("tools/", 0) == 0) {
    const fs::path script = kSource / w[1];
    EXPECT_TRUE(fs::exists(script)) << c.where << ": " << w[1] << " does not exist";
    EXPECT_EQ(std::system(("bash -n '" + script.string() + "'").c_str()), 0) << c.where << ": " << w[1] << " does not parse";
    if (w[1] == "tools/fetch_data.sh" && w.size() >= 3) {  // the dataset is one the script knows
      EXPECT_NE(read_text(script).find(w[2]), std::string::npos) << c.where << ": fetch_data.sh knows no " << w[2];
    }
    if (w[1] == "tools/main_job.sh") {
      // Its two trainings, from its own flagfiles, made tiny: the checkpoints that the commands
      // after it in the README use (runs/main_job/afd_wgan, runs/main_job/at).
      for (const char* flags : {"configs/main_job_afd_wgan.flags", "configs/main_job_at.flags"}) {
        std::vector<std::string> args = {"train", "--flagfile", (kSource / flags).string()};
        for (const std::string& f : tiny_flags("train")) args.push_back(f);
        std::ostringstream out, err;
        EXPECT_EQ(afd::cli::run(args, {out, err, false}), 0) << c.where << ": " << flags << " failed:\n" << err.str();
      }
      return "script parses; its two trainings ran in-process, tiny";
    }
    return "script exists and parses (not run)";
  }
  if (w[0].rfind("build/examples/", 0) == 0) {
    const std::string name = w[0].substr(std::string("build/examples/").size());
    EXPECT_TRUE(fs::exists(kSource / "examples" / (name + ".cpp"))) << c.where << ": no examples/" << name << ".cpp";
    EXPECT_TRUE(fs::exists(kBuild / "examples" / name)) << c.where << ": " << name << " is not built";
    return "example exists and is built (tests/examples runs it)";
  }
  ADD_FAILURE() << c.where << ": `" << c.text << "`: no rule in tests/docs/test_docs.cpp runs or checks this kind of command";
  return "unknown";
}

class DocsCommands : public ::testing::Test {
 protected:
  void SetUp() override {
    old_ = fs::current_path();
    fs::current_path(dir_.str());
    write_tiny_mnist("data/mnist");
  }
  void TearDown() override { fs::current_path(old_); }
  void run_all(const std::string& file) {
    std::vector<Command> cmds = commands_in(file);
    ASSERT_FALSE(cmds.empty()) << file << " shows no command";
    for (const Command& c : cmds) std::cout << "[ docs ] " << c.where << ": " << c.text << "  -> " << try_command(c) << "\n";
  }

 private:
  afd::testing::TempDir dir_;
  fs::path old_;
};

TEST_F(DocsCommands, EveryReadmeCommandRuns) { run_all("README.md"); }

TEST_F(DocsCommands, EveryTourCommandRuns) { run_all("docs/tour.md"); }

// "[path](../path) `Symbol`, `Class::member`" on one line: the file exists and each symbol occurs
// in it (a qualified name as written, or its class and its member as declared in a header).
TEST(DocsTour, EveryFileAndSymbolItNamesExists) {
  static const std::regex link(R"(\]\(\.\./([^)#]+)\))"), code("`([^`]+)`");
  int files = 0, symbols = 0;
  std::vector<std::string> lines = lines_of(kSource / "docs/tour.md");
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    std::vector<std::smatch> links;
    for (std::sregex_iterator it(line.begin(), line.end(), link), end; it != end; ++it) links.push_back(*it);
    for (size_t k = 0; k < links.size(); ++k) {
      const fs::path file = kSource / links[k][1].str();
      ++files;
      ASSERT_TRUE(fs::exists(file)) << "docs/tour.md:" << i + 1 << ": " << links[k][1] << " does not exist";
      if (fs::is_directory(file)) continue;
      const std::string text = read_text(file);
      size_t from = links[k].position(0) + links[k].length(0);
      size_t to = k + 1 < links.size() ? size_t(links[k + 1].position(0)) : line.size();
      const std::string rest = line.substr(from, to - from);
      for (std::sregex_iterator it(rest.begin(), rest.end(), code), end; it != end; ++it) {
        const std::string sym = (*it)[1];
        ++symbols;
        size_t q = sym.rfind("::");
        bool found = text.find(sym) != std::string::npos;
        if (!found && q != std::string::npos) {
          std::string owner = sym.substr(0, q), member = sym.substr(q + 2);
          size_t space = owner.rfind(' ');
          if (space != std::string::npos) owner = owner.substr(space + 1);
          found = text.find(owner) != std::string::npos && text.find(member + "(") != std::string::npos;
        }
        EXPECT_TRUE(found) << "docs/tour.md:" << i + 1 << ": `" << sym << "` is not in " << links[k][1];
      }
    }
  }
  EXPECT_GT(files, 20);
  EXPECT_GT(symbols, 40);
}

// Paths in backticks (`tensor/cuda/`, `tools/main_job.sh`, ...) in the README and the tour exist.
TEST(DocsTour, EveryRepositoryPathInBackticksExists) {
  static const std::regex code("`([^`]+)`");
  const std::vector<std::string> roots = {"tensor/", "autograd/", "nn/", "attacks/", "afd/", "tools/",
                                          "tests/", "examples/", "docs/", "configs/", "fuzz/"};
  int checked = 0;
  for (const std::string file : {"README.md", "docs/tour.md"}) {
    std::vector<std::string> lines = lines_of(kSource / file);
    for (size_t i = 0; i < lines.size(); ++i)
      for (std::sregex_iterator it(lines[i].begin(), lines[i].end(), code), end; it != end; ++it) {
        std::string tok = (*it)[1];
        bool repo_path = false;
        for (const auto& r : roots) repo_path |= tok.rfind(r, 0) == 0;
        if (!repo_path || tok.find_first_of(" *<>") != std::string::npos) continue;
        while (!tok.empty() && (tok.back() == '/' || tok.back() == ':' || tok.back() == ',')) tok.pop_back();
        ++checked;
        EXPECT_TRUE(fs::exists(kSource / tok)) << file << ":" << i + 1 << ": `" << tok << "` does not exist";
      }
  }
  EXPECT_GT(checked, 30);
}

// docs/bad-inputs.md: at least 30 bad inputs, and every test a row names ("`Suite.Name`, ...
// (`tests/FILE.cpp`, ...)") is defined in one of the files the row names.
TEST(DocsBadInputs, EveryRowNamesTestsThatExist) {
  static const std::regex code("`([^`]+)`"), test_name(R"(^[A-Z][A-Za-z0-9]*\.[A-Z][A-Za-z0-9]*$)");
  int rows = 0, tests = 0;
  for (const std::string& line : lines_of(kSource / "docs/bad-inputs.md")) {
    if (line.rfind("| ", 0) != 0 || line.rfind("| bad input", 0) == 0 || line.rfind("| ---", 0) == 0) continue;
    const std::string last = line.substr(line.rfind(" | ", line.size() - 3));  // the test column
    std::vector<std::string> names, files;
    for (std::sregex_iterator it(last.begin(), last.end(), code), end; it != end; ++it) {
      const std::string tok = (*it)[1];
      if (std::regex_match(tok, test_name)) names.push_back(tok);
      else if (tok.rfind("tests/", 0) == 0) files.push_back(tok);
    }
    ++rows;
    EXPECT_FALSE(names.empty() || files.empty()) << "row without a test or its file: " << line;
    for (const std::string& name : names) {
      ++tests;
      const std::string suite = name.substr(0, name.find('.')), test = name.substr(name.find('.') + 1);
      const std::regex definition("TEST(_F|_P)?\\(" + suite + ", " + test + "\\)");
      bool found = false;
      for (const std::string& f : files) found |= std::regex_search(read_text(kSource / f), definition);
      EXPECT_TRUE(found) << name << " is not defined in " << ::testing::PrintToString(files);
    }
  }
  EXPECT_GE(rows, 30) << "the catalogue lists fewer than 30 bad inputs";
  std::cout << "[ docs ] docs/bad-inputs.md: " << rows << " bad inputs, " << tests << " tests\n";
}

}  // namespace
