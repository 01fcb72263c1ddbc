"""``layerscope tree``, ``stats`` and ``api``: the structure commands.

Each one loads through ``load_from_args``, builds the tree once and prints either
Rich output for people or ``--json`` for scripts; the figures come from
``layerscope.tree.nodestats`` so the app shows the same numbers.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import torch
from rich.table import Table
from rich.text import Text

from layerscope.cli.common import add_debug_option, int_between, positive_int, print_json, stdout_console
from layerscope.cost import DTYPES, CostTable, cost_stats, parse_dtype
from layerscope.errors import LayerscopeError
from layerscope.models.loaded import LoadedModel
from layerscope.options import INPUT_HELP, add_input_option, add_model_options, load_from_args
from layerscope.presentation.guides import guided_lines
from layerscope.running.example_inputs import MAX_BATCH, Inputs, parse_inputs
from layerscope.running.probe import ShapeInfo, probe_shapes
from layerscope.tree import ModuleTree, Node, RepeatRun, build_tree
from layerscope.tree.counting import UNINITIALIZED
from layerscope.tree.iteration import iteration_view
from layerscope.tree.nodestats import (
    access_text,
    exact,
    human_bytes,
    human_count,
    human_macs,
    node_stats,
    shown_figures,
    uncounted_text,
)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    tree = _command(sub, "tree", "print the module tree with parameter counts", run_tree)
    tree.add_argument("--depth", type=int_between(0), default=None, help="deepest level to print (root is 0)")
    tree.add_argument("--no-fold", action="store_true", help="print repeated blocks one by one")
    _add_shape_options(tree)
    _add_cost_options(tree)

    stats = _command(sub, "stats", "parameter, buffer and state_dict figures of the model or one layer", run_stats)
    stats.add_argument("--layer", default="", help="dotted name or access expression (model.layer4[-1])")
    _add_shape_options(stats)
    _add_cost_options(stats)

    api = _command(sub, "api", "what modules(), children(), parameters(), state_dict() … yield at a layer", run_api)
    api.add_argument("--layer", default="", help="dotted name or access expression")
    api.add_argument("--first", type=positive_int, default=5, help="entries shown per method")


def _command(sub: argparse._SubParsersAction, name: str, summary: str, func) -> argparse.ArgumentParser:
    """A subcommand with the shared model options, ``--json`` and ``--debug``."""
    parser = sub.add_parser(name, help=summary, description=summary)
    add_model_options(parser, model_required=False)  # MODEL optional in every command: the default model
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_debug_option(parser)
    parser.set_defaults(func=func)
    return parser


def _add_shape_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shapes", action="store_true", help="probe output shapes with one dummy forward pass")
    add_input_option(parser, f"{INPUT_HELP} (default: the weights' own size)", repeatable=True)


def _add_cost_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cost",
        action="store_true",
        help="MACs/FLOPs, activation memory and memory estimates (on meta unless --device or --weights)",
    )
    parser.add_argument(
        "--batch",
        type=int_between(1, MAX_BATCH, " (MACs grow linearly with the batch)"),
        default=1,
        help="batch size of the probe input (default 1)",
    )
    parser.add_argument(
        "--dtype",
        choices=list(DTYPES),
        default=None,
        help="dtype the memory estimates assume (default: the model's own; training: bfloat16)",
    )
    parser.set_defaults(device=None)  # None: meta for --cost alone, else cpu


def _load(args: argparse.Namespace) -> LoadedModel:
    """Cost needs no arithmetic, so with no named weights and no --device it is counted on meta
    (``auto`` asks for cached weights only where they are free, and cost never needs them)."""
    if args.device is None:
        args.device = "meta" if args.cost and (args.weights or "none").lower() in {"none", "auto"} else "cpu"
    return load_from_args(args)


def _probe_input(args: argparse.Namespace, loaded: LoadedModel) -> Inputs:
    return parse_inputs(args.input) if args.input else loaded.input_shape


def _shapes(args: argparse.Namespace, loaded: LoadedModel) -> dict[str, ShapeInfo] | None:
    if not args.shapes and args.input is None:
        return None
    return probe_shapes(loaded.model, _probe_input(args, loaded))


def _shapes_and_cost(
    args: argparse.Namespace, loaded: LoadedModel
) -> tuple[dict[str, ShapeInfo] | None, CostTable | None]:
    """With --cost, the shape probe's one pass counts the cost too."""
    if not args.cost:
        return _shapes(args, loaded), None
    from layerscope.cost import probe_cost  # torch's flop counter is imported only for --cost

    try:
        shapes, table = probe_cost(loaded.model, _probe_input(args, loaded), batch=args.batch)
    except LayerscopeError as exc:
        if loaded.device.type != "meta":
            raise
        raise LayerscopeError(f"{exc} [counted on meta: --device cpu counts it with real arithmetic]") from exc
    return (shapes if args.shapes or args.input else None), table


