"""The terminal preview: half-block cells carry two pixels each; the ASCII ramp draws the map."""

from __future__ import annotations

import io

import torch
from PIL import Image
from rich.console import Console

from layerscope import imaging
from layerscope.render import ASCII_RAMP, UPPER_HALF, heatmap_preview


def _console(**kw) -> Console:
    return Console(file=io.StringIO(), width=80, **kw)


def test_half_block_cell_has_upper_pixel_as_foreground_and_lower_as_background():
    heat = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    preview = heatmap_preview(heat, width=2, height=1)
    segments = [s for s in _console(color_system="truecolor").render(preview) if s.text == UPPER_HALF]
    assert len(segments) == 2
    jet0, jet1 = imaging.colorize(torch.tensor([[0.0, 1.0]]))[0].tolist()
    first, second = segments
    assert first.style.color.triplet == tuple(jet0) and first.style.bgcolor.triplet == tuple(jet1)
    assert second.style.color.triplet == tuple(jet1) and second.style.bgcolor.triplet == tuple(jet0)


def test_ascii_ramp_draws_the_hot_spot_where_it_is():
    heat = torch.zeros(20, 40)
    heat[:10, 20:] = 1.0  # top-right quarter hot
    console = _console(no_color=True)
    console.print(heatmap_preview(heat, width=8, height=4))
    lines = console.file.getvalue().splitlines()
    assert lines == ["    @@@@", "    @@@@", "        ", "        "]


def test_ascii_is_used_when_forced_and_height_follows_the_aspect_ratio():
    heat = torch.linspace(0, 1, 100).repeat(50, 1)
    preview = heatmap_preview(heat, width=10, ascii=True)
    assert preview.height == 2  # 10 cells wide, a cell twice as tall as wide: 50/100·10/2
    console = _console(color_system="truecolor")
    console.print(preview)
    first = console.file.getvalue().splitlines()[0]
    assert first[0] == ASCII_RAMP[0] and first[-1] == ASCII_RAMP[-1] and "\x1b" not in first


def test_overlay_preview_blends_the_photo():
    heat = torch.zeros(4, 4)
    photo = Image.new("RGB", (4, 4), (255, 255, 255))
    pixels = heatmap_preview(heat, width=4, height=2, image=photo, alpha=0.5).pixels()
    assert pixels.shape == (4, 4, 3) and pixels[0, 0].tolist() == [128, 128, 192]
