"""How much a CAM costs compared with the forward pass it explains (not a timed test).

Prints, for resnet50 at 224×224: a plain ``no_grad`` forward, Grad-CAM at layer4[-1],
a one-pass sweep over the 16 bottleneck outputs, and, for context, the usual way
(a forward that records the whole graph and a backward that also fills every
parameter's ``.grad``). Then Score-CAM on resnet18 at layer4[-1]. Medians of
interleaved repeats, so drift in a shared machine's speed hits all rows alike.

    python benchmarks/bench_cam.py [--device cuda] [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torchvision

from layerscope.cam import compute_cam, compute_sweep

BOTTLENECKS = [f"layer{stage}.{block}" for stage, blocks in zip((1, 2, 3, 4), (3, 4, 6, 3)) for block in range(blocks)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _usual_gradcam(model: torch.nn.Module, x: torch.Tensor) -> None:
    """What hook-and-backward libraries do: full graph, parameter gradients included."""
    store = {}
    handle = model.layer4[-1].register_forward_hook(lambda _m, _i, out: store.setdefault("a", out))
    try:
        out = model(x)
        store["a"].retain_grad()
        out[0, out[0].argmax()].backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    resnet50 = torchvision.models.resnet50().eval().to(device)
    x = torch.rand(1, 3, 224, 224, device=device)

    def forward() -> None:
        with torch.no_grad():
            resnet50(x)

    rows: dict[str, Callable[[], object]] = {
        "no_grad forward": forward,
        "gradcam layer4[-1]": lambda: compute_cam(resnet50, x, "layer4[-1]", "gradcam"),
        "sweep 16 bottlenecks": lambda: compute_sweep(resnet50, x, BOTTLENECKS, "gradcam"),
        "usual graph + .backward()": lambda: _usual_gradcam(resnet50, x),
    }
    for fn in rows.values():  # warm-up: allocator, kernels, cuDNN autotuning
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.repeats):
        for name, fn in rows.items():
            times[name].append(_timed(fn, device))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"device {device} · torch {torch.__version__} · {torch.get_num_threads()} CPU threads · "
        f"median of {args.repeats}"
    )
    for name, value in median.items():
        print(f"  {name:<28} {value * 1000:8.1f} ms")
    print(
        f"  gradcam / forward            {median['gradcam layer4[-1]'] / median['no_grad forward']:8.2f}×"
        "   (target ≤ 1.2)"
    )
    print(
        f"  sweep(16) / gradcam          {median['sweep 16 bottlenecks'] / median['gradcam layer4[-1]']:8.2f}×"
        "   (target ≤ 2.5)"
    )
    print(f"  usual / gradcam              {median['usual graph + .backward()'] / median['gradcam layer4[-1]']:8.2f}×")

    resnet18 = torchvision.models.resnet18().eval().to(device)
    compute_cam(resnet18, x, "layer4[-1]", "scorecam", batch_size=64)  # warm-up
    seconds = _timed(lambda: compute_cam(resnet18, x, "layer4[-1]", "scorecam", batch_size=64), device)
    print(f"  scorecam resnet18 layer4[-1] {seconds:8.2f} s    (512 masked forwards, batches of 64)")


if __name__ == "__main__":
    main()
