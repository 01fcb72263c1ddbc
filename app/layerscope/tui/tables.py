"""The state_dict and API tabs' tables, laid out for the width they have: every column
header and every figure stays on screen, names give way (a middle ellipsis), and when the
names would be cut to nothing, each entry takes two rows instead of one.

Pure Rich text (no textual): the panels hand these to a ``DataTable`` or a ``Static``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from layerscope.tui.fit import Name, first_fit, fitted
from layerscope.tui.treeline import middle_ellipsis

if TYPE_CHECKING:
    from layerscope.tree.iteration import IterationSummary
    from layerscope.tui.tabs import StateEntries, StateRow

STATE_HEADERS = ("key", "kind", "shape", "dtype", "elements")
KEY_MIN = 24  # cells a key keeps on a one-row line; less, and each entry takes two rows
PADDING = 1  # the DataTable's cell padding, each side of each column
KIND_STYLE = {"param": "green", "buffer": "yellow"}


@dataclass(frozen=True)
class Column:
    label: Text
    width: int


@dataclass(frozen=True)
class StateTable:
    """The columns and rows of a state_dict table, each row ``height`` lines high."""

    columns: list[Column]
    rows: list[list[Text]]
    height: int


def state_table(rows: Sequence[StateRow], width: int) -> StateTable:
    """The entries in ``width`` cells.

    One row each when the keys keep at least ``KEY_MIN`` cells (or their full length); else two
    rows each: the key on the first, across the whole width, and kind, shape, dtype and
    elements aligned under it."""
    from layerscope.tree.nodestats import exact  # nodestats imports torch: not before a model is there

    kinds = [kind_of(row) for row in rows]
    elements = [exact(row.elements) for row in rows]
    figures = [kinds, [r.shape for r in rows], [r.dtype for r in rows], list(elements)]
    widths = [max([len(h), *map(len, column)]) for h, column in zip(STATE_HEADERS[1:], figures)]
    longest = max((len(r.key) for r in rows), default=3)
    key_room = width - sum(widths) - 2 * PADDING * len(STATE_HEADERS)
    if key_room >= min(longest, KEY_MIN):
        key_width = max(3, min(longest, key_room))
        columns = [Column(Text(label), w) for label, w in zip(STATE_HEADERS, [key_width, *widths])]
        columns[-1] = Column(Text(STATE_HEADERS[-1], justify="right"), widths[-1])
        cells = [
            [
                middle_ellipsis(Text(row.key), key_width),
                Text(kind, KIND_STYLE[kind]),
                Text(row.shape),
                Text(row.dtype),
                Text(count, justify="right"),
            ]
            for row, kind, count in zip(rows, kinds, elements)
        ]
        return StateTable(columns, cells, 1)
    room = max(1, width - 2 * PADDING)
    header = Text("key\n", "bold")
    header.append_text(figures_line(STATE_HEADERS[1:], widths, bold=True))
    cells = []
    for row, kind, count in zip(rows, kinds, elements):
        cell = middle_ellipsis(Text(row.key), room)
        cell.append("\n")
        cell.append_text(figures_line((kind, row.shape, row.dtype, count), widths))
        cells.append([cell])
    return StateTable([Column(header, room)], cells, 2)


def state_caption(entries: StateEntries, width: int) -> Text:
    """How many entries, under which node: the note on relative keys goes first, then the name shortens."""
    from layerscope.tree.nodestats import exact

    rows, total, name = entries.rows, entries.total, entries.name
    count = Text(f"first {exact(len(rows))} of " if len(rows) < total else "", "bold")
    count.append(f"{exact(total)} entries", "bold")
    if not name:
        return Text.assemble(count, (" of the whole model", "dim"))
    parts = [count, Text(" under ", "dim"), Name(Text(name + ".", "dim"))]
    notes = [fitted([*parts, Text(note, "dim")], 0) for note in (" (keys below are relative)", " (relative keys)")]
    return first_fit(width, *notes, fitted(parts, width))


def kind_of(row: StateRow) -> str:
    return "param" if row.kind == "parameter" else "buffer"


def figures_line(values: Sequence[str], widths: Sequence[int], bold: bool = False) -> Text:
    """Kind, shape and dtype left-aligned, elements right-aligned, two cells apart, indented."""
    text = Text("  ")
    *left, last = values
    for i, (value, w) in enumerate(zip(left, widths)):
        style = "bold" if bold else KIND_STYLE.get(value, "") if i == 0 else ""
        text.append(value.ljust(w) + "  ", style)
    text.append(last.rjust(widths[-1]), "bold" if bold else "")
    return text


API_HEADERS = ("method", "count", "first entries", "what it yields")
ENTRIES_MAX = 48  # the first-entries column grows up to this, then its entries wrap
EXPLANATION_MIN = 24  # narrower than this, "what it yields" goes under the method's name
DIFFERENCE = (
    "modules() walks every sub-module depth-first, children() only the direct ones; "
    "parameters() yields learnable tensors only, state_dict() adds persistent buffers."
)


class ApiTable:
    """What each iteration method yields at ``access``, laid out for the width it is drawn at:
    method, count, first entries and what it yields side by side when they fit, else what it
    yields under the method's name; entries wrap between words, names shortened to one row."""

    def __init__(self, access: str, rows: Sequence[IterationSummary]) -> None:
        self.access, self.rows = access, list(rows)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield api_group(self.access, self.rows, options.max_width)