# --- tree ------------------------------------------------------------------------


def run_tree(args: argparse.Namespace) -> int:
    dtype = parse_dtype(args.dtype)
    loaded = _load(args)
    tree = build_tree(loaded.model)
    shapes, cost = _shapes_and_cost(args, loaded)
    if args.json:
        print_json(tree_json(tree, tree.root, shapes, args.depth, cost))
        return 0
    console = stdout_console()
    console.print(model_header(loaded, tree))
    if cost is not None:
        console.print(cost_header(tree, cost, dtype))
    for line in tree_lines(tree, shapes, args.depth, fold=not args.no_fold, width=console.width, cost=cost):
        console.print(line)
    return 0


def model_header(loaded: LoadedModel, tree: ModuleTree) -> Text:
    root = tree.root
    text = Text()
    text.append(f"{loaded.spec}", style="bold")
    text.append(f"  {tree.model_class}  weights: ")
    if str(loaded.device) == "meta" and not loaded.pretrained:  # counted on meta: no weight was read, none is needed
        text.append("none read (any weights give these figures)")
    else:
        text.append(loaded.weights_label, style="" if loaded.pretrained else "yellow")
    text.append(f"  device: {loaded.device}\n")
    text.append(
        f"{exact(root.total_params)} parameters ({exact(root.trainable_params)} trainable), "
        f"{len(tree)} modules, {exact(root.state_dict_entries)} state_dict entries "
        f"({human_bytes(root.state_dict_bytes)})"
    )
    return text


def cost_header(tree: ModuleTree, cost: CostTable, dtype: torch.dtype | None) -> Text:
    """The model's totals: MACs and FLOPs at the probe's input, and the memory estimates."""
    stats = cost_stats(tree.root, cost, dtype)
    memory = stats["memory"]
    text = Text(
        f"{human_macs(stats['macs'])} ({human_macs(stats['flops'], 'FLOPs')}) per batch of {cost.batch} "
        f"at {cost.inputs}\nmemory: inference {human_bytes(memory['inference_bytes'])} ({memory['dtype']}), "
        f"training {human_bytes(memory['training_bytes'])} (Adam, mixed precision)"
    )
    if cost.uncounted_ops:
        text.append(f"\n⚠ {uncounted_text(cost.uncounted_ops)}", style="yellow")
    return text


def _cost_cell(macs: int | None, cost: CostTable) -> str:
    if macs is None:
        return "  — MACs (not called)"
    return f"  {human_macs(macs)} {cost.share(macs):.1%}"


def tree_lines(
    tree: ModuleTree,
    shapes: dict[str, ShapeInfo] | None,
    depth: int | None,
    *,
    fold: bool,
    width: int,
    cost: CostTable | None = None,
) -> Iterator[Text]:
    """One ``Text`` per node (or folded run), guides included, never wider than ``width``
    (``layerscope.presentation.guides``)."""

    def label(row: tuple[Node, RepeatRun | None]) -> Text:
        node, run = row
        return _label(tree, node, shapes, cost) if run is None else _run_label(tree, run, shapes, cost)

    return guided_lines((tree.root, None), lambda row: _rows(tree, row[0], depth, fold, cost), label, width)


def _rows(
    tree: ModuleTree, node: Node, depth: int | None, fold: bool, cost: CostTable | None = None
) -> list[tuple[tuple[Node, RepeatRun | None], bool]]:
    """The lines under ``node``: each child, or one line per folded run (which shows its first
    member's insides), with "is it the last"."""
    if depth is not None and node.depth >= depth:
        return []
    runs = {run.first: run for whole in tree.repeat_runs(node) for run in _identical(tree, whole, cost)} if fold else {}
    rows: list[tuple[Node, RepeatRun | None]] = []
    skip: set[int] = set()
    for child in tree.children_of(node):
        if child.index not in skip:
            run = runs.get(child.index)
            skip.update(run.members if run else ())
            rows.append((child, run))
    return [((child, run), i == len(rows) - 1) for i, (child, run) in enumerate(rows)]


def _identical(tree: ModuleTree, run: RepeatRun, cost: CostTable | None) -> list[RepeatRun]:
    """A run cut where its members' figures differ (parameters; MACs with ``--cost``): a folded
    line shows one member's insides, so only blocks it stands for exactly fold (four ConvNeXt
    stages of 238K to 15.5M parameters are four lines, not one that hides the largest)."""

    def figures(index: int) -> tuple[int, int | None]:
        known = cost.get(tree.nodes[index].name) if cost is not None else None
        return tree.nodes[index].total_params, known.macs if known else None

    groups: list[list[int]] = []
    for member in run.members:
        if groups and figures(groups[-1][0]) == figures(member):
            groups[-1].append(member)
        else:
            groups.append([member])
    return [RepeatRun(g[0], len(g), run.class_name, tuple(g)) for g in groups if len(g) >= 2]


