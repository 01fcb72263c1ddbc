"""A histogram that streams: fixed bins whose range doubles when a value falls outside it.

The range of a node's activations is unknown until every image has been seen, and
keeping the values to bin them at the end would cost memory in proportion to the
folder. So the first batch sets the range, and a later value outside it doubles the
bin width (merging neighbouring bins pairwise), upwards or downwards: counts stay
exact, memory stays at ``bins`` integers, and the edges are known at every moment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

BINS = 64  # even, so that two bins always merge into one


@dataclass(frozen=True, slots=True)
class Histogram:
    """Counts of finite values per bin; ``edges`` has one more entry than ``counts``, bins are
    half-open ``[edges[i], edges[i + 1])``; empty bins at either end are left out."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]

    def as_json(self) -> dict[str, list]:
        return {"edges": list(self.edges), "counts": list(self.counts)}


class GrowingHistogram:
    """``add`` batches of float64 values; ``result`` the histogram so far."""

    def __init__(self, bins: int = BINS) -> None:
        if bins < 2 or bins % 2:
            raise ValueError("a growing histogram needs an even number of bins")
        self.bins = bins
        self.low = 0.0
        self.width = 0.0
        self.counts: torch.Tensor | None = None

    @property
    def high(self) -> float:
        return self.low + self.bins * self.width

    def add(self, values: torch.Tensor, smallest: float, largest: float) -> None:
        """``values``: finite, non-empty; ``smallest`` and ``largest`` their minimum and maximum."""
        if self.counts is None:
            self._start(smallest, largest, values.device)
        while smallest < self.low:
            self._grow_down()
        while largest >= self.high:
            self._grow_up()
        counted = torch.histc(values, bins=self.bins, min=self.low, max=self.high)
        self.counts += counted.long()

    def result(self) -> Histogram:
        if self.counts is None:
            return Histogram((), ())
        counts = self.counts.tolist()
        used = [i for i, c in enumerate(counts) if c]
        first, last = used[0], used[-1] + 1
        edges = tuple(self.low + i * self.width for i in range(first, last + 1))
        return Histogram(edges, tuple(counts[first:last]))

    def _start(self, smallest: float, largest: float, device: torch.device) -> None:
        """A range just wider than the first batch's, so its largest value falls inside."""
        span = largest - smallest
        self.low = smallest
        self.width = (span if span > 0 else max(abs(smallest), 1.0)) / self.bins
        while largest >= self.high:  # rounding: keep the largest value strictly inside
            self.width = math.nextafter(self.width, math.inf) * (1 + 1e-12)
        self.counts = torch.zeros(self.bins, dtype=torch.long, device=device)

    def _grow_up(self) -> None:
        """Same low edge, double width: bins 2j and 2j + 1 become bin j."""
        assert self.counts is not None
        merged = self.counts.view(-1, 2).sum(1)
        self.counts = torch.cat([merged, torch.zeros_like(merged)])
        self.width *= 2

    def _grow_down(self) -> None:
        """Same high edge, double width: the old bins fill the upper half."""
        assert self.counts is not None
        merged = self.counts.view(-1, 2).sum(1)
        self.counts = torch.cat([torch.zeros_like(merged), merged])
        self.low -= self.bins * self.width
        self.width *= 2
