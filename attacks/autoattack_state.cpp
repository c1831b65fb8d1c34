#include "attacks/autoattack_state.h"

#include <cmath>

#include "tensor/error.h"
#include "tensor/strict_json.h"

namespace afd::attacks {

using nlohmann::json;

json autoattack_state_header(const std::string& norm, double eps, uint64_t seed, int64_t batch_size,
                             const std::vector<std::string>& attacks, int64_t count,
                             const std::string& data_fingerprint) {
  return json{{"format", "afd-autoattack-state/2"}, {"norm", norm},   {"eps", eps},
              {"seed", seed},                       {"batch_size", batch_size}, {"attacks", attacks},
              {"count", count},                     {"data", data_fingerprint}};
}

std::string autoattack_state_json(const json& header, const AutoAttackState& st) {
  json j = header;
  std::string flags(st.robust.size(), '0');
  for (size_t i = 0; i < st.robust.size(); ++i) flags[i] = st.robust[i] ? '1' : '0';
  j["robust"] = flags;
  j["completed"] = st.completed;
  j["current_points"] = st.current_points;
  j["batches_done"] = st.batches_done;
  j["batch_files"] = st.batch_files;
  j["robust_accuracy"] = st.robust_accuracy;
  j["seconds"] = st.seconds;
  return j.dump(1) + "\n";
}

namespace {

// j[key] as T, or Error naming the file and the key (a missing key, a value of another kind or out
// of T's range: tensor/strict_json.h).
template <typename T>
T field(const json& j, const char* key, const std::string& path) {
  AFD_CHECK(j.contains(key), "autoattack: state file {} has no '{}' (delete it to start over)", path, key);
  T out{};
  AFD_CHECK(strict_json_get(j.at(key), out), "autoattack: state file {}: '{}' has the wrong type or is out of range: "
            "{}", path, key, j.at(key).dump().substr(0, 80));
  return out;
}

// A batch file is named "<attack>_<batch>.safetensors" (decimal numbers), inside <state>.d/: no
// other name is accepted, so a state file cannot make the evaluation read outside that folder.
bool batch_file_name_ok(const std::string& name, size_t attacks) {
  const std::string suffix = ".safetensors";
  if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  const std::string stem = name.substr(0, name.size() - suffix.size());
  const size_t us = stem.find('_');
  if (us == std::string::npos || us == 0 || us + 1 == stem.size() || us > 9 || stem.size() - us - 1 > 9) return false;
  for (size_t i = 0; i < stem.size(); ++i)
    if (i != us && (stem[i] < '0' || stem[i] > '9')) return false;
  return std::stoul(stem.substr(0, us)) < attacks;
}

}  // namespace

AutoAttackState parse_autoattack_state(const std::string& text, const json& header, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    AFD_FAIL("autoattack: state file {} is not valid JSON: {}", path, e.what());
  }
  AFD_CHECK(j.is_object(), "autoattack: state file {} is not a JSON object", path);
  for (const auto& [key, value] : header.items())
    AFD_CHECK(j.contains(key) && j[key] == value, "autoattack: state file {} belongs to another evaluation: {} is "
              "{} there, {} here (delete it to start over)", path, key,
              j.contains(key) ? j[key].dump().substr(0, 80) : "missing", value.dump());
  const int64_t n = header.at("count").get<int64_t>();
  const size_t attacks = header.at("attacks").size();
  const int64_t batch_size = header.at("batch_size").get<int64_t>();

  AutoAttackState st;
  const std::string flags = field<std::string>(j, "robust", path);
  AFD_CHECK(static_cast<int64_t>(flags.size()) == n, "autoattack: state file {}: {} robust flags for {} points", path,
            flags.size(), n);
  for (char c : flags) {
    AFD_CHECK(c == '0' || c == '1', "autoattack: state file {}: 'robust' holds a character other than 0 and 1", path);
    st.robust.push_back(c == '1');
  }

  st.completed = field<size_t>(j, "completed", path);
  AFD_CHECK(st.completed <= attacks, "autoattack: state file {}: 'completed' is {}, but there are {} attacks", path,
            st.completed, attacks);

  // The current attack's points: ascending, distinct, inside [0, n); its batches no more than they fill.
  st.current_points = field<std::vector<int64_t>>(j, "current_points", path);
  for (size_t k = 0; k < st.current_points.size(); ++k) {
    const int64_t i = st.current_points[k];
    AFD_CHECK(i >= 0 && i < n && (k == 0 || i > st.current_points[k - 1]),
              "autoattack: state file {}: 'current_points' must ascend inside [0, {}), got {} at position {}", path, n,
              i, k);
  }
  st.batches_done = field<size_t>(j, "batches_done", path);
  const size_t batches = (st.current_points.size() + static_cast<size_t>(batch_size) - 1) / static_cast<size_t>(batch_size);
  AFD_CHECK(st.batches_done <= batches && (st.completed < attacks || st.batches_done == 0),
            "autoattack: state file {}: 'batches_done' is {}, but the current attack has {} batches", path,
            st.batches_done, st.completed < attacks ? batches : 0);

  st.batch_files = field<std::vector<std::string>>(j, "batch_files", path);
  for (const std::string& file : st.batch_files)
    AFD_CHECK(batch_file_name_ok(file, attacks), "autoattack: state file {}: batch file name '{}' is not "
              "<attack>_<batch>.safetensors", path, file.substr(0, 80));

  st.robust_accuracy = field<std::vector<double>>(j, "robust_accuracy", path);
  AFD_CHECK(st.robust_accuracy.size() == st.completed, "autoattack: state file {}: {} robust accuracies for {} "
            "finished attacks", path, st.robust_accuracy.size(), st.completed);
  for (double a : st.robust_accuracy)
    AFD_CHECK(a >= 0 && a <= 1, "autoattack: state file {}: a robust accuracy of {} is outside [0, 1]", path, a);
  st.seconds = field<std::vector<double>>(j, "seconds", path);
  AFD_CHECK(st.seconds.size() >= st.completed && st.seconds.size() <= attacks,
            "autoattack: state file {}: {} attack times for {} finished of {} attacks", path, st.seconds.size(),
            st.completed, attacks);
  for (double s : st.seconds)
    AFD_CHECK(std::isfinite(s) && s >= 0, "autoattack: state file {}: an attack time of {} s", path, s);
  return st;
}

}  // namespace afd::attacks
