"""The state_dict tab: the entries under the node's prefix, one table row each."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import DataTable, Static

if TYPE_CHECKING:
    from layerscope.tui.tabs import StateEntries


class StateDictPanel(Vertical):
    def compose(self):
        yield Static(Text("", style="dim"), id="state-caption")
        table: DataTable = DataTable(id="state-table", zebra_stripes=True, cursor_type="row")
        table.add_columns("key", "kind", "shape", "dtype", "elements")  # kind early: narrow panels cut the end
        yield table

    def show(self, entries: StateEntries) -> None:
        from layerscope.nodestats import exact  # nodestats imports torch: not before a model is there

        rows, total, name = entries.rows, entries.total, entries.name
        table = self.query_one(DataTable)
        table.clear()
        for row in rows:
            kind = Text("param" if row.kind == "parameter" else "buffer",
                        style="green" if row.kind == "parameter" else "yellow")
            table.add_row(row.key, kind, row.shape, row.dtype, Text(exact(row.elements), justify="right"))
        shown = f"first {exact(len(rows))} of " if len(rows) < total else ""
        where = f" under {name}. (keys below are relative)" if name else " of the whole model"
        self.query_one("#state-caption", Static).update(
            Text.assemble((f"{shown}{exact(total)} entries", "bold"), (where, "dim"))
        )

    def message(self, text: str) -> None:
        self.query_one(DataTable).clear()
        self.query_one("#state-caption", Static).update(Text(text, style="dim"))
