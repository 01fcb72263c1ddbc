"""What ``layerscope rank`` costs against the forwards its metrics cannot avoid (not a timed test).

The floor: deletion and insertion at 20 steps are 2 × 21 = 42 scored images per layer;
for the 16 layers of mobilenet_v2's ``features`` family that is 672 images, run here as
plain batched ``no_grad`` forwards (batch 32, the command's default). The command's
work after start-up: the 16 maps from one forward and one backward (``PhotoExplainer``),
every map scored (``cam.metrics``: the photo and the blank run once for all maps, so
16 × 39 + 2 = 626 images) and the sanity check's cascade (one forward and backward per
layer on a re-initialised copy). Real ImageNet weights and the bundled cat photo;
medians of interleaved repeats, so drift in a shared machine's speed hits both alike.

    python benchmarks/bench_rank.py [--device cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from layerscope.cam import PhotoExplainer
from layerscope.cam.ranking import rank_maps
from layerscope.io import imaging
from layerscope.models import load_model

STEPS, BATCH = 20, 32


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    start = time.perf_counter()
    loaded = load_model("mobilenet_v2", weights="IMAGENET1K_V1", device=args.device)
    photo = imaging.load_image(imaging.SAMPLES / "chelsea.png")
    explainer = PhotoExplainer(loaded, photo)
    layers = explainer.layer_family()
    startup = time.perf_counter() - start
    floor_images = len(layers) * 2 * (STEPS + 1)
    x = explainer.input

    def plain_forwards() -> None:
        with torch.no_grad():
            for begin in range(0, floor_images, BATCH):
                loaded.model(x.expand(min(BATCH, floor_images - begin), -1, -1, -1))

    def rank_command() -> None:
        maps = PhotoExplainer(loaded, photo, tree=explainer.tree).maps(layers, "gradcam")  # a fresh pass
        rank_maps(loaded.model, x, maps, steps=STEPS, batch_size=BATCH, categories=loaded.categories)

    rows = {"plain batched forwards": plain_forwards, "rank (maps + metrics + sanity)": rank_command}
    for fn in rows.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.repeats):
        for name, fn in rows.items():
            times[name].append(_timed(fn, device))
    floor, command = (statistics.median(times[name]) for name in rows)
    print(
        f"mobilenet_v2 + chelsea.png on {device} ({torch.get_num_threads()} threads), {len(layers)} layers, "
        f"{STEPS} steps, batch {BATCH}; start-up (load model + photo) {startup:.2f} s"
    )
    print(f"{'plain batched forwards':<34} {floor:8.2f} s  ({floor_images} images)")
    print(f"{'rank (maps + metrics + sanity)':<34} {command:8.2f} s  ratio {command / floor:.2f}× (target ≤ 1.5×)")


if __name__ == "__main__":
    main()
