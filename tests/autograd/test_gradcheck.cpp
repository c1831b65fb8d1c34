// The gradient-check suite: every op in the registry (autograd/op_registry.h) and every composed
// function has at least one float64 finite-difference check here, and each check is shown to fail
// when that op's backward is perturbed by 1%. The cases live in gradcheck_cases.h.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "tests/autograd/gradcheck_cases.h"

using namespace afd;
using afd::testing::all_cases;
using afd::testing::Case;

namespace {
std::set<std::string> registry_names() {
  std::set<std::string> names;
  for (const OpInfo& info : kOpInfo) names.insert(std::string(info.name));
  return names;
}

}  // namespace

TEST(GradcheckSuite, EveryRegisteredOpHasACheck) {
  std::set<std::string> covered;
  for (const Case& c : all_cases()) covered.insert(c.op);
  for (const OpInfo& info : kOpInfo)
    EXPECT_TRUE(covered.count(std::string(info.name))) << "op '" << info.name << "' has no gradient check";
  for (std::string_view name : kComposedOps)
    EXPECT_TRUE(covered.count(std::string(name))) << "composed op '" << name << "' has no gradient check";
  // And no case names an op that does not exist.
  std::set<std::string> known = registry_names();
  for (std::string_view name : kComposedOps) known.insert(std::string(name));
  for (const std::string& name : covered) EXPECT_TRUE(known.count(name)) << "unknown op '" << name << "'";
}

TEST(GradcheckSuite, EveryOpPassesInFloat64) {
  for (const Case& c : all_cases()) {
    GradcheckResult r = gradcheck(c.f, c.inputs);
    EXPECT_TRUE(r.ok) << c.op << ": " << r.message;
    EXPECT_GT(r.entries, 0) << c.op;
  }
}

// The suite can fail: scaling one op's backward by 1.01 must make that op's checks fail.
TEST(GradcheckSuite, EveryCheckCatchesAOnePercentError) {
  std::map<std::string, std::vector<Case>> by_op;
  for (Case& c : all_cases()) by_op[c.op].push_back(std::move(c));
  for (size_t k = 0; k < kOpInfo.size(); ++k) {
    Op op = static_cast<Op>(k);
    set_backward_scale_for_testing(op, 1.01);
    for (const Case& c : by_op[std::string(kOpInfo[k].name)]) {
      GradcheckResult r = gradcheck(c.f, c.inputs);
      EXPECT_FALSE(r.ok) << "perturbed backward of '" << c.op << "' went unnoticed";
    }
    set_backward_scale_for_testing(op, 1.0);
  }
}

// Ops marked double-differentiable: the gradient of their gradient is checked too.
TEST(GradcheckSuite, DoubleBackwardOfMarkedOps) {
  int checked = 0;
  for (const Case& c : all_cases()) {
    if (!afd::testing::has_double_backward(c.op)) continue;
    // Kinked ops have zero second derivative almost everywhere; checking them is still valid.
    GradcheckResult r = gradgradcheck(c.f, c.inputs);
    EXPECT_TRUE(r.ok) << c.op << " (double backward): " << r.message;
    ++checked;
  }
  EXPECT_GT(checked, 20);
}