def api_group(access: str, rows: Sequence[IterationSummary], width: int) -> Group:
    from layerscope.tree.nodestats import exact

    counts = [exact(row.count) for row in rows]
    method_w = max(len(API_HEADERS[0]), *(len(r.method) for r in rows)) if rows else len(API_HEADERS[0])
    count_w = max([len(API_HEADERS[1]), *map(len, counts)])
    longest = max((len(e) for r in rows for e in r.first), default=len(API_HEADERS[2]))
    entries_w = min(max(longest, len(API_HEADERS[2])), ENTRIES_MAX)
    beside = width - method_w - count_w - entries_w - 3 >= EXPLANATION_MIN
    if not beside:
        entries_w = max(len(API_HEADERS[2]), width - method_w - count_w - 2)
    table = Table.grid(padding=(0, 1))
    table.add_column(width=method_w)
    table.add_column(justify="right", no_wrap=True, width=count_w)
    table.add_column(width=entries_w, overflow="fold")
    if beside:
        table.add_column(style="dim")
        table.add_row(*(Text(h, "bold underline") for h in API_HEADERS))
    else:
        head = Text(API_HEADERS[0], "bold underline")
        head.append("\n")
        head.append(API_HEADERS[3], "dim underline")
        table.add_row(head, Text(API_HEADERS[1], "bold underline"), Text(API_HEADERS[2], "bold underline"))
    for row, count in zip(rows, counts):
        method = Text(row.method, "bold")
        entries = entries_text(row, entries_w)
        if beside:
            table.add_row(method, Text(count, "bold cyan"), entries, row.explanation)
        else:
            method.append("\n")
            method.append(row.explanation, "dim")
            table.add_row(method, Text(count, "bold cyan"), entries)
    return Group(Text(f"on {access}", style="bold"), table, Text(""), Text(DIFFERENCE, style="italic"))


def entries_text(row: IterationSummary, width: int) -> Text:
    """One entry a line (``0.conv1.weight: Parameter 512×256×3×3 float32``), its name shortened
    to keep to one row; the figures after it wrap between words, never inside one."""
    from layerscope.tree.nodestats import exact

    lines = []
    for entry in row.first:
        name, sep, rest = entry.partition(": ")
        if sep:
            line = middle_ellipsis(Text(name), max(1, width - 1))
            line.append(sep.rstrip() + " " + rest)
        else:
            line = Text(entry)
        lines.append(line)
    more = row.count - len(row.first)
    if more > 0:
        lines.append(Text(f"… {exact(more)} more", "dim"))
    return Text("\n").join(lines)
