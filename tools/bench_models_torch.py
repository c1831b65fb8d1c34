"""PyTorch CPU side of the model benchmark: the same workloads as tools/bench_models.cpp.

The models are the PyTorch definitions of tests/fixtures/models/make_model_fixtures.py (the ones
the fixtures check afd's models against), at full size. Per model: forward (eval mode, no_grad)
and one training step (train mode, mean cross-entropy, backward, torch.optim.SGD lr 0.01,
momentum 0.9, weight decay 5e-4, zero_grad(set_to_none=True)); SNPDFC3 on features z [128, 64]
with the paper's D loss. Median wall time of one call after warm-up; last line "JSON {...}".

    /usr/bin/python3 tools/bench_models_torch.py --threads 2 [--warmup 1] [--reps 3] [--min-seconds 0] [--only M]
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_harness import cpu_model, restart_with_openblas_core, time_ms  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models"))
from make_model_fixtures import (SNPDFC3, PreActResNet18, SmallCNN, WideResNet,  # noqa: E402
                                 cifar_resnet18, mnist_resnet18)

# name, batch, one image's shape, constructor: as kModels in bench_models.cpp.
MODELS = [
    ("small_cnn", 128, (1, 28, 28), lambda: SmallCNN()),
    ("mnist_resnet18", 128, (1, 28, 28), lambda: mnist_resnet18(16)),
    ("cifar_resnet18", 32, (3, 32, 32), lambda: cifar_resnet18(64)),
    ("preact_resnet18", 32, (3, 32, 32), lambda: PreActResNet18(64, False)),
    ("wrn28_10", 8, (3, 32, 32), lambda: WideResNet(28, 10)),
]
DISCRIMINATOR_BATCH, FEATURES, CLASSES = 128, 64, 10
SGD = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)


def cyclic_labels(n):
    return torch.tensor([(i * 7) % CLASSES for i in range(n)])


def bench_classifier(name, batch, image, make, args):
    model = make()
    x = torch.rand(batch, *image)
    labels = cyclic_labels(batch)
    model.eval()
    with torch.no_grad():
        forward = time_ms(lambda: model(x), args)
    model.train()
    opt = torch.optim.SGD(model.parameters(), **SGD)
    losses = []

    def step():
        loss = F.cross_entropy(model(x)[0], labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())

    train = time_ms(step, args)
    print(f"{name}: loss {losses[-1]:.4f} at the last step", file=sys.stderr)
    return {"batch": batch, "forward": forward, "train": train}


def bench_discriminator(args):
    d = SNPDFC3(FEATURES, CLASSES)
    z_clean, z_adv = torch.randn(DISCRIMINATOR_BATCH, FEATURES), torch.randn(DISCRIMINATOR_BATCH, FEATURES)
    labels = cyclic_labels(DISCRIMINATOR_BATCH)
    d.eval()
    with torch.no_grad():
        forward = time_ms(lambda: d(z_adv, labels), args)
    d.train()
    opt = torch.optim.SGD(d.parameters(), **SGD)

    def step():
        loss = F.softplus(-d(z_clean, labels)).mean() + F.softplus(d(z_adv, labels)).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return {"batch": DISCRIMINATOR_BATCH, "forward": forward, "train": time_ms(step, args)}


def main():
    restart_with_openblas_core()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--min-seconds", type=float, default=0.0)
    p.add_argument("--only", default="")
    args = p.parse_args()
    torch.set_num_threads(args.threads)  # Debian's torch defaults to 1 thread: always set it
    torch.manual_seed(20261127)

    results = {}
    for name, batch, image, make in MODELS:
        if args.only in ("", name):
            results[name] = bench_classifier(name, batch, image, make, args)
    if args.only in ("", "snpdfc3"):
        results["snpdfc3"] = bench_discriminator(args)
    if not results:
        sys.exit(f"bench_models_torch.py: no model called '{args.only}'")

    cpu = cpu_model()
    print(f"torch {torch.__version__} model benchmark: f32, {torch.get_num_threads()} threads, {cpu}")
    print(f"{'model':<16} {'batch':>6} {'forward ms':>12} {'train ms':>12} {'forward img/s':>14} {'train img/s':>14}")
    for name, r in results.items():
        f, t = r["forward"][0], r["train"][0]
        b = r["batch"]
        print(f"{name:<16} {b:6d} {f:12.2f} {t:12.2f} {b / f * 1e3:14.1f} {b / t * 1e3:14.1f}")
    record = {"impl": "torch", "version": torch.__version__, "threads": torch.get_num_threads(), "precision": "f32",
              "cpu": cpu, "models": {n: {"batch": r["batch"], "forward_ms": round(r["forward"][0], 4),
                                         "forward_min_ms": round(r["forward"][1], 4),
                                         "train_ms": round(r["train"][0], 4), "train_min_ms": round(r["train"][1], 4)}
                                     for n, r in results.items()}}
    print("JSON " + json.dumps(record))


if __name__ == "__main__":
    main()
