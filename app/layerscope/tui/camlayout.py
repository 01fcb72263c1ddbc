"""Where the Grad-CAM tab puts the map and the top-5, for the room the two share: the layout
that gives the map the most cells at the photo's aspect ratio.

Three places for the top-5: a table under the map (five rows: tall tabs), two rows under it
(short tabs: names shorten, the best-ranked last), or a table beside it (a tall photo in a
wide tab). Pure functions of the room and the view (no textual), so each can be tested alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from layerscope.tui.fit import joined, name_cap
from layerscope.tui.treeline import middle_ellipsis

if TYPE_CHECKING:
    from layerscope.cam.scoring import Prediction
    from layerscope.tui.camlink import CamView

TOP5_ROWS = 2  # under the map on a short tab
SIDE_NAME = 16  # cells a class name keeps in a top-5 beside the map
GAP = 1  # the column between the map and a top-5 beside it
PLACES = ("below", "side", "rows")  # preferred in this order when the map is as large either way


def map_cells(width: int, height: int, photo_hw: tuple[int, int]) -> tuple[int, int]:
    """The most ``width``×``height`` cells the map can fill at the photo's aspect ratio (a
    half-block cell holds two pixels, one above the other); (0, 0) when there is no room."""
    if width < 4 or height < 2:
        return 0, 0
    h, w = photo_hw
    cells_w = max(4, min(width, int(height * 2 * w / h)))
    cells_h = max(1, min(height, round(cells_w * h / w / 2)))
    return cells_w, cells_h


@dataclass(frozen=True)
class CamLayout:
    """``top5`` goes ``where`` ("below", "side" or "rows") and takes ``rows`` rows under the map
    or ``columns`` columns beside it; the map gets ``cells`` (width, height)."""

    where: str
    top5: RenderableType
    rows: int
    columns: int
    cells: tuple[int, int]


def choose(view: CamView, width: int, height: int) -> CamLayout:
    """The layout of ``view``'s map and top-5 in ``width``×``height`` cells that draws the
    largest map. A detector's boxes always go in a table below."""
    hw = (int(view.heat.shape[-2]), int(view.heat.shape[-1]))
    if view.detections:
        rows = len(view.detections)
        return CamLayout("below", detections_table(view), rows, 0, map_cells(width, height - rows, hw))
    return choose_top5(view.top5, view.result.target, hw, width, height)


def choose_top5(
    top5: Sequence[Prediction], target: int | None, photo_hw: tuple[int, int], width: int, height: int
) -> CamLayout:
    """Of the top-5 below (a table), beside (a table) or on two rows below, the place that leaves
    a ``photo_hw`` map the most cells (ties: ``PLACES``' order)."""
    side_width = table_fixed(top5) + min(SIDE_NAME, max((len(p.name or "-") for p in top5), default=1))
    side = top5_table(top5, target, side_width)
    text, rows = top5_rows(top5, target, width)
    layouts = [
        CamLayout(
            "below",
            top5_table(top5, target, max(1, width)),
            len(top5),
            0,
            map_cells(width, height - len(top5), photo_hw),
        ),
        CamLayout("side", side, 0, side_width, map_cells(width - side_width - GAP, height, photo_hw)),
        CamLayout("rows", text, rows, 0, map_cells(width, height - rows, photo_hw)),
    ]
    return max(layouts, key=lambda layout: (layout.cells[0] * layout.cells[1], -PLACES.index(layout.where)))


def top5_table(top5: Sequence[Prediction], target: int | None, width: int) -> Table:
    """Index, name, probability: one row each, the names shortened to keep to ``width``."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", justify="right", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(justify="right", style="bold", no_wrap=True)
    fixed = table_fixed(top5)
    for p in top5:
        name = middle_ellipsis(Text(p.name or "-", "bold magenta" if p.index == target else ""), max(1, width - fixed))
        table.add_row(str(p.index), name, f"{p.probability:.3f}")
    return table


def table_fixed(top5: Sequence[Prediction]) -> int:
    """The cells of a top-5 table's row besides the name: the index, the probability, two gaps."""
    if not top5:
        return 0
    return max(len(str(p.index)) for p in top5) + max(len(f"{p.probability:.3f}") for p in top5) + 2


