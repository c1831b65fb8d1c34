"""What the PyTorch twins of the CPU benchmarks share (the C++ side is tools/bench_harness.h):
the timing loop and the CPU's name, so both sides time work the same way."""
import ctypes
import os
import statistics
import sys
import time


def restart_with_openblas_core():
    """What afd's C++ side does first (restart_with_runtime_settings, tensor/backend.h), so both
    sides get the same BLAS kernels: where OpenBLAS did not know this CPU and fell back to its
    generic SSE3 "Prescott" kernels (Debian 12's 0.3.21 on Intel Emerald Rapids), set
    OPENBLAS_CORETYPE to SkylakeX (AVX-512) or Haswell (AVX2 + FMA) and restart the script, unless
    the user set it. OpenBLAS reads the variable once, when it loads."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return
    try:
        blas = ctypes.CDLL("libopenblas.so.0")
    except OSError:
        return
    blas.openblas_get_corename.restype = ctypes.c_char_p
    if blas.openblas_get_corename() != b"Prescott":
        return
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        core = "SkylakeX"
    elif {"avx2", "fma"} <= flags:
        core = "Haswell"
    else:
        return
    os.environ["OPENBLAS_CORETYPE"] = core
    os.execv(sys.executable, [sys.executable] + sys.argv)


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
