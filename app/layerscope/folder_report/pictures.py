"""The pictures a report keeps per image: a thumbnail, one overlay per layer, the maps.

They are made as bytes, not written: the per-batch function may run on another machine
(Ray), and only the process that owns the output folder writes to it. File names derive
from the image's relative path (readable, plus a short hash so that ``a/b.png`` and
``a_b.png`` never collide), so a resumed run writes the same names.
"""

from __future__ import annotations

import hashlib
import io
import re

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from layerscope.cam import normalise
from layerscope.folder_report.decode import Decoded
from layerscope.io import imaging

THUMB_SIDE = 96
MAP_SIDE = 56  # the maps kept for the per-class means: a quarter of a 224 input, 6 KB per layer


def image_id(name: str) -> str:
    """A file-name stem for the image ``name`` (its path relative to the folder). A name that
    is not UTF-8 on disk reaches Python with surrogates (``surrogateescape``): they become
    ``_`` here and are hashed as the bytes the file system holds."""
    readable = re.sub(r"[^\w.-]+", "_", name).strip("_")[-80:]
    return f"{readable}-{hashlib.sha1(name.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def layer_stem(layer: str) -> str:
    return re.sub(r"[^\w.-]+", "_", layer) or "model"


def thumbnail_path(name: str) -> str:
    return f"thumbs/{image_id(name)}.png"


def overlay_path(name: str, layer: str, method: str = "") -> str:
    """``overlays/<image>/<layer>.png``; with ``method`` (a report of several methods)
    ``<method>@<layer>.png``, the method's ``+`` kept (``gradcam`` and ``gradcam++`` differ)."""
    prefix = re.sub(r"[^\w.+-]+", "_", method) + "@" if method else ""
    return f"overlays/{image_id(name)}/{prefix}{layer_stem(layer)}.png"


def maps_path(name: str) -> str:
    return f"maps/{image_id(name)}.npy"


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)  # a third of level 9's time, 10% larger
    return buffer.getvalue()


def thumbnail(item: Decoded) -> bytes:
    small = item.photo.copy()
    small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
    return png_bytes(small)


def overlay(item: Decoded, heatmap: Tensor, colormap: str, alpha: float) -> bytes:
    """The map laid on the small photo where the model saw it, as ``PhotoExplainer.overlay``
    lays it on the full one (``imaging.to_original`` over the photo's own geometry)."""
    on_photo = imaging.to_original(heatmap, item.geometry)
    return png_bytes(imaging.overlay(item.photo, on_photo, colormap, alpha, imaging.seen_mask(item.geometry)))


def maps_npy(heatmaps: Tensor) -> bytes:
    """``L×56×56`` float16 (area-averaged) maps of one image: what the class means are made of."""
    small = F.adaptive_avg_pool2d(heatmaps.detach().float().cpu()[:, None], MAP_SIDE)[:, 0]
    buffer = io.BytesIO()
    np.save(buffer, small.to(torch.float16).numpy(), allow_pickle=False)
    return buffer.getvalue()


def read_maps(data: bytes) -> Tensor:
    """The inverse of ``maps_npy``."""
    return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32))


def mean_map(maps: list[Tensor], side: int = 112) -> bytes:
    """The average of many images' maps (each already scaled 0–1), scaled to its own range and
    coloured: where the model looks for a class, on average."""
    mean = normalise(torch.stack(maps).float().mean(dim=0)[None])[0]
    return png_bytes(imaging.heatmap_image(mean, (side, side)))
