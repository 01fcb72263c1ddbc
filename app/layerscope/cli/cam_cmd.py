"""``layerscope cam`` and ``layerscope sweep``: the Grad-CAM engine from the shell.

Both print what the map explains (top-5 predictions, target, layer) before the
picture, because a heatmap without its class and layer is easy to misread.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from layerscope.cam import METHODS, CamResult, PhotoExplainer, TokenGrid, get_method, top_predictions
from layerscope.cam.attention import HEAD_FUSIONS, RolloutOptions
from layerscope.cam.detection import explained_detections
from layerscope.cam.methods import Method
from layerscope.cam.precision import PRECISIONS, label
from layerscope.cam.scoring import class_index
from layerscope.cli.common import add_debug_option, fraction, int_between, stdout_console
from layerscope.errors import LayerscopeError
from layerscope.io import imaging
from layerscope.io.files import exists, expand, output_path, same_file
from layerscope.models.loaded import LoadedModel
from layerscope.options import add_model_options, load_from_args
from layerscope.parsing import as_int, whole
from layerscope.presentation.pixels import PREVIEW_CHOICES, kitty_escape, preview_mode, sixel_escape
from layerscope.presentation.render import color_depth, heatmap_preview

DEFAULT_IMAGE = imaging.SAMPLES / "chelsea.png"
RANDOM_WEIGHTS_WARNING = "⚠ random weights: this map shows nothing learned"
MAX_WIDTH = 1000  # preview cells; a wider one would allocate gigabytes for nothing a terminal shows
MAX_BATCH = 1024


def add_parsers(sub: argparse._SubParsersAction) -> None:
    cam = sub.add_parser(
        "cam",
        help="class-activation map of one layer, as PNG and terminal preview",
        description="Compute a CAM for one layer. No MODEL: mobilenet_v2 (its ImageNet weights when cached).",
    )
    _common(cam)
    cam.add_argument(
        "--layer", default="auto", help="auto (the usual layer for this model) or a name such as layer4[-1] / layer4.2"
    )
    cam.add_argument("--npy", default=None, metavar="PATH", help="save the map (original image size) as .npy")
    cam.add_argument("--side-by-side", action="store_true", help="PNG shows original | heatmap | overlay")
    cam.set_defaults(func=run_cam)

    sweep = sub.add_parser(
        "sweep",
        help="one map per layer from a single forward and backward pass",
        description="Maps for many layers, one labelled tile each.",
    )
    _common(sweep)
    sweep.add_argument(
        "--layers", default="auto", help="comma-separated names, or auto (the blocks of the suggested layer's family)"
    )
    sweep.set_defaults(func=run_sweep)


def _common(parser: argparse.ArgumentParser) -> None:
    add_model_options(parser, model_required=False)
    parser.add_argument("--image", default=None, help=f"photo to explain (default: {DEFAULT_IMAGE.name})")
    parser.add_argument("--method", default="gradcam", help=f"one of: {', '.join(METHODS)}")
    parser.add_argument(
        "--class",
        dest="target",
        default=None,
        metavar="K|NAME",
        help="class index or name to explain (default: the top prediction)",
    )
    parser.add_argument("--out", default=None, metavar="PNG", help="write the overlay PNG here")
    parser.add_argument(
        "--preview",
        nargs="?",
        const="auto",
        default=None,
        choices=PREVIEW_CHOICES,
        metavar="MODE",
        help="draw the map in the terminal: auto (the default: Kitty graphics or Sixel when the "
        "terminal answers, else half blocks for its colour depth, else ASCII), kitty, sixel, "
        "halfblock or ascii",
    )
    parser.add_argument("--ascii", action="store_true", help="the same as --preview ascii")
    parser.add_argument(
        "--width",
        type=int_between(1, MAX_WIDTH, " cells"),
        default=None,
        help=f"preview width in cells, at most {MAX_WIDTH} (default: fit terminal)",
    )
    parser.add_argument("--alpha", type=fraction, default=0.5, help="weight of the heatmap in the overlay (0-1)")
    parser.add_argument("--colormap", default="jet", choices=sorted(imaging.COLORMAPS), help="heatmap colours")
    parser.add_argument("--grid", default=None, metavar="HxW", help="token grid of a transformer layer")
    parser.add_argument(
        "--prefix-tokens", type=int, default=None, metavar="N", help="class/register tokens before the grid tokens"
    )
    parser.add_argument(
        "--batch-size",
        type=int_between(1, MAX_BATCH),
        default=None,
        help=f"perturbed copies per forward (scorecam, ablationcam), at most {MAX_BATCH} "
        "(default: measured for scorecam on the CPU, else 32)",
    )
    add_precision_option(parser)
    add_rollout_options(parser)
    add_debug_option(parser)


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    """``--precision``, for every command that computes Score-CAM maps."""
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="what scorecam's masked forwards run in: auto (the default: bfloat16 on a CPU with "
        "AMX for at least 256 masks on a model of at least 2 GFLOPs per copy, else float32), "
        "float32 or bfloat16; the map says when its scores were not float32",
    )


def add_rollout_options(parser: argparse.ArgumentParser) -> None:
    """``--head-fusion`` and ``--discard-ratio``: attention rollout's conventions."""
    parser.add_argument(
        "--head-fusion",
        default="mean",
        choices=HEAD_FUSIONS,
        help="rollout: how each block's heads are fused (default mean, as Abnar & Zuidema)",
    )
    parser.add_argument(
        "--discard-ratio",
        type=fraction,
        default=0.0,
        metavar="R",
        help="rollout: per row, the fraction R (0 ≤ R < 1) of the smallest attentions to other "
        "tokens set to zero before the identity is added (default 0)",
    )


