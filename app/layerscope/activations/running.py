"""What one node's outputs looked like so far, updated batch by batch in constant memory.

Mean and variance merge per batch with Chan's parallel form of Welford's update, in
float64 (a float32 running sum over ten thousand images loses digits); minimum,
maximum, zero, non-finite and saturated counts are plain running totals; a channel is
dead while it has been exactly zero on every element seen; the histogram grows its
range instead of keeping values. Nothing of a batch is kept once it has been added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from layerscope.activations.histogram import GrowingHistogram, Histogram

SMOOTH_MARGIN = 0.01  # a smooth activation within 1% of its output range from a bound is saturated


@dataclass(frozen=True, slots=True)
class Bounds:
    """The range an activation cannot leave, and how close to an edge counts as saturated."""

    low: float
    high: float
    margin: float = 0.0  # 0: only values at the bound itself (ReLU6, Hardtanh)

    def saturated(self, values: torch.Tensor) -> int:
        return int(((values <= self.low + self.margin) | (values >= self.high - self.margin)).sum())


def saturation_bounds(module: nn.Module) -> Bounds | None:
    """Bounds of the activation modules that have two: clipped ones exactly at their limits,
    smooth ones near them (where their gradient vanishes). ReLU's only bound is 0, which
    ``zero_fraction`` already tells."""
    if isinstance(module, nn.Hardtanh):  # ReLU6 is a Hardtanh(0, 6)
        return Bounds(float(module.min_val), float(module.max_val))
    if isinstance(module, nn.Hardsigmoid):
        return Bounds(0.0, 1.0)
    if isinstance(module, nn.Sigmoid):
        return Bounds(0.0, 1.0, SMOOTH_MARGIN)
    if isinstance(module, (nn.Tanh, nn.Softsign)):
        return Bounds(-1.0, 1.0, 2 * SMOOTH_MARGIN)
    return None


@dataclass(frozen=True)
class NodeActivity:
    """One node's outputs over every element of every example (population statistics over
    the finite values; non-finite ones are counted apart)."""

    name: str
    shape: tuple[int, ...]  # one example's output, batch dimension 1
    calls: int
    elements: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    zero_fraction: float
    channel_dim: int | None  # 1 for N×C×…, -1 for token layouts (N×L×C), None without channels
    channels: int
    dead_channels: tuple[int, ...]
    saturation: Bounds | None
    saturated_fraction: float | None
    nonfinite: int
    histogram: Histogram

    @property
    def dead_fraction(self) -> float:
        return len(self.dead_channels) / self.channels if self.channels else 0.0

    def as_json(self, access_expression: str) -> dict[str, object]:
        return {
            "name": self.name,
            "access_expression": access_expression,
            "shape": list(self.shape),
            "calls": self.calls,
            "elements": self.elements,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "zero_fraction": self.zero_fraction,
            "channel_dim": self.channel_dim,
            "channels": self.channels,
            "dead_channels": list(self.dead_channels),
            "saturated_fraction": self.saturated_fraction,
            "saturation_bounds": [self.saturation.low, self.saturation.high] if self.saturation else None,
            "nonfinite": self.nonfinite,
            "histogram": self.histogram.as_json(),
        }


class RunningActivity:
    """The accumulator behind one ``NodeActivity``."""

    def __init__(self, name: str, bounds: Bounds | None, channel_dim: int | None) -> None:
        self.name = name
        self.bounds = bounds
        self.channel_dim = channel_dim
        self.shape: tuple[int, ...] = ()
        self.calls = self.elements = self.finite = self.zeros = self.nonfinite = self.saturated = 0
        self.mean = self.m2 = 0.0
        self.low, self.high = math.inf, -math.inf
        self.alive: torch.Tensor | None = None  # per channel: any non-zero element seen
        self.histogram = GrowingHistogram()

    def add(self, output: torch.Tensor) -> None:
        """Five passes over the batch (a float64 copy, zeros per channel, min/max, mean/var,
        histogram); the non-finite filter only when min or max says there is something to filter."""
        values = output.detach().double()
        self.calls += 1
        self.shape = (1, *values.shape[1:]) if values.dim() else ()
        self.elements += values.numel()
        self.zeros += values.numel() - self._count_nonzero(values)
        if not values.numel():
            return
        smallest, largest = (float(v) for v in torch.aminmax(values))
        if not (math.isfinite(smallest) and math.isfinite(largest)):  # NaN or ±Inf somewhere
            finite = values[torch.isfinite(values)]
            self.nonfinite += values.numel() - finite.numel()
            if not finite.numel():
                return
            values = finite
            smallest, largest = (float(v) for v in torch.aminmax(values))
        self._add_finite(values, smallest, largest)

    def _count_nonzero(self, values: torch.Tensor) -> int:
        """Non-zero elements, counted per channel where there are channels (NaN is not zero)."""
        if self.channel_dim is None:
            return int(torch.count_nonzero(values))
        dim = self.channel_dim % values.dim()
        per_channel = torch.count_nonzero(values, dim=[d for d in range(values.dim()) if d != dim])
        alive = per_channel > 0
        self.alive = alive if self.alive is None else self.alive | alive
        return int(per_channel.sum())

    def _add_finite(self, values: torch.Tensor, smallest: float, largest: float) -> None:
        n = values.numel()
        var, mean = (float(v) for v in torch.var_mean(values, correction=0))
        total = self.finite + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += var * n + delta * delta * self.finite * n / total
        self.finite = total
        self.low, self.high = min(self.low, smallest), max(self.high, largest)
        self.histogram.add(values, smallest, largest)
        if self.bounds is not None:
            self.saturated += self.bounds.saturated(values)

    def result(self) -> NodeActivity:
        seen = self.finite > 0
        dead = () if self.alive is None else tuple(torch.nonzero(~self.alive).flatten().tolist())
        return NodeActivity(
            name=self.name,
            shape=self.shape,
            calls=self.calls,
            elements=self.elements,
            mean=self.mean if seen else None,
            std=math.sqrt(self.m2 / self.finite) if seen else None,
            min=self.low if seen else None,
            max=self.high if seen else None,
            zero_fraction=self.zeros / self.elements if self.elements else 0.0,
            channel_dim=self.channel_dim,
            channels=0 if self.alive is None else self.alive.numel(),
            dead_channels=dead,
            saturation=self.bounds,
            saturated_fraction=self.saturated / self.finite if self.bounds and seen else None,
            nonfinite=self.nonfinite,
            histogram=self.histogram.result(),
        )
