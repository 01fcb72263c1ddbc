"""Transformer maps against ground truth (issue 26): which method finds the object the model used.

No trained ImageNet ViT can be downloaded here, so the ground truth is made
(``tests/synthetic_vit.py``): 32×32 images whose class is the colour of ONE planted 7×7
object at a random place, among three distractors in colours no class has, on a noisy
background. A small ViT (patch 4 → 8×8 grid + class token, depth 4, width 64, 4 heads) is
trained on it in seconds, as timm's ``VisionTransformer`` and as torchvision's, with fixed
seeds. Then, for ``--images`` held-out images (seed 20000, never trained on), every method
computes its map for the TRUE class through the public API, one image per call, as a user
writes it: ``compute_cam(model, x, layer, method, target=label)``, at the method's default
layer (the CAM methods: the last block's first norm, ``blocks.3.norm1`` / ``...encoder_layer_3.ln_1``,
whose tokens layerscope reshapes to the 8×8 grid itself; the native transformer methods:
the last block). Each map (``heatmap``, 32×32) is scored against the object's 7×7 box:

- pointing game: the share of images whose map's peak (its first maximum) lies in the box;
  a constant map (no peak) is a miss. 95% Wilson score interval.
- mass inside: the mean share of the map's mass inside the box (an all-zero map: 0).
  95% percentile bootstrap interval of the mean (2,000 resamples, seed 0).
- baseline: a uniform map, or a peak at a random pixel, scores the box's area fraction
  (49/1024 = 4.8%) on both; patch reference: the box as the 8×8 grid sees it (each patch's
  share of the box, upsampled as layerscope upsamples maps), a reference for the mass, not
  a bound (a map on the patches wholly inside the box keeps more).
- ms/map: median wall time of one ``compute_cam`` call; methods alternate image by image,
  so a shared machine's drift hits all of them alike.

``rollout``, ``gradrollout`` and ``legrad`` are run when they are in ``METHODS`` (and said to
be skipped otherwise), so the table can be re-measured after they are merged. A second
table, "which layer", gives each method's pointing game at every block (one
``compute_sweep`` per image and method), so a method is not judged only at a layer that
suits another.

    OMP_NUM_THREADS=1 python benchmarks/bench_vit_truth.py [--images 200] [--perturb-images 200]
        [--kinds timm,torchvision] [--methods all] [--seed 0] [--threads 1]

One torch thread by default, as the tests run. Training takes 10–25 s per model on the
2-core machine; the maps about a minute per model with Score-CAM and Ablation-CAM on all images.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # synthetic_vit.py

import synthetic_vit as sv
from layerscope.cam import METHODS, compute_cam, compute_sweep, suggest_target_layer
from layerscope.errors import LayerscopeError

NATIVE = ("rollout", "gradrollout", "legrad")
BENCH_SEED = 20_000  # the benchmark's images: neither training's seeds nor the accuracy's


@dataclass
class Scores:
    """One method's maps on one model: per-image hits, masses and times."""

    method: str
    layer: str
    hits: list[bool] = field(default_factory=list)
    mass: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    flat: int = 0

    def add(self, heatmap: Tensor, mask: Tensor, seconds: float) -> None:
        self.hits.append(bool(sv.pointing_game(heatmap, mask)))
        self.mass.append(float(sv.mass_inside(heatmap, mask)))
        self.seconds.append(seconds)
        self.flat += int(not bool(heatmap.max() > heatmap.min()))

    def row(self) -> str:
        n = len(self.hits)
        hits = sum(self.hits)
        low, high = sv.wilson_interval(hits, n)
        mass = statistics.fmean(self.mass)
        mlow, mhigh = sv.bootstrap_interval(torch.tensor(self.mass))
        ms = 1000 * statistics.median(self.seconds)
        flat = f"{self.flat}" if self.flat else ""
        return (
            f"| {self.method} | `{self.layer}` | {hits / n:.3f} [{low:.3f}, {high:.3f}] | "
            f"{mass:.3f} [{mlow:.3f}, {mhigh:.3f}] | {ms:.1f} | {n} | {flat} |"
        )


