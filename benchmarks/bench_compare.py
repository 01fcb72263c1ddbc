"""Layerscope's CAM engine side by side with pytorch-grad-cam and torchcam (prints figures; not a test).

Why: layerscope claims to be cheap because it runs one forward, one
``torch.autograd.grad`` restricted to the hooked activations and never computes a
parameter gradient, and because a sweep reuses that single pass for many layers.
That claim only means something against what people would otherwise use, timed in
the same process on the same model, and only if the maps still say the same thing.

Speed: resnet50 (random weights, seed 0), 224×224, batch 1, layer4[-1], class 285.
Each timed call is what a user writes for one map at input resolution: attach the
library's hooks, forward, backward, weight, upsample, remove the hooks (torchcam
returns layer-resolution maps, so its calls include the bilinear upsampling).
Medians of interleaved repeats, library order rotated every repeat, so a shared
machine's drift hits every column alike. Score-CAM runs on resnet18, batches of 64.

Agreement: mobilenet_v2 (IMAGENET1K_V1) on samples/chelsea.png, features[-1],
class 285; Pearson correlation of each library's map with layerscope's, both at
input resolution and min-max scaled. Known definitional differences are printed
next to the figures, not hidden:
  * EigenCAM: pytorch-grad-cam keeps whatever sign the SVD returns; layerscope
    flips the component to correlate with the total activation, so the two agree
    or are opposite (before the ReLU) depending on the SVD's arbitrary sign.
  * Grad-CAM++: layerscope and pytorch-grad-cam use ΣA·g³ in alpha's denominator,
    but pytorch-grad-cam adds eps = 1e-6 to it and layerscope 1e-7: with g² around
    1e-6 (mobilenet_v2's last layer) that alone moves r off 1. torchcam writes
    Σ(A·g³), but its in-place division acts on a masked copy, so its alpha stays g².
  * Score-CAM: pytorch-grad-cam upsamples the masks with align_corners=True,
    layerscope and torchcam with align_corners=False; the softmax over 1280 masked
    scores amplifies that into r ≈ 0.97 (1.0000 once the corners are aligned alike).

    python benchmarks/bench_compare.py [--device cuda] [--repeats 15] [--skip-scorecam]

On a busy 2-core CPU the full run takes about ten minutes, nearly all of it
Score-CAM and Ablation-CAM; with --skip-scorecam, about one minute.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytorch_grad_cam as pgc
import torch
import torch.nn.functional as F
import torchcam
import torchcam.methods as tc
import torchvision
from bench_cam import BOTTLENECKS, _timed  # same directory: same timing and layers as bench_cam.py
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import Tensor, nn

import layerscope
from layerscope.cam import compute_cam, compute_sweep
from layerscope.io.imaging import load_image, preprocess
from layerscope.models import load_model

CLASS = 285  # Egyptian cat: what chelsea.png shows
LAYER4_LAST = "layer4.2"  # resnet50's layer4[-1]; torchcam and get_submodule take dotted names
LIBRARIES = ("layerscope", "pytorch-grad-cam", "torchcam")
CHELSEA = Path(layerscope.__file__).parent / "samples" / "chelsea.png"

# method → (label, pytorch-grad-cam class, torchcam class or None)
METHODS: dict[str, tuple[str, type, type | None]] = {
    "gradcam": ("Grad-CAM", pgc.GradCAM, tc.GradCAM),
    "gradcam++": ("Grad-CAM++", pgc.GradCAMPlusPlus, tc.GradCAMpp),
    "hirescam": ("HiResCAM", pgc.HiResCAM, None),
    "xgradcam": ("XGrad-CAM", pgc.XGradCAM, tc.XGradCAM),
    "layercam": ("LayerCAM", pgc.LayerCAM, tc.LayerCAM),
    "eigencam": ("EigenCAM", pgc.EigenCAM, None),
    "eigengradcam": ("EigenGrad-CAM", pgc.EigenGradCAM, None),
    "scorecam": ("Score-CAM", pgc.ScoreCAM, tc.ScoreCAM),
    "ablationcam": ("Ablation-CAM", pgc.AblationCAM, None),
}
SWEEP_ROW = f"Grad-CAM sweep ×{len(BOTTLENECKS)}"
SCORECAM_ROW = "Score-CAM (512 masks)"
TIMED = ("gradcam", "gradcam++", "xgradcam", "layercam", "eigencam")
PERTURBING = ("scorecam", "ablationcam")
NOTES = {
    "gradcam++": "pgc eps 1e-6 vs ours 1e-7 (g² ≈ 1e-6 here); torchcam's alpha stays g²",
    "eigencam": "pgc keeps the SVD's sign: may come out inverted on other inputs",
    "scorecam": "pgc upsamples masks with align_corners=True (r = 1.0000 if aligned alike)",
}

Map = Callable[[], object]
Samples = dict[str, dict[str, list[float]]]  # row → library → seconds per repeat


# ---- one map, the way each library is meant to be used ---------------------------------------------------------


def layerscope_map(model: nn.Module, x: Tensor, layer: str, method: str, **kw: int) -> Tensor:
    return compute_cam(model, x, layer, method, CLASS, **kw).heatmap


def pgc_maps(model: nn.Module, x: Tensor, layers: Sequence[nn.Module], method: str, batch_size: int = 32) -> list:
    """One pytorch-grad-cam call per layer (a list of target layers would be averaged into one map)."""
    maps = []
    for layer in layers:
        with METHODS[method][1](model=model, target_layers=[layer]) as cam:
            cam.batch_size = batch_size  # ScoreCAM and AblationCAM read this attribute
            with contextlib.redirect_stderr(io.StringIO()):  # their tqdm bars
                maps.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(CLASS)])[0])
    return maps


def torchcam_maps(model: nn.Module, x: Tensor, layers: Sequence[str], method: str, batch_size: int = 32) -> list:
    """One torchcam extractor for all ``layers``: one forward, maps upsampled to the input size."""
    cls = METHODS[method][2]
    assert cls is not None
    kwargs = {"batch_size": batch_size} if method == "scorecam" else {}
    extractor = cls(model, list(layers), **kwargs)
    try:
        with torch.no_grad() if method == "scorecam" else contextlib.nullcontext():  # Score-CAM needs no graph
            scores = model(x)
        cams = extractor(CLASS, scores)
    finally:
        extractor.remove_hooks()
    return [F.interpolate(c[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0] for c in cams]


def rows_for(model: nn.Module, x: Tensor, layer: str, method: str, batch_size: int = 32) -> dict[str, Map | None]:
    """The three libraries' single-map calls for ``method`` at ``layer`` (None where a library lacks it)."""
    module = model.get_submodule(layer)
    return {
        "layerscope": lambda: layerscope_map(model, x, layer, method, batch_size=batch_size),
        "pytorch-grad-cam": lambda: pgc_maps(model, x, [module], method, batch_size),
        "torchcam": (lambda: torchcam_maps(model, x, [layer], method, batch_size)) if METHODS[method][2] else None,
    }


