"""``layerscope diff A B``: what changed between two checkpoints, per tensor and per node.

A thin front over ``layerscope.diff``: the engine streams the comparison and sums it
over the module tree; this module only parses options and prints the text or JSON view.
"""

from __future__ import annotations

import argparse
import math

from layerscope.cli.common import add_debug_option, int_between, print_json, stdout_console


def add_parser(sub: argparse._SubParsersAction) -> None:
    summary = "what changed between two checkpoints (or a LoRA adapter), per tensor and per node"
    parser = sub.add_parser("diff", help=summary, description=summary)
    parser.add_argument(
        "a",
        metavar="A",
        help="the base: a state_dict file (.pt/.pth/.bin/.safetensors) or a Hugging Face folder / hf:ORG/NAME",
    )
    parser.add_argument("b", metavar="B", help="the other checkpoint, or a PEFT LoRA adapter folder trained on A")
    parser.add_argument(
        "--arch",
        default=None,
        help="model spec whose module tree the nodes follow (default: A's own, else the keys' prefixes)",
    )
    parser.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument for the --arch builder (Python literal), repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument(
        "--threshold",
        type=threshold,
        default=None,
        metavar="T",
        help="hide nodes and tensors that moved less than T (0.01 or 1%%)",
    )
    parser.add_argument("--depth", type=int_between(0), default=None, help="deepest level to show (root is 0)")
    parser.add_argument(
        "--all",
        action="store_true",
        dest="show_all",
        help="show unchanged (bit-identical) subtrees too; hidden by default",
    )
    parser.add_argument(
        "--params-only",
        action="store_true",
        help="leave buffers (running statistics, counters) out of every figure and list",
    )
    parser.add_argument("--no-fold", action="store_true", help="show repeated blocks one by one")
    parser.add_argument(
        "--trust",
        action="store_true",
        help="allow full unpickling of a file (runs code from it: only for files you trust)",
    )
    add_debug_option(parser)
    parser.set_defaults(func=run_diff)


def threshold(text: str) -> float:
    """A relative change: ``0.01`` or ``1%``, finite and not negative."""
    raw = text.strip()
    scale = 100.0 if raw.endswith("%") else 1.0
    try:
        value = float(raw.removesuffix("%")) / scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a relative change such as 0.01 or 1%, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a relative change of at least 0, got {text!r}")
    return value


def run_diff(args: argparse.Namespace) -> int:
    from layerscope.diff import diff_checkpoints
    from layerscope.diff.export import diff_json
    from layerscope.models import parse_kwargs
    from layerscope.presentation.diff_text import diff_lines

    result = diff_checkpoints(
        args.a, args.b, arch=args.arch, trust=args.trust, kwargs=parse_kwargs(args.arg), params_only=args.params_only
    )
    if args.json:
        print_json(diff_json(result, depth=args.depth, threshold=args.threshold))
        return 0
    console = stdout_console()
    for line in diff_lines(
        result,
        depth=args.depth,
        threshold=args.threshold,
        fold=not args.no_fold,
        width=console.width,
        show_all=args.show_all,
    ):
        console.print(line)
    return 0
