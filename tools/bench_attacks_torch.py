"""PyTorch CPU side of the attack benchmark: the same cases as tools/bench_attacks.cpp.

The attacks are written here as plain PyTorch loops (no attack library); the models are the
PyTorch definitions of tests/fixtures/models/make_model_fixtures.py (the ones the fixtures check
afd's models against), at full size, in eval mode. 10 steps per attack, Linf:

    pgd_linf_small_cnn        PGD, eps 0.3, step 0.01, SmallCNN (32/64/200), batch 128, 1x28x28
    pgd_linf_mnist_resnet18   PGD, eps 0.3, step 0.01, the paper's MNIST ResNet18 (16/32/48/64), batch 128
    pgd_linf_cifar_resnet18   PGD, eps 8/255, step 2/255, CIFAR ResNet18, batch 32, 3x32x32
    apgd_ce_small_cnn         APGD-CE (Croce and Hein 2020), eps 0.3, SmallCNN, batch 128
    apgd_ce_mnist_resnet18    APGD-CE, eps 0.3, MNIST ResNet18, batch 128
    apgd_ce_cifar_resnet18    APGD-CE, eps 8/255, CIFAR ResNet18, batch 32

PGD: x.requires_grad_, cross-entropy summed over the batch, torch.autograd.grad with respect to x
only, x + alpha sign(g), clamp to the eps-ball and the box; no random start. APGD-CE: the random
start, momentum 0.75, step 2 eps halved at the checkpoints (oscillation or no improvement) with a
restart from the best point, as attacks/apgd.h describes; only the clean-correct points are
attacked, so its labels are the model's clean predictions. Both end as afd's Attack::perturb does:
one forward for the success mask and the Linf norms of the perturbations. Inputs U(0, 1) and
labels uniform in 0..9, seeded. Per model it also times one forward under no_grad and one
forward + summed cross-entropy + input gradient. Median wall time of one call after warm-up;
throughput per attack step = batch * steps / median seconds; last line "JSON {...}".

    /usr/bin/python3 tools/bench_attacks_torch.py --threads 2 [--warmup 1] [--reps 3] [--min-seconds 0] [--only C]
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
from make_model_fixtures import SmallCNN, cifar_resnet18, mnist_resnet18  # noqa: E402

CLASSES, STEPS = 10, 10
# name, batch, one image's shape, constructor: as kModels in bench_attacks.cpp.
MODELS = {
    "small_cnn": (128, (1, 28, 28), lambda: SmallCNN()),
    "mnist_resnet18": (128, (1, 28, 28), lambda: mnist_resnet18(16)),
    "cifar_resnet18": (32, (3, 32, 32), lambda: cifar_resnet18(64)),
}
# name, attack, model, eps, step size: as kCases in bench_attacks.cpp.
CASES = [
    ("pgd_linf_small_cnn", "pgd-linf", "small_cnn", 0.3, 0.01),
    ("pgd_linf_mnist_resnet18", "pgd-linf", "mnist_resnet18", 0.3, 0.01),
    ("pgd_linf_cifar_resnet18", "pgd-linf", "cifar_resnet18", 8 / 255, 2 / 255),
    ("apgd_ce_small_cnn", "apgd-ce", "small_cnn", 0.3, None),
    ("apgd_ce_mnist_resnet18", "apgd-ce", "mnist_resnet18", 0.3, None),
    ("apgd_ce_cifar_resnet18", "apgd-ce", "cifar_resnet18", 8 / 255, None),
]


def logits_of(model, x):
    return model(x)[0]  # the fixture models return (logits, z)


def project(x0, x, eps):
    """Onto the Linf eps-ball around x0, then the box [0, 1]."""
    return torch.min(torch.max(x, x0 - eps), x0 + eps).clamp_(0, 1)


def finish(model, x0, x_adv, y):
    """What afd's perturb returns besides x_adv: success mask and Linf norms (one more forward)."""
    with torch.no_grad():
        success = logits_of(model, x_adv).argmax(1) != y
        norms = (x_adv - x0).flatten(1).abs().amax(1).double()
    return x_adv, success, norms


