"""``layerscope weights``: the pretrained weights already on this machine, each loadable offline
as ``layerscope tree MODEL --weights WEIGHTS`` (``layerscope.models.cached`` finds them)."""

from __future__ import annotations

import argparse

from rich.table import Table

from layerscope.cli.common import add_debug_option, print_json, stdout_console
from layerscope.models.cached import cached_weights
from layerscope.tree.nodestats import human_bytes


def add_parser(sub: argparse._SubParsersAction) -> None:
    summary = "list the pretrained weights in the torch hub and Hugging Face caches (they load offline)"
    parser = sub.add_parser("weights", help=summary, description=summary)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_debug_option(parser)
    parser.set_defaults(func=run_weights)


def run_weights(args: argparse.Namespace) -> int:
    found = cached_weights()
    if args.json:
        print_json([{"model": w.model, "weights": w.weights, "bytes": w.size, "path": str(w.path)} for w in found])
        return 0
    console = stdout_console()
    if not found:
        console.print(
            "no pretrained weights in the torch hub or Hugging Face caches: "
            "models load with --weights none (random) or --weights PATH"
        )
        return 0
    table = Table("model", "--weights", "size", "file", box=None, pad_edge=False)
    for w in found:
        table.add_row(w.model, w.weights or "—", human_bytes(w.size), str(w.path))
    console.print(table)
    return 0