def top5_rows(top5: Sequence[Prediction], target: int | None, width: int, rows: int = TOP5_ROWS) -> tuple[Text, int]:
    """The top-5 in at most ``rows`` rows of ``width`` cells, each entry whole on its row
    (``285 Egyptian cat 0.717``): of the ways to split it, the one whose names stay longest,
    the best-ranked first (a "top-5" label and " · " between entries when they cost no name a
    cell). Too narrow for that: one entry a row. Returns the text and its rows."""
    best: tuple[tuple[int, ...], Text, int] | None = None
    for lead in ("top-5 ", ""):
        for sep in (" · ", "  "):
            for groups in splits(len(top5), rows):
                laid = lay_rows(top5, target, groups, width, lead, sep)
                if laid is not None and (best is None or laid[0] > best[0]):
                    best = (laid[0], laid[1], len(groups))
    if best is None:
        lines = [entry_text(p, target, max(1, width - entry_fixed(p))) for p in top5]
        return joined(lines), len(lines)
    return best[1], best[2]


def splits(count: int, rows: int) -> Iterator[list[int]]:
    """Every way to cut ``count`` entries into at most ``rows`` consecutive runs (their sizes),
    fewest rows first."""
    for parts in range(1, min(rows, count) + 1):
        yield from _compositions(count, parts)


def _compositions(count: int, parts: int) -> Iterator[list[int]]:
    if parts == 1:
        yield [count]
        return
    for first in range(count - parts + 1, 0, -1):
        for rest in _compositions(count - first, parts - 1):
            yield [first, *rest]


def lay_rows(
    top5: Sequence[Prediction], target: int | None, groups: list[int], width: int, lead: str, sep: str
) -> tuple[tuple[int, ...], Text] | None:
    """The entries in rows of ``groups`` entries, each row's names shortened (longest first) to
    keep to ``width``: the names' shown lengths and the text, or None when a row cannot fit."""
    lines, shown, start = [], [], 0
    for row, size in enumerate(groups):
        entries = top5[start : start + size]
        start += size
        label = lead if row == 0 else ""
        room = width - len(label) - len(sep) * (size - 1) - sum(entry_fixed(p) for p in entries)
        if room < size:
            return None
        cap = name_cap([len(p.name or "-") for p in entries], room)
        line = Text(label, "dim")
        for i, p in enumerate(entries):
            if i:
                line.append(sep, "dim")
            line.append_text(entry_text(p, target, cap))
            shown.append(min(cap, len(p.name or "-")))
        lines.append(line)
    return tuple(shown), joined(lines)


def entry_fixed(p: Prediction) -> int:
    """The cells of an entry besides its name: the index, the probability and two spaces."""
    return len(str(p.index)) + len(f"{p.probability:.3f}") + 2


def entry_text(p: Prediction, target: int | None, cap: int) -> Text:
    text = Text(f"{p.index} ", "dim")
    text.append_text(middle_ellipsis(Text(p.name or "-", "bold magenta" if p.index == target else ""), cap))
    text.append(f" {p.probability:.3f}", "bold")
    return text


def detections_table(view: CamView) -> Table:
    """A detector's best boxes with their scores; ◎ marks the box the map explains (boxed)."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", justify="right")
    table.add_column(no_wrap=True, overflow="ellipsis")
    table.add_column(justify="right", style="bold")
    table.add_column(style="dim", no_wrap=True)
    for d in view.detections:
        target = view.box is not None and d.box == view.box
        table.add_row(
            f"#{d.rank}",
            Text(d.title, style="bold magenta" if target else ""),
            f"{d.score:.3f}",
            "◎ boxed" if target else "",
        )
    return table
