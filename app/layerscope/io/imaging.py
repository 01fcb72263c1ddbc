"""Images in and out: loading any photo, the model's preprocessing, and overlays that line up.

The model sees a resized, centre-cropped copy; ``Geometry`` records exactly how, so
``to_original`` can put a heatmap back onto the photo the user gave us (an overlay
on the crop would look right and be wrong). Resizing and cropping go through
torchvision's own functions, so the tensor equals what the weights' transforms give.
Colormaps are computed in torch: no matplotlib dependency.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError
from torch import Tensor

from layerscope.errors import BadArgumentError, BadFileError, LayerscopeError, UnsafeFileError, first_line
from layerscope.io.files import atomic_write, expand, regular_file
from layerscope.models.loaded import MAX_SIDE, Preprocess

SAMPLES = Path(__file__).parent.parent / "samples"
RASTER_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "PPM")  # never EPS/PS: Pillow hands those to Ghostscript
MAX_INPUT_PIXELS = MAX_SIDE * MAX_SIDE


@dataclass(frozen=True)
class Geometry:
    """Where the model's input came from: original size, resized size, and the crop box
    ``(left, top, width, height)`` in resized pixels (negative when the crop was padded)."""

    original: tuple[int, int]
    resized: tuple[int, int]
    crop: tuple[int, int, int, int]


def load_image(path: str | Path) -> Image.Image:
    """An RGB image from a regular file in one of the ``RASTER_FORMATS``; transparency is
    flattened onto white.

    Only raster formats are opened: Pillow reads EPS by running Ghostscript (``gs``), a
    program outside layerscope's control. Pillow's decompression-bomb limit (about 89
    million pixels) is an error here, not a warning: a tiny PNG can claim gigapixels and
    eat the machine when decoded."""
    path = regular_file(expand(path, "image"), "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=RASTER_FORMATS) as opened:
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnsafeFileError(f"cannot read {path}: {_bomb_reason(exc)}") from exc
    except UnidentifiedImageError as exc:
        raise BadFileError(
            f"cannot read {path}: not an image file Pillow understands "
            f"in a raster format layerscope opens ({', '.join(RASTER_FORMATS)})"
        ) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise BadFileError(f"cannot read {path}: {first_line(exc)}") from exc
    return to_rgb(image)


def _bomb_reason(exc: Exception) -> str:
    pixels = re.search(r"\((\d+) pixels\)", str(exc))
    claimed = f"it claims {int(pixels[1]):,} pixels, " if pixels else ""
    return f"{claimed}over the {Image.MAX_IMAGE_PIXELS:,}-pixel limit (a decompression bomb?)"


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from greyscale, 16-bit, float, palette, CMYK or alpha images."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif image.mode == "F":
        image = image.point(lambda v: v * 255).convert("L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def preprocess(image: Image.Image, spec: Preprocess) -> tuple[Tensor, Geometry]:
    """The ``1×3×H×W`` float input for ``spec`` (resize the shorter side or to an exact H×W,
    centre crop, normalise); ``Geometry`` keeps both scale factors, so a stretched resize maps back too."""
    import torchvision.transforms.functional as TF

    width, height = image.size
    resized = image
    check_input_size(image.size, spec)
    if spec.resize is not None:
        size = list(spec.resize) if isinstance(spec.resize, tuple) else [spec.resize]  # H×W, or the shorter side
        resized = TF.resize(image, size, interpolation=TF.InterpolationMode(spec.interpolation), antialias=True)
    rw, rh = resized.size
    ch, cw = spec.crop or (rh, rw)
    cropped = TF.center_crop(resized, [ch, cw])
    left, top = int(round((rw - cw) / 2.0)), int(round((rh - ch) / 2.0))
    tensor = TF.pil_to_tensor(cropped).float().div(255)
    tensor = TF.normalize(tensor, list(spec.mean), list(spec.std))
    return tensor[None], Geometry((width, height), (rw, rh), (left, top, cw, ch))


def resized_size(size: tuple[int, int], resize: int | tuple[int, int]) -> tuple[int, int]:
    """(width, height) after torchvision's ``resize``: an exact H×W, or the shorter side to
    ``resize`` and the longer one in proportion (computed, never done)."""
    if isinstance(resize, tuple):
        return resize[1], resize[0]
    width, height = size
    short, long = min(width, height), max(width, height)
    other = int(resize * long / short)
    return (resize, other) if width <= height else (other, resize)


def check_input_size(size: tuple[int, int], spec: Preprocess) -> None:
    """Refuse a photo whose resized copy or crop would pass ``MAX_INPUT_PIXELS``: a 138-byte
    20000×1 PNG, its shorter side resized to 256, would become 5,120,000×256 pixels."""
    steps = []  # a photo used as it is (detectors) was bounded by Pillow's limit when read
    if spec.resize is not None:
        steps.append(("resizing", resized_size(size, spec.resize)))
    if spec.crop is not None:
        steps.append(("cropping", (spec.crop[1], spec.crop[0])))
    for what, (w, h) in steps:
        if w * h > MAX_INPUT_PIXELS:
            raise BadArgumentError(
                f"cannot prepare a {size[0]}×{size[1]} photo: {what} it for this model makes {w:,}×{h:,} = "
                f"{w * h:,} pixels, over the {MAX_INPUT_PIXELS:,}-pixel limit ({MAX_SIDE}×{MAX_SIDE})"
            )


def to_original(heatmap: Tensor, geometry: Geometry) -> Tensor:
    """The map (input resolution) resampled onto the original photo; 0 outside the crop."""
    width, height = geometry.original
    rw, rh = geometry.resized
    left, top, cw, ch = geometry.crop
    heat = heatmap.detach().float().cpu()
    xs = ((torch.arange(width) + 0.5) * (rw / width) - left) / cw * 2 - 1
    ys = ((torch.arange(height) + 0.5) * (rh / height) - top) / ch * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]
    return F.grid_sample(heat[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0]


def seen_mask(geometry: Geometry) -> Tensor:
    """``H×W`` bool over the original photo: the pixels the model's input covered. A centre
    crop leaves the borders unseen; an overlay should leave them as they are, not paint them
    as "no activation"."""
    width, height = geometry.original
    rw, rh = geometry.resized
    left, top, cw, ch = geometry.crop
    xs = (torch.arange(width) + 0.5) * (rw / width)
    ys = (torch.arange(height) + 0.5) * (rh / height)
    inside_x = (xs >= max(left, 0)) & (xs <= min(left + cw, rw))
    inside_y = (ys >= max(top, 0)) & (ys <= min(top + ch, rh))
    return inside_y[:, None] & inside_x[None, :]


# --- colormaps ---------------------------------------------------------------------


def _jet(v: Tensor) -> Tensor:
    return torch.stack([1.5 - (4 * v - c).abs() for c in (3, 2, 1)], dim=-1).clamp(0, 1)


def _turbo(v: Tensor) -> Tensor:
    """Google's polynomial approximation of Turbo (Mikhailov 2019)."""
    coefficients = torch.tensor(
        [
            [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
            [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
            [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
        ],
        dtype=v.dtype,
        device=v.device,
    )
    powers = torch.stack([v**k for k in range(6)], dim=-1)
    return (powers @ coefficients.T).clamp(0, 1)


def _stops(hexes: Sequence[str]) -> Callable[[Tensor], Tensor]:
    """Piecewise-linear colormap through evenly spaced colours (matplotlib's own stops)."""
    table = torch.tensor([[int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)] for h in hexes])

    def cmap(v: Tensor) -> Tensor:
        lut = table.to(v.device, v.dtype)
        pos = v.clamp(0, 1) * (len(hexes) - 1)
        low = pos.floor().long().clamp(max=len(hexes) - 2)
        frac = (pos - low)[..., None]
        return lut[low] * (1 - frac) + lut[low + 1] * frac

    return cmap


COLORMAPS: dict[str, Callable[[Tensor], Tensor]] = {
    "jet": _jet,
    "turbo": _turbo,
    "viridis": _stops(["440154", "472d7b", "3b528b", "2c728e", "21918c", "28ae80", "5ec962", "addc30", "fde725"]),
    "inferno": _stops(
        ["000004", "1b0c42", "4b0c6b", "781c6d", "a52c60", "cf4446", "ed6925", "fb9b06", "f7d13d", "fcffa4"]
    ),
}


def colorize(heatmap: Tensor, colormap: str = "jet") -> Tensor:
    """``H×W`` values in [0, 1] → ``H×W×3`` uint8 colours."""
    cmap = COLORMAPS.get(colormap)
    if cmap is None:
        raise BadArgumentError(f"unknown colormap {colormap!r}; choose one of: {', '.join(COLORMAPS)}")
    rgb = cmap(heatmap.detach().float().clamp(0, 1))
    return (rgb * 255).round().to(torch.uint8)


# --- pictures --------------------------------------------------------------------------


def image_to_tensor(image: Image.Image) -> Tensor:
    """``H×W×3`` uint8 tensor of an RGB image."""
    return torch.from_numpy(np.asarray(to_rgb(image)).copy())


def tensor_to_image(rgb: Tensor) -> Image.Image:
    return Image.fromarray(rgb.detach().cpu().contiguous().numpy(), mode="RGB")


def _fit(heatmap: Tensor, size: tuple[int, int]) -> Tensor:
    """The map resized (bilinear) to ``size`` = (width, height) when it is not already that size."""
    heat = heatmap.detach().float().cpu()
    if tuple(heat.shape) == (size[1], size[0]):
        return heat
    return F.interpolate(heat[None, None], size=(size[1], size[0]), mode="bilinear", align_corners=False)[0, 0]


def heatmap_image(heatmap: Tensor, size: tuple[int, int] | None = None, colormap: str = "jet") -> Image.Image:
    """The map alone in colour, optionally resized to ``size`` (width, height)."""
    heat = _fit(heatmap, size) if size else heatmap
    return tensor_to_image(colorize(heat, colormap))


def overlay(
    image: Image.Image, heatmap: Tensor, colormap: str = "jet", alpha: float = 0.5, mask: Tensor | None = None
) -> Image.Image:
    """The photo with the coloured map blended on top (``alpha`` = the map's weight), only
    where ``mask`` (see ``seen_mask``) says the model saw the photo."""
    if not 0.0 <= alpha <= 1.0:
        raise BadArgumentError(f"--alpha must be between 0 and 1, got {alpha}")
    photo = image_to_tensor(image).float()
    colour = colorize(_fit(heatmap, image.size), colormap).float()
    weight = torch.full(photo.shape[:2], alpha) if mask is None else mask.float() * alpha
    blended = photo * (1 - weight[..., None]) + colour * weight[..., None]
    return tensor_to_image(blended.round().clamp(0, 255).to(torch.uint8))


BOX_COLOUR = (255, 0, 255)  # magenta: absent from jet and turbo, so it reads on any map


def draw_box(image: Image.Image, box: Sequence[float], width: int | None = None) -> Image.Image:
    """A copy of ``image`` with ``box`` (x1, y1, x2, y2 in its pixels) outlined: the detection a
    detector's map explains, drawn on the overlay it explains."""
    framed = to_rgb(image).copy()
    width = width or max(2, round(min(framed.size) / 150))
    x1, y1, x2, y2 = (float(v) for v in box)
    ImageDraw.Draw(framed).rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=BOX_COLOUR, width=width)
    return framed


def side_by_side(
    image: Image.Image, heatmap: Tensor, colormap: str = "jet", alpha: float = 0.5, mask: Tensor | None = None
) -> Image.Image:
    """Original | heatmap | overlay, one row; unseen borders are grey in the heatmap panel."""
    heat = heatmap_image(heatmap, image.size, colormap)
    if mask is not None:
        grey = Image.new("RGB", image.size, (128, 128, 128))
        heat = Image.composite(heat, grey, tensor_to_mask(mask))
    panels = [to_rgb(image), heat, overlay(image, heatmap, colormap, alpha, mask)]
    canvas = Image.new("RGB", (image.width * 3, image.height), "white")
    for i, panel in enumerate(panels):
        canvas.paste(panel, (i * image.width, 0))
    return canvas


def tensor_to_mask(mask: Tensor) -> Image.Image:
    return Image.fromarray((mask.to(torch.uint8) * 255).numpy(), mode="L")


def labelled_grid(
    tiles: Sequence[tuple[str, Image.Image]], columns: int | None = None, tile_width: int = 256
) -> Image.Image:
    """Tiles in rows under a caption each (the sweep's picture)."""
    if not tiles:
        raise LayerscopeError("nothing to draw: no tiles")
    columns = columns or max(1, int(len(tiles) ** 0.5 + 0.999))
    first = tiles[0][1]
    tile_height = max(1, round(first.height * tile_width / first.width))
    caption = 18
    rows = (len(tiles) + columns - 1) // columns
    canvas = Image.new("RGB", (columns * tile_width, rows * (tile_height + caption)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, tile) in enumerate(tiles):
        x, y = (i % columns) * tile_width, (i // columns) * (tile_height + caption)
        canvas.paste(tile.resize((tile_width, tile_height), Image.BILINEAR), (x, y + caption))
        draw.text((x + 4, y + 3), label[: tile_width // 6], fill="black")
    return canvas


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Written to a temporary file beside ``path`` and renamed: never half a PNG."""
    return atomic_write(expand(path, "output"), lambda handle: image.save(handle, format="PNG"))


def save_npy(heatmap: Tensor, path: str | Path) -> Path:
    """The map as float32 ``.npy`` (numpy comes with torchvision), written like ``save_png``."""
    path = npy_path(path)
    data = heatmap.detach().float().cpu().numpy()
    return atomic_write(path, lambda handle: np.save(handle, data, allow_pickle=False))


def npy_path(path: str | Path) -> Path:
    """The name actually written: numpy's habit of adding ``.npy`` made explicit."""
    path = expand(path, "output")
    return path if path.suffix == ".npy" else path.with_name(path.name + ".npy")
