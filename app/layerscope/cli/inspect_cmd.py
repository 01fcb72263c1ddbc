"""``layerscope tree``, ``stats`` and ``api``: the structure commands.

Each one loads through ``load_from_args``, builds the tree once and prints either
Rich output for people or ``--json`` for scripts; the figures come from
``layerscope.report`` so the app shows the same numbers.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table
from rich.text import Text
from rich.tree import Tree as RichTree

from layerscope.cli.common import (
    add_debug_option, add_model_options, load_from_args, positive_int, print_json, stdout_console,
)
from layerscope.iteration import iteration_view
from layerscope.loading import LoadedModel
from layerscope.probe import ShapeInfo, parse_input_spec, probe_shapes
from layerscope.report import access_text, exact, human_bytes, human_count, node_stats, shown_figures
from layerscope.tree import ModuleTree, Node, build_tree


def add_parsers(sub: argparse._SubParsersAction) -> None:
    tree = _command(sub, "tree", "print the module tree with parameter counts", run_tree)
    tree.add_argument("--depth", type=int, default=None, help="deepest level to print (root is 0)")
    tree.add_argument("--no-fold", action="store_true", help="print repeated blocks one by one")
    _add_shape_options(tree)

    stats = _command(sub, "stats", "parameter, buffer and state_dict figures of the model or one layer", run_stats)
    stats.add_argument("--layer", default="", help="dotted name or access expression (model.layer4[-1])")
    _add_shape_options(stats)

    api = _command(sub, "api", "what modules(), children(), parameters(), state_dict() … yield at a layer", run_api)
    api.add_argument("--layer", default="", help="dotted name or access expression")
    api.add_argument("--first", type=positive_int, default=5, help="entries shown per method")


def _command(sub: argparse._SubParsersAction, name: str, summary: str, func) -> argparse.ArgumentParser:
    """A subcommand with the shared model options, ``--json`` and ``--debug``."""
    parser = sub.add_parser(name, help=summary, description=summary)
    add_model_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_debug_option(parser)
    parser.set_defaults(func=func)
    return parser


def _add_shape_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shapes", action="store_true", help="probe output shapes with one dummy forward pass")
    parser.add_argument("--input", default=None, metavar="CxHxW",
                        help="probe input, e.g. 3x224x224 or 128:long (default: the weights' own size)")


def _shapes(args: argparse.Namespace, loaded: LoadedModel) -> dict[str, ShapeInfo] | None:
    if not args.shapes and args.input is None:
        return None
    shape, dtype = parse_input_spec(args.input) if args.input else (loaded.input_shape, None)
    return probe_shapes(loaded.model, shape, dtype) if dtype else probe_shapes(loaded.model, shape)


# --- tree ------------------------------------------------------------------------


def run_tree(args: argparse.Namespace) -> int:
    loaded = load_from_args(args)
    tree = build_tree(loaded.model)
    shapes = _shapes(args, loaded)
    if args.json:
        print_json(_tree_json(tree, tree.root, shapes, args.depth))
        return 0
    console = stdout_console()
    console.print(_header(loaded, tree))
    rich_tree = RichTree(_label(tree.root, shapes))
    _add_children(rich_tree, tree, tree.root, shapes, args.depth, fold=not args.no_fold)
    console.print(rich_tree)
    return 0


def _header(loaded: LoadedModel, tree: ModuleTree) -> Text:
    root = tree.root
    text = Text()
    text.append(f"{loaded.spec}", style="bold")
    text.append(f"  {tree.model_class}  weights: ")
    text.append(loaded.weights_label, style="" if loaded.pretrained else "yellow")
    text.append(f"  device: {loaded.device}\n")
    text.append(f"{exact(root.total_params)} parameters ({exact(root.trainable_params)} trainable), "
                f"{len(tree)} modules, {exact(root.state_dict_entries)} state_dict entries "
                f"({human_bytes(root.state_dict_bytes)})")
    return text


def _label(node: Node, shapes: dict[str, ShapeInfo] | None, repeat: int = 1) -> Text:
    text = Text()
    text.append(node.key if node.name else "model", style="bold cyan")
    text.append(f"  {node.class_name}")
    if repeat > 1:
        text.append(f" ×{repeat}", style="bold magenta")
    text.append(f"  {human_count(node.total_params)}", style="green")
    if shapes is not None and node.name in shapes:
        text.append(f"  → {shapes[node.name].describe()}", style="dim")
    return text


def _add_children(
    branch: RichTree, tree: ModuleTree, node: Node, shapes: dict[str, ShapeInfo] | None,
    depth: int | None, *, fold: bool,
) -> None:
    if depth is not None and node.depth >= depth:
        return
    runs = {run.first: run for run in tree.repeat_runs(node)} if fold else {}
    skip: set[int] = set()
    for child in tree.children_of(node):
        if child.index in skip:
            continue
        run = runs.get(child.index)
        if run is None:
            _add_children(branch.add(_label(child, shapes)), tree, child, shapes, depth, fold=fold)
            continue
        skip.update(run.members)
        folded = branch.add(_run_label(tree, run, shapes))
        _add_children(folded, tree, child, shapes, depth, fold=fold)  # the first member stands for all


def _run_label(tree: ModuleTree, run, shapes: dict[str, ShapeInfo] | None) -> Text:
    members = [tree.nodes[i] for i in run.members]
    first, last = members[0], members[-1]
    text = Text()
    text.append(f"{first.key}…{last.key}", style="bold cyan")
    text.append(f"  {run.class_name}")
    text.append(f" ×{run.length}", style="bold magenta")
    text.append(f"  {human_count(tree.run_params(run.members))}", style="green")
    if shapes is not None and last.name in shapes:
        text.append(f"  → {shapes[last.name].describe()}", style="dim")
    return text


def _tree_json(tree: ModuleTree, node: Node, shapes: dict[str, ShapeInfo] | None, depth: int | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": node.name,
        "class": node.class_name,
        "access_expression": node.access,
        "total_params": node.total_params,
        "own_params": node.own_params,
    }
    if shapes is not None:
        shape = shapes.get(node.name)
        data["output_shape"] = shape.describe() if shape else None
    runs = tree.repeat_runs(node)
    if runs:
        data["repeats"] = [{"class": r.class_name, "count": r.length,
                            "members": [tree.nodes[i].name for i in r.members]} for r in runs]
    if depth is None or node.depth < depth:
        data["children"] = [_tree_json(tree, c, shapes, depth) for c in tree.children_of(node)]
    return data


# --- stats -------------------------------------------------------------------------


def run_stats(args: argparse.Namespace) -> int:
    loaded = load_from_args(args)
    tree = build_tree(loaded.model)
    node = tree.resolve(args.layer)
    stats = node_stats(tree, node, _shapes(args, loaded))
    if args.json:
        print_json(stats)
        return 0
    stdout_console().print(stats_table(stats))
    return 0


def stats_table(stats: dict[str, Any]) -> Table:
    """Rows for people, formatted by ``report.format_figure`` as the app's Stats tab does."""
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
    rows = iteration_view(loaded.model.get_submodule(node.name), first=args.first)
    if args.json:
        print_json({"qualified_name": node.name, "access_expression": node.access,
                    "methods": [{"method": r.method, "count": r.count, "first": list(r.first),
                                 "explanation": r.explanation} for r in rows]})
        return 0
    console = stdout_console()
    console.print(Text(f"{access_text(node)}  ({node.class_name})", style="bold"))
    table = Table("method", "count", "first entries", "what it yields")
    for r in rows:
        more = ", …" if r.count > len(r.first) else ""
        table.add_row(r.method, exact(r.count), "\n".join(r.first) + more, r.explanation)
    console.print(table)
    return 0
