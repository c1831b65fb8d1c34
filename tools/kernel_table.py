"""Where one step's GPU time goes, afd beside PyTorch: the kernels of one profiled step of each.

afd's side is ncu's CSV of `ncu --profile-from-start off --metrics gpu__time_duration.sum --csv
bench_gpu --profile-one-step ...` (one row per kernel launch: "Kernel Name", "Metric Name",
"Metric Unit", "Metric Value"; or ncu's raw page, one column per metric); PyTorch's is the "kernels"
list in the ROW line of `bench_gpu_torch.py --profile-one-step` ([name, launches, total us]). The
step times are the benchmarks' own (the median of the timed steps in bench_gpu.log and
bench_gpu_torch.log, same model, workload and precision): kernel time over that says how much of a
step the GPU is busy; the rest is launch gaps and host work.

    python3 tools/kernel_table.py --model cifar_resnet18 --workload train --precision strict \
        --afd-csv ncu.csv --afd-bench bench_gpu.log [--torch-profile torch_profile.log] \
        [--torch-bench bench_gpu_torch.log] [--top 15] [--summary-line]

--summary-line prints one line (for tools/device_check.sh's table) instead of the table.
"""
import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_table import load  # noqa: E402

UNIT_US = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3, "second": 1e6, "s": 1e6}
METRIC = "gpu__time_duration.sum"


def number(text):
    return float(text.replace(",", ""))


def read_ncu(path):
    """{kernel name: [launches, total us]} from ncu's CSV (details or raw page)."""
    try:
        with open(path, newline="", errors="replace") as f:
            rows = [r for r in csv.reader(f)]
    except OSError as e:
        raise SystemExit(f"kernel_table.py: {path}: {e.strerror}")
    header_at = next((i for i, r in enumerate(rows) if "Kernel Name" in r), None)
    if header_at is None:
        raise SystemExit(f"kernel_table.py: {path}: no CSV header with 'Kernel Name' (ncu wrote no kernels?)")
    header = rows[header_at]
    name_col = header.index("Kernel Name")
    kernels = {}

    def add(name, us):
        calls, total = kernels.get(name, (0, 0.0))
        kernels[name] = (calls + 1, total + us)

    body = rows[header_at + 1:]
    if "Metric Name" in header:  # details page: one row per kernel and metric
        m, u, v = header.index("Metric Name"), header.index("Metric Unit"), header.index("Metric Value")
        for r in body:
            if len(r) > v and r[m] == METRIC:
                add(r[name_col], number(r[v]) * UNIT_US.get(r[u], 1.0))
    elif METRIC in header:  # raw page: one column per metric, the first row under the header its units
        v = header.index(METRIC)
        scale = 1.0
        if body and body[0] and not body[0][0].strip().lstrip("-").replace(",", "").isdigit():
            scale = UNIT_US.get(body[0][v], 1.0)
            body = body[1:]
        for r in body:
            if len(r) > v and r[v].strip():
                add(r[name_col], number(r[v]) * scale)
    else:
        raise SystemExit(f"kernel_table.py: {path}: no {METRIC} column or rows")
    return kernels


def bench_result(path, args):
    """The result of this model, workload and precision in a bench_gpu / bench_gpu_torch log (read
    by gpu_table.load, the device check's table); None where the log has none or it failed."""
    if not path:
        return None
    _, results, _ = load(path)
    r = results.get(args.precision, {}).get(args.model, {}).get(args.workload)
    return r if r is not None and "error" not in r else None


def short(name, width=58):
    """A kernel's name without "void", "(anonymous namespace)::" and its argument list, cut to `width`."""
    base = name[5:] if name.startswith("void ") else name
    base = base.replace("(anonymous namespace)::", "")
    if base.endswith(")"):  # the argument list: back to the "(" that matches the last ")"
        depth = 0
        for i in range(len(base) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(base[i], 0)
            if depth == 0:
                base = base[:i]
                break
    base = base.strip() or name
    return base if len(base) <= width else base[: width - 3] + "..."


def ranked(kernels):
    return sorted(((n, c, us) for n, (c, us) in kernels.items()), key=lambda r: -r[2])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--precision", required=True)
    p.add_argument("--afd-csv", required=True)
    p.add_argument("--afd-bench", default="")
    p.add_argument("--torch-profile", default="")
    p.add_argument("--torch-bench", default="")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--summary-line", action="store_true")
    args = p.parse_args()

    label = f"{args.model} {args.workload} {args.precision}"
    afd = ranked(read_ncu(args.afd_csv))
    profiled = bench_result(args.torch_profile, args)
    torch_k = [tuple(k) for k in profiled.get("kernels", [])] if profiled else []
    step_ms = {}
    for side, path in (("afd", args.afd_bench), ("torch", args.torch_bench)):
        r = bench_result(path, args)
        step_ms[side] = r["median_ms"] if r else None

    def totals(k):
        return sum(c for _, c, _ in k), sum(us for _, _, us in k) / 1e3

    (afd_n, afd_kms), (torch_n, torch_kms) = totals(afd), totals(torch_k)

    def busy(side, kernel_ms):
        ms = step_ms[side]
        return f" of a {ms:.2f} ms step ({100 * kernel_ms / ms:.0f}% busy)" if ms else ""

    if args.summary_line:
        top = f"; afd's largest: {short(afd[0][0], 40)} {100 * afd[0][2] / 1e3 / afd_kms:.0f}%" if afd else ""
        torch_part = f"; torch {torch_kms:.2f} ms, {torch_n} kernels{busy('torch', torch_kms)}" if torch_k else ""
        print(f"{label}: afd {afd_kms:.2f} ms, {afd_n} kernels{busy('afd', afd_kms)}{torch_part}{top}")
        return 0

    print(f"== one profiled step: {label} ==")
    print(f"afd:   {afd_n} kernel launches, {afd_kms:.3f} ms of kernels{busy('afd', afd_kms)}")
    if torch_k:
        print(f"torch: {torch_n} kernel launches, {torch_kms:.3f} ms of kernels{busy('torch', torch_kms)}")
    for title, k, total in (("afd", afd, afd_kms), ("torch", torch_k, torch_kms)):
        if not k:
            continue
        print(f"-- {title}'s largest kernels (launches, ms, share of its kernel time)")
        for name, calls, us in k[: args.top]:
            print(f"  {short(name):<58} {calls:5d} {us / 1e3:8.3f} {100 * us / 1e3 / total:5.1f}%")
        rest = k[args.top:]
        if rest:
            print(f"  {'(' + str(len(rest)) + ' other kernels)':<58} {sum(c for _, c, _ in rest):5d} "
                  f"{sum(us for _, _, us in rest) / 1e3:8.3f} {100 * sum(us for _, _, us in rest) / 1e3 / total:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
