#!/usr/bin/python3
"""The PyTorch side of tools/bench_autoattack.sh: fra31/auto-attack's own AutoAttack (standard,
Linf) on an afd checkpoint of the MNIST ResNet18, on the CPU.

The checkpoint's model.safetensors holds PyTorch state_dict names, so it loads into the PyTorch
definition of the same network (tests/fixtures/models/make_model_fixtures.py, mnist_resnet18 with
L2-normalised features). The reference library is imported from a local checkout, as the attack
fixtures do (tests/fixtures/attacks/refs_common.py: --autoattack, env AFD_AUTOATTACK). Prints one
line "JSON {...}": clean accuracy, each component's cumulative robust accuracy and time (from the
reference's own log lines), the total time, threads, torch version and CPU.

    /usr/bin/python3 tools/bench_autoattack_torch.py --checkpoint runs/x/checkpoint --count 1000
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures", "attacks"))

import torch  # noqa: E402

from refs_common import REPO_ROOT, cpu_name, load_mnist, read_safetensors, _prepare  # noqa: E402
from make_model_fixtures import mnist_resnet18  # noqa: E402  (refs_common puts models/ on the path)
from make_mnist_at_autoattack_refs import logged_run  # noqa: E402
from bench_harness import restart_with_openblas_core  # noqa: E402  (this script's folder)


class Logits(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[0]


def main():
    restart_with_openblas_core()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="an afd_run checkpoint folder (model.safetensors)")
    parser.add_argument("--width", type=int, default=16, help="the MNIST ResNet18's base width")
    parser.add_argument("--mnist", default=os.path.join(REPO_ROOT, "data", "mnist"))
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--autoattack", default=os.environ.get("AFD_AUTOATTACK", "/work/.mirror/fra31+auto-attack/repo"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder, commit, _ = _prepare("autoattack", args.autoattack)
    sys.path.insert(0, folder)
    from autoattack import AutoAttack

    net = mnist_resnet18(args.width)
    state = read_safetensors(os.path.join(args.checkpoint, "model.safetensors"))
    net.load_state_dict(state)
    model = Logits(net).float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    images, labels = load_mnist(args.mnist, "t10k", args.count)
    x, y = images.float() / 255, labels

    adversary = AutoAttack(model, norm="Linf", eps=args.eps, version="standard", device="cpu", seed=0)
    _, clean, components, seconds = logged_run(adversary, x, y, args.batch)
    print("JSON " + json.dumps({"impl": "torch", "version": torch.__version__, "autoattack": commit,
                                "threads": args.threads, "cpu": cpu_name(), "count": args.count,
                                "clean_acc": clean, "components": components, "seconds": seconds}))


if __name__ == "__main__":
    main()