# ---- timing ------------------------------------------------------------------------------------------------------


def sample_times(
    rows: dict[str, dict[str, Map | None]], repeats: int, device: torch.device, warmup: int = 2
) -> Samples:
    """Seconds per (row, library, repeat): every repeat runs every cell, the library order rotated."""
    for libs in rows.values():
        for fn in libs.values():
            for _ in range(warmup if fn is not None else 0):
                fn()
    samples: Samples = {row: {lib: [] for lib, fn in libs.items() if fn is not None} for row, libs in rows.items()}
    for r in range(repeats):
        for row, libs in rows.items():
            present = [(lib, fn) for lib, fn in libs.items() if fn is not None]
            for lib, fn in present[r % len(present) :] + present[: r % len(present)]:
                samples[row][lib].append(_timed(fn, device))
    return samples


def paired_ratio(samples: Samples, row: str, lib: str) -> float | None:
    """Median over repeats of other / layerscope, each pair timed back to back (drift cancels)."""
    if lib not in samples[row]:
        return None
    return statistics.median(o / ours for o, ours in zip(samples[row][lib], samples[row]["layerscope"]))


def print_speed(title: str, samples: Samples, repeats: int) -> None:
    print(f"\n{title} (medians of {repeats}; ratio = median of paired other / layerscope)")
    print(f"  {'':<22}{'layerscope':>12}{'pytorch-grad-cam':>18}{'ratio':>8}{'torchcam':>12}{'ratio':>8}")
    for row, libs in samples.items():
        cells = [_ms(libs["layerscope"])]
        for lib in LIBRARIES[1:]:
            ratio = paired_ratio(samples, row, lib)
            cells += [_ms(libs.get(lib)), f"{ratio:7.2f}×" if ratio else f"{'—':>8}"]
        print(f"  {row:<22}{cells[0]:>12}{cells[1]:>18}{cells[2]:>8}{cells[3]:>12}{cells[4]:>8}")


def _ms(values: list[float] | None) -> str:
    if values is None:
        return "—"
    seconds = statistics.median(values)
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def speed(device: torch.device, repeats: int, skip_scorecam: bool) -> Samples:
    torch.manual_seed(0)
    resnet50 = torchvision.models.resnet50().eval().to(device)
    x = torch.rand(1, 3, 224, 224, device=device)
    rows = {METHODS[m][0]: rows_for(resnet50, x, LAYER4_LAST, m) for m in TIMED}
    modules = [resnet50.get_submodule(name) for name in BOTTLENECKS]
    rows[SWEEP_ROW] = {
        "layerscope": lambda: compute_sweep(resnet50, x, BOTTLENECKS, "gradcam", CLASS),
        "pytorch-grad-cam": lambda: pgc_maps(resnet50, x, modules, "gradcam"),
        "torchcam": lambda: torchcam_maps(resnet50, x, BOTTLENECKS, "gradcam"),
    }
    samples = sample_times(rows, repeats, device)
    resnet50.zero_grad(set_to_none=True)  # pytorch-grad-cam's .backward() left parameter gradients behind
    print_speed("Speed: resnet50, 224×224, batch 1, layer4[-1]", samples, repeats)
    if not skip_scorecam:
        resnet18 = torchvision.models.resnet18().eval().to(device)
        slow_repeats = max(1, min(2, repeats))
        slow = sample_times(
            {SCORECAM_ROW: rows_for(resnet18, x, "layer4.1", "scorecam", 64)},
            slow_repeats,
            device,
            warmup=int(device.type == "cuda"),
        )  # cuDNN autotuning
        print_speed("Speed: Score-CAM, resnet18, layer4[-1], batches of 64", slow, slow_repeats)
        samples.update(slow)
    return samples


