// The state file of an AutoAttack evaluation (attacks/autoattack.h): what lets an interrupted
// evaluation resume. It is JSON written after every batch:
//
//   {"format": "afd-autoattack-state/2", "norm": "linf", "eps": 0.3, "seed": 0, "batch_size": 250,
//    "attacks": ["apgd-ce", ...], "count": 1000, "data": "<FNV-1a of x and y>",     <- the header
//    "robust": "0110...",            one flag per point ('1' = not broken yet)
//    "completed": 2,                 attacks finished
//    "current_points": [3, 17, ...], the points the current attack works on (ascending)
//    "batches_done": 1,              of the current attack
//    "batch_files": ["2_0.safetensors", ...],  broken points' x_adv, in <state>.d/ (index, x_adv)
//    "robust_accuracy": [0.91, 0.90], after each finished attack
//    "seconds": [120.5, 300.1, 12.0]} per attack, the current one so far
//
// The file comes from disk and may be damaged or hostile: parse_autoattack_state checks every
// field (types, ranges, point indices, file names without any path) and throws Error naming the
// file and the field; it never crashes (fuzzed: fuzz/fuzz_autoattack_state.cpp).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace afd::attacks {

struct AutoAttackState {
  std::vector<uint8_t> robust;          // per point
  size_t completed = 0;                 // attacks finished
  std::vector<int64_t> current_points;  // the points the current attack attacks
  size_t batches_done = 0;              // of the current attack
  std::vector<std::string> batch_files; // adversarial rows found so far, one file per batch
  std::vector<double> robust_accuracy;  // cumulative, after each finished attack
  std::vector<double> seconds;          // per attack
};

// The header that ties a state file to one evaluation; a resumed evaluation must match it exactly.
nlohmann::json autoattack_state_header(const std::string& norm, double eps, uint64_t seed, int64_t batch_size,
                                       const std::vector<std::string>& attacks, int64_t count,
                                       const std::string& data_fingerprint);

// The state file's text.
std::string autoattack_state_json(const nlohmann::json& header, const AutoAttackState& state);

// Parses `text` (the file `path`, for messages) and checks it against `header` (its "count",
// "attacks" and "batch_size" bound the fields). Throws Error on any mismatch or damage.
AutoAttackState parse_autoattack_state(const std::string& text, const nlohmann::json& header,
                                       const std::string& path);

}  // namespace afd::attacks
