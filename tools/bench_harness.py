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


def set_torch_precision(torch, name):
    """f32 convolutions and matrix products on a GPU as afd's --precision NAME: strict (full fp32)
    or tf32 (tensor cores). PyTorch 2.9 and later set this per backend (fp32_precision "ieee" or
    "tf32") and deprecate the allow_tf32 flags; the newer settings are used where they exist.
    Returns the settings now in force, to be printed beside the figures."""
    def has(obj, attr):  # older torch.backends.cuda.matmul raises AssertionError for unknown names
        try:
            getattr(obj, attr)
            return True
        except (AttributeError, AssertionError):
            return False

    tf32 = name == "tf32"
    matmul, conv = torch.backends.cuda.matmul, getattr(torch.backends.cudnn, "conv", None)
    if has(matmul, "fp32_precision") and has(conv, "fp32_precision"):
        matmul.fp32_precision = conv.fp32_precision = "tf32" if tf32 else "ieee"
        return {"cuda.matmul.fp32_precision": matmul.fp32_precision,
                "cudnn.conv.fp32_precision": conv.fp32_precision}
    torch.backends.cudnn.allow_tf32 = tf32
    matmul.allow_tf32 = tf32
    return {"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32, "cuda.matmul.allow_tf32": matmul.allow_tf32}


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
