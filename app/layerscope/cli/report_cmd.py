"""``layerscope report``: a folder of images explained, layer by layer, with evidence.

A thin adapter over ``layerscope.folder_report.FolderReport``: options in, a progress
bar (images/s and ETA on a terminal, plain lines when piped) while it runs, the layer
ranking and the page's path at the end. Ctrl-C keeps every finished batch; the same
command continues from there.
"""

from __future__ import annotations

import argparse
import sys
import time

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from layerscope.cam import METHODS
from layerscope.cli import cam_cmd, rank_cmd
from layerscope.cli.common import add_debug_option, fraction, int_between, stdout_console
from layerscope.folder_report import FolderReport, ModelArgs, ReportRequest, claims
from layerscope.folder_report.runner import STEPS
from layerscope.io import imaging
from layerscope.models import parse_kwargs
from layerscope.options import DEFAULT_MODEL, add_model_options

MAX_BATCH = 1024


def add_parser(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser(
        "report",
        help="explain a folder of images: every layer's maps scored, a summary and an HTML page",
        description="Explain every image of a folder (class folders give labels) at each layer, score the maps as "
        "rank does, and write records.jsonl, summary.json, overlays and index.html into OUTDIR. "
        "Run the same command again to continue an interrupted report. No MODEL: mobilenet_v2.",
    )
    add_model_options(report, model_required=False)
    report.add_argument(
        "--images",
        required=True,
        metavar="DIR",
        help="folder of images, searched recursively; class folders (285/, espresso/) are labels",
    )
    report.add_argument(
        "--out",
        required=True,
        metavar="OUTDIR",
        help="report folder (new, empty, or this command's earlier report to continue)",
    )
    report.add_argument(
        "--layers",
        default="auto",
        help="auto (default: the suggested layer and its 4 nearest neighbours in its family), "
        "auto-all (the whole family, at most 16: about 3× the time), or comma-separated names",
    )
    report.add_argument(
        "--method",
        default="gradcam",
        help=f"one of: {', '.join(METHODS)}; or a comma list, or all (every method that applies "
        "to the model), to summarise method × layer pairs by the same evidence",
    )
    report.add_argument(
        "--class",
        dest="target",
        default="predicted",
        metavar="predicted|label|K",
        help="explain the top prediction (default), the folder's label, or one class for all",
    )
    report.add_argument(
        "--steps",
        type=int_between(1, rank_cmd.MAX_STEPS),
        default=STEPS,
        help=f"deletion/insertion steps (default {STEPS}: ranks layers as 20 does at half the "
        f"passes; at most {rank_cmd.MAX_STEPS})",
    )
    report.add_argument(
        "--batch-size",
        type=int_between(1, MAX_BATCH),
        default=None,
        help="images per forward and backward pass (default: 1 on the CPU, where each image is "
        "kept as it finishes; 16 on a GPU)",
    )
    report.add_argument(
        "--perturb-batch",
        type=int_between(1, cam_cmd.MAX_BATCH),
        default=None,
        metavar="N",
        help=f"perturbed copies per forward when scoring, at most {cam_cmd.MAX_BATCH} (default: 4 on "
        "the CPU, where larger batches only overflow the caches; 64 on a GPU)",
    )
    report.add_argument(
        "--limit",
        type=int_between(1),
        default=None,
        metavar="N",
        help="at most N files, spread evenly over the folder (a quick look at every class)",
    )
    report.add_argument(
        "--engine",
        default="local",
        choices=("local", "ray"),
        help="local (default) or ray: Ray Data, on RAY_ADDRESS's cluster or a local instance",
    )
    report.add_argument(
        "--workers",
        type=int_between(0, 64),
        default=2,
        help="decoding processes (local; 0: decode in this one) or model actors (ray); default 2",
    )
    report.add_argument(
        "--sanity-images",
        type=int_between(0, 100),
        default=4,
        metavar="N",
        help="images for the randomisation sanity check (default 4, 0: skip it)",
    )
    report.add_argument("--alpha", type=fraction, default=0.5, help="weight of the heatmap in the overlays (0-1)")
    report.add_argument("--colormap", default="jet", choices=sorted(imaging.COLORMAPS), help="heatmap colours")
    report.add_argument("--grid", default=None, metavar="HxW", help="token grid of a transformer layer")
    report.add_argument(
        "--prefix-tokens", type=int, default=None, metavar="N", help="class/register tokens before the grid tokens"
    )
    add_debug_option(report)
    report.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    model = ModelArgs(
        spec=DEFAULT_MODEL if args.model is None else args.model,
        weights=args.weights,
        device=args.device,
        arch=args.arch,
        kwargs=parse_kwargs(args.arg),
        trust=args.trust,
    )
    request = ReportRequest(
        images=args.images,
        out=args.out,
        model=model,
        layers=args.layers,
        method=args.method,
        target=args.target,
        steps=args.steps,
        batch_size=args.batch_size,
        perturb_batch=args.perturb_batch,
        limit=args.limit,
        workers=args.workers,
        engine=args.engine,
        sanity_images=args.sanity_images,
        colormap=args.colormap,
        alpha=args.alpha,
        reshape=cam_cmd.token_grid(args.grid, args.prefix_tokens),
    )
    report = FolderReport(request)
    console = stdout_console()
    _print_plan(console, report, args.images)
    meter = ProgressMeter(Console(stderr=True))
    try:
        with meter:
            summary = report.run(meter.update, meter.within)
    except KeyboardInterrupt:
        if report.finished > meter.done:  # a batch landed just before Ctrl-C: say so, as its line would have
            meter.update(report.finished, report.total)
        print(
            f"layerscope: interrupted: {report.finished or meter.done} of {report.total} files done and kept; run the same command "
            "again to continue",
            file=sys.stderr,
        )
        return 130
    print_summary(console, summary)
    console.print(f"wrote   {report.page_path}", soft_wrap=True, markup=False)
    return 0


def _print_plan(console: Console, report: FolderReport, images: str) -> None:
    """What is about to run, before the first batch: the model, the folder (as typed), the layers."""
    loaded, folder, s = report.loaded, report.folder, report.settings
    console.print(f"model   {loaded.spec} ({loaded.weights_label})", markup=False)
    if not loaded.pretrained:
        console.print(f"[bold yellow]{cam_cmd.RANDOM_WEIGHTS_WARNING}[/]")
    labels = "labels from class folders" if folder.labelled else folder.note or "no labels"
    console.print(f"images  {images}: {report.total} files, {labels}", soft_wrap=True, markup=False)
    console.print(f"layers  {', '.join(s.layers)}", soft_wrap=True, markup=False)
    console.print(f"method  {s.method}, class: {s.target}, {s.steps} steps", markup=False)
    if report.pending:
        console.print(f"work    {report.work()}", soft_wrap=True, markup=False)
    for note in report.notes:
        console.print(f"note    {note}", soft_wrap=True, markup=False)
    if report.done:
        console.print(f"resume  {report.done} of {report.total} files already done", markup=False)


class ProgressMeter:
    """Images per second and the time left: a bar on a terminal, one line per batch when piped;
    after the first batch, one line with the estimate it gives; inside a long batch, the maps
    scored (on the bar, or a line every ``QUIET`` seconds when piped)."""

    QUIET = 10.0

    def __init__(self, console: Console) -> None:
        self.console, self.done, self.total = console, 0, 0
        self._first: int | None = None
        self._start = self._said = time.monotonic()
        self._bar: Progress | None = None
        self._task = None

    def __enter__(self) -> ProgressMeter:
        if self.console.is_terminal:
            self._bar = Progress(
                TextColumn("report"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[maps]}"),
                console=self.console,
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("report", total=None, rate="", maps="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def update(self, done: int, total: int) -> None:
        if self._first is None:
            self._first, self._start, self.done = done, time.monotonic(), done
        first_batch = self.done == self._first and done > self._first
        self.done, self.total = done, total
        rate = self.rate_text()
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, rate=rate, maps="")
        elif done > self._first or done == total:
            self.console.print(f"report  {done}/{total} files  {rate}", markup=False, highlight=False)
        if first_batch and done < total:
            self.console.print(f"estimate {self.estimate_text()}", markup=False, highlight=False)

    def within(self, maps: int, total: int) -> None:
        """The batch in flight: ``maps 7/20`` on the bar; piped, a line at most every ``QUIET`` s."""
        text = f"maps {maps}/{total} in this batch"
        if self._bar is not None:
            self._bar.update(self._task, maps=text)
        elif time.monotonic() - self._said >= self.QUIET and maps < total:
            self._said = time.monotonic()
            self.console.print(f"batch   {text} ({self.done}/{self.total} files done)", markup=False, highlight=False)

    def estimate_text(self) -> str:
        """``about 1 min 5 s for the other 11 files (the first 1 took 5.9 s)``: the measured first batch."""
        elapsed, fresh = time.monotonic() - self._start, self.done - (self._first or 0)
        left = self.total - self.done
        return (
            f"about {_duration(elapsed / fresh * left)} for the other {left} files (the first {fresh} took "
            f"{elapsed:.1f} s)"
        )

    def rate_text(self) -> str:
        """``3.2 images/s, ETA 1 min 5 s`` from this run's own pace (a resumed run's earlier files excluded)."""
        elapsed = time.monotonic() - self._start
        fresh = self.done - (self._first or 0)
        if fresh <= 0 or elapsed <= 0:
            return ""
        rate = fresh / elapsed
        return f"{rate:.1f} images/s, ETA {_duration((self.total - self.done) / rate)}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def print_summary(console: Console, summary: dict) -> None:
    """The layer ranking over the folder, what the paired evidence supports, then accuracy, the
    single-photo note and the sanity verdict."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in ("#", "layer", "ins−del", "95% CI", "n", "drop", "ρ", "best on", ""):
        table.add_column(header, no_wrap=True, justify="left" if header in ("layer", "") else "right")
    for place, row in enumerate(summary["layers"], 1):
        ci = row["ci95"]
        mean, rho, drop = row["mean_insertion_minus_deletion"], row["sanity_rho"], row["mean_average_drop"]
        table.add_row(
            str(place),
            row.get("method", "") + "@" * ("method" in row) + row["access_expression"].removeprefix("model."),
            "-" if mean is None else f"{mean:+.3f}",
            "-" if ci is None else f"{ci[0]:+.3f} to {ci[1]:+.3f}",
            str(row["n"]),
            "-" if drop is None else f"{drop:.3f}",
            "-" if rho is None else f"{rho:+.2f}",
            str(row["best_on_images"]),
            claims.note(summary, row["layer"]),
        )
    counts = summary["counts"]
    console.print(
        f"images  {counts['images']} explained, {counts['skipped']} skipped"
        + "".join(f", {n} {reason}" for reason, n in counts["skipped_by_reason"].items()),
        markup=False,
        soft_wrap=True,
    )
    console.print(table)
    console.print(f"claim   {summary['claim']}", soft_wrap=True, markup=False)
    if summary["not_eligible"]:
        console.print(f"excluded {claims.excluded_line(summary['not_eligible'])}", soft_wrap=True, markup=False)
    if summary["accuracy"] is not None:
        console.print(f"accuracy {summary['accuracy']:.1%} ({counts['correct']} of {counts['labelled']})", markup=False)
    console.print(f"photos  {summary['single_image']['note']}", soft_wrap=True, markup=False)
    console.print(f"sanity  {summary['sanity']['verdict']}", soft_wrap=True, markup=False)
