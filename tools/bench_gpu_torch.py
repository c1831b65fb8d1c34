"""PyTorch eager side of the GPU benchmark: the same workloads as tools/bench_gpu.cpp.

The models are the PyTorch definitions of tests/fixtures/models/make_model_fixtures.py (the ones
the fixtures check afd's models against): cifar_resnet18 (ResNet18 of width 64, input
[B, 3, 32, 32]) and small_cnn (SmallCNN 32/64/200, input [B, 1, 28, 28]); inputs U(0, 1) and
labels i * 7 mod 10 on the device. Per model and precision:

    forward  eval mode, torch.no_grad: logits = model(x)
    train    train mode: mean cross-entropy, backward, torch.optim.SGD (lr 0.01, momentum 0.9,
             weight decay 5e-4), zero_grad(set_to_none=True); no .item() inside the step
    attack   eval mode, parameters requires_grad False: summed cross-entropy, torch.autograd.grad
             with respect to x only, x <- clip_[0,1](P_eps(x + alpha sign(g))) (bench_attacks_torch's
             projection; CIFAR eps 8/255, alpha 2/255; MNIST 0.3, 0.01)

Precisions (bench_harness.set_torch_precision): strict = full fp32 convolutions and matrix products
(cuDNN conv and cuBLAS matmul fp32_precision "ieee" on PyTorch 2.9+, else allow_tf32 False); tf32 =
TF32 in both; the settings in force are printed. cudnn.benchmark stays False (the default) unless
--cudnn-benchmark. Timing: torch.cuda.synchronize() before the clock starts and before it stops,
--warmup untimed steps, then
the median of --reps steps (at least 5 when one warm-up step shows --reps steps would exceed
--max-seconds), as bench_gpu does. peak_bytes is torch.cuda.max_memory_allocated over the timed
steps. A failing workload is reported with its error; the others still run. Every workload prints
a "ROW {...}" line as it finishes; the last line is "JSON {...}". Without torch or without CUDA it
says so and exits 0. --device cpu runs the same flow on the CPU (for smoke tests).

    python3 tools/bench_gpu_torch.py [--device cuda] [--precision both|strict|tf32] [--batch 128]
                                     [--warmup 3] [--reps 20] [--max-seconds 6] [--only MODEL]
                                     [--workload forward|train|attack] [--profile-one-step]
                                     [--cudnn-benchmark]

--cudnn-benchmark sets torch.backends.cudnn.benchmark = True (algorithms chosen by timing, as
bench_gpu --cudnn-benchmark); otherwise it stays False, the default.

--profile-one-step: after the warm-up, one step only, under torch.profiler; the row then holds that
step's time (reps 1, "profiled": true: not a benchmark figure) and "kernels", [name, launches,
total microseconds] of every GPU kernel and copy of the step, largest first (tools/kernel_table.py
sets them beside afd's, which ncu records from bench_gpu --profile-one-step).
"""
import argparse
import json
import os
import sys
import time
import types

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(f"bench_gpu_torch.py: PyTorch is not available ({e}): nothing to benchmark")
    sys.exit(0)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attacks_torch import logits_of, project  # noqa: E402
from bench_harness import cpu_model, set_torch_precision, time_ms  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models"))
from make_model_fixtures import SmallCNN, cifar_resnet18  # noqa: E402

CLASSES = 10
SGD = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)
# name, one image's shape, attack eps, attack step, constructor: as kModels in bench_gpu.cpp.
MODELS = [
    ("cifar_resnet18", (3, 32, 32), 8 / 255, 2 / 255, lambda: cifar_resnet18(64)),
    ("small_cnn", (1, 28, 28), 0.3, 0.01, lambda: SmallCNN()),
]
WORKLOADS = ["forward", "train", "attack"]


def set_precision(name, cudnn_benchmark=False):
    settings = set_torch_precision(torch, name)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    return settings


def measure(step, args, device):
    """Warm-up, then the median of the timed steps, each followed by a synchronize."""
    cuda = device.type == "cuda"

    def synced_step():
        step()
        if cuda:
            torch.cuda.synchronize(device)

    if cuda:
        torch.cuda.synchronize(device)
    # At least --warmup steps and, when there are any, 0.3 s of them (as bench_gpu: clocks rise).
    last_warmup_s, warmup_s, done = 0.0, 0.0, 0
    while done < args.warmup or (args.warmup > 0 and warmup_s < 0.3):
        t0 = time.perf_counter()
        synced_step()
        last_warmup_s = time.perf_counter() - t0
        warmup_s += last_warmup_s
        done += 1
    if args.profile_one_step:
        return profile_one_step(synced_step, args, device)
    reps = args.reps
    if last_warmup_s * reps > args.max_seconds:
        reps = max(5, int(args.max_seconds / last_warmup_s))
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    median, least = time_ms(synced_step, types.SimpleNamespace(warmup=0, reps=reps, min_seconds=0.0))
    peak = torch.cuda.max_memory_allocated(device) if cuda else 0
    return {"median_ms": median, "min_ms": least, "images_per_s": args.batch / (median * 1e-3), "reps": reps,
            "peak_bytes": peak}


