"""What the app says about activations (``A``): the tree's activity column, the Stats tab's
lines and histogram, the summary. Pure Rich text and plotext calls, no textual.

The figures are the engine's own ``NodeActivity`` (``layerscope.activations``), the
records ``layerscope activations --json`` prints: the app only formats them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from layerscope.activations import ActivationReport, Histogram, NodeActivity
    from layerscope.tree import ModuleTree

NONFINITE = "NaN!"  # the activity column's mark for a node with NaN or ±Inf in its output
LISTED = 16  # dead channel indices named in the Stats tab; the rest are counted
TICKS = 5  # labelled values along the histogram's x axis


def figure(value: float | None) -> str:
    """A statistic as the Stats tab prints it: six significant digits, ``—`` when nothing was finite."""
    return "—" if value is None else f"{value:.6g}"


def over(report: ActivationReport) -> str:
    """What ran through the model: ``chelsea.png (1 example)``."""
    return f"{report.inputs} ({report.examples} example{'s' if report.examples != 1 else ''})"


def lookup(report: ActivationReport, tree: ModuleTree, index: int) -> NodeActivity | None:
    """Node ``index``'s statistics; a module registered twice ran (and was hooked) under its first name."""
    node = tree.nodes[index]
    original = tree.nodes[node.same_as] if node.same_as is not None else node
    return report.get(original.name)


def activity_cell(report: ActivationReport, tree: ModuleTree, members: Sequence[int]) -> Text:
    """The tree's activity column for one node, or a folded run (dead channels summed):
    ``NaN!`` in red where any output was NaN or ±Inf, else the share of dead channels."""
    ran = [found for found in (lookup(report, tree, i) for i in members) if found is not None]
    if not ran:
        return Text("not run", "dim italic")
    if any(node.nonfinite for node in ran):
        return Text(NONFINITE, "bold red")
    channels = sum(node.channels for node in ran)
    if not channels:
        return Text("—", "dim")
    dead = sum(len(node.dead_channels) for node in ran)
    share = dead / channels
    said = "<0.1%" if 0 < share < 0.0005 else f"{share:.1%}"
    return Text(f"{said} dead", "bold yellow" if dead else "dim")


def activity_table(node: NodeActivity | None, where: str) -> Table:
    """The Stats tab's lines for one node: the figures ``layerscope activations --json`` prints
    (mean, std, min, max, zero fraction, dead channels, saturation, non-finite count)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("activations", Text(f"over {where}", "bold"))
    if node is None:
        table.add_row("", Text("this node did not run, or returned no floating-point tensor", "dim"))
        return table
    for label, value in (("mean", node.mean), ("std", node.std), ("min", node.min), ("max", node.max)):
        table.add_row(label, figure(value))
    table.add_row("zeros", f"{node.zero_fraction:.2%} of {node.elements:,} elements")
    table.add_row("dead channels", _dead(node))
    if node.saturation is not None and node.saturated_fraction is not None:
        bounds = node.saturation
        table.add_row("saturated", f"{node.saturated_fraction:.2%} at {bounds.low:g} or {bounds.high:g}")
    table.add_row("NaN/Inf", Text(f"{node.nonfinite:,}", "bold red") if node.nonfinite else Text("0"))
    histogram = node.histogram
    if histogram.counts:
        table.add_row("histogram", f"{sum(histogram.counts):,} finite values (counts: log scale)")
    return table


def _dead(node: NodeActivity) -> Text:
    if not node.channels:
        return Text("— (no channel dimension)", "dim")
    dead = node.dead_channels
    said = Text(f"{len(dead)} of {node.channels} ({node.dead_fraction:.1%})", "bold yellow" if dead else "")
    if dead:
        listed = ", ".join(map(str, dead[:LISTED]))
        said.append(f": {listed}{', …' if len(dead) > LISTED else ''}")
    return said


def draw_histogram(plt: Any, histogram: Histogram) -> None:
    """``histogram`` as bars on a plotext figure (``PlotextPlot.plt``), one per bin (placed by bin
    number: plotext rasterises a bar of a value-scaled width slowly), counts on a log scale (a ReLU's exact zeros outnumber the rest a hundredfold: on a linear scale they
    would be the only bar), x labelled at evenly spaced values, y at every power of ten."""
    plt.clear_figure()
    edges, counts = histogram.edges, histogram.counts
    bins = len(counts)  # bar i stands at x = i, so its bin spans i - 0.5 … i + 0.5 whatever the values' scale
    heights = [math.log10(1 + c) for c in counts]
    plt.bar(list(range(bins)), heights, width=1, color="cyan")
    steps = [i / (TICKS - 1) for i in range(TICKS)]
    plt.xticks([bins * f - 0.5 for f in steps], _labels([edges[0] + (edges[-1] - edges[0]) * f for f in steps]))
    plt.xlim(-0.5, bins - 0.5)
    decades = range(int(math.log10(max(counts))) + 1)
    plt.yticks([math.log10(1 + 10**k) for k in decades], [_power_of_ten(k) for k in decades])
    plt.ylim(0, max(heights))


def _labels(values: list[float]) -> list[str]:
    """``values`` with three significant digits, or as many more as it takes to tell them apart."""
    for digits in range(3, 10):
        labels = [f"{v:.{digits}g}" for v in values]
        if len(set(labels)) == len(labels):
            break
    return labels


def _power_of_ten(k: int) -> str:
    """``1``, ``10``, ``100``, ``1k`` … ``100M``, ``1e9`` …: the log axis's labels, short."""
    prefixes = {0: "", 3: "k", 6: "M"}
    unit = 3 * min(k // 3, 2)
    return f"{10 ** (k - unit)}{prefixes[unit]}" if k < 9 else f"1e{k}"


def summary(report: ActivationReport) -> tuple[str, str]:
    """The notification when ``A`` finishes: (title, text)."""
    nodes = report.nodes.values()
    dead = [n for n in nodes if n.dead_channels]
    broken = [n.name or "model" for n in nodes if n.nonfinite]
    lines = [f"{len(report.nodes):,} nodes; {len(dead):,} with dead channels"]
    if broken:
        named = ", ".join(broken[:3]) + (", …" if len(broken) > 3 else "")
        lines.append(f"NaN/Inf in {len(broken):,}: {named}")
    lines.append("the tree shows each node's activity (x cycles); Stats, its histogram")
    return f"Activations over {over(report)}", "\n".join(lines)


def hint() -> Text:
    """The Stats tab's last line before ``A`` has run."""
    return Text.assemble(
        ("\nA", "bold cyan"),
        (
            " collects every node's activations over the photo (or --input): "
            "mean, std, dead channels, NaN/Inf and a histogram here, "
            "an activity column in the tree",
            "dim",
        ),
    )