def _native_layer(model: nn.Module, kind: sv.Kind, method: str, x: Tensor, target: int) -> str | None:
    """The layer a native attention method accepts for the last block: the block itself
    (the issue's convention), else its attention module, else its first norm; None when the
    method takes none of them (its one-line error is printed)."""
    last = sv.DEPTH - 1
    attention = f"blocks.{last}.attn" if kind == "timm" else f"encoder.layers.encoder_layer_{last}.self_attention"
    errors = []
    for layer in (sv.block_layer(kind), attention, sv.cam_layer(kind)):
        try:
            compute_cam(model, x, layer, method, target)
            return layer
        except LayerscopeError as error:
            errors.append(f"{layer}: {error}")
    print(f"  {method} on {kind}: no layer accepted ({'; '.join(errors)})")
    return None


def _methods(requested: str, perturb_images: int) -> tuple[list[str], list[str]]:
    """The methods to run and the lines saying which were left out and why."""
    names = list(METHODS) if requested == "all" else [m.strip() for m in requested.split(",")]
    notes = []
    for native in NATIVE:
        if native not in METHODS:
            notes.append(f"{native}: not in layerscope.cam.methods.METHODS yet — skipped")
            if native in names:
                names.remove(native)
        elif requested == "all" and native not in names:
            names.append(native)
    if perturb_images == 0:
        for name in [n for n in names if n in METHODS and METHODS[n].perturbs]:
            names.remove(name)
            notes.append(f"{name}: skipped (--perturb-images 0)")
    return names, notes


def _layers(model: nn.Module, kind: sv.Kind, method: str, x: Tensor, target: int) -> str | None:
    if method in NATIVE:
        return _native_layer(model, kind, method, x, target)
    return sv.cam_layer(kind)


def score_model(trained: sv.TrainedViT, data: sv.SyntheticSet, methods: list[str], perturb_images: int) -> list[Scores]:
    """Every method's maps for the true class on every image, methods alternating per image."""
    model, kind = trained.model, trained.kind
    first, label = data.images[:1], int(data.labels[0])
    scores: dict[str, Scores] = {}
    for method in methods:
        layer = _layers(model, kind, method, first, label)
        if layer is None:
            continue
        compute_cam(model, first, layer, method, label)  # warm-up: first-call costs out of the times
        scores[method] = Scores(method, layer)
    for i in range(len(data)):
        x, label, mask = data.images[i : i + 1], int(data.labels[i]), data.masks[i]
        for method, score in scores.items():
            if METHODS[method].perturbs and i >= perturb_images:
                continue
            start = time.perf_counter()
            result = compute_cam(model, x, score.layer, method, label)
            score.add(result.heatmap, mask, time.perf_counter() - start)
    return list(scores.values())


def _at_block(layer: str, block: int) -> str:
    """``layer`` (a name inside the last block) moved to block ``block``, the rest of the name kept."""
    last = sv.DEPTH - 1
    for prefix in ("blocks.", "encoder_layer_"):
        if f"{prefix}{last}" in layer:
            return layer.replace(f"{prefix}{last}", f"{prefix}{block}", 1)
    raise ValueError(f"{layer!r} names no block")


def layer_table(trained: sv.TrainedViT, data: sv.SyntheticSet, scores: list[Scores]) -> list[str]:
    """Pointing game (and mass inside) of each one-pass method at every block, from one
    ``compute_sweep`` per image: is the last block the fair layer for each method?"""
    model = trained.model
    rows = []
    for score in scores:
        method = score.method
        if METHODS[method].perturbs:
            continue  # a sweep of them is a forward per channel per layer: left out
        layers = [_at_block(score.layer, b) for b in range(sv.DEPTH)]
        hits = torch.zeros(sv.DEPTH)
        mass = torch.zeros(sv.DEPTH)
        try:
            for i in range(len(data)):
                results = compute_sweep(model, data.images[i : i + 1], layers, method, int(data.labels[i]))
                hits += torch.tensor([float(sv.pointing_game(r.heatmap, data.masks[i])) for r in results])
                mass += torch.tensor([float(sv.mass_inside(r.heatmap, data.masks[i])) for r in results])
        except LayerscopeError as error:
            rows.append(f"| {method} | {error} |" + " |" * (sv.DEPTH - 1))
            continue
        n = len(data)
        cells = " | ".join(f"{h / n:.2f} / {m / n:.2f}" for h, m in zip(hits.tolist(), mass.tolist()))
        rows.append(f"| {method} | {cells} |")
    return rows