def profile_one_step(synced_step, args, device):
    """One step under torch.profiler: its time and its GPU kernels (name, launches, total us)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        synced_step()
        ms = (time.perf_counter() - t0) * 1e3
    kernels = {}
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA:
            continue
        calls, us = kernels.get(e.name, (0, 0.0))
        kernels[e.name] = (calls + 1, us + e.time_range.elapsed_us())
    table = sorted(([name, calls, us] for name, (calls, us) in kernels.items()), key=lambda r: -r[2])
    return {"median_ms": ms, "min_ms": ms, "images_per_s": args.batch / (ms * 1e-3), "reps": 1, "peak_bytes": 0,
            "profiled": True, "kernels": table}


def run_forward(model, x, y, eps, alpha, args, device):
    model.eval()

    def step():
        with torch.no_grad():
            logits_of(model, x)

    return measure(step, args, device)


def run_train(model, x, y, eps, alpha, args, device):
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.SGD(model.parameters(), **SGD)
    last = [None]

    def step():
        loss = F.cross_entropy(logits_of(model, x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        last[0] = loss.detach()

    r = measure(step, args, device)
    value = float(last[0])
    if value != value or abs(value) == float("inf"):
        raise RuntimeError(f"training loss became {value}")
    print(f"loss {value:.4f} at the last training step", file=sys.stderr)
    model.eval()
    return r


def run_attack(model, x, y, eps, alpha, args, device):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)  # d/dx only: no weight gradients
    state = {"x_adv": x.clone()}

    def step():
        xv = state["x_adv"].detach().requires_grad_(True)
        loss = F.cross_entropy(logits_of(model, xv), y, reduction="sum")
        (d_input,) = torch.autograd.grad(loss, xv)
        with torch.no_grad():
            state["x_adv"] = project(x, xv + alpha * d_input.sign(), eps)

    try:
        return measure(step, args, device)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)


RUNS = {"forward": run_forward, "train": run_train, "attack": run_attack}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", choices=["both", "strict", "tf32"], default="both")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--max-seconds", type=float, default=6.0)
    p.add_argument("--threads", type=int, default=2, help="CPU threads (for --device cpu)")
    p.add_argument("--only", default="")
    p.add_argument("--workload", choices=["", *WORKLOADS], default="")
    p.add_argument("--profile-one-step", action="store_true")
    p.add_argument("--cudnn-benchmark", action="store_true")
    args = p.parse_args()

    print(f"torch {torch.__version__}")
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            print(f"bench_gpu_torch.py: torch {torch.__version__} sees no CUDA device "
                  f"(built with CUDA {torch.version.cuda}): nothing to benchmark")
            return 0
        if device.index is None:
            device = torch.device("cuda", 0)
        torch.cuda.set_device(device)
        card = torch.cuda.get_device_name(device)
        libraries = f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    else:
        torch.set_num_threads(args.threads)
        card, libraries = cpu_model(), ""
    print(f"torch GPU benchmark: {device} ({card}), f32, batch {args.batch}, {args.warmup} warm-up, "
          f"median of {args.reps}")
    if libraries:
        print(f"libraries: {libraries}")
    sys.stdout.flush()

    precisions = ["strict", "tf32"] if args.precision == "both" else [args.precision]
    results = {}
    settings = {}
    for prec in precisions:
        settings[prec] = set_precision(prec, args.cudnn_benchmark)
        print(f"precision {prec}: {settings[prec]}", flush=True)
        for name, image, eps, alpha, make in MODELS:
            if args.only not in ("", name):
                continue
            setup_error = None
            try:
                torch.manual_seed(20261127)
                model = make().to(device)
                x = torch.rand(args.batch, *image, device=device)
                y = torch.tensor([(i * 7) % CLASSES for i in range(args.batch)], device=device)
            except Exception as e:  # noqa: BLE001 (reported in the table; the rest still runs)
                setup_error = f"setup: {type(e).__name__}: {e}"
            for workload in WORKLOADS:
                if args.workload not in ("", workload):
                    continue
                if setup_error:
                    row = {"error": setup_error}
                else:
                    try:
                        row = RUNS[workload](model, x, y, eps, alpha, args, device)
                    except Exception as e:  # noqa: BLE001
                        row = {"error": f"{type(e).__name__}: {e}"}
                results.setdefault(prec, {}).setdefault(name, {})[workload] = row
                print("ROW " + json.dumps({"precision": prec, "model": name, "workload": workload, **row}),
                      flush=True)
    if not results:
        sys.exit(f"bench_gpu_torch.py: no model called '{args.only}'")

    print(f"{'precision':<9} {'model':<16} {'workload':<8} {'batch':>6} {'median ms':>10} {'images/s':>12} "
          f"{'reps':>5} {'peak MiB':>10}")
    for prec, models in results.items():
        for name, workloads in models.items():
            for workload, r in workloads.items():
                if "error" in r:
                    print(f"{prec:<9} {name:<16} {workload:<8} FAILED: {r['error']}")
                    continue
                print(f"{prec:<9} {name:<16} {workload:<8} {args.batch:6d} {r['median_ms']:10.3f} "
                      f"{r['images_per_s']:12.1f} {r['reps']:5d} {r['peak_bytes'] / 2**20:10.1f}")
    record = {"impl": "torch", "version": torch.__version__, "device": str(device), "gpu": card,
              "libraries": libraries, "dtype": "f32", "batch": args.batch, "warmup": args.warmup,
              "reps": args.reps, "precision_settings": settings, "cudnn_benchmark": args.cudnn_benchmark,
              "results": results}
    print("JSON " + json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
