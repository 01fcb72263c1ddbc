"""Photos as batches for the activation passes: the same preprocessing as ``cam``, one batch at a time.

A folder of ten thousand images is read lazily: each batch is loaded, preprocessed,
run and dropped before the next is read, so memory stays at one batch whatever the
folder holds. A file that is not a readable image is skipped and reported, not fatal.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from layerscope.activations.recorder import ActivationReport, Cancel, Progress, collect_activations
from layerscope.errors import LayerscopeError
from layerscope.folder_report.dataset import discover, folder_path
from layerscope.io import imaging
from layerscope.io.files import expand
from layerscope.models.loaded import Preprocess


def image_files(folder: str | Path) -> list[Path]:
    """The image files under ``folder`` (by extension Pillow knows) by ``report``'s folder rules
    (``folder_report.dataset``): class folders read recursively, hidden names skipped, sorted
    by relative path, so every command that takes ``--images`` reads the same files."""
    path = folder_path(folder)
    given = expand(folder, "folder")  # paths as the user spelled the folder, not resolved
    known = set(Image.registered_extensions())
    names = [] if not any(path.iterdir()) else [given / f.name for f in discover(path, None).files]
    files = [p for p in names if p.suffix.lower() in known]
    if not files:
        raise LayerscopeError(f"no image files in {path} or its folders (looked for {', '.join(sorted(known)[:6])}, …)")
    return files


def image_activations(
    model: nn.Module,
    preprocess: Preprocess,
    files: Sequence[Path],
    *,
    batch_size: int = 32,
    names: Sequence[str] | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> ActivationReport:
    """``collect_activations`` over photos, preprocessed as ``cam`` does, ``batch_size`` at a time."""
    first = next(model.parameters(), None)
    batches = ImageBatches(files, preprocess, first.device if first is not None else torch.device("cpu"), batch_size)
    described = str(files[0]) if len(files) == 1 else f"{len(files)} files in {Path(os.path.commonpath(files))}"
    report = collect_activations(model, batches, names=names, inputs=described, progress=progress, cancel=cancel)
    if not report.examples:
        path, why = batches.skipped[0]
        raise LayerscopeError(f"none of the {len(files)} files could be read as an image (first: {why})")
    return replace(report, skipped=tuple(batches.skipped))


class ImageBatches:
    """Iterating yields ``B×3×H×W`` batches on ``device``; ``skipped`` lists the files that could
    not be read, with why. Images of different sizes (detectors keep each photo's own size)
    go one per batch."""

    def __init__(
        self, files: Sequence[Path], preprocess: Preprocess, device: torch.device, batch_size: int = 32
    ) -> None:
        self.files = files
        self.preprocess = preprocess
        self.device = device
        self.batch_size = batch_size if preprocess.crop is not None else 1
        self.skipped: list[tuple[str, str]] = []

    @property
    def examples(self) -> int:
        """The images this will yield, as far as known: those not (yet) skipped."""
        return len(self.files) - len(self.skipped)

    def __iter__(self) -> Iterator[torch.Tensor]:
        pending: list[torch.Tensor] = []
        for path in self.files:
            tensor = self._read(path)
            if tensor is not None:
                pending.append(tensor)
            del tensor
            if len(pending) == self.batch_size:
                yield self._stacked(pending)
        if pending:
            yield self._stacked(pending)

    def _stacked(self, pending: list[torch.Tensor]) -> torch.Tensor:
        """One batch; the single images are let go before it is handed out."""
        batch = torch.cat(pending).to(self.device)
        pending.clear()
        return batch

    def _read(self, path: Path) -> torch.Tensor | None:
        try:
            image = imaging.load_image(path)
        except LayerscopeError as exc:
            self.skipped.append((str(path), str(exc)))
            return None
        return imaging.preprocess(image, self.preprocess)[0]