class CamJob:
    """One ``cam``, ``sweep`` or ``rank`` command's work: the photo explained (``PhotoExplainer``)
    from the parsed arguments, and how its results are printed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.method = get_method(args.method)  # fail on a typo before loading anything
        self.rollout = RolloutOptions(getattr(args, "head_fusion", "mean"), getattr(args, "discard_ratio", 0.0))
        self.image_path = expand(args.image, "image") if args.image is not None else DEFAULT_IMAGE
        _check_outputs(args, self.image_path)
        image = imaging.load_image(self.image_path)  # a bad path fails before the model loads
        self.loaded: LoadedModel = load_from_args(args)
        _check_outputs(args, self.image_path, self.loaded.files)  # a folder's, a cache's, a factory's files
        self.explainer = PhotoExplainer(self.loaded, image, reshape=token_grid(args.grid, args.prefix_tokens))
        self.image, self.mask = self.explainer.image, self.explainer.mask
        self.console = stdout_console()

    def maps(self, layers: list[str], method: Method | None = None) -> list[CamResult]:
        """The maps of ``layers`` from one pass (of ``method``, else the command's);
        Score-CAM and Ablation-CAM behind a progress bar."""
        target = _parse_target(self.args.target)
        method = method or self.method
        if not method.perturbs:
            return self.explainer.maps(layers, method.name, target, rollout=self.rollout)
        label = layers[0] if len(layers) == 1 else f"{len(layers)} layers"
        columns = (TextColumn(f"{method.name} {label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("cam", total=None)
            return self.explainer.maps(
                layers,
                method.name,
                target,
                batch_size=self.args.batch_size,
                precision=self.args.precision,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )

    def wrote(self, path: Path) -> None:
        """A written file's name on one line, never wrapped and never read as markup (``[x].png``),
        so it can be copied as printed."""
        self.console.print(f"wrote   {path}", soft_wrap=True, markup=False)

    def print_header(self, result: CamResult) -> None:
        loaded = self.loaded
        self.console.print(f"model   {loaded.spec} ({loaded.weights_label})")
        if not loaded.pretrained:
            self.console.print(f"[bold yellow]{RANDOM_WEIGHTS_WARNING}[/]")
        self.console.print(f"image   {self.image_path} ({self.image.width}×{self.image.height})")
        if self.explainer.detection:
            self._print_detections(result.scores)
        elif isinstance(result.scores, torch.Tensor) and result.scores.dim() == 2:
            self._print_top5(result.scores)
        if result.target is not None:
            name = f" {result.target_name}" if result.target_name else ""
            self.console.print(f"target  {result.target}{name}")
        elif self.method.class_blind:
            self.console.print(f"target  none: {result.method} uses no class (the map is the same for every class)")

    def _print_top5(self, scores: torch.Tensor) -> None:
        table = Table(
            "rank", "class", "name", "logit", "probability", title="top-5 predictions (by logit)", title_justify="left"
        )
        for rank, p in enumerate(top_predictions(scores, self.loaded.categories), 1):
            table.add_row(str(rank), str(p.index), p.name or "-", f"{p.logit:.3f}", f"{p.probability:.3f}")
        self.console.print(table)

    def _print_detections(self, output: object) -> None:
        found, target = explained_detections(output, self.target_label(), self.loaded.categories)
        table = Table(
            "rank", "label", "score", "box (x1, y1, x2, y2)", "", title="top detections", title_justify="left"
        )
        for d in found:
            table.add_row(
                str(d.rank),
                d.title,
                f"{d.score:.3f}",
                ", ".join(f"{v:.0f}" for v in d.box),
                "◎ target (boxed)" if d == target else "",
            )
        self.console.print(table if found else "no detections")

    def target_label(self) -> int | None:
        """The class whose best box a detector's map explains (``--class``), None: the best box."""
        target = _parse_target(self.args.target)
        return None if target is None else class_index(target, self.loaded.categories)

    def target_box(self, result: CamResult) -> tuple[float, float, float, float] | None:
        """A detector's target box in the photo's pixels (the detector saw the whole photo)."""
        if not self.explainer.detection or result.target is None:  # eigencam explains no box
            return None
        _, target = explained_detections(result.scores, self.target_label())
        return None if target is None else target.box

    def print_precision(self, result: CamResult) -> None:
        """A line saying what scored the maps, when it was not float32."""
        if label(result.precision):
            self.console.print(f"scores  {result.precision} (the masked forwards; --precision float32 for float32)")

    def print_flat(self, result: CamResult) -> None:
        self.console.print(
            f"[yellow]the {result.method} map at {result.layer} is all zero: nothing in this layer raises the "
            f"target score (common with random weights); try another layer, method or --class[/yellow]"
        )

    def preview(self, heatmap: torch.Tensor, box: tuple[float, float, float, float] | None = None) -> None:
        args = self.args
        asked = args.preview is not None or args.ascii
        if not asked and (args.out is not None or getattr(args, "npy", None) is not None):
            return  # files asked for, no preview
        mode = preview_mode(
            "ascii" if args.ascii or os.environ.get("NO_COLOR") else args.preview or "auto", self.console
        )
        width = args.width or max(16, min(self.console.width - 2, 80))
        if mode in ("kitty", "sixel"):
            self._pixels(mode, heatmap, box, width)
            return
        plain = mode == "ascii"
        self.console.print(
            heatmap_preview(
                heatmap,
                width,
                image=None if plain else self.image,
                colormap=args.colormap,
                alpha=args.alpha,
                ascii=plain or None,
                mask=self.mask,
                box=box,
                colors="truecolor" if not plain and color_depth(self.console) == "ascii" else None,
            )
        )

    def _pixels(self, mode: str, heatmap: torch.Tensor, box, width: int) -> None:
        """The overlay at the photo's own resolution, drawn by the terminal over ``width`` cells."""
        picture = imaging.overlay(self.image, heatmap, self.args.colormap, self.args.alpha, self.mask)
        if box is not None:
            picture = imaging.draw_box(picture, box)
        if mode == "sixel":
            self.console.file.write(sixel_escape(picture, width))
            self.console.file.flush()
            return
        rows = max(1, round(width * picture.height / picture.width / 2))
        self.console.file.write(kitty_escape(picture, width, rows) + "\n")  # the cursor ends on the last row
        self.console.file.flush()


def run_cam(args: argparse.Namespace) -> int:
    job = CamJob(args)
    [result] = job.maps([args.layer])
    job.print_header(result)
    node = job.explainer.tree.get(result.layer)
    access = f" ({node.access_negative or node.access})" if node is not None else ""
    job.console.print(f"layer   {result.layer}{access}: {result.layout}")
    scored = label(result.precision) or (_rollout_label(job.rollout) if result.method == "rollout" else "")
    job.console.print(f"method  {result.method}{f' ({scored})' if scored else ''}")
    box = job.target_box(result)
    if result.all_zero:
        job.print_flat(result)
    if args.out:
        draw = job.explainer.side_by_side if args.side_by_side else job.explainer.overlay
        picture = draw(result, args.colormap, args.alpha)
        if box is not None:  # on the overlay: the last panel of a side-by-side picture
            shift = picture.width - job.image.width
            picture = imaging.draw_box(picture, (box[0] + shift, box[1], box[2] + shift, box[3]))
        job.wrote(imaging.save_png(picture, args.out))
    if args.npy:
        job.wrote(imaging.save_npy(result.on_photo, args.npy))
    if not result.all_zero:
        job.preview(result.on_photo, box)
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    job = CamJob(args)
    explainer = job.explainer
    layers = (
        explainer.layer_family() if args.layers == "auto" else [p.strip() for p in args.layers.split(",") if p.strip()]
    )
    if not layers:  # --layers '' or ',,,'
        raise LayerscopeError(f"--layers {args.layers!r} names no layer; give comma-separated names, or auto")
    results = job.maps(layers)
    job.print_header(results[0])
    tiles = []
    for result in results:
        flag = "  (all zero)" if result.all_zero else ""
        job.console.print(f"layer   {result.layer}: {result.layout}{flag}")
        tiles.append(
            (
                f"{result.layer}{' (zero)' if result.all_zero else ''}",
                explainer.overlay(result, args.colormap, args.alpha),
            )
        )
    job.print_precision(results[-1])
    if args.out:
        job.wrote(imaging.save_png(imaging.labelled_grid(tiles), args.out))
    else:
        job.console.print("no --out given: nothing written (the sweep's picture is a PNG grid)")
    return 0


def _check_outputs(args: argparse.Namespace, image: Path, read: tuple[Path, ...] = ()) -> None:
    """Before any work, and again once the model says which files it ``read``: no output may
    be empty, a device, or one of the inputs."""
    inputs = [image, *read, *(Path(p) for p in (args.model, args.weights, args.arch) if p and exists(Path(p)))]
    out = output_path(args.out, inputs, "--out") if args.out is not None else None
    npy = getattr(args, "npy", None)
    if npy is not None:
        output_path(npy, inputs, "--npy")
        written = output_path(str(imaging.npy_path(npy)), inputs, "--npy")
        if out is not None and same_file(out, written):
            raise LayerscopeError(f"--out and --npy both name {out}; give them different names")


def _parse_target(raw: str | None) -> int | str | None:
    if raw is None:
        return None
    number = as_int(raw, "--class")
    return raw if number is None else number


def token_grid(grid: str | None, prefix: int | None) -> TokenGrid | None:
    """``--grid HxW`` and ``--prefix-tokens N`` as a ``TokenGrid`` (None: infer the layout), checked."""
    if grid is None and prefix is None:
        return None
    size = None
    if grid is not None:
        match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", grid)
        if not match:
            raise LayerscopeError(f"--grid expects HxW such as 14x14, got {grid!r}")
        size = (whole(match[1], "--grid side"), whole(match[2], "--grid side"))
        if not 1 <= min(size) <= max(size) <= 4096:
            raise LayerscopeError(f"--grid sides must be between 1 and 4096 tokens, got {grid!r}")
    if prefix is not None and prefix < 0:
        raise LayerscopeError(f"--prefix-tokens must be 0 or more, got {prefix}")
    return TokenGrid(grid=size, prefix_tokens=prefix)


def _rollout_label(options: RolloutOptions) -> str:
    """Rollout's conventions when they are not the paper's defaults."""
    parts = [f"heads fused by {options.head_fusion}"] if options.head_fusion != "mean" else []
    parts += [f"{options.discard_ratio:.0%} smallest discarded"] if options.discard_ratio else []
    return ", ".join(parts)
