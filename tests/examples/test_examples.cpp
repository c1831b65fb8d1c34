// The programs of examples/ (README, "Examples"), each run as a child process with popen: exit
// status 0 and the key lines of its output (the numbers a reader is told to look at). Each run's
// wall time is printed; every example must finish in under a minute (in a sanitizer build too, or
// the test skips and says why).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

constexpr double kMaxSeconds = 60;

struct ProgramRun {
  int status = -1;  // the exit status, or -1 if the program did not exit normally
  std::string output;  // stdout and stderr, interleaved
  double seconds = 0;
};

// Runs examples/<name> with `args` (already shell-quoted) and collects its output.
ProgramRun run_example(const std::string& name, const std::string& args = "") {
  const std::string command = std::string("'") + AFD_EXAMPLES_DIR + "/" + name + "' " + args + " 2>&1";
  const auto start = std::chrono::steady_clock::now();
  ProgramRun r;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) {
    ADD_FAILURE() << "popen failed for: " << command;
    return r;
  }
  char buffer[4096];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) r.output.append(buffer, got);
  const int wait_status = ::pclose(pipe);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (wait_status != -1 && WIFEXITED(wait_status)) r.status = WEXITSTATUS(wait_status);
  std::printf("[ example  ] %s%s%s: exit %d in %.2f s\n", name.c_str(), args.empty() ? "" : " ", args.c_str(),
              r.status, r.seconds);
  return r;
}

std::string source_root_arg() { return std::string("'") + AFD_SOURCE_DIR + "'"; }

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The line that starts with `prefix` (fails the test and returns "" if there is none).
std::string line_starting(const ProgramRun& r, const std::string& prefix) {
  for (const std::string& line : lines_of(r.output))
    if (line.rfind(prefix, 0) == 0) return line;
  ADD_FAILURE() << "no line starting with '" << prefix << "' in:\n" << r.output;
  return "";
}

// The number right after `prefix` on its line (NaN if absent or unparsable).
double number_after(const ProgramRun& r, const std::string& prefix) {
  const std::string line = line_starting(r, prefix);
  if (line.empty()) return std::nan("");
  try {
    return std::stod(line.substr(prefix.size()));
  } catch (const std::exception&) {
    ADD_FAILURE() << "no number after '" << prefix << "' in: " << line;
    return std::nan("");
  }
}

void expect_ran_ok(const ProgramRun& r) {
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_LT(r.seconds, kMaxSeconds) << "an example must run in under a minute";
}

TEST(Examples, AutogradByHandAgreesWithAutograd) {
  const ProgramRun r = run_example("autograd_by_hand");
  expect_ran_ok(r);
  const double diff = number_after(r, "max difference: ");
  EXPECT_LE(diff, 1e-10) << r.output;
  for (const char* name : {"dL/dW1", "dL/db1", "dL/dW2", "dL/db2", "dL/dx"}) line_starting(r, name);
  EXPECT_NE(r.output.find("(ok, tolerance 1e-10)"), std::string::npos) << r.output;
}

// The table's rows "eps clean% FGSM% PGD%" by eps.
struct AccuracyRow {
  double eps = 0, clean = 0, fgsm = 0, pgd = 0;
};

TEST(Examples, FgsmPgdMnistTable) {
  if (kSanitized)
    GTEST_SKIP() << "FGSM and PGD-40 at 4 eps on 200 MNIST images (about 5e11 flops) take about 90 s under "
                    "AddressSanitizer (15-35 s in release on 2 cores), over the minute an example may take; "
                    "the release build runs this check";
  const ProgramRun r = run_example("fgsm_pgd_mnist", source_root_arg());
  expect_ran_ok(r);
  line_starting(r, "clean accuracy: ");
  std::vector<AccuracyRow> rows;
  for (const std::string& line : lines_of(r.output)) {
    AccuracyRow row;
    if (std::sscanf(line.c_str(), "%lf %lf%% %lf%% %lf%%", &row.eps, &row.clean, &row.fgsm, &row.pgd) == 4)
      rows.push_back(row);
  }
  ASSERT_EQ(rows.size(), 4u) << r.output;
  const double eps[] = {0, 0.1, 0.2, 0.3};
  for (size_t j = 0; j < rows.size(); ++j) {
    EXPECT_DOUBLE_EQ(rows[j].eps, eps[j]);
    EXPECT_LE(rows[j].fgsm, rows[j].clean);
    EXPECT_LE(rows[j].pgd, rows[j].fgsm + 1.0) << "PGD-40 at least as strong as FGSM, eps " << eps[j];
  }
  EXPECT_EQ(rows[0].fgsm, rows[0].clean) << "eps 0 changes nothing";
  EXPECT_EQ(rows[0].pgd, rows[0].clean);
  EXPECT_GT(rows[0].clean, 90.0) << "the fixture's clean accuracy is about 98%";
  EXPECT_LT(rows[3].pgd, rows[3].clean) << "PGD at eps 0.3 breaks some points";
  EXPECT_GT(rows[3].pgd, 30.0) << "the model is adversarially trained (about 60% at eps 0.3)";
}

TEST(Examples, FgsmPgdMnistNamesAMissingFolder) {
  const ProgramRun r = run_example("fgsm_pgd_mnist", "/nonexistent-afd-source");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("missing file /nonexistent-afd-source/tests/fixtures/attacks/"), std::string::npos)
      << r.output;
}

TEST(Examples, AfdStepLossesAreFinite) {
  const ProgramRun r = run_example("afd_step");
  expect_ran_ok(r);
  for (const char* name : {"L_C ", "L_D ", "GP ", "L_F ", "mean D(F(x)) ", "mean D(F(x')) ", "D acc clean ",
                           "D acc adv ", "clean acc ", "adv acc "}) {
    const double v = number_after(r, name);
    EXPECT_TRUE(std::isfinite(v)) << name << " in:\n" << r.output;
  }
  EXPECT_GT(number_after(r, "L_C "), 0.0) << "a cross-entropy";
  EXPECT_GE(number_after(r, "GP "), 0.0);
  for (const char* name : {"D acc clean ", "D acc adv "}) {
    EXPECT_GE(number_after(r, name), 0.0);
    EXPECT_LE(number_after(r, name), 1.0);
  }
}

TEST(Examples, AttackPytorchModelTable) {
  const ProgramRun r = run_example("attack_pytorch_model", source_root_arg());
  expect_ran_ok(r);
  // The PyTorch state_dict names are listed.
  EXPECT_NE(r.output.find("feature_extractor.conv1.weight"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("written by torch 1.13"), std::string::npos) << r.output;
  int rows = 0;
  for (const std::string& line : lines_of(r.output)) {
    long long image, label, clean, pred_pgd, pred_ddn;
    double norm_pgd, norm_ddn;
    if (std::sscanf(line.c_str(), "%lld %lld %lld | %lld %lf | %lld %lf", &image, &label, &clean, &pred_pgd,
                    &norm_pgd, &pred_ddn, &norm_ddn) != 7)
      continue;
    ++rows;
    EXPECT_LE(norm_pgd, 3.0 + 1e-4) << line;  // inside the L2 ball of eps 3
    if (clean == label && pred_ddn != label) {
      EXPECT_GT(norm_ddn, 0.0) << line;
    }
    if (pred_ddn == label) {
      EXPECT_EQ(norm_ddn, 0.0) << "DDN returns x where it found nothing: " << line;
    }
  }
  EXPECT_EQ(rows, 8) << r.output;
  line_starting(r, "PGD-L2 (eps 3.0) fooled ");
}

}  // namespace