def _label(tree: ModuleTree, node: Node, shapes: dict[str, ShapeInfo] | None, cost: CostTable | None = None) -> Text:
    text = Text()
    text.append(node.key if node.name else "model", style="bold cyan")
    text.append(f"  {node.class_name}")
    text.append(f"  {human_count(node.total_params)}", style="green")
    if node.uninitialized:
        text.append(f" + {UNINITIALIZED}", style="yellow")
    if cost is not None:
        known = cost.get(node.name)
        text.append(_cost_cell(known.macs if known else None, cost), style="yellow")
    if node.same_as is not None:
        text.append("  same module as ", style="dim")
        text.append(tree.nodes[node.same_as].name, style="dim")
    if shapes is not None and node.name in shapes:
        text.append(f"  → {shapes[node.name].describe()}", style="dim")
    return text


def _run_label(
    tree: ModuleTree, run: RepeatRun, shapes: dict[str, ShapeInfo] | None, cost: CostTable | None = None
) -> Text:
    """A folded run as a whole: its members' parameters (each tensor once) and the shape change
    from the first member's output to the last's; the lines below it are the first member's."""
    members = [tree.nodes[i] for i in run.members]
    first, last = members[0], members[-1]
    text = Text()
    text.append(f"{first.key}…{last.key}", style="bold cyan")
    text.append(f"  {run.class_name}")
    text.append(f" ×{run.length}", style="bold magenta")
    text.append(f"  {human_count(tree.run_params(run.members))}", style="green")
    if cost is not None:
        text.append(_cost_cell(cost.run_macs([m.name for m in members]), cost), style="yellow")
    if shapes is not None and first.name in shapes and last.name in shapes:
        start, end = shapes[first.name].describe(), shapes[last.name].describe()
        text.append(f"  → {start}" if start == end else f"  → {start} ⋯ {end}", style="dim")
    return text


def tree_json(
    tree: ModuleTree, node: Node, shapes: dict[str, ShapeInfo] | None, depth: int | None, cost: CostTable | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": node.name,
        "class": node.class_name,
        "access_expression": node.access,
        "access_expression_negative": node.access_negative,
        "same_module_as": tree.nodes[node.same_as].name if node.same_as is not None else None,
        "total_params": node.total_params,
        "own_params": node.own_params,
    }
    if shapes is not None:
        shape = shapes.get(node.name)
        data["output_shape"] = shape.describe() if shape else None
    if cost is not None:
        known = cost.get(node.name)
        data["macs"] = known.macs if known else None
        data["flops"] = known.flops if known else None
        data["share"] = cost.share(known.macs) if known else None
        data["uncounted_ops"] = known.uncounted_ops if known else {}
    runs = tree.repeat_runs(node)
    if runs:
        data["repeats"] = [
            {"class": r.class_name, "count": r.length, "members": [tree.nodes[i].name for i in r.members]} for r in runs
        ]
    if depth is None or node.depth < depth:
        data["children"] = [tree_json(tree, c, shapes, depth, cost) for c in tree.children_of(node)]
    return data


# --- stats -------------------------------------------------------------------------


def run_stats(args: argparse.Namespace) -> int:
    dtype = parse_dtype(args.dtype)
    loaded = _load(args)
    tree = build_tree(loaded.model)
    node = tree.resolve(args.layer)
    shapes, cost = _shapes_and_cost(args, loaded)
    stats = node_stats(tree, node, shapes)
    if cost is not None:
        stats.update(cost_stats(node, cost, dtype))
    if args.json:
        print_json(stats)
        return 0
    stdout_console().print(stats_table(stats))
    return 0


def stats_table(stats: dict[str, Any]) -> Table:
    """Rows for people, formatted by ``nodestats.format_figure`` as the app's Stats tab does."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, text in shown_figures(stats):
        table.add_row(key.replace("_", " "), text)
    return table


# --- api -----------------------------------------------------------------------------


def run_api(args: argparse.Namespace) -> int:
    loaded = load_from_args(args)
    tree = build_tree(loaded.model)
    node = tree.resolve(args.layer)
    rows = iteration_view(tree.module_of(loaded.model, node), first=args.first)  # ScriptModules lack get_submodule
    if args.json:
        print_json(
            {
                "qualified_name": node.name,
                "access_expression": node.access,
                "methods": [
                    {"method": r.method, "count": r.count, "first": list(r.first), "explanation": r.explanation}
                    for r in rows
                ],
            }
        )
        return 0
    console = stdout_console()
    console.print(Text(f"{access_text(node)}  ({node.class_name})", style="bold"))
    table = Table("method", "count", "first entries", "what it yields")
    for r in rows:
        more = ", …" if r.count > len(r.first) else ""
        table.add_row(r.method, exact(r.count), "\n".join(r.first) + more, r.explanation)
    console.print(table)
    return 0
