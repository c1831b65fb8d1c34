#include "attacks/evaluate.h"

#include <fmt/core.h>

#include <chrono>
#include <limits>

#include "attacks/core.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace afd::attacks {

namespace {

// Predictions (i64 [n] on the CPU), in eval mode, in batches.
std::vector<int64_t> predictions(nn::UnaryModule& model, const Tensor& x, int64_t batch) {
  std::vector<int64_t> pred;
  for (int64_t b = 0; b < x.size(0); b += batch) {
    Tensor logits = logits_of(model, x.slice(b, std::min(b + batch, x.size(0))));
    for (int64_t p : ops::argmax(logits, 1).to(Device::cpu()).to_vector<int64_t>()) pred.push_back(p);
  }
  return pred;
}

}  // namespace

RobustnessCurve robust_accuracy(nn::UnaryModule& model, const std::string& attack, const AttackConfig& config,
                                const Tensor& x, const Tensor& y, const std::vector<double>& eps_list,
                                const EvalOptions& options) {
  AFD_CHECK(options.batch_size >= 1, "robust_accuracy: batch size must be >= 1, got {}", options.batch_size);
  AFD_CHECK(x.defined() && x.dim() >= 2 && y.defined() && y.dtype() == DType::i64 && y.dim() == 1 &&
                y.size(0) == x.size(0),
            "robust_accuracy: expected x [N, ...] and labels i64 [N], got {} and {}", x.str(), y.str());
  const int64_t n = x.size(0);
  EvalModeGuard eval_mode(model);
  RobustnessCurve curve;
  curve.attack = attack;
  curve.count = n;
  curve.eps = eps_list;

  std::vector<int64_t> labels = y.to(Device::cpu()).to_vector<int64_t>();
  std::vector<int64_t> pred = predictions(model, x, options.batch_size);
  std::vector<int64_t> correct;  // indices of clean-correct points, the ones attacked
  for (int64_t i = 0; i < n; ++i)
    if (pred[i] == labels[i]) correct.push_back(i);
  curve.clean_accuracy = n ? static_cast<double>(correct.size()) / static_cast<double>(n) : 0;

  std::vector<std::vector<int64_t>> batches;  // the clean-correct points, in batches
  for (size_t b = 0; b < correct.size(); b += static_cast<size_t>(options.batch_size))
    batches.emplace_back(correct.begin() + static_cast<int64_t>(b),
                         correct.begin() + static_cast<int64_t>(std::min(correct.size(), b + options.batch_size)));
  auto rows_of = [&](const std::vector<int64_t>& idx) {
    Tensor index = Tensor::from_vector<int64_t>(idx, {static_cast<int64_t>(idx.size())});
    std::vector<int64_t> yb;
    for (int64_t i : idx) yb.push_back(labels[i]);
    return std::make_pair(ops::index_select(x, index.to(x.device())),
                          Tensor::from_vector<int64_t>(yb, {static_cast<int64_t>(idx.size())}).to(y.device()));
  };
  const auto start = std::chrono::steady_clock::now();
  auto report = [&](const std::string& what, size_t done, int64_t robust_count) {
    if (!options.progress) return;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    fmt::print(stderr, "\r{}: {}/{} attacked, robust {:.2f}% of all ({:.1f} s)", what, done, correct.size(),
               n ? 100.0 * static_cast<double>(robust_count) / static_cast<double>(n) : 0.0, secs);
  };
  // Re-evaluates x_eval with one forward pass: the number reported is the model's own answer.
  auto score = [&](size_t eps_index, const Tensor& x_eval, const std::vector<int64_t>& idx, std::vector<uint8_t>& robust) {
    if (options.on_adversarial) options.on_adversarial(eps_index, idx, x_eval);
    std::vector<int64_t> pred_adv = ops::argmax(logits_of(model, x_eval), 1).to(Device::cpu()).to_vector<int64_t>();
    int64_t count = 0;
    for (size_t j = 0; j < idx.size(); ++j) count += robust[idx[j]] = pred_adv[j] == labels[idx[j]];
    return count;
  };
  auto finish = [&](std::vector<uint8_t> robust, int64_t robust_count) {
    if (options.progress) fmt::print(stderr, "\n");
    curve.robust_accuracy.push_back(n ? static_cast<double>(robust_count) / static_cast<double>(n) : 0);
    curve.robust.push_back(std::move(robust));
  };

  std::unique_ptr<Attack> once = make_attack(attack, config);
  if (once->minimal_norm()) {
    // One run; each eps clips the found perturbation into its ball.
    std::vector<std::pair<Tensor, Tensor>> found;  // (clean rows, x_adv) per batch
    curve.norms.assign(static_cast<size_t>(n), 0.0);  // clean mistakes: 0
    size_t done = 0;
    for (const auto& idx : batches) {
      auto [xb, yb] = rows_of(idx);
      AttackResult r = once->perturb(model, xb, yb);
      const std::vector<uint8_t> success = r.success.to_vector<uint8_t>();
      const std::vector<double> norms = r.norms.to_vector<double>();
      for (size_t j = 0; j < idx.size(); ++j)
        curve.norms[static_cast<size_t>(idx[j])] = success[j] ? norms[j] : std::numeric_limits<double>::infinity();
      found.emplace_back(xb, r.x_adv);
      report(once->name(), done += idx.size(), 0);
    }
    if (options.progress) fmt::print(stderr, "\n");
    for (size_t k = 0; k < eps_list.size(); ++k) {
      const double eps = eps_list[k];
      std::vector<uint8_t> robust(static_cast<size_t>(n), 0);
      int64_t robust_count = 0;
      for (size_t b = 0; b < batches.size(); ++b) {
        std::vector<double> e(batches[b].size(), eps);
        robust_count += score(k, project_ball(found[b].first, found[b].second, e, once->config().norm), batches[b], robust);
      }
      if (options.progress) fmt::print(stderr, "{} eps {:g}: robust {:.2f}%", once->name(), eps,
                                       n ? 100.0 * static_cast<double>(robust_count) / static_cast<double>(n) : 0.0);
      finish(std::move(robust), robust_count);
    }
    return curve;
  }
  for (size_t k = 0; k < eps_list.size(); ++k) {
    const double eps = eps_list[k];
    AttackConfig c = config;
    c.eps = eps;
    std::unique_ptr<Attack> atk = make_attack(attack, c);
    std::vector<uint8_t> robust(static_cast<size_t>(n), 0);
    int64_t robust_count = 0;
    size_t done = 0;
    for (const auto& idx : batches) {
      auto [xb, yb] = rows_of(idx);
      robust_count += score(k, atk->perturb(model, xb, yb).x_adv, idx, robust);
      report(fmt::format("{} eps {:g}", atk->name(), eps), done += idx.size(), robust_count);
    }
    finish(std::move(robust), robust_count);
  }
  return curve;
}

}  // namespace afd::attacks
