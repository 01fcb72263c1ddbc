"""The terminal preview: half-block cells carry two pixels each; the ASCII ramp draws the map."""

from __future__ import annotations

import io

import torch
from PIL import Image
from rich.console import Console

from layerscope.io import imaging
from layerscope.presentation.render import ASCII_RAMP, UPPER_HALF, heatmap_preview


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


def test_colour_depth_is_read_from_the_terminal():
    from layerscope.presentation.render import color_depth

    def depth(**environ) -> str:
        return color_depth(Console(file=io.StringIO(), force_terminal=True, _environ=environ))

    assert depth(COLORTERM="truecolor", TERM="xterm-256color") == "truecolor"
    assert depth(TERM="xterm-256color") == "256"
    assert depth(TERM="xterm") == "ascii"  # 16 themed colours: the ramp, not a guessed palette
    assert depth(TERM="dumb") == "ascii"
    assert depth(COLORTERM="truecolor", NO_COLOR="1") == "ascii"


def test_256_colours_dither_instead_of_posterizing():
    from layerscope.presentation.render import xterm_indices, xterm_rgb

    between = torch.zeros(16, 16, 3, dtype=torch.uint8)
    between[..., 0] = 115  # halfway between the cube's reds 95 (colour 52) and 135 (colour 88)
    indices = xterm_indices(between)
    assert set(indices.flatten().tolist()) == {52, 88}  # nearest-colour alone would give one of them
    mean_red = sum(xterm_rgb(i)[0] for i in indices.flatten().tolist()) / indices.numel()
    assert abs(mean_red - 115) < 3
    assert xterm_rgb(16) == (0, 0, 0) and xterm_rgb(231) == (255, 255, 255) and xterm_rgb(244) == (128, 128, 128)


def test_the_console_picks_the_renderer():
    heat = torch.linspace(0, 1, 64).repeat(32, 1)
    preview = heatmap_preview(heat, width=16)

    def cells(console: Console) -> list:
        return [s for s in console.render(preview) if s.text == UPPER_HALF]

    eight_bit = cells(_console(color_system="256"))
    assert len(eight_bit) == 16 * 4
    assert {s.style.color.type.name for s in eight_bit} == {"EIGHT_BIT"}
    assert all(16 <= s.style.color.number <= 255 for s in eight_bit)
    assert {s.style.color.type.name for s in cells(_console(color_system="truecolor"))} == {"TRUECOLOR"}
    assert cells(_console(color_system="standard")) == [] and "@" in "".join(  # the ASCII ramp
        s.text for s in _console(color_system="standard").render(preview)
    )
    forced = heatmap_preview(heat, width=16, colors="256")
    assert {
        s.style.color.type.name for s in _console(color_system="truecolor").render(forced) if s.text == UPPER_HALF
    } == {"EIGHT_BIT"}


def test_a_detectors_box_is_outlined_in_the_preview():
    heat = torch.zeros(20, 40)
    photo = Image.new("RGB", (40, 20), (90, 90, 90))
    pixels = heatmap_preview(heat, width=20, image=photo, box=(10, 4, 30, 16)).pixels()  # half the photo's size
    assert pixels.shape == (10, 20, 3)
    magenta = (pixels == torch.tensor([255, 0, 255], dtype=torch.uint8)).all(-1)
    assert magenta[2, 5:15].all() and magenta[2:8, 5].all()  # top and left sides at half scale
    assert not magenta[4, 7:13].any() and magenta.sum() == 2 * 10 + 2 * 4
