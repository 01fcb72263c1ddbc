"""What a resumed report keeps of the lines it finds: only this run's own records.

The report folder's files are layerscope's, but they may have been edited, cut or replaced
since. A line that is not a record of this run (not JSON, or not an object of the fields
and types a record has, a score that is not a finite number, an image or layer this run
does not have, a picture path other than the one this run writes) is dropped, and its
image computed again; so is an image whose maps file is missing or damaged. No line is
trusted to name a file: picture paths must be the ones ``pictures`` derives.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from layerscope.errors import LayerscopeError
from layerscope.folder_report import pictures
from layerscope.folder_report.dataset import Folder
from layerscope.io.files import read_regular

HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
MAX_SCORE = 1e6  # every score is a fraction near 0–1; a 4,000-digit number is no score


def _text(v: object) -> bool:
    return isinstance(v, str)


def _whole(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**62


def _flag(v: object) -> bool:
    return isinstance(v, bool)


def _score(v: object) -> bool:
    if isinstance(v, float):
        return math.isfinite(v) and abs(v) < MAX_SCORE
    return _whole(v) and isinstance(v, int) and abs(v) < MAX_SCORE


def _maybe(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda v: v is None or check(v)


def _top5(v: object) -> bool:
    return (
        isinstance(v, list)
        and len(v) <= 5
        and all(
            isinstance(p, dict)
            and _whole(p.get("class"))
            and _maybe(_text)(p.get("name"))
            and _score(p.get("probability"))
            for p in v
        )
    )


FIELDS: dict[str, Callable[[object], bool]] = {
    "image": _text,
    "label": _maybe(_whole),
    "label_name": _maybe(_text),
    "predicted": _whole,
    "predicted_name": _maybe(_text),
    "correct": _maybe(_flag),
    "top5": _top5,
    "method": _text,
    "class": _whole,
    "class_name": _maybe(_text),
    "width": _whole,
    "height": _whole,
    "thumbnail": _text,
    "maps": _text,
    "layer": _text,
    "access_expression": _text,
    "deletion_auc": _score,
    "insertion_auc": _score,
    "insertion_minus_deletion": _score,
    "average_drop": _score,
    "increased": _flag,
    "all_zero": _flag,
    "overlay": _text,
}


def slot_label(method: str, layer: str, methods: Sequence[str]) -> str:
    """What a (method, layer) pair is called in a report: the layer alone when one method ran
    (every name and path as before methods could be listed), else ``method@layer``."""
    return layer if len(methods) == 1 else f"{method}@{layer}"


@dataclass(frozen=True)
class RunShape:
    """What this run's lines may name: its files (with their labels), layers and methods
    (``method``: their names joined by commas)."""

    labels: dict[str, int | None]
    layers: tuple[str, ...]
    method: str

    @classmethod
    def of(cls, folder: Folder, layers: Sequence[str], method: str) -> RunShape:
        return cls({f.name: f.label for f in folder.files}, tuple(layers), method)

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.method.split(","))

    @property
    def slots(self) -> list[str]:
        """Every (method, layer) pair's label, methods first: the order of an image's maps."""
        return [slot_label(m, layer, self.methods) for m in self.methods for layer in self.layers]

    def slot(self, record: dict) -> str:
        return slot_label(record["method"], record["layer"], self.methods)


def parse_lines(data: bytes) -> tuple[list[object], int]:
    """Each complete line's JSON value, and how many complete lines were not JSON at all."""
    rows: list[object] = []
    bad = 0
    for line in data.splitlines():
        try:
            rows.append(json.loads(line))
        except (ValueError, RecursionError):  # edited, binary, nested 100,000 deep, 5,000 digits
            bad += 1
    return rows, bad


def is_record(row: object, run: RunShape) -> bool:
    """A record this run could have written: every field of the right type, its image, layer
    and method this run's, its label the folder's, its picture paths the derived ones."""
    if not (isinstance(row, dict) and set(row) == set(FIELDS) and all(check(row[k]) for k, check in FIELDS.items())):
        return False
    image, layer = row["image"], row["layer"]
    return (
        image in run.labels
        and layer in run.layers
        and row["method"] in run.methods
        and row["label"] == run.labels[image]
        and row["maps"] == pictures.maps_path(image)
        and row["thumbnail"] == pictures.thumbnail_path(image)
        and row["overlay"] == pictures.overlay_path(image, layer, row["method"] if len(run.methods) > 1 else "")
    )


def is_skip(row: object, run: RunShape) -> bool:
    return (
        isinstance(row, dict)
        and set(row) == {"path", "reason", "detail"}
        and row["path"] in run.labels
        and _text(row["reason"])
        and _text(row["detail"])
    )


def maps_bytes(layers: int) -> int:
    """The most a maps file of ``layers`` maps may hold: the float16 data and a generous header."""
    return pictures.MAP_SIDE * pictures.MAP_SIDE * 2 * layers + 4096


def maps_intact(root: Path, image: str, layers: int) -> bool:
    """Whether ``maps/<image>.npy`` is there and holds ``layers`` float16 maps of 56×56."""
    try:
        data = read_regular(root / pictures.maps_path(image), maps_bytes(layers), "maps file")
        if data is None:
            return False
        stream = io.BytesIO(data)
        reader = HEADERS.get(np.lib.format.read_magic(stream))
        if reader is None:
            return False
        shape, fortran, dtype = reader(stream)
    except (LayerscopeError, ValueError, OSError, EOFError, SyntaxError):
        return False
    expected = (layers, pictures.MAP_SIDE, pictures.MAP_SIDE)
    # the header and the size decide: a header that lies about the shape is never allocated for
    return (
        dtype == np.float16
        and shape == expected
        and not fortran
        and len(data) - stream.tell() == math.prod(expected) * 2
    )


def is_sanity(kept: dict | None, sample: list[str], layers: Sequence[str]) -> bool:
    """Whether ``sanity.json`` holds the check's result for this very sample and these layers."""
    if kept is None or kept.get("sample") != sample or not isinstance(kept.get("result"), dict):
        return False
    result = kept["result"]
    rho = result.get("rho")
    return (
        isinstance(result.get("images"), list)
        and all(_text(i) for i in result["images"])
        and isinstance(rho, dict)
        and sorted(rho) == sorted(layers)
        and all(_maybe(_score)(v) for v in rho.values())
        and _flag(result.get("class_blind"))
        and _text(result.get("verdict"))
    )
