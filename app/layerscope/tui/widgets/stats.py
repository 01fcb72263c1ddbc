"""The Stats tab: ``nodestats.node_stats`` rendered as it is, one figure a line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

if TYPE_CHECKING:
    from layerscope.cam.targets import Eligibility
    from layerscope.tui.tabs import NodeFigures

LABELS = {
    "qualified_name": "name",
    "same_module_as": "same module as",
    "access_expression": "access",
    "access_expression_negative": "access (from end)",
    "class": "class",
    "extra_repr": "extra_repr",
    "depth": "depth",
    "children": "children",
    "submodules": "sub-modules",
    "own_params": "own params",
    "total_params": "total params",
    "trainable_params": "trainable",
    "frozen_params": "frozen",
    "param_tensors": "param tensors",
    "param_bytes": "param bytes",
    "buffers": "buffers",
    "persistent_buffers": "persistent buffers",
    "buffer_elements": "buffer elements",
    "buffer_bytes": "buffer bytes",
    "state_dict_entries": "state_dict entries",
    "state_dict_bytes": "state_dict bytes",
    "state_dict_unique_bytes": "saved (unique)",
    "dtypes": "dtypes",
    "devices": "devices",
    "output_shape": "output shape",
    "macs": "MACs",
    "flops": "FLOPs",
    "macs_share": "share of MACs",
    "calls": "forward calls",
    "output_bytes": "output bytes",
    "activation_bytes": "activations made",
    "activation_peak_bytes": "activations peak",
    "memory": "memory",
}
EMPHASISED = {"total_params", "access_expression", "qualified_name"}


def stats_table(stats: dict[str, Any], eligibility: Eligibility | None) -> Table:
    """The node's figures, its Grad-CAM eligibility, then its cost (the longest rows) last."""
    from layerscope.cost import COST_KEYS  # torch stays unimported until a model is there
    from layerscope.nodestats import shown_figures

    shown = shown_figures(stats)
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    _add_rows(table, [(key, text) for key, text in shown if key not in COST_KEYS])
    if eligibility is not None:
        kind, reason = eligibility.kind, eligibility.reason
        style = {"spatial": "green", "tokens": "cyan"}.get(kind, "dark_orange")
        table.add_row("Grad-CAM", Text.assemble((kind, f"bold {style}"), (f" — {reason}" if reason else "", "")))
    _add_rows(table, [(key, text) for key, text in shown if key in COST_KEYS])
    return table


def _add_rows(table: Table, rows: list[tuple[str, str]]) -> None:
    for key, value in rows:
        table.add_row(LABELS.get(key, key.replace("_", " ")), Text(value, style="bold" if key in EMPHASISED else ""))


class StatsPanel(VerticalScroll):
    """Every figure ``layerscope stats`` prints for the highlighted node."""

    def compose(self):
        yield Static(Text("loading the model…", style="dim"), id="stats-body")

    def show(self, figures: NodeFigures) -> None:
        self.query_one("#stats-body", Static).update(stats_table(figures.stats, figures.eligibility))

    def message(self, text: str) -> None:
        self.query_one("#stats-body", Static).update(Text(text, style="dim"))
