"""PyTorch CPU side of the CPU benchmark: the same workloads as tools/bench_cpu.cpp.

conv2d forward and backward (data, filter, both) for the two layers of the small MNIST CNN and the
small-map layers of the MNIST ResNet18 (LAYERS), and one whole training step of that CNN, at
batch 128, f32. Every figure is the median wall time of
one call after warm-up (the minimum is reported too). The last line of output is "JSON {...}" for tools/bench_cpu.sh.

    /usr/bin/python3 tools/bench_cpu_torch.py --threads 2 [--warmup 5] [--reps 20] [--min-seconds 1]

Backward kernels are called through aten.convolution_backward with an output mask, so each row
times exactly the kernels it names (PyTorch's oneDNN path on this CPU), without a forward.

PyTorch's default oneDNN path is very slow for the first layer (one input channel): its own
non-oneDNN kernels are several times faster there. So the conv1 rows and the training step are
also timed with oneDNN switched off for conv1 alone (workload names ending in NO_ONEDNN), which
is the best PyTorch does on this model without changing the model.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_harness import cpu_model, restart_with_openblas_core, time_ms  # noqa: E402

BATCH = 128
LR = 0.01
# name, C, K, H, W, stride[, batch]: 3x3 convolutions, pad 1 (as kLayers in bench_cpu.cpp): the
# small CNN's two layers, the layers of the paper's MNIST ResNet18, the CIFAR ResNet18's stages.
LAYERS = [("conv1", 1, 32, 28, 28, 1), ("conv2", 32, 64, 14, 14, 1),
          ("r18_stem", 1, 16, 28, 28, 2), ("r18_14x14_s2", 16, 16, 14, 14, 2),
          ("r18_7x7", 16, 16, 7, 7, 1), ("r18_4x4", 32, 32, 4, 4, 1), ("r18_4x4_s2", 32, 48, 4, 4, 2),
          ("r18_2x2", 48, 48, 2, 2, 1), ("r18_2x2_s2", 48, 64, 2, 2, 2), ("r18_1x1", 64, 64, 1, 1, 1),
          ("c18_32x32", 64, 64, 32, 32, 1, 32), ("c18_32x32_s2", 64, 128, 32, 32, 2, 32),
          ("c18_16x16", 128, 128, 16, 16, 1, 32), ("c18_8x8", 256, 256, 8, 8, 1, 32),
          ("c18_4x4", 512, 512, 4, 4, 1, 32)]
NO_ONEDNN = "@no-onednn"  # suffix of the workloads timed with oneDNN off for conv1


def conv_gflop(N, C, K, P, Q):
    # nominal work, every tap counted (as bench_cpu.cpp)
    return 2.0 * N * K * C * 9 * P * Q * 1e-9


def bench_conv(layer, args, out):
    name, C, K, H, W, s = layer[:6]
    N = layer[6] if len(layer) > 6 else BATCH
    P, Q = (H - 1) // s + 1, (W - 1) // s + 1
    x = torch.randn(N, C, H, W)
    bound = 1.0 / (C * 9) ** 0.5
    w = torch.empty(K, C, 3, 3).uniform_(-bound, bound)
    dy = torch.randn(N, K, P, Q)
    gflop = conv_gflop(N, C, K, P, Q)

    def backward(mask):
        return torch.ops.aten.convolution_backward(
            dy, x, w, None, [s, s], [1, 1], [1, 1], False, [0, 0], 1, mask)

    variants = [("", True)] + ([(NO_ONEDNN, False)] if C == 1 else [])
    for suffix, onednn in variants:
        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=onednn):
            out[name + "_fwd" + suffix] = (time_ms(lambda: F.conv2d(x, w, None, s, 1), args), gflop)
            out[name + "_bwd_data" + suffix] = (
                time_ms(lambda: backward([True, False, False]), args), gflop)
            out[name + "_bwd_filter" + suffix] = (
                time_ms(lambda: backward([False, True, False]), args), gflop)
            out[name + "_bwd" + suffix] = (
                time_ms(lambda: backward([True, True, False]), args), 2 * gflop)


class Conv3x3WithoutOneDnn(torch.autograd.Function):
    """conv2d(x, w, stride 1, pad 1) with forward and backward run with oneDNN switched off."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        with torch.backends.mkldnn.flags(enabled=False):
            return F.conv2d(x, w, None, 1, 1)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False]
        with torch.backends.mkldnn.flags(enabled=False):
            dx, dw, _ = torch.ops.aten.convolution_backward(
                dy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)
        return dx, dw


class SmallCnn(nn.Module):
    """conv-BN-ReLU-pool twice, then linear(3136 -> 10); as SmallCnn in tools/bench_cpu.cpp."""

    def __init__(self, conv1_onednn=True):
        super().__init__()
        self.conv1_onednn = conv1_onednn
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.fc = nn.Linear(3136, 10)

    def forward(self, x):
        h = self.conv1(x) if self.conv1_onednn else Conv3x3WithoutOneDnn.apply(x, self.conv1.weight)
        h = F.max_pool2d(F.relu(self.bn1(h)), 2, 2)
        h = F.max_pool2d(F.relu(self.bn2(self.conv2(h))), 2, 2)
        return self.fc(torch.flatten(h, 1))


def train_step_gflop():
    # As in bench_cpu.cpp: conv1 forward + filter grad, conv2 and linear forward + both grads.
    c1, c2 = conv_gflop(BATCH, 1, 32, 28, 28), conv_gflop(BATCH, 32, 64, 14, 14)
    fc = 2.0 * BATCH * 3136 * 10 * 1e-9
    return 2 * c1 + 3 * c2 + 3 * fc


def bench_train_step(args, out, conv1_onednn=True):
    model = SmallCnn(conv1_onednn).train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.0)
    x = torch.randn(BATCH, 1, 28, 28)
    labels = torch.tensor([(i * 7) % 10 for i in range(BATCH)])
    losses = []

    def step():
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())

    step()
    ms = time_ms(step, args)
    name = "train_step" + ("" if conv1_onednn else NO_ONEDNN)
    print(f"{name}: loss {losses[0]:.4f} at the first step, {losses[-1]:.4f} at the last",
          file=sys.stderr)
    out[name] = (ms, train_step_gflop())


def main():
    restart_with_openblas_core()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--min-seconds", type=float, default=1.0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)  # Debian's torch defaults to 1 thread: always set it
    torch.manual_seed(20261127)

    results = {}
    for layer in LAYERS:
        bench_conv(layer, args, results)
    bench_train_step(args, results)
    bench_train_step(args, results, conv1_onednn=False)

    cpu = cpu_model()
    print(f"torch {torch.__version__} CPU benchmark: batch {BATCH}, f32, "
          f"{torch.get_num_threads()} threads, {cpu}")
    print(f"{'workload':<28} {'median ms':>10} {'min ms':>10} {'GFLOP/s':>10}")
    for name, ((ms, min_ms), gflop) in results.items():
        print(f"{name:<28} {ms:10.3f} {min_ms:10.3f} {gflop / (ms * 1e-3):10.1f}")
    record = {"impl": "torch", "version": torch.__version__, "threads": torch.get_num_threads(),
              "precision": "f32", "batch": BATCH, "cpu": cpu,
              "workloads": {n: {"ms": round(ms, 4), "min_ms": round(min_ms, 4), "gflop": round(g, 5)}
                            for n, ((ms, min_ms), g) in results.items()}}
    print("JSON " + json.dumps(record))


if __name__ == "__main__":
    main()
