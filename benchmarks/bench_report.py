"""What ``layerscope report`` costs against the plain forwards its metrics need (not a timed test).

The floor: per image and layer, deletion and insertion at ``steps`` steps need
2·(steps − 1) perturbed images and confidence change one more; per image, the photo and
the blank: L·(2·steps − 1) + 2 forwards, here run one image at a time under ``no_grad``
(what a loop over ``rank`` would do without its maps). The report: the whole local engine
on a folder of crops and flips of the two sample photos — decoding (in this process by
default, so that its CPU time is counted),
one forward and backward per batch for every layer, the perturbed forwards batched across
images, overlays and thumbnails as PNG, records written — without the sanity check (a
fixed cost of a few images, not per image). Goal: ratio ≤ 1×. Both CPU and wall-clock
seconds are printed; on a shared machine the CPU seconds are the steadier figure.

    python benchmarks/bench_report.py [--device cuda] [--images 8] [--steps 20] [--threads N] [--repeats 2]

``--defaults``: the other question, how long the default command takes (issue 32's goal: 12
photos in under 2 minutes on the 2-core development CPU when it is quiet): ``FolderReport``
with every default (layers ``auto``, its steps, the sanity check, decoding workers), timed
from opening to the page, with the load average before and after (the machine is shared).

    python benchmarks/bench_report.py --defaults [--images 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageOps

from layerscope.folder_report import FolderReport, ModelArgs, ReportRequest
from layerscope.io import imaging

MODELS = (  # spec, weights, layers: the suggested layer and the two before it
    ("mobilenet_v2", "IMAGENET1K_V1", "features.16,features.17,features.18"),
    ("resnet50", "none", "layer4.0,layer4.1,layer4.2"),  # random weights: the cost is the same
)


def make_folder(root: Path, count: int) -> Path:
    """``count`` images: the two sample photos, cropped and flipped in turn, in two class folders."""
    photos = {
        "285": Image.open(imaging.SAMPLES / "chelsea.png").convert("RGB"),
        "967": Image.open(imaging.SAMPLES / "coffee.png").convert("RGB"),
    }
    for i in range(count):
        label = ("285", "967")[i % 2]
        photo = photos[label]
        w, h = photo.size
        inset = (i // 2) % 8 * 6
        picture = photo.crop((inset, inset, w - inset, h - inset))
        if (i // 2) % 2:
            picture = ImageOps.mirror(picture)
        (root / label).mkdir(parents=True, exist_ok=True)
        picture.save(root / label / f"{i:04d}.png")
    return root


def plain_forwards(report: FolderReport, steps: int) -> tuple[Timing, int]:
    """The forwards the metrics need, one image at a time: their timing and their count."""
    loaded = report.loaded
    per_image = len(report.settings.layers) * (2 * steps - 1) + 2
    inputs = [
        imaging.preprocess(imaging.load_image(f.path), loaded.preprocess)[0].to(loaded.device)
        for f in report.folder.files
    ]
    with torch.no_grad():
        loaded.model(inputs[0])  # warm-up
        with Timing(loaded.device) as timing:
            for x in inputs:
                for _ in range(per_image):
                    loaded.model(x)
    return timing, per_image * len(inputs)


def timed_report(request: ReportRequest) -> tuple[FolderReport, Timing]:
    report = FolderReport(request)
    with Timing(report.loaded.device) as timing:
        report.run()
    return report, timing


class Timing:
    """Wall-clock and CPU seconds of a block. On a shared machine the CPU time is the steadier
    measure: other processes stretch the wall clock, not this process's CPU seconds."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.wall, self.cpu = device, 0.0, 0.0

    def __enter__(self) -> Timing:
        _sync(self.device)
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        _sync(self.device)
        self.wall, self.cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def defaults(images: int) -> None:
    """The default command on ``images`` photos, as a user runs it: wall and CPU seconds."""
    with tempfile.TemporaryDirectory() as temp:
        folder = make_folder(Path(temp) / "images", images)
        load = os.getloadavg()[0]
        with Timing(torch.device("cpu")) as timing:
            report = FolderReport(ReportRequest(images=folder, out=Path(temp) / "out"))
            print(f"{report.work()}; layers {', '.join(report.settings.layers)}", flush=True)
            report.run()
        print(
            f"default report of {images} photos: {timing.wall:.1f} s wall, {timing.cpu:.1f} s CPU "
            f"({torch.get_num_threads()} threads; load average {load:.1f} before, {os.getloadavg()[0]:.1f} after; "
            "goal < 120 s wall when quiet)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="decoding processes (0: in this one, so the CPU time counts the decoding too)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; medians are compared")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--models", default=",".join(spec for spec, _, _ in MODELS))
    parser.add_argument("--defaults", action="store_true", help="time the default command instead (12 photos)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.defaults:
        return defaults(12 if args.images == 8 else args.images)
    with tempfile.TemporaryDirectory() as temp:
        folder = make_folder(Path(temp) / "images", args.images)
        print(
            f"{args.images} images, {args.steps} steps, 3 layers, batch {args.batch_size}, {args.workers} decoding "
            f"workers, on {args.device} ({torch.get_num_threads()} threads); medians of {args.repeats} alternating runs"
        )
        for spec, weights, layers in MODELS:
            if spec not in args.models.split(","):
                continue
            reports, floors = [], []
            for repeat in range(args.repeats):
                request = ReportRequest(
                    images=folder,
                    out=Path(temp) / f"out-{spec}-{repeat}",
                    layers=layers,
                    steps=args.steps,
                    batch_size=args.batch_size,
                    workers=args.workers,
                    sanity_images=0,
                    model=ModelArgs(spec, weights=weights, device=args.device),
                )
                report, timing = timed_report(request)
                floor, forwards = plain_forwards(report, args.steps)
                reports.append(timing)
                floors.append(floor)
            print(
                f"{spec} ({forwards} plain forwards; the report scores {report.settings.perturb_batch} perturbed "
                f"copies per forward)",
                flush=True,
            )
            for clock in ("cpu", "wall"):
                seconds = statistics.median(getattr(t, clock) for t in reports)
                floor = statistics.median(getattr(t, clock) for t in floors)
                print(
                    f"  {clock:<4} report {seconds:7.1f} s = {args.images / seconds:6.2f} images/s | plain forwards "
                    f"one image at a time {floor:7.1f} s = {args.images / floor:6.2f} images/s | "
                    f"ratio {seconds / floor:.2f}× (goal ≤ 1×)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
