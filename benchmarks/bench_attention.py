"""Transformer-native maps: what each costs against the model's own passes, side by side in one run.

Goal (issue 26): ``rollout`` ≤ 1.3× one no-grad forward; ``gradrollout`` and ``legrad`` ≤ 1.5×
one forward + backward (as the CAM methods are measured: the backward to the input's first
block), on a vit_b_16-sized model with random weights on the CPU. Each repeat times, in
alternating order so a shared machine's drift hits all alike:

- forward: ``model(x)`` under ``no_grad``, the model's own fused attention;
- forward + backward: ``model(x)`` with the input requiring grad, then ``autograd.grad`` of the
  top logit to the input;
- each method: ``compute_cam(model, x, last block, method)``, everything layerscope does
  (records every block's attention, computed in the open; the gradients; the reduction).

Ratio = median over repeats of the paired method / baseline times, wall clock.

    python benchmarks/bench_attention.py [--threads 1] [--repeats 5] [--model vit_b_16]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time

import torch
import torchvision

from layerscope.cam import compute_cam


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="vit_b_16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.get_model(args.model).eval()
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision starts it at zero: no gradient
    x = torch.randn(1, 3, 224, 224)
    block = f"encoder.layers.{list(dict(model.encoder.layers.named_children()))[-1]}"

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def forward_backward() -> None:
        leaf = x.clone().requires_grad_(True)
        out = model(leaf)
        torch.autograd.grad(out[0].max(), leaf)

    runs = {"forward": forward, "forward + backward": forward_backward}
    for method in ("rollout", "gradrollout", "legrad"):
        runs[method] = lambda method=method: compute_cam(model, x, block, method)
    for fn in runs.values():  # warm-up: allocator, oneDNN primitives
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for repeat in range(args.repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(timed(runs[name]))
    median = {name: statistics.median(t) for name, t in times.items()}
    load = os.getloadavg()[0]
    print(
        f"### {args.model}, random weights, 1×3×224×224, {args.threads} thread(s), "
        f"{datetime.date.today()}, load {load:.1f}"
    )
    print()
    print("| run | median s | ratio | baseline | goal |")
    print("|---|---|---|---|---|")
    for name in names:
        if name in ("forward", "forward + backward"):
            print(f"| {name} | {median[name]:.3f} | | | |")
            continue
        base = "forward" if name == "rollout" else "forward + backward"
        goal = 1.3 if name == "rollout" else 1.5
        ratios = [m / b for m, b in zip(times[name], times[base])]
        ratio = statistics.median(ratios)
        print(
            f"| {name} | {median[name]:.3f} | {ratio:.2f}× | {base} | ≤ {goal}× {'met' if ratio <= goal else 'NOT met'} |"
        )


if __name__ == "__main__":
    main()