def patch_reference(masks: Tensor) -> tuple[float, float]:
    """Pointing game and mass inside of the grid's picture of the box: each patch's share of
    the box, upsampled as layerscope upsamples every map (bilinear, ``align_corners=False``).
    A reference, not a bound on the mass: a map concentrated on the patches wholly inside the
    box keeps more of its mass there than this one, which spreads over every touched patch."""
    coverage = F.avg_pool2d(masks[:, None].float(), sv.PATCH)
    maps = F.interpolate(coverage, size=masks.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return float(sv.pointing_game(maps, masks).double().mean()), float(sv.mass_inside(maps, masks).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument(
        "--perturb-images",
        type=int,
        default=None,
        help="images for Score-CAM and Ablation-CAM (default: all of --images; 0 skips them)",
    )
    parser.add_argument("--kinds", default=",".join(sv.KINDS))
    parser.add_argument("--methods", default="all", help="comma list, or all (the native three when registered)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-layers", action="store_true", help="skip the which-layer table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    perturb_images = args.images if args.perturb_images is None else args.perturb_images
    methods, notes = _methods(args.methods, perturb_images)
    data = sv.make_dataset(args.images, BENCH_SEED)
    area = float(sv.area_fraction(data.masks).mean())
    reference = patch_reference(data.masks)
    load = os.getloadavg()
    print(f"## Transformer maps against ground truth ({date.today().isoformat()})\n")
    print(
        f"torch {torch.__version__} · {torch.get_num_threads()} CPU thread(s) · load average {load[0]:.2f} "
        f"before · {args.images} held-out images (seed {BENCH_SEED}) · Score-CAM and Ablation-CAM on "
        f"{min(perturb_images, args.images)}"
    )
    for note in notes:
        print(f"- {note}")
    for kind in args.kinds.split(","):
        trained = sv.train_vit(kind, args.seed)  # type: ignore[arg-type]
        suggested = suggest_target_layer(trained.model, input_shape=(3, sv.IMAGE_SIZE, sv.IMAGE_SIZE))
        with torch.no_grad():
            right = int((trained.model(data.images).argmax(1) == data.labels).sum())
        print(
            f"\n### {kind} VisionTransformer (depth {sv.DEPTH}, width {sv.WIDTH}, {sv.HEADS} heads, patch "
            f"{sv.PATCH}, 8×8 grid + class token)\n"
        )
        print(
            f"trained in {trained.seconds:.1f} s (seed {args.seed}, {sv.TRAIN_IMAGES} images × {sv.EPOCHS} "
            f"epochs); held-out accuracy {trained.accuracy:.3f} on 1,000 images, {right}/{args.images} on "
            f"these; layerscope's suggested layer: `{suggested}`\n"
        )
        print(
            "| method | layer | pointing game [95% Wilson] | mass inside [95% bootstrap] | ms/map | images | flat maps |"
        )
        print("|---|---|---|---|---|---|---|")
        scores = score_model(trained, data, methods, perturb_images)
        for score in scores:
            print(score.row())
        print(f"| baseline: uniform map / random peak | — | {area:.3f} | {area:.3f} | — | {args.images} | |")
        print(
            f"| patch reference: the box's share of each patch, upsampled | — | {reference[0]:.3f} | "
            f"{reference[1]:.3f} | — | {args.images} | |"
        )
        if not args.no_layers:
            print(f"\nWhich layer — pointing game / mass inside per block ({args.images} images):\n")
            print("| method | " + " | ".join(f"block {b}" for b in range(sv.DEPTH)) + " |")
            print("|---|" + "---|" * sv.DEPTH)
            for row in layer_table(trained, data, scores):
                print(row)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
