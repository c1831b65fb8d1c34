#!/usr/bin/python3
"""The PyTorch side of tools/bench_autoattack.sh: fra31/auto-attack's own AutoAttack (standard,
Linf) on an afd checkpoint of a ResNet18, on the CPU (MNIST ResNet18, one thread) or on a GPU
(CIFAR-10 ResNet18, tools/device_autoattack.sh).

The checkpoint's model.safetensors holds PyTorch state_dict names, so it loads into the PyTorch
definition of the same network (tests/fixtures/models/make_model_fixtures.py, mnist_resnet18 or
cifar_resnet18, with L2-normalised features). The reference library is imported from a local
checkout, as the attack fixtures do (tests/fixtures/attacks/refs_common.py: --autoattack, env
AFD_AUTOATTACK). Prints one line "JSON {...}": clean accuracy, each component's cumulative robust
accuracy and time (from the reference's own log lines), the total time, threads, torch version,
CPU and GPU.

    /usr/bin/python3 tools/bench_autoattack_torch.py --checkpoint runs/x/checkpoint --count 1000
    python3 tools/bench_autoattack_torch.py --dataset cifar10 --device cuda --precision strict \\
        --checkpoint runs/y/checkpoint --count 10000
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures", "attacks"))

import torch  # noqa: E402

from refs_common import REPO_ROOT, cpu_name, load_mnist, read_safetensors, _prepare  # noqa: E402
from make_model_fixtures import cifar_resnet18, mnist_resnet18  # noqa: E402  (refs_common puts models/ on the path)
from make_mnist_at_autoattack_refs import logged_run  # noqa: E402
from bench_harness import restart_with_openblas_core, set_torch_precision  # noqa: E402  (this script's folder)

# dataset: (network, default base width, default eps)
DATASETS = {"mnist": (mnist_resnet18, 16, 0.3), "cifar10": (cifar_resnet18, 64, 8 / 255)}


class Logits(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[0]


def load_cifar10_test(folder, count):
    """(images [N, 3, 32, 32] uint8 tensor, labels [N] int64 tensor) of the first `count` records
    of test_batch.bin (10,000 records, or a slice of whole ones: tools/device_pack.sh), each a
    label byte and 3,072 pixel bytes (red, green, blue planes of 32 x 32)."""
    path = os.path.join(folder, "test_batch.bin")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 3073:
        sys.exit(f"{path}: {raw.size} bytes, not a whole number of 3,073-byte CIFAR-10 records")
    records = raw.reshape(-1, 3073)[:count]
    return (torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).copy()),
            torch.from_numpy(records[:, 0].astype(np.int64)))


def main():
    restart_with_openblas_core()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="an afd_run checkpoint folder (model.safetensors)")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="mnist")
    parser.add_argument("--data-dir", default="", help="the dataset's folder (default data/DATASET)")
    parser.add_argument("--width", type=int, default=0, help="the ResNet18's base width (0: 16 MNIST, 64 CIFAR-10)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--eps", type=float, default=0.0, help="Linf budget (0: 0.3 MNIST, 8/255 CIFAR-10)")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=["strict", "tf32"], default="strict",
                        help="on a GPU: strict fp32, or TF32 convolutions and matrix products (afd's tf32)")
    parser.add_argument("--autoattack", default=os.environ.get("AFD_AUTOATTACK", "/work/.mirror/fra31+auto-attack/repo"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    network, width, eps = DATASETS[args.dataset]
    width, eps = args.width or width, args.eps or eps
    data_dir = args.data_dir or os.path.join(REPO_ROOT, "data", args.dataset)
    device = torch.device(args.device)
    gpu, settings = "", {}
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit(f"--device {args.device}: torch {torch.__version__} sees no GPU")
        settings = set_torch_precision(torch, args.precision)
        gpu = torch.cuda.get_device_name(device)
    folder, commit, _ = _prepare("autoattack", args.autoattack)
    sys.path.insert(0, folder)
    from autoattack import AutoAttack

    net = network(width)
    net.load_state_dict(read_safetensors(os.path.join(args.checkpoint, "model.safetensors")))
    model = Logits(net).float().eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    if args.dataset == "mnist":
        images, labels = load_mnist(data_dir, "t10k", args.count)
    else:
        images, labels = load_cifar10_test(data_dir, args.count)
    x, y = images.float() / 255, labels

    adversary = AutoAttack(model, norm="Linf", eps=eps, version="standard", device=device, seed=0)
    _, clean, components, seconds = logged_run(adversary, x, y, args.batch)
    print("JSON " + json.dumps({"impl": "torch", "version": torch.__version__, "autoattack": commit,
                                "threads": args.threads, "cpu": cpu_name(), "gpu": gpu,
                                "precision": args.precision if gpu else "f32", "precision_settings": settings,
                                "count": len(y),
                                "clean_acc": clean, "components": components, "seconds": seconds}))


if __name__ == "__main__":
    main()
