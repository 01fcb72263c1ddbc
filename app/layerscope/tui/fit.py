"""Lines fitted to the room they have: figures stay whole, names give way to a middle ellipsis
(``treeline.middle_ellipsis``), and a line never breaks inside a field.

Pure Rich text (no textual), shared by the Grad-CAM tab's lines, its top-5 and the tables of
the state_dict and API tabs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from rich.text import Text

from layerscope.tui.treeline import middle_ellipsis


class Name(NamedTuple):
    """A part of a line that may be shortened (a layer, a class, a file): figures never are."""

    text: Text


Part = Text | Name


def first_fit(width: int, *lines: Text) -> Text:
    """The first of ``lines`` that keeps to ``width`` cells, else the last (the shortest form);
    ``width`` 0 (not laid out yet): the first."""
    if width <= 0:
        return lines[0]
    return next((line for line in lines if line.cell_len <= width), lines[-1])


def name_cap(lengths: Sequence[int], room: int) -> int:
    """The longest a name may stay so that names of ``lengths`` keep to ``room`` cells in all:
    the longest names are cut first, down to one cell each ("…")."""
    cap = max(lengths, default=0)
    while cap > 1 and sum(min(n, cap) for n in lengths) > room:
        cap -= 1
    return cap


def fitted(parts: Sequence[Part], width: int) -> Text:
    """``parts`` joined; when the line is wider than ``width``, its ``Name`` parts are shortened
    (the longest first, with a middle ellipsis) until it fits, or each is down to "…"."""
    fixed = sum(p.cell_len for p in parts if isinstance(p, Text))
    names = [p.text.cell_len for p in parts if isinstance(p, Name)]
    cap = name_cap(names, width - fixed) if width > 0 else max(names, default=0)
    line = Text()
    for part in parts:
        line.append_text(middle_ellipsis(part.text, cap) if isinstance(part, Name) else part)
    return line


def joined(lines: Sequence[Text]) -> Text:
    return Text("\n").join(lines)
