"""The Stats tab: ``nodestats.node_stats`` rendered as it is, one figure a line; after ``d``,
the node's change and its tensors' first; after ``A``, its activation figures and histogram
(a textual-plotext plot, imported and mounted the first time there is one to draw)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from layerscope.tui import activitytext, difftext

if TYPE_CHECKING:
    from layerscope.cam.targets import Eligibility
    from layerscope.tui.tabs import NodeActivations, NodeFigures

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
    from layerscope.tree.nodestats import shown_figures

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
    """Every figure ``layerscope stats`` prints for the highlighted node; after ``A``, first what
    ``layerscope activations`` prints for it, and its histogram."""

    def compose(self):
        yield Static(id="activity-lines")
        yield Static(Text("loading the model…", style="dim"), id="stats-body")
        yield Static(activitytext.hint(), id="activity-hint")

    def on_mount(self) -> None:
        self._activity(None, hint=False)

    def show(self, figures: NodeFigures) -> None:
        self._activity(figures.activations, hint=True)
        table = stats_table(figures.stats, figures.eligibility)
        changes = figures.changes
        if changes is None:
            self.query_one("#stats-body", Static).update(table)
            return
        self.query_one("#stats-body", Static).update(
            Group(
                Text("change", style="bold"),
                difftext.node_line(changes.node, changes.top),
                difftext.tensors_table(changes.node, changes.tensors, changes.more, changes.top),
                Text(""),
                table,
            )
        )

    def message(self, text: str) -> None:
        self._activity(None, hint=False)
        self.query_one("#stats-body", Static).update(Text(text, style="dim"))

    def _activity(self, activations: NodeActivations | None, *, hint: bool) -> None:
        """The activation lines and histogram above the figures, or (``hint``) the line saying
        how to collect them below."""
        lines = self.query_one("#activity-lines", Static)
        lines.display = activations is not None
        self.query_one("#activity-hint", Static).display = hint and activations is None
        node = activations.node if activations is not None else None
        histogram = node.histogram if node is not None else None
        plots = self.query("#activity-plot")
        if activations is not None:
            lines.update(activitytext.activity_table(node, activations.over))
        if histogram is None or not histogram.counts:
            plots.set(display=False)
            return
        plot = plots.first() if plots else self._mount_plot()
        activitytext.draw_histogram(plot.plt, histogram)
        plot.display = True
        plot.refresh()

    def _mount_plot(self):
        from textual_plotext import PlotextPlot  # plotext's import waits until a histogram is drawn

        plot = PlotextPlot(id="activity-plot")
        self.mount(plot, after="#activity-lines")
        return plot