def pgd_linf(model, x0, y, eps, alpha, steps):
    x = x0.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        loss = F.cross_entropy(logits_of(model, x), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x = project(x0, x + alpha * g.sign(), eps)
    return finish(model, x0, x, y)


def apgd_ce_run(model, x0, y, eps, n_iter, rho=0.75):
    """One APGD-CE run in Linf from a random start on points x0 [n, ...] with labels y."""
    n = x0.shape[0]
    view = (n,) + (1,) * (x0.dim() - 1)
    t = 2 * torch.rand_like(x0) - 1
    x_adv = (x0 + eps * t / (t.flatten(1).abs().amax(1).view(view) + 1e-12)).clamp(0, 1)

    def evaluate(xa):
        xa = xa.clone().requires_grad_(True)
        logits = logits_of(model, xa)
        loss = F.cross_entropy(logits, y, reduction="none")
        (g,) = torch.autograd.grad(loss.sum(), xa)
        return loss.detach(), g, logits.detach().argmax(1) != y

    loss, grad, fooled = evaluate(x_adv)
    x_best, x_best_adv, grad_best, loss_best = x_adv.clone(), x_adv.clone(), grad.clone(), loss.clone()
    fooled_any = fooled.clone()
    step = torch.full(view, 2 * eps, dtype=x0.dtype)
    x_old = x_adv.clone()
    k = max(int(0.22 * n_iter), 1)
    k_min, decrement = max(int(0.06 * n_iter), 1), max(int(0.03 * n_iter), 1)
    counter = 0
    loss_steps = torch.zeros(n_iter, n)
    loss_best_last_check = loss_best.clone()
    reduced_last_check = torch.ones(n, dtype=torch.bool)
    for i in range(n_iter):
        with torch.no_grad():
            a = 1.0 if i == 0 else 0.75
            z = project(x0, x_adv + step * grad.sign(), eps)
            x_new = project(x0, x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_old), eps)
            x_old, x_adv = x_adv, x_new
        loss, grad, fooled = evaluate(x_adv)
        with torch.no_grad():
            x_best_adv[fooled] = x_adv[fooled]
            fooled_any |= fooled
            loss_steps[i] = loss
            better = loss > loss_best
            x_best[better], grad_best[better], loss_best[better] = x_adv[better], grad[better], loss[better]
            counter += 1
            if counter == k:
                # Oscillation: how many of the last k steps raised the loss (index -1 wraps).
                ups = sum((loss_steps[i - c] > loss_steps[i - c - 1]).float() for c in range(k))
                reduce = (ups <= rho * k) | (~reduced_last_check & (loss_best_last_check >= loss_best))
                reduced_last_check, loss_best_last_check = reduce, loss_best.clone()
                step[reduce] /= 2
                x_adv[reduce], grad[reduce] = x_best[reduce], grad_best[reduce]
                counter, k = 0, max(k - decrement, k_min)
    return x_best_adv, fooled_any


def apgd_ce(model, x0, y, eps, steps):
    """AutoAttack's APGD-CE with one restart: the clean-correct points are attacked, the others and
    the points not fooled come back clean."""
    with torch.no_grad():
        todo = (logits_of(model, x0).argmax(1) == y).nonzero().flatten()
    out = x0.clone()
    if len(todo):
        best_adv, fooled = apgd_ce_run(model, x0[todo], y[todo], eps, steps)
        out[todo[fooled]] = best_adv[fooled]
    return finish(model, x0, out, y)


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

    benches = {}
    for name, (batch, image, make) in MODELS.items():
        model = make().eval()
        x = torch.rand(batch, *image)
        y = torch.randint(0, CLASSES, (batch,))
        with torch.no_grad():
            predicted = logits_of(model, x).argmax(1)
        benches[name] = {"model": model, "x": x, "y": y, "predicted": predicted}

    def input_grad(b):
        x = b["x"].clone().requires_grad_(True)
        loss = F.cross_entropy(logits_of(b["model"], x), b["y"], reduction="sum")
        torch.autograd.grad(loss, x)

    results = {}
    for name, attack, model_name, eps, alpha in CASES:
        if args.only not in ("", name):
            continue
        b = benches[model_name]
        model, x = b["model"], b["x"]
        if "forward" not in b:
            with torch.no_grad():
                b["forward"] = time_ms(lambda: logits_of(model, x), args)
            b["input_grad"] = time_ms(lambda: input_grad(b), args)
        if attack == "pgd-linf":
            def run():
                return pgd_linf(model, x, b["y"], eps, alpha, STEPS)
        else:
            def run():
                return apgd_ce(model, x, b["predicted"], eps, STEPS)
        last = []
        timing = time_ms(lambda: last.append(run()), args)
        fooled = int(last[-1][1].sum())
        print(f"{name}: {fooled} of {x.shape[0]} fooled at the last call", file=sys.stderr)
        results[name] = {"attack_name": attack, "model": model_name, "batch": x.shape[0], "attack": timing,
                         "forward": b["forward"], "input_grad": b["input_grad"], "fooled": fooled}
    if not results:
        sys.exit(f"bench_attacks_torch.py: no case called '{args.only}'")

    cpu = cpu_model()
    print(f"torch {torch.__version__} attack benchmark: f32, {torch.get_num_threads()} threads, {cpu}, "
          f"{STEPS} steps per attack")
    print(f"{'case':<26} {'batch':>6} {'attack ms':>12} {'step img/s':>14} {'forward ms':>12} {'fwd+grad ms':>14}")
    for name, r in results.items():
        b, a = r["batch"], r["attack"][0]
        print(f"{name:<26} {b:6d} {a:12.2f} {b * STEPS / a * 1e3:14.1f} {r['forward'][0]:12.2f} "
              f"{r['input_grad'][0]:14.2f}")
    record = {"impl": "torch", "version": torch.__version__, "threads": torch.get_num_threads(), "precision": "f32",
              "cpu": cpu, "steps": STEPS,
              "cases": {n: {"attack": r["attack_name"], "model": r["model"], "batch": r["batch"],
                            "attack_ms": round(r["attack"][0], 4), "attack_min_ms": round(r["attack"][1], 4),
                            "forward_ms": round(r["forward"][0], 4), "input_grad_ms": round(r["input_grad"][0], 4),
                            "fooled": r["fooled"]}
                        for n, r in results.items()},
              "skipped": []}
    print("JSON " + json.dumps(record))


if __name__ == "__main__":
    main()
