"""One file in, the model's input out, or the reason the file cannot be used.

Decoding runs in worker processes (a ``DataLoader``, or Ray tasks), so it returns plain
data: the prepared input, the ``Geometry`` that maps the input back onto the photo, and
a small copy of the photo for the overlays. The full-size photo never leaves the worker.
A bad file is a ``Skip`` with one of ``REASONS``; it never stops the run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from layerscope.errors import LayerscopeError, first_line
from layerscope.folder_report.dataset import ImageFile
from layerscope.io import imaging
from layerscope.io.imaging import Geometry
from layerscope.models import Preprocess

REASONS = ("empty", "not an image", "truncated", "corrupt", "too small", "too large", "unreadable")
MIN_SIDE = 16  # pixels: below this a photo holds too little for the model's resize to mean anything
PHOTO_SIDE = 256  # the overlays' longest side: enough to see where the map points, light to store


@dataclass(frozen=True)
class Decoded:
    """A usable image: ``input`` is ``1×3×H×W``; ``photo`` the small copy and ``geometry``
    the preprocessing's geometry expressed over that copy (so maps land on it exactly)."""

    file: ImageFile
    input: Tensor
    geometry: Geometry
    photo: Image.Image
    size: tuple[int, int]  # the original photo's width × height


@dataclass(frozen=True)
class Skip:
    """A file the run could not use, and why."""

    file: ImageFile
    reason: str
    detail: str

    def record(self) -> dict[str, str]:
        return {"path": self.file.name, "reason": self.reason, "detail": self.detail}


def decode(file: ImageFile, preprocess: Preprocess) -> Decoded | Skip:
    """Read ``file`` as ``imaging.load_image`` reads any photo and prepare it as the model's
    weights expect (``imaging.preprocess``: what ``cam`` and ``rank`` do to the same file)."""
    try:
        if os.stat(file.path).st_size == 0:
            return Skip(file, "empty", "the file is empty (0 bytes)")
        image = imaging.load_image(file.path)
    except OSError as exc:
        return Skip(file, "unreadable", first_line(exc))
    except LayerscopeError as exc:
        return Skip(file, _reason(exc), _detail(exc))
    if min(image.size) < MIN_SIDE:
        return Skip(file, "too small", f"{image.width}×{image.height} pixels; at least {MIN_SIDE}×{MIN_SIDE} needed")
    try:
        tensor, geometry = imaging.preprocess(image, preprocess)
    except LayerscopeError as exc:  # its resized copy would pass the pixel limit: too large, as a bomb is
        return Skip(file, "too large", first_line(exc))
    photo = image.copy()
    photo.thumbnail((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.BILINEAR)
    return Decoded(
        file=file, input=tensor, geometry=replace(geometry, original=photo.size), photo=photo, size=image.size
    )


class FileBatches(Dataset):
    """The files as a map-style dataset for a ``DataLoader`` whose batch sampler hands out
    the run's batches (``Folder.batches``); each item is decoded in a worker."""

    def __init__(self, files: Sequence[ImageFile], preprocess: Preprocess) -> None:
        self.files, self.preprocess = list(files), preprocess

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Decoded | Skip:
        return decode(self.files[index], self.preprocess)


def as_list(items: list[Decoded | Skip]) -> list[Decoded | Skip]:
    """The ``DataLoader``'s collate function: a batch stays a list (images differ in size)."""
    return items


def _reason(exc: LayerscopeError) -> str:
    """Which of ``REASONS``: read from the exception ``load_image`` chained, not its wording."""
    cause = exc.__cause__
    if isinstance(cause, UnidentifiedImageError):
        return "not an image"
    if isinstance(cause, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return "too large"
    if isinstance(cause, (PermissionError, IsADirectoryError)) or cause is None:
        return "unreadable"  # permissions, or not a regular file (a FIFO, a device)
    if isinstance(cause, EOFError) or "truncated" in str(cause).lower():
        return "truncated"
    return "corrupt"


def _detail(exc: LayerscopeError) -> str:
    """The message without the path in front (the record's ``path`` already says which file)."""
    text = first_line(exc)
    head, sep, rest = text.partition(": ")
    return rest if sep and head.startswith("cannot read ") else text
