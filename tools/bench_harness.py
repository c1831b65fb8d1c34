"""What the PyTorch twins of the CPU benchmarks share (the C++ side is tools/bench_harness.h):
the timing loop and the CPU's name, so both sides time work the same way."""
import statistics
import time


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def time_ms(fn, args):
    """Median and minimum milliseconds of fn() after args.warmup untimed calls (at least
    args.reps timed calls and args.min_seconds in all)."""
    for _ in range(args.warmup):
        fn()
    times, total = [], 0.0
    while (len(times) < args.reps or total < args.min_seconds) and len(times) < 10000:
        t0 = time.perf_counter()
        fn()
        s = time.perf_counter() - t0
        times.append(s * 1e3)
        total += s
    return statistics.median(times), min(times)
