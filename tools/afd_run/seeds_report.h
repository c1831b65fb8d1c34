// afd_run eval --over-seeds A,B,C: the paper's claims judged over training seeds.
//
// Each folder is a finished afd_run eval report (eval.json and per_sample.safetensors, e.g. the
// report of `tools/reproduce_mnist.sh --seed S`), one per training seed, all on the same test
// points. Models are matched by name across the folders; a model whose weights are the same in
// several folders (a seed-0 NT evaluated next to the seed-1 models) counts as one run there. One
// report's verdicts compare one run of each model, and their intervals cover only the sampling of
// test points; here the runs' spread is a second source of error (eval::difference_over_runs).
//
//   OUT/seeds.md    runs per model; Tables 1 and 2 as mean ± sd over the runs; claims 1, 2, 5, 6 and
//                   7 judged over the runs (models with 2 or more runs a side), each next to the
//                   verdicts of the single folders; claims 3 and 4 as the folders' verdicts
//   OUT/seeds.json  the same numbers
#pragma once
#include <string>
#include <vector>

namespace afd::cli {

// Reads the folders, writes OUT/seeds.md and OUT/seeds.json, returns seeds.md's text. Throws
// RunError naming the folder when one is not a report, or when the folders disagree on the
// dataset, the points or a model's method; UsageError with fewer than 2 folders.
std::string write_seeds_report(const std::vector<std::string>& dirs, const std::string& out);

}  // namespace afd::cli
