"""The terminal preview: one Rich renderable for the CLI and the app, drawn for the
colour depth the terminal has (``color_depth``).

Colour terminals get half-block cells: ``▀`` whose foreground is the upper pixel and
whose background is the lower one, so each cell shows two pixels and the picture
keeps its aspect ratio. Truecolor terminals get the exact colours; 256-colour ones get
the xterm palette with Floyd–Steinberg dithering (the nearest palette colour alone
posterizes a heatmap into bands). With fewer colours or none (``NO_COLOR``,
``--ascii``, a dumb terminal) an ASCII ramp draws the map itself, one character per
cell, so the hot spot is still visible.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import torch
import torch.nn.functional as F
from PIL import Image
from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from torch import Tensor

from layerscope.io import imaging

ASCII_RAMP = " .:-=+*#%@"
UPPER_HALF = "▀"
CUBE_LEVELS = (0, 95, 135, 175, 215, 255)  # xterm's 6×6×6 colour cube, indices 16–231
ColorDepth = Literal["truecolor", "256", "ascii"]


def color_depth(console: Console) -> ColorDepth:
    """The best preview this console shows: Rich reads ``COLORTERM`` / ``TERM`` (``truecolor``,
    ``xterm-256color`` …); 16 colours or none get the ASCII ramp, which needs no palette."""
    system = None if console.no_color else console.color_system
    if system == "truecolor":
        return "truecolor"
    return "256" if system == "256" else "ascii"


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
    colors: ColorDepth | None = None  # None: what the console rendering it shows (color_depth)
    box: tuple[float, float, float, float] | None = None  # a detector's target box, in the map's pixels

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = {"ascii": self.ascii_lines, "256": self.dithered_lines, "truecolor": self.half_block_lines}
        for line in lines[self.depth(console)]():
            yield from line
            yield Segment.line()

    def depth(self, console: Console) -> ColorDepth:
        return "ascii" if self.ascii else self.colors or color_depth(console)

    def ascii_lines(self) -> list[list[Segment]]:
        """One ramp character per cell; the map is sampled at the cell grid."""
        values = _resample(self.heatmap, self.width, self.height)
        top = len(ASCII_RAMP) - 1
        indices = (values.clamp(0, 1) * top).round().long().tolist()
        return [[Segment("".join(ASCII_RAMP[i] for i in row))] for row in indices]

    def half_block_lines(self) -> list[list[Segment]]:
        """Truecolor: each cell's two pixels exactly."""
        return _cells([[tuple(p) for p in row] for row in self.pixels().tolist()], lambda rgb: Color.from_rgb(*rgb))

    def dithered_lines(self) -> list[list[Segment]]:
        """256 colours: the pixels dithered onto the xterm palette, as 8-bit colour numbers."""
        return _cells(xterm_indices(self.pixels()).tolist(), Color.from_ansi)

    def pixels(self) -> Tensor:
        """``(2·height)×width×3`` uint8: the colours of the upper and lower half of each cell."""
        size = (self.width, self.height * 2)
        heat = _resample(self.heatmap, *size)
        if self.image is None:
            return imaging.colorize(heat, self.colormap)
        mask = None if self.mask is None else _resample(self.mask.float(), *size) > 0.5
        blended = imaging.overlay(
            self.image.resize(size, Image.Resampling.BILINEAR), heat, self.colormap, self.alpha, mask
        )
        if self.box is not None:  # drawn at the preview's size: one pixel stays one half cell
            h, w = self.heatmap.shape
            x1, y1, x2, y2 = self.box
            sx, sy = size[0] / w, size[1] / h
            blended = imaging.draw_box(blended, (x1 * sx, y1 * sy, x2 * sx, y2 * sy), width=1)
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
    colors: ColorDepth | None = None,
    box: tuple[float, float, float, float] | None = None,
) -> HeatmapPreview:
    """A preview ``width`` cells wide; ``height`` (cells) defaults to the map's aspect ratio.

    ``ascii=True`` forces the ramp; otherwise ``colors`` picks the renderer, and ``None``
    decides at render time from the console (``color_depth``). ``box`` (x1, y1, x2, y2 in the
    map's pixels) outlines a detector's target box over the photo.
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
        heatmap=heatmap.detach().float().cpu(),
        width=width,
        height=max(1, int(height)),
        image=image,
        colormap=colormap,
        alpha=alpha,
        ascii=ascii,
        mask=mask,
        colors=colors,
        box=None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
    )


def xterm_indices(rgb: Tensor) -> Tensor:
    """H×W×3 uint8 → H×W xterm colour numbers (16–255), Floyd–Steinberg dithered by Pillow.

    The 16 system colours are left out: terminals theme them, so their RGB is unknown."""
    image = Image.fromarray(rgb.numpy().astype("uint8"), "RGB")
    quantized = image.quantize(palette=_xterm_palette(), dither=Image.Dither.FLOYDSTEINBERG)
    indices = torch.as_tensor(bytearray(quantized.tobytes()), dtype=torch.int64).view(rgb.shape[0], rgb.shape[1])
    return torch.where(indices < 240, indices + 16, 16)  # the palette's padding repeats colour 16


def xterm_rgb(index: int) -> tuple[int, int, int]:
    """The RGB of xterm colour ``index`` (16–255): the 6×6×6 cube, then 24 greys."""
    if index >= 232:
        grey = 8 + 10 * (index - 232)
        return (grey, grey, grey)
    r, g, b = (index - 16) // 36, (index - 16) // 6 % 6, (index - 16) % 6
    return (CUBE_LEVELS[r], CUBE_LEVELS[g], CUBE_LEVELS[b])


@lru_cache(maxsize=1)
def _xterm_palette() -> Image.Image:
    colours = [c for index in range(16, 256) for c in xterm_rgb(index)]
    palette = Image.new("P", (1, 1))
    palette.putpalette(colours + colours[:3] * 16)  # Pillow wants 256 entries
    return palette


def _cells(pixels: list[list[Hashable]], color: Callable[[Any], Color]) -> list[list[Segment]]:
    """Half-block lines from rows of pixel values: row 2k above row 2k+1 in each cell."""
    styles: dict[tuple[Hashable, Hashable], Style] = {}
    lines = []
    for upper, lower in zip(pixels[0::2], pixels[1::2]):
        line = []
        for pair in zip(upper, lower):
            style = styles.get(pair)
            if style is None:
                style = styles[pair] = Style(color=color(pair[0]), bgcolor=color(pair[1]))
            line.append(Segment(UPPER_HALF, style))
        lines.append(line)
    return lines


def _resample(heatmap: Tensor, width: int, height: int) -> Tensor:
    """Area-average when shrinking (no aliasing of small hot spots), bilinear when growing."""
    h, w = heatmap.shape
    mode = "area" if height <= h and width <= w else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(heatmap[None, None].float(), size=(height, width), mode=mode, **kwargs)[0, 0]
