"""What a tree line says: the figure columns ``x`` cycles through, and the line in three parts,
fitted to the room it has: the marks and the figures stay whole, the name gives way (a
middle ellipsis keeps its start and its end).

Pure Rich text (no textual): ``ModuleTreeView`` builds a ``TreeLine`` per module and asks
it for a label of the width left after the tree's guides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text

from layerscope.tui import activitytext, difftext

if TYPE_CHECKING:
    from layerscope.activations import ActivationReport
    from layerscope.cost import CostTable
    from layerscope.diff import DiffResult
    from layerscope.tree import ModuleTree

ELLIPSIS = "…"
MIN_NAME = 8  # cells a name keeps before the figures give way: a line must still say which module it is


@dataclass(frozen=True)
class LineFacts:
    """What a right-column figure is computed from: the tree, a line's modules (one, or a folded
    run's members) and what has been measured so far."""

    tree: ModuleTree
    members: tuple[int, ...]
    cost: CostTable | None
    diff: DiffResult | None = None  # after ``d``: node ``i`` of the diff is node ``i`` of the tree
    top_change: float = 0.0  # the diff's largest node change: the red end of its colour scale
    activity: ActivationReport | None = None  # after ``A``: every node's activation statistics

    @property
    def names(self) -> list[str]:
        return [self.tree.nodes[i].name for i in self.members]


@dataclass(frozen=True)
class Column:
    """A figure at the end of each tree line: ``x`` cycles through the ``COLUMNS`` that are
    ``ready``; adding one is a name and a per-line formatter."""

    key: str
    says: str  # the notification when ``x`` shows it
    figure: Callable[[LineFacts], str | Text]  # a plain figure is drawn dim; a Text keeps its own colours
    ready: Callable[[LineFacts], bool] = lambda facts: True

    def cell(self, facts: LineFacts) -> Text:
        figure = self.figure(facts)
        return figure if isinstance(figure, Text) else Text(figure, "dim")


def _params(facts: LineFacts) -> str:
    from layerscope.tree.nodestats import human_count

    members = facts.members
    total = facts.tree.nodes[members[0]].total_params if len(members) == 1 else facts.tree.run_params(members)
    return human_count(total)


def _macs(facts: LineFacts) -> str:
    from layerscope.tree.nodestats import human_macs

    assert facts.cost is not None
    return human_macs(facts.cost.run_macs(facts.names))


def _change(facts: LineFacts) -> Text:
    assert facts.diff is not None
    return difftext.change_cell(facts.diff, facts.members, facts.top_change)


def _activity(facts: LineFacts) -> Text:
    assert facts.activity is not None
    return activitytext.activity_cell(facts.activity, facts.tree, facts.members)


COLUMNS = (
    Column("params", "tree shows parameters", _params),
    Column("macs", "tree shows MACs per forward pass", _macs, ready=lambda facts: facts.cost is not None),
    Column(
        "activity",
        "tree shows each node's dead channels (% of its output channels), NaN! where NaN or Inf came out (A)",
        _activity,
        ready=lambda facts: facts.activity is not None,
    ),
    Column(
        "change",
        "tree shows the change from the weights file to B (d)",
        _change,
        ready=lambda facts: facts.diff is not None,
    ),
)


def column_named(key: str) -> Column:
    """The column of ``COLUMNS`` with ``key``."""
    return next(c for c in COLUMNS if c.key == key)


@dataclass(frozen=True)
class TreeLine:
    lead: Text  # the CAM mark, the target, the rank: short, always whole
    name: Text  # key and class: what gives way
    figures: Text  # the right column, "same module as", the shape: always whole
    short_lead: Text | None = None  # the lead for a narrow tree ("#1" without its score)

    def full(self) -> Text:
        return Text.assemble(self.lead, self.name, self.figures, no_wrap=True, overflow="ellipsis")

    def fitted(self, width: int) -> Text:
        """The line in ``width`` cells: the name shortened in the middle first, then the lead
        shortened (the score goes, the rank stays), then the right column dropped rather than
        the name cut below ``MIN_NAME`` cells: at 80×24 after ranking a line still names its
        module (the Stats tab has the figures); only then is the line's end cut."""
        spare = width - self.lead.cell_len - self.figures.cell_len
        if self.name.cell_len <= spare:
            return self.full()
        lead, figures = self.lead, self.figures
        if spare < MIN_NAME and self.short_lead is not None:
            lead = self.short_lead
            spare = width - lead.cell_len - figures.cell_len
        if spare < min(MIN_NAME, self.name.cell_len):
            figures = Text("")
            spare = width - lead.cell_len
        name = middle_ellipsis(self.name, max(spare, 1))
        return Text.assemble(lead, name, figures, no_wrap=True, overflow="ellipsis")


def middle_ellipsis(text: Text, width: int) -> Text:
    """``text`` in ``width`` cells, its middle replaced by "…" (styles kept on both ends)."""
    if text.cell_len <= width:
        return text
    if width <= 1:
        return Text(ELLIPSIS)
    keep = width - 1
    head = (keep + 1) // 2
    tail = keep - head
    cut = text[:head]
    cut.append(ELLIPSIS, "dim")
    if tail:
        cut.append_text(text[len(text) - tail :])
    return cut
