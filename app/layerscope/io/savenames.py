"""File names for saved maps: say what the map is, and never replace an earlier save.

A name such as ``mobilenet_v2-features.18-gradcam-chelsea-285_Egyptian_cat.png``
can be told apart from the next one in a folder listing; a counter (``-2``, ``-3`` …)
keeps a second save of the same map from overwriting the first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from layerscope.io.files import exists

NAME_BYTES = 200  # file systems allow 255 bytes a name; room is left for ``-NN`` and ``.png``


def map_stem(
    *, spec: str, layer: str, method: str, image: str | Path, target: int | None, target_name: str | None
) -> str:
    """``model-layer-method-image-class``, with anything a file name should not hold as ``_``
    (``gradcam++`` as ``gradcampp``, so it stays apart from ``gradcam``)."""
    model = spec.rstrip("/").rsplit("/", 1)[-1]  # a file spec: its name, not its folders
    cls = "top" if target is None else f"{target}_{target_name}" if target_name else str(target)
    parts = (model, layer or "model", method, Path(image).stem, cls)
    return fit_name("-".join(re.sub(r"[^\w.]+", "_", part.replace("+", "p")).strip("_") for part in parts))


def fit_name(stem: str, limit: int = NAME_BYTES) -> str:
    """``stem`` cut in the middle to ``limit`` UTF-8 bytes: a 240-character photo name must not
    make the saved map's name longer than the file system allows (``File name too long``)."""
    if len(stem.encode()) <= limit:
        return stem
    half = (limit - 1) // 2
    head = stem.encode()[:half].decode(errors="ignore")
    tail = stem.encode()[-half:].decode(errors="ignore")
    return f"{head}~{tail}"


def unused_stem(folder: Path, stem: str, suffixes: Sequence[str] = (".png", ".npy")) -> Path:
    """``folder/stem``, or ``folder/stem-2``, ``-3`` …: the first for which no ``suffixes`` file exists."""
    candidate, n = folder / stem, 1
    while any(exists(candidate.with_name(candidate.name + s)) for s in suffixes):
        n += 1
        candidate = folder / f"{stem}-{n}"
    return candidate
