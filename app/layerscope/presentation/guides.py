"""A tree drawn as text lines with guides (``├──``, ``└──``, ``│``), never wider than the terminal.

``layerscope tree`` and ``layerscope diff`` draw their trees through here: the walk has no
recursion (300-deep models are fine), a line too long is cut with an ellipsis, and guides
too deep keep only their last levels, so no line is ever dropped (a Rich ``Tree`` silently
loses the lines it cannot fit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from rich.text import Text

Row = TypeVar("Row")
BRANCH = {True: ("└── ", "    "), False: ("├── ", "│   ")}  # last child or not: (its line, below it)
MIN_LABEL = 24  # cells a line keeps for its label however deep it is


def guided_lines(
    root: Row, rows: Callable[[Row], list[tuple[Row, bool]]], label: Callable[[Row], Text], width: int
) -> Iterator[Text]:
    """One ``Text`` per row, in pre-order: ``rows(row)`` gives what goes under a row, each with
    "is it the last", and ``label(row)`` its text."""
    yield fit("", label(root), width)
    stack = [(iter(rows(root)), "")]
    while stack:
        below, guide = stack[-1]
        entry = next(below, None)
        if entry is None:
            stack.pop()
            continue
        row, last = entry
        line, under = BRANCH[last]
        yield fit(guide + line, label(row), width)
        stack.append((iter(rows(row)), guide + under))


def fit(guide: str, label: Text, width: int) -> Text:
    """``guide`` + ``label`` on one line of at most ``width`` cells."""
    room = max(0, width - MIN_LABEL)
    if len(guide) > room:
        keep = max(0, (room - 1) // 4) * 4
        guide = "…" + (guide[-keep:] if keep else "")
    line = Text(guide, style="dim", no_wrap=True, overflow="ellipsis", end="")
    line.append_text(label)
    line.truncate(width, overflow="ellipsis")
    return line
