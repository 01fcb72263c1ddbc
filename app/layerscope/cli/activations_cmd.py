"""``layerscope activations``: what flows through each node, over one photo, a folder or example inputs.

A thin layer over ``layerscope.activations``: it picks the batches (a photo, a folder
streamed ``--batch-size`` at a time, or ``--input`` example tensors), runs the hooked
passes and prints one row per node, or ``--json`` for scripts.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from layerscope.activations import ActivationReport, NodeActivity, image_files, model_activations
from layerscope.cli.cam_cmd import DEFAULT_IMAGE, MAX_BATCH
from layerscope.cli.common import add_debug_option, int_between, print_json, stdout_console
from layerscope.io import imaging
from layerscope.io.files import expand
from layerscope.models.loaded import LoadedModel
from layerscope.options import INPUT_HELP, add_input_option, add_model_options, load_from_args
from layerscope.running.example_inputs import parse_inputs
from layerscope.tree import ModuleTree, build_tree


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "activations",
        help="mean, std, zeros, dead channels, saturation and NaNs of every node's output",
        description="Statistics of every module's output over a photo, a folder of photos (streamed in constant "
        "memory) or example inputs. No MODEL: mobilenet_v2 (its ImageNet weights when cached).",
    )
    add_model_options(parser, model_required=False)
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--image", default=None, help=f"one photo (default: {DEFAULT_IMAGE.name})")
    given.add_argument(
        "--images",
        default=None,
        metavar="DIR",
        help="every photo in a folder and its class folders (as report reads them), a batch at a time",
    )
    add_input_option(given, f"{INPUT_HELP} (random values instead of a photo)", repeatable=True)
    parser.add_argument(
        "--layer", default="", help="only this node and the nodes below it (dotted name or access expression)"
    )
    parser.add_argument(
        "--batch-size",
        type=int_between(1, MAX_BATCH),
        default=32,
        help=f"photos per forward pass with --images (default 32, at most {MAX_BATCH})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_debug_option(parser)
    parser.set_defaults(func=run_activations)


def run_activations(args: argparse.Namespace) -> int:
    specs = parse_inputs(args.input) if args.input else ()  # mistakes fail before the model loads
    files = [] if specs else _files(args)
    loaded = load_from_args(args)
    tree = build_tree(loaded.model)
    names = _selected(tree, args.layer)
    report = _run(loaded, specs, files, names, args.batch_size)
    if args.json:
        print_json(report_json(report, tree, loaded))
    else:
        _print(stdout_console(), report, loaded)
    return 0


def _files(args: argparse.Namespace) -> list:
    if args.images is not None:
        return image_files(args.images)
    path = expand(args.image, "image") if args.image is not None else DEFAULT_IMAGE
    imaging.load_image(path)  # a bad path fails before the model loads
    return [path]


def _selected(tree: ModuleTree, layer: str) -> list[str]:
    node = tree.resolve(layer)
    return [node.name, *(tree.nodes[i].name for i in tree.descendants(node))]


def _run(loaded: LoadedModel, specs: tuple, files: list, names: list[str], batch_size: int) -> ActivationReport:
    """Example inputs or one photo at once; a folder behind a progress bar on stderr (stdout stays
    clean for ``--json``)."""
    if specs or len(files) == 1:
        return model_activations(loaded, inputs=specs, files=files, names=names)
    columns = (TextColumn("activations"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("images", total=len(files))
        return model_activations(
            loaded,
            files=files,
            batch_size=batch_size,
            names=names,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )


def report_json(report: ActivationReport, tree: ModuleTree, loaded: LoadedModel) -> dict[str, Any]:
    """``--json``: the run, then one entry per node that ran (``nodes``)."""
    return {
        "model": loaded.spec,
        "weights": loaded.weights_label,
        "inputs": report.inputs,
        "examples": report.examples,
        "skipped": [{"file": path, "reason": why} for path, why in report.skipped],
        "nodes": [node.as_json(_access(tree, name)) for name, node in report.nodes.items()],
    }


def _access(tree: ModuleTree, name: str) -> str:
    node = tree.get(name)
    return node.access if node is not None else name


def _print(console: Console, report: ActivationReport, loaded: LoadedModel) -> None:
    console.print(f"model   {loaded.spec} ({loaded.weights_label})")
    console.print(f"inputs  {report.inputs} ({report.examples} example{'s' if report.examples != 1 else ''})")
    for path, why in report.skipped:
        console.print(Text(f"skipped {path}: {why}", style="yellow"))
    console.print(activity_table(report))


def activity_table(report: ActivationReport) -> Table:
    """One row per node, narrow enough for 80 columns (shapes and histograms are in ``--json``)."""
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    table.add_column("node", no_wrap=True, style="cyan")
    for header in ("mean", "std", "min", "max", "zeros", "dead", "sat", "NaN/Inf"):
        table.add_column(header, justify="right", no_wrap=True)
    for name, node in report.nodes.items():
        table.add_row(
            name or "model",
            _number(node.mean),
            _number(node.std),
            _number(node.min),
            _number(node.max),
            f"{node.zero_fraction:.1%}",
            _dead(node),
            "—" if node.saturated_fraction is None else f"{node.saturated_fraction:.1%}",
            Text(f"{node.nonfinite:,}", style="bold red") if node.nonfinite else "0",
        )
    return table


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _dead(node: NodeActivity) -> Text | str:
    if not node.channels:
        return "—"
    text = f"{len(node.dead_channels)}/{node.channels}"
    return Text(text, style="yellow") if node.dead_channels else text
