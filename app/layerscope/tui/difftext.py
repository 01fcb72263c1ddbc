"""What the app says about a diff (``d``): the tree's change column and its colours, the Stats
tab's list of tensors, the progress line and the summary. Pure Rich text, no textual.

The figures are the engine's own (``NodeDiff.mark``, ``DiffResult.run_mark``): the column
shows exactly what ``layerscope diff`` prints for the same pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from layerscope.diff import DiffResult, NodeDiff, TensorDiff
    from layerscope.models.loaded import LoadedModel

FROZEN = "#7f8f9f"  # "=": bit-identical
SIGNS = {"+": "bold green", "−": "bold red", "≠": "bold magenta"}  # added, removed, changed from all zeros
SCALE = ((0x5F, 0x9F, 0xDF), (0xE8, 0xC5, 0x4A), (0xFF, 0x4F, 0x4F))  # least moved → most moved
DECADES = 4
FIGURES = {
    "same": "=",
    "added": "+",
    "removed": "−",
    "reshaped": "",
}  # a tensor's change without a figure  # the scale spans four orders of magnitude below the largest change


def largest_change(result: DiffResult) -> float:
    """The largest relative change of any node: the red end of the scale."""
    return max((n.relative_change for n in result.nodes if n.relative_change), default=0.0)


def scale_position(change: float | None, top: float) -> float:
    """0 (barely moved) … 1 (moved as much as the most-changed node), on a log scale."""
    if not change or top <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 + math.log10(change / top) / DECADES))


def scale_colour(position: float) -> str:
    """The colour at ``position`` of the blue → amber → red scale, as ``#rrggbb``."""
    low, high = (SCALE[0], SCALE[1]) if position < 0.5 else (SCALE[1], SCALE[2])
    t = position * 2 if position < 0.5 else position * 2 - 1
    return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(low, high))


def change_style(mark: str, change: float | None, top: float) -> str:
    """The colour of a change figure: grey-blue when frozen, green/red when only one side has
    it, else its place on the scale."""
    if mark == "=":
        return FROZEN
    if mark in SIGNS or change is None:
        return SIGNS.get(mark, SIGNS["≠"])
    return f"bold {scale_colour(scale_position(change, top))}"


def change_cell(result: DiffResult, members: Sequence[int], top: float) -> Text:
    """The tree's change column for one node, or a folded run of nodes (their sums)."""
    nodes = [result.nodes[i] for i in members]
    if len(nodes) == 1:
        mark, change = nodes[0].mark, nodes[0].relative_change
    else:
        mark, change = result.run_mark(nodes), result.run_change(nodes)
    return Text(mark, style=change_style(mark, change, top))


def node_line(node: NodeDiff, top: float) -> Text:
    """The Stats tab's first line in diff mode: the node's change and what it counts."""
    text = Text()
    text.append(node.mark or "no tensors", style=change_style(node.mark, node.relative_change, top))
    if node.total:
        special = ", ".join(
            f"{node.counts[s]} {s}" for s in ("added", "removed", "reshaped", "retyped") if node.counts.get(s)
        )
        text.append(f"  {node.changed} of {node.total} tensors differ" + (f" ({special})" if special else ""), "dim")
    return text


def tensors_table(node: NodeDiff, tensors: Sequence[TensorDiff], more: int, top: float) -> Table:
    """The tensors under the node (keys relative to it), each with its status and change."""
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(style="dim", overflow="fold")
    cut = len(node.name) + 1 if node.name else 0
    for tensor in tensors:
        status, figure, other = tensor_cells(tensor, top)
        table.add_row(tensor.key[cut:], figure, status, other)
    if more:
        table.add_row(Text(f"… {more:,} more", style="italic"), "", "", "")
    return table


def tensor_cells(tensor: TensorDiff, top: float) -> tuple[Text, Text, str]:
    """Status, change figure and what else differs (shapes, dtypes) for one tensor."""
    from layerscope.diff.records import percent

    status = tensor.status
    figure = FIGURES.get(status)
    if figure is None:
        figure = percent(tensor.relative_change)
    style = change_style(figure, tensor.relative_change, top)
    a, b = tensor.a, tensor.b
    other = ""
    if status == "reshaped" and a is not None and b is not None:
        other = f"{shape(a.shape)} → {shape(b.shape)}"
    elif status == "retyped" and a is not None and b is not None:
        other = f"{a.dtype} → {b.dtype}"
    elif status in ("added", "removed"):
        info = b if status == "added" else a
        other = f"{shape(info.shape)} {info.dtype}" if info is not None else ""
    return Text(status, style=style if status != "same" else FROZEN), Text(figure, style=style), other


def shape(dims: Sequence[int]) -> str:
    return "×".join(str(d) for d in dims) or "scalar"


def progress_text(other: str, done: int, total: int) -> Text:
    """The line under the tree while ``d`` runs."""
    count = f"{done:,} of {total:,} tensors" if total else "opening the checkpoints"
    return Text.assemble(
        ("diff ", "bold"), (f"against {PurePath(other).name}: {count}", ""), ("  · escape stops", "dim")
    )


def summary(result: DiffResult) -> str:
    """The notification when the diff is in: what moved, in one or two lines."""
    from layerscope.diff.records import percent

    counts = {status: n for status, n in result.counts().items() if n}
    parts = ", ".join(f"{n} {status}" for status, n in counts.items())
    whole = result.root.relative_change
    text = f"{len(result.tensors)} tensors: {parts}"
    if whole is not None:
        text += f"\nwhole model: {percent(whole)} relative change · x cycles the tree's column"
    return text


def no_weights_file(loaded: LoadedModel) -> str:
    """Why ``d`` cannot start: the model came from no checkpoint file to compare with."""
    return (
        f"d compares the checkpoint the weights were read from with another; {loaded.spec} has "
        f"{loaded.weights_label}, read from no file: open it with --weights FILE (l)"
    )