# ---- agreement ---------------------------------------------------------------------------------------------------


def _scaled(heatmap: object, size: tuple[int, int]) -> Tensor:
    """A map as a float CPU tensor at ``size``, min-max scaled."""
    t = torch.as_tensor(np.asarray(heatmap.detach().cpu() if isinstance(heatmap, Tensor) else heatmap)).float()
    if tuple(t.shape) != size:
        t = F.interpolate(t[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    return (t - t.min()) / (t.max() - t.min()).clamp_min(1e-12)


def pearson(a: object, b: object, size: tuple[int, int]) -> float:
    u, v = (_scaled(m, size).flatten().double() for m in (a, b))
    u, v = u - u.mean(), v - v.mean()
    norm = (u.norm() * v.norm()).item()
    return float("nan") if norm == 0 else (u @ v).item() / norm


def agreement(device: torch.device, skip_scorecam: bool) -> dict[str, dict[str, float]]:
    loaded = load_model("mobilenet_v2", weights="IMAGENET1K_V1", device=str(device))
    model = loaded.model
    x, _ = preprocess(load_image(CHELSEA), loaded.preprocess)
    x = x.to(device)
    with torch.no_grad():
        top = int(model(x).argmax())
    size = (x.shape[-2], x.shape[-1])
    methods = [m for m in METHODS if not (skip_scorecam and m in PERTURBING)]
    print(
        f"\nAgreement: mobilenet_v2 IMAGENET1K_V1, chelsea.png, features[-1], class {CLASS} "
        f"(top-1 is {top}: {loaded.categories[top] if loaded.categories else '?'}); "
        "Pearson r of maps at 224×224, min-max scaled"
    )
    print(f"  {'method':<16}{'vs pytorch-grad-cam':>20}{'vs torchcam':>13}   note")
    found: dict[str, dict[str, float]] = {}
    for method in methods:
        calls = rows_for(model, x, "features.18", method)
        ours = calls["layerscope"]()
        found[method] = {
            lib: pearson(ours, fn()[0], size) for lib, fn in calls.items() if lib != "layerscope" and fn is not None
        }
        cells = [f"{found[method][lib]:+.4f}" if lib in found[method] else "—" for lib in LIBRARIES[1:]]
        print(f"  {METHODS[method][0]:<16}{cells[0]:>20}{cells[1]:>13}   {NOTES.get(method, '')}")
    model.zero_grad(set_to_none=True)
    return found


# ---- summary -----------------------------------------------------------------------------------------------------


def summary(samples: Samples) -> str:
    """One line: geometric mean of the paired ratios over the one-pass single-map rows, the sweep, Score-CAM."""
    single = [METHODS[m][0] for m in TIMED]
    parts = []
    for lib in LIBRARIES[1:]:
        ratios = [r for row in single if (r := paired_ratio(samples, row, lib))]
        mean = math.exp(statistics.fmean(math.log(r) for r in ratios))
        extra = [
            f"{paired_ratio(samples, row, lib):.2f}× on {label}"
            for row, label in ((SWEEP_ROW, "the 16-layer sweep"), (SCORECAM_ROW, "Score-CAM"))
            if row in samples and lib in samples[row]
        ]
        parts.append(
            f"{mean:.2f}× vs {lib} per map (geo-mean of {len(ratios)} rows, "
            f"{min(ratios):.2f}–{max(ratios):.2f}×), " + ", ".join(extra)
        )
    return "Summary: layerscope is " + "; ".join(parts) + " (>1: layerscope faster)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--skip-scorecam",
        action="store_true",
        help="skip the Score-CAM timing and the Score-/Ablation-CAM agreement rows (slow on CPU)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"device {device} · torch {torch.__version__} · {torch.get_num_threads()} CPU threads · "
        f"layerscope {getattr(layerscope, '__version__', '?')} · grad-cam {_version('grad-cam')} · "
        f"torchcam {getattr(torchcam, '__version__', _version('torchcam'))}"
    )
    samples = speed(device, args.repeats, args.skip_scorecam)
    agreement(device, args.skip_scorecam)
    print("\n" + summary(samples))


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    main()
