"""The deletion and insertion curves behind a map's scores, plotted (``p`` on the Grad-CAM tab).

The points are the engine's own: ``Faithfulness.deletion_curve`` and ``insertion_curve``
from ``cam.metrics.faithfulness``, the function ``layerscope rank`` scores maps with, so
the areas under these curves are the scores the info line prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from textual_plotext import PlotextPlot

if TYPE_CHECKING:
    from layerscope.cam.metrics import Faithfulness


class Curve(NamedTuple):
    label: str
    x: list[float]  # the fraction of pixels removed (deletion) or restored (insertion)
    y: list[float]  # the target class's probability after each step
    color: str


def curves(scores: Faithfulness) -> list[Curve]:
    """Both curves over the fraction of pixels changed, labelled with their areas."""
    steps = len(scores.deletion_curve) - 1
    x = [k / steps for k in range(steps + 1)]
    return [
        Curve(f"deletion {scores.deletion_auc:.3f} ↓", x, list(scores.deletion_curve), "red"),
        Curve(f"insertion {scores.insertion_auc:.3f} ↑", x, list(scores.insertion_curve), "green"),
    ]


class CurvesPlot(PlotextPlot):
    """The shown map's curves; until it is scored, a title saying where its scores stand."""

    def show(self, scores: Faithfulness | None, note: str = "") -> None:
        plt = self.plt
        plt.clear_data()
        plt.xlim(0, 1)
        plt.ylim(0, 1)
        plt.xlabel("fraction of pixels changed")
        if scores is None:
            plt.title(note or "no scores yet: g computes and scores a map")
        else:
            plt.title("target class probability")
            for curve in curves(scores):
                plt.plot(curve.x, curve.y, label=curve.label, color=curve.color, marker="braille")
        self.refresh()
