"""The state_dict tab: the entries under the node's prefix, one table row each."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import DataTable, Static

if TYPE_CHECKING:
    from torch import nn

ROW_LIMIT = 2000  # a table of more rows helps nobody; the caption gives the full count


@dataclass(frozen=True, slots=True)
class StateRow:
    key: str
    shape: str
    dtype: str
    elements: int
    kind: str  # "parameter" or "buffer"


def state_rows(module: nn.Module, limit: int = ROW_LIMIT) -> list[StateRow]:
    """The first ``limit`` entries of ``module.state_dict()``, keyed relative to the module."""
    from torch import nn

    rows = []
    for key, value in islice(module.state_dict(keep_vars=True).items(), limit):
        shape = "×".join(str(d) for d in getattr(value, "shape", ())) or "scalar"
        rows.append(StateRow(
            key=key,
            shape=shape,
            dtype=str(getattr(value, "dtype", type(value).__name__)).removeprefix("torch."),
            elements=value.numel() if hasattr(value, "numel") else 0,
            kind="parameter" if isinstance(value, nn.Parameter) else "buffer",
        ))
    return rows


class StateDictPanel(Vertical):
    def compose(self):
        yield Static(Text("", style="dim"), id="state-caption")
        table: DataTable = DataTable(id="state-table", zebra_stripes=True, cursor_type="row")
        table.add_columns("key", "kind", "shape", "dtype", "elements")  # kind early: narrow panels cut the end
        yield table

    def show(self, rows: list[StateRow], total: int, name: str) -> None:
        from layerscope.nodestats import exact

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
