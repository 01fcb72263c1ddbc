"""The API tab: what each ``nn.Module`` iteration method yields at the node."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

if TYPE_CHECKING:
    from layerscope.iteration import IterationSummary
    from layerscope.tui.tabs import IterationCounts

DIFFERENCE = (
    "modules() walks every sub-module depth-first, children() only the direct ones; "
    "parameters() yields learnable tensors only, state_dict() adds persistent buffers."
)


def api_renderable(access: str, rows: list[IterationSummary]) -> Group:
    from layerscope.nodestats import exact

    counts = Table.grid(padding=(0, 1))
    counts.add_column(style="bold", no_wrap=True)
    counts.add_column(style="bold cyan", justify="right", no_wrap=True)
    counts.add_column(style="dim")
    for row in rows:
        counts.add_row(row.method, exact(row.count), row.explanation)
    parts: list = [Text(f"on {access}", style="bold"), counts, Text(""), Text(DIFFERENCE, style="italic")]
    for row in rows:
        parts.append(Text(""))
        parts.append(Text.assemble((f"{access}.{row.method}", "bold"), "  ", (exact(row.count), "bold cyan")))
        for entry in row.first:
            parts.append(Text(f"    {entry}", no_wrap=True, overflow="ellipsis"))
        if row.count > len(row.first):
            parts.append(Text(f"    … {exact(row.count - len(row.first))} more", style="dim"))
    return Group(*parts)


class ApiPanel(VerticalScroll):
    def compose(self):
        yield Static(Text("", style="dim"), id="api-body")

    def show(self, counts: IterationCounts) -> None:
        self.query_one("#api-body", Static).update(api_renderable(counts.access, counts.rows))

    def message(self, text: str) -> None:
        self.query_one("#api-body", Static).update(Text(text, style="dim"))
