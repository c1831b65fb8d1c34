#!/usr/bin/env python3
"""Joins the logs of tools/bench_gpu and tools/bench_gpu_torch.py into the device check's table:
afd / torch images/s per workload and precision, afd's allocator counters and its launches per step.

Usage: gpu_table.py AFD.log TORCH.log [TITLE]
With TITLE, that one line replaces the header lines (a second table of the same run). Each log's last "JSON {...}" line is used; a log cut short falls back on its "ROW {...}" lines.
A missing log, a failed workload or a skipped run shows as such; this never fails (stdlib only).
"""
import json
import sys


def load(path):
    """(header, results[precision][model][workload], note) from one bench log."""
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        return {}, {}, f"no log ({e.strerror})"
    header, results = {}, {}
    for line in lines:
        try:
            if line.startswith("JSON "):
                header = json.loads(line[5:])
                results = header.get("results", {})
            elif line.startswith("ROW ") and not header:
                row = json.loads(line[4:])
                key = (row.pop("precision"), row.pop("model"), row.pop("workload"))
                results.setdefault(key[0], {}).setdefault(key[1], {})[key[2]] = row
        except (ValueError, KeyError):
            continue
    note = ""
    if not header:
        said = next((l for l in lines if "nothing to benchmark" in l), "")
        note = said or ("cut short: " + (f"{sum(len(w) for m in results.values() for w in m.values())} rows"
                                         if results else "no results"))
    return header, results, note


def cell(r):
    if r is None:
        return "-"
    if "error" in r:
        return "FAILED"
    return f"{r['images_per_s']:.0f}"


def main(afd_path, torch_path, title=""):
    afd_head, afd, afd_note = load(afd_path)
    torch_head, torch_res, torch_note = load(torch_path)
    if title:
        notes = "; ".join(n for n in (afd_note and f"afd: {afd_note}", torch_note and f"torch: {torch_note}") if n)
        print(title + (f" ({notes})" if notes else ""))
    else:
        print(f"{'afd bench':<12} {afd_head.get('gpu', '') or afd_note} {afd_head.get('libraries', '')}".rstrip())
        torch_desc = f"torch {torch_head['version']} on {torch_head.get('gpu', '')}" if torch_head else torch_note
        print(f"{'torch bench':<12} {torch_desc} {torch_head.get('libraries', '')}".rstrip())
        for prec, settings in (torch_head.get("precision_settings") or {}).items():
            print(f"{'torch ' + prec:<12} {', '.join(f'{k}={v}' for k, v in settings.items())}")
    keys = []
    for res in (afd, torch_res):
        for prec, models in res.items():
            for model, workloads in models.items():
                for workload in workloads:
                    if (prec, model, workload) not in keys:
                        keys.append((prec, model, workload))
    if not keys:
        print("(no GPU benchmark results)")
        return 0
    batch = afd_head.get("batch") or torch_head.get("batch") or "?"
    print(f"images/s, f32, batch {batch}; ratio = afd / torch (above 1: afd faster)")
    print(f"  {'workload':<24} {'precision':<9} {'afd':>9} {'torch':>9} {'ratio':>7}   {'afd mallocs bef/aft':>19} "
          f"{'afd peak MiB':>12} {'afd launches':>12}")
    errors = []
    for prec, model, workload in keys:
        a = afd.get(prec, {}).get(model, {}).get(workload)
        t = torch_res.get(prec, {}).get(model, {}).get(workload)
        ok = a is not None and "error" not in a and t is not None and "error" not in t
        ratio = f"{a['images_per_s'] / t['images_per_s']:.2f}" if ok and t["images_per_s"] > 0 else "-"
        alloc, peak, launches = "", "", ""
        if a is not None and "error" not in a:
            before, after = a.get("device_mallocs_before"), a.get("device_mallocs_after")
            alloc = f"{before}/{after}" + ("" if before == after else " GROWS")
            peak = f"{a.get('peak_bytes', 0) / 2**20:.1f}"
            launches = str(a.get("launches_per_step", "-"))  # the op layer's count per step
        print(f"  {model + ' ' + workload:<24} {prec:<9} {cell(a):>9} {cell(t):>9} {ratio:>7}   {alloc:>19} {peak:>12} "
              f"{launches:>12}")
        for impl, r in (("afd", a), ("torch", t)):
            if r is not None and "error" in r:
                errors.append(f"  {impl} {model} {workload} {prec}: {r['error'].splitlines()[0][:160]}")
    if errors:
        print("failures:")
        print("\n".join(errors))
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.split("\n\n")[1])
    try:
        sys.exit(main(*sys.argv[1:]))
    except Exception as e:  # noqa: BLE001 (the table must never stop the device check)
        print(f"gpu_table.py: {type(e).__name__}: {e}")
        sys.exit(0)
