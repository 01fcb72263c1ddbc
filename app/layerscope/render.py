"""The terminal preview: one Rich renderable for the CLI and the app.

Colour terminals get half-block cells: ``▀`` whose foreground is the upper pixel and
whose background is the lower one, so each cell shows two pixels and the picture
keeps its aspect ratio. Without colour (``NO_COLOR``, ``--ascii``, a dumb terminal)
an ASCII ramp draws the map itself, one character per cell, so the hot spot is
still visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from PIL import Image
from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from torch import Tensor

from layerscope import imaging

ASCII_RAMP = " .:-=+*#%@"
UPPER_HALF = "▀"


@dataclass(frozen=True)
class HeatmapPreview:
    """A map (and optionally the photo under it) drawn ``width`` cells wide, ``height`` high."""

    heatmap: Tensor
    width: int
    height: int
    image: Image.Image | None = None
    colormap: str = "jet"
    alpha: float = 0.5
    ascii: bool | None = None
    mask: Tensor | None = None

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        plain = self.ascii if self.ascii is not None else (console.no_color or console.color_system is None)
        lines = self.ascii_lines() if plain else self._half_block_lines()
        for line in lines:
            yield from line
            yield Segment.line()

    def ascii_lines(self) -> list[list[Segment]]:
        """One ramp character per cell; the map is sampled at the cell grid."""
        values = _resample(self.heatmap, self.width, self.height)
        top = len(ASCII_RAMP) - 1
        indices = (values.clamp(0, 1) * top).round().long().tolist()
        return [[Segment("".join(ASCII_RAMP[i] for i in row))] for row in indices]

    def _half_block_lines(self) -> list[list[Segment]]:
        rgb = self.pixels()
        lines = []
        for y in range(0, rgb.shape[0], 2):
            upper, lower = rgb[y].tolist(), rgb[y + 1].tolist()
            lines.append([
                Segment(UPPER_HALF, Style(color=Color.from_rgb(*u), bgcolor=Color.from_rgb(*d)))
                for u, d in zip(upper, lower)
            ])
        return lines

    def pixels(self) -> Tensor:
        """``(2·height)×width×3`` uint8: the colours of the upper and lower half of each cell."""
        size = (self.width, self.height * 2)
        heat = _resample(self.heatmap, *size)
        if self.image is None:
            return imaging.colorize(heat, self.colormap)
        mask = None if self.mask is None else _resample(self.mask.float(), *size) > 0.5
        blended = imaging.overlay(self.image.resize(size, Image.BILINEAR), heat, self.colormap, self.alpha, mask)
        return imaging.image_to_tensor(blended)


def heatmap_preview(
    heatmap: Tensor,
    width: int = 64,
    height: int | None = None,
    *,
    image: Image.Image | None = None,
    colormap: str = "jet",
    alpha: float = 0.5,
    ascii: bool | None = None,
    mask: Tensor | None = None,
) -> HeatmapPreview:
    """A preview ``width`` cells wide; ``height`` (cells) defaults to the map's aspect ratio.

    ``ascii=None`` decides at render time: no colour on the console means the ramp.
    Pass the photo as ``image`` (same geometry as the map) to preview the overlay, and
    ``mask`` (``imaging.seen_mask``) to leave the parts the model never saw unpainted.
    """
    if heatmap.dim() != 2:
        raise ValueError(f"heatmap_preview needs one H×W map, got {tuple(heatmap.shape)}")
    width = max(1, int(width))
    if height is None:
        h, w = heatmap.shape
        height = max(1, round(width * h / w / 2))  # a cell is about twice as tall as it is wide
    return HeatmapPreview(
        heatmap.detach().float().cpu(), width, max(1, int(height)), image, colormap, alpha, ascii, mask
    )


def _resample(heatmap: Tensor, width: int, height: int) -> Tensor:
    """Area-average when shrinking (no aliasing of small hot spots), bilinear when growing."""
    h, w = heatmap.shape
    mode = "area" if height <= h and width <= w else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(heatmap[None, None].float(), size=(height, width), mode=mode, **kwargs)[0, 0]
