"""The API tab: what each ``nn.Module`` iteration method yields at the node, laid out for
the tab's width (``tables.ApiTable``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from layerscope.tui.tables import ApiTable

if TYPE_CHECKING:
    from layerscope.tui.tabs import IterationCounts


class ApiPanel(VerticalScroll):
    def compose(self):
        yield Static(Text("", style="dim"), id="api-body")

    def show(self, counts: IterationCounts) -> None:
        self.query_one("#api-body", Static).update(ApiTable(counts.access, counts.rows))

    def message(self, text: str) -> None:
        self.query_one("#api-body", Static).update(Text(text, style="dim"))
