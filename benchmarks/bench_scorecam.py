"""Score-CAM: layerscope against pytorch-grad-cam, side by side in one run (prints figures; not a test).

Goal (issue 20): at least 2× faster than pytorch-grad-cam on the CPU, the maps agreeing at
Pearson r ≥ 0.97, on mobilenet_v2 (IMAGENET1K_V1) at ``features.18`` and resnet50 at
``layer4``, on the bundled photos (``chelsea.png``, ``coffee.png``).

What is timed is one map, as a user writes it: ``compute_cam(model, x, layer, "scorecam", k)``
with layerscope's defaults, and pytorch-grad-cam's ``ScoreCAM(model, [layer])`` called with
``ClassifierOutputTarget(k)`` at its default batch of 16 masked copies per forward
(``--pgc-batch`` changes it). Same process, same torch thread count, same photo, same class k
(the model's top-1). The two alternate, the first of each pair switching every repeat, so a
shared machine's drift hits both alike; ratio = median over repeats of the paired
pytorch-grad-cam / layerscope times, wall clock and CPU seconds (``process_time``, the steadier
one on a busy machine). r: Pearson correlation of the two maps at 224×224, min-max scaled.

Where layerscope's time goes away, the maps unchanged (``cam.masks``, ``cam.perturb``): one
forward per distinct mask (every flat mask, such as an all-zero channel's, is the same zero
mask, so they share one); the masked copies run channels-last (oneDNN's faster layout on the
CPU), on a copy of the model whose batch norms are folded into the convolutions before them;
the copies per forward are chosen by measured throughput; on a CPU with AMX, the masked
forwards run in bfloat16 where that measures at least 1.5× faster per copy (``cam.precision``:
the "scores" column says which precision ran; ``--precision float32`` forces float32). The
maps differ from pytorch-grad-cam's by definition (it upsamples the masks with
``align_corners=True``) and, in bfloat16, by rounding.

    python benchmarks/bench_scorecam.py [--threads 2] [--repeats 3] [--models mobilenet_v2,resnet50]
        [--photos chelsea,coffee] [--pgc-batch 16] [--precision auto]

"masked forwards" counts every masked copy layerscope ran, auto's timing passes included (24
copies where it measured). The table is printed as Markdown, with the date, the load average before and after, and the
CPU's bfloat16 support in its heading, ready for docs/project/benchmarks.md.

resnet50 uses the weights in the torch hub cache if any, else random ones (seed 0). On the
2-core machine one mobilenet_v2 pair takes half a minute to two, one resnet50 pair about seven.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import pytorch_grad_cam as pgc
import torch
from bench_compare import _version, pearson  # same directory: the same r as the other comparison
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import Tensor, nn

from layerscope.cam import compute_cam, perturb
from layerscope.cam.precision import PRECISIONS, fast_bfloat16
from layerscope.io import imaging
from layerscope.models import LoadedModel, load_model
from layerscope.running.probe import call_model

LAYERS = {"mobilenet_v2": "features.18", "resnet50": "layer4"}
WEIGHTS = {"mobilenet_v2": "IMAGENET1K_V1", "resnet50": "auto"}


@dataclass
class Case:
    """One model, layer and photo; the times of both libraries, repeat by repeat."""

    model: str
    photo: str
    loaded: LoadedModel
    x: Tensor
    target: int
    wall: dict[str, list[float]] = field(default_factory=lambda: {"layerscope": [], "pytorch-grad-cam": []})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {"layerscope": [], "pytorch-grad-cam": []})
    maps: dict[str, Tensor] = field(default_factory=dict)
    channels: int = 0
    copies: Counter = field(default_factory=Counter)  # batch sizes layerscope's masked forwards ran
    precisions: list[str] = field(default_factory=list)  # what layerscope's masked forwards ran in, per repeat

    @property
    def layer(self) -> str:
        return LAYERS[self.model]


def layerscope_map(case: Case, precision: str) -> Tensor:
    rows: list[int] = []

    def counted(model: nn.Module, x: Tensor) -> object:  # the masked forwards (they run on a folded copy)
        rows.append(x.shape[0])
        return call_model(model, x)

    perturb.call_model = counted
    try:
        result = compute_cam(case.loaded.model, case.x, case.layer, "scorecam", case.target, precision=precision)
    finally:
        perturb.call_model = call_model
    case.copies = Counter(rows)
    case.precisions.append(result.precision)
    return result.heatmap


def pgc_map(case: Case, batch: int) -> Tensor:
    with pgc.ScoreCAM(model=case.loaded.model, target_layers=[case.loaded.model.get_submodule(case.layer)]) as cam:
        cam.batch_size = batch
        with contextlib.redirect_stderr(io.StringIO()), torch.no_grad():  # its tqdm bar
            return torch.from_numpy(cam(input_tensor=case.x, targets=[ClassifierOutputTarget(case.target)])[0])


def timed(case: Case, library: str, fn: Callable[[], Tensor]) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    case.maps[library] = fn()
    case.wall[library].append(time.perf_counter() - wall)
    case.cpu[library].append(time.process_time() - cpu)


def cases(models: list[str], photos: list[str]) -> list[Case]:
    found = []
    for name in models:
        torch.manual_seed(0)
        loaded = load_model(name, weights=WEIGHTS[name])
        for photo in photos:
            x, _ = imaging.preprocess(imaging.load_image(imaging.SAMPLES / f"{photo}.png"), loaded.preprocess)
            shapes: list[torch.Size] = []
            handle = loaded.model.get_submodule(LAYERS[name]).register_forward_hook(
                lambda _m, _args, out, shapes=shapes: shapes.append(out.shape)
            )
            with torch.no_grad():
                target = int(loaded.model(x).argmax())
            handle.remove()
            found.append(Case(name, photo, loaded, x, target, channels=shapes[0][1]))
    return found


def load_average() -> str:
    """The 1-minute load average: how busy the machine was (other jobs skew both libraries)."""
    return f"{os.getloadavg()[0]:.2f}"


def paired(values: dict[str, list[float]]) -> float:
    return statistics.median(o / ours for o, ours in zip(values["pytorch-grad-cam"], values["layerscope"]))


def report(case: Case, pgc_batch: int) -> str:
    ours, theirs = (statistics.median(case.wall[lib]) for lib in ("layerscope", "pytorch-grad-cam"))
    run = sum(n * k for k, n in case.copies.items())
    batch = case.copies.most_common(1)[0][0] if case.copies else 0
    r = pearson(case.maps["layerscope"], case.maps["pytorch-grad-cam"], tuple(case.x.shape[-2:]))
    name = case.loaded.categories[case.target] if case.loaded.categories else str(case.target)
    ran = Counter(case.precisions)
    scores = ", ".join(p if len(ran) == 1 else f"{p} ×{n}" for p, n in ran.most_common())
    return (
        f"| {case.model} `{case.layer}` | {case.photo}.png ({case.target} {name}) | {run:,} of {case.channels:,} "
        f"(batch {batch}) | {scores} | {ours:.1f} s | {theirs:.1f} s (batch {pgc_batch}) | **{paired(case.wall):.2f}×** | "
        f"{paired(case.cpu):.2f}× | {r:.4f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="mobilenet_v2,resnet50")
    parser.add_argument("--photos", default="chelsea,coffee")
    parser.add_argument(
        "--pgc-batch", type=int, default=16, help="pytorch-grad-cam's copies per forward (its default: 16)"
    )
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="layerscope's masked forwards")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = load_average()
    todo = cases(args.models.split(","), args.photos.split(","))
    for repeat in range(args.repeats):
        for case in todo:
            pair = [
                ("layerscope", lambda c=case: layerscope_map(c, args.precision)),
                ("pytorch-grad-cam", lambda c=case: pgc_map(c, args.pgc_batch)),
            ]
            for library, fn in pair[::-1] if repeat % 2 else pair:
                timed(case, library, fn)
            print(
                f"  repeat {repeat + 1}: {case.model} {case.photo}: layerscope {case.wall['layerscope'][-1]:.1f} s "
                f"({case.precisions[-1]}), "
                f"pytorch-grad-cam {case.wall['pytorch-grad-cam'][-1]:.1f} s",
                flush=True,
            )
    print(
        f"\n{date.today()} · CPU{' with AMX bfloat16' if fast_bfloat16(torch.device('cpu')) else ''} · "
        f"torch {torch.__version__} · {args.threads} threads · grad-cam {_version('grad-cam')} · "
        f"medians of {args.repeats} alternating repeats · --precision {args.precision} · "
        f"load average {load_before} before, {load_average()} after"
    )
    print(
        "| model, layer | photo (class) | masked forwards, layerscope | scores | layerscope | pytorch-grad-cam | "
        "ratio, wall | ratio, CPU | r |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for case in todo:
        print(report(case, args.pgc_batch))


if __name__ == "__main__":
    main()
