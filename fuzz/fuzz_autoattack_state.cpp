// libFuzzer target: the AutoAttack state file's parser (attacks/autoattack_state.h) on arbitrary
// text. Any input must give either a state whose every field is inside the bounds the evaluation
// relies on (checked again here) or an Error naming the file, never a crash, a hang or another
// exception type. The header stands for an evaluation of 6 points, 3 attacks, batches of 2.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "attacks/autoattack_state.h"
#include "tensor/error.h"

using namespace afd::attacks;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::json header =
      autoattack_state_header("linf", 0.3, 7, 2, {"apgd-ce", "apgd-t", "square"}, 6, "00ff00ff00ff00ff");
  try {
    const AutoAttackState st =
        parse_autoattack_state(std::string(reinterpret_cast<const char*>(data), size), header, "fuzz.json");
    // What run_autoattack indexes with these fields must be in range.
    if (st.robust.size() != 6 || st.completed > 3 || st.robust_accuracy.size() != st.completed) std::abort();
    for (int64_t i : st.current_points)
      if (i < 0 || i >= 6) std::abort();
    if (st.batches_done * 2 > st.current_points.size() + 1) std::abort();
    for (const std::string& f : st.batch_files)
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos) std::abort();
  } catch (const afd::Error&) {
  }
  return 0;
}
