"""``layerscope lens``: what each layer of a causal language model predicts next for a prompt
(the logit lens), or with ``--attention LAYER`` where that block's heads look.

A thin layer over ``layerscope.lens``. The text is a layer × position table of each
layer's top token and its probability, the prompt's tokens as the header; positions that
do not fit the width go on in another table below (80 columns in a pipe), so a short
prompt reads in a terminal of any size. ``--json`` is for scripts.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from layerscope.cli.common import UNBOUNDED, add_debug_option, int_between, print_json, stdout_console
from layerscope.errors import LayerscopeError
from layerscope.lens import HeadAttention, LensResult, head_attention, language_model, logit_lens
from layerscope.options import add_model_options, load_from_args

PIPE_WIDTH = 80  # how wide the tables are made into a pipe or file (a terminal's own width otherwise)
TOKEN_CELLS = 8  # a token is cut to this many cells in a table (in full in --json)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "lens",
        help="logit lens of a causal language model: each layer's next-token guess for a prompt",
        description="Each decoder block's output (and the embeddings) through the model's own final norm and "
        "output head: the top next tokens per layer and position. The last block's lens is the "
        "model's own prediction. --attention LAYER: that block's per-head attention instead.",
    )
    add_model_options(parser)
    parser.add_argument("--prompt", required=True, help="the text to read")
    parser.add_argument(
        "--layers",
        default="auto",
        help="auto (embeddings and every block) or a,b,c: block names, block numbers (-1: the last) or embeddings",
    )
    parser.add_argument("--top-k", type=int_between(1, 100), default=5, help="guesses per cell in --json (default 5)")
    parser.add_argument("--position", default="all", help="all (default), -1 (the last token) or a token number")
    parser.add_argument(
        "--attention",
        default=None,
        metavar="LAYER",
        help="print each head's attention from --position (all: the last) over the prompt instead",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_debug_option(parser)
    parser.set_defaults(func=run_lens)


def run_lens(args: argparse.Namespace) -> int:
    if not args.prompt.strip():  # before the model loads
        raise LayerscopeError("the prompt is empty; give some text with --prompt")
    lm = language_model(load_from_args(args))
    if args.attention is not None:
        attention = head_attention(lm, args.prompt, args.attention, args.position)
        if args.json:
            print_json(attention.as_json())
        else:
            print_attention(stdout_console(), attention)
        return 0
    result = logit_lens(lm, args.prompt, args.layers, args.top_k, args.position)
    if args.json:
        print_json(result.as_json())
    else:
        print_lens(stdout_console(), result)
    return 0


def shown(token: str) -> str:
    """A token as a table shows it: escapes visible, spaces as ``·``, cut to ``TOKEN_CELLS``."""
    text = repr(token)[1:-1].replace(" ", "·") or "''"
    return text if len(text) <= TOKEN_CELLS else text[: TOKEN_CELLS - 1] + "…"


def print_lens(console: Console, result: LensResult) -> None:
    console.print(f"model   {result.model}")
    console.print(f"prompt  {len(result.tokens)} tokens; each cell: the layer's top next token and its probability")
    headers = [f"{i}:{shown(result.tokens[i])}" for i in result.positions]
    rows = {
        layer.layer: [f"{shown(top[0].token)} {top[0].p:.2f}" for top in layer.positions] for layer in result.layers
    }
    _print_chunked(console, "layer", headers, rows)


def print_attention(console: Console, attention: HeadAttention) -> None:
    token = shown(attention.tokens[attention.position])
    console.print(
        f"attention of {attention.layer}, from position {attention.position} ({token}) over "
        f"{len(attention.tokens)} tokens, per head"
    )
    headers = [f"{i}:{shown(t)}" for i, t in enumerate(attention.tokens)]
    rows = {f"head {h}": [f"{p:.2f}" for p in row] for h, row in enumerate(attention.heads)}
    _print_chunked(console, "", headers, rows)


def _print_chunked(console: Console, corner: str, headers: list[str], rows: dict[str, list[str]]) -> None:
    """One table per run of columns that fits the width, each with the row names."""
    width = PIPE_WIDTH if console.width >= UNBOUNDED else console.width
    names = max((len(corner), *(len(n) for n in rows)))
    cells = [max(len(h), *(len(r[i]) for r in rows.values())) for i, h in enumerate(headers)]
    start = 0
    while start < len(headers):
        end, used = start + 1, names + 1 + cells[start]
        while end < len(headers) and used + 1 + cells[end] <= width:
            used, end = used + 1 + cells[end], end + 1
        if start:
            console.print()
        console.print(_table(corner, headers[start:end], {n: r[start:end] for n, r in rows.items()}))
        start = end


def _table(corner: str, headers: list[str], rows: dict[str, list[str]]) -> Table:
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    table.add_column(corner, no_wrap=True, style="cyan")
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    for name, cells in rows.items():
        table.add_row(name, *cells)
    return table
