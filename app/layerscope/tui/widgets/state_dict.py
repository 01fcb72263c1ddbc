"""The state_dict tab: the entries under the node's prefix, laid out for the tab's width
(``tables.state_table``: one row each, or two when the keys would be cut to nothing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from layerscope.tui import tables

if TYPE_CHECKING:
    from layerscope.tui.tabs import StateEntries


class StateDictPanel(Vertical):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.entries: StateEntries | None = None
        self._laid_out: tuple[int, int] | None = None  # (entries' id, width) the table was filled for

    def compose(self):
        yield Static(Text("", style="dim"), id="state-caption")
        yield DataTable(id="state-table", zebra_stripes=True, cursor_type="row", cell_padding=tables.PADDING)

    def show(self, entries: StateEntries) -> None:
        self.entries = entries
        self._laid_out = None
        self.fill()

    def fill(self) -> None:
        """The table for the entries at the table's width (once it has one)."""
        table = self.query_one(DataTable)
        width = table.size.width - table.styles.scrollbar_size_vertical
        if self.entries is None or width <= 0 or self._laid_out == (id(self.entries), width):
            return
        self._laid_out = (id(self.entries), width)
        self.query_one("#state-caption", Static).update(tables.state_caption(self.entries, self.size.width))
        laid = tables.state_table(self.entries.rows, width)
        table.clear(columns=True)
        table.header_height = laid.height
        for column in laid.columns:
            table.add_column(column.label, width=column.width)
        for cells in laid.rows:
            table.add_row(*cells, height=laid.height)

    def on_resize(self) -> None:
        self.call_after_refresh(self.fill)

    def message(self, text: str) -> None:
        self.entries, self._laid_out = None, None
        self.query_one(DataTable).clear()
        self.query_one("#state-caption", Static).update(Text(text, style="dim"))
