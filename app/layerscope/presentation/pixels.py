"""Pictures at full resolution in terminals that draw pixels (Kitty graphics, Sixel).

``terminal_graphics`` asks the terminal, once and before any app reads its keys, which
protocol it speaks: textual-image sends the queries and waits 0.1 s for each answer, and
a terminal that does not answer (most, and every pipe) gets cells instead.
``preview_mode`` turns ``--preview auto|kitty|sixel|halfblock|ascii`` into the renderer
to use; ``kitty_escape`` and ``sixel_escape`` draw a picture with the two protocols,
and ``layerscope.presentation.render`` draws the cells.
"""

from __future__ import annotations

import base64
import io
import sys
from functools import lru_cache
from typing import Literal

from PIL import Image
from rich.console import Console

from layerscope.errors import LayerscopeError
from layerscope.presentation.render import color_depth

Graphics = Literal["kitty", "sixel"]
PreviewMode = Literal["kitty", "sixel", "halfblock", "ascii"]
PREVIEW_CHOICES = ("auto", "kitty", "sixel", "halfblock", "ascii")
KITTY_CHUNK = 4096  # base64 characters per escape sequence, the protocol's limit
MAX_SIDE = 1600  # pixels sent: more than any terminal window shows, far less than a camera photo


@lru_cache(maxsize=1)
def terminal_graphics() -> Graphics | None:
    """The pixel protocol the terminal answered for (Sixel asked first, as textual-image does),
    or None: no terminal on both ends, or no answer within textual-image's 0.1 s."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return None
    try:
        import textual_image.renderable as chosen  # importing it asks the terminal
    except ImportError:
        return None
    if chosen.Image is chosen.SixelImage:
        return "sixel"
    return "kitty" if chosen.Image is chosen.TGPImage else None


def preview_mode(requested: str, console: Console) -> PreviewMode:
    """``auto``: the terminal's pixel protocol, else half blocks when it has colours, else ASCII."""
    if requested not in PREVIEW_CHOICES:
        raise LayerscopeError(f"unknown preview {requested!r}; choose one of: {', '.join(PREVIEW_CHOICES)}")
    if requested != "auto":
        return requested  # type: ignore[return-value]
    graphics = terminal_graphics()
    if graphics is not None:
        return graphics
    return "ascii" if color_depth(console) == "ascii" else "halfblock"


def kitty_escape(picture: Image.Image, columns: int, rows: int) -> str:
    """Kitty's graphics protocol: the picture as PNG (``f=100``), transmitted and shown at once
    (``a=T``) over ``columns``×``rows`` cells, base64 in chunks of ``KITTY_CHUNK``."""
    data = base64.standard_b64encode(png_bytes(picture)).decode("ascii")
    chunks = [data[i : i + KITTY_CHUNK] for i in range(0, len(data), KITTY_CHUNK)] or [""]
    parts = []
    for i, chunk in enumerate(chunks):
        more = int(i < len(chunks) - 1)
        keys = f"a=T,f=100,c={columns},r={rows},q=2,m={more}" if i == 0 else f"m={more}"
        parts.append(f"\x1b_G{keys};{chunk}\x1b\\")
    return "".join(parts)


def sixel_escape(picture: Image.Image, columns: int) -> str:
    """The picture as Sixel, ``columns`` cells wide, by textual-image's renderable: blank lines
    that reserve the cells, then the image drawn over them (written as is, also into a pipe)."""
    from textual_image.renderable.sixel import Image as SixelImage

    buffer = io.StringIO()
    Console(file=buffer, force_terminal=True, width=columns + 1, color_system=None).print(
        SixelImage(fitted(picture), width=columns, height="auto")
    )  # rows keep the aspect ratio
    return buffer.getvalue()


def png_bytes(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    fitted(picture).save(buffer, format="PNG")
    return buffer.getvalue()


def fitted(picture: Image.Image) -> Image.Image:
    """The picture, shrunk to ``MAX_SIDE`` pixels on its longer side if larger."""
    if max(picture.size) <= MAX_SIDE:
        return picture
    scale = MAX_SIDE / max(picture.size)
    return picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.Resampling.LANCZOS)
