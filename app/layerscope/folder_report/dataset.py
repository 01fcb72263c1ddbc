"""Which files a folder report explains, in which order, and what each one's label is.

Every file under the folder is a candidate (hidden names are not): a file that turns
out not to be a usable image is reported as skipped, with its reason, rather than
silently left out. The order is the sorted relative path, so a re-run sees the files
in the same order and its batches line up with the first run's.

When the folder's first level holds class folders and no images (the ImageFolder
layout), each folder's name is its images' label: a class index (``285``) or one of
the model's category names (``Egyptian cat``, also spelled ``Egyptian_cat``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from layerscope.errors import LayerscopeError
from layerscope.io.files import expand, status
from layerscope.parsing import as_int


@dataclass(frozen=True)
class ImageFile:
    """One candidate file: ``name`` is its path relative to the folder (``/``-separated)."""

    path: Path
    name: str
    label: int | None = None


@dataclass(frozen=True)
class Folder:
    """The files of one run, in order, and whether they carry labels."""

    root: Path
    files: tuple[ImageFile, ...]
    labelled: bool
    note: str = ""  # why the class folders give no labels, when they do not

    def batches(self, size: int) -> list[list[int]]:
        """File positions cut into consecutive batches of ``size``: the same grid on every run,
        so a resumed run recomputes a batch exactly as the first run would have."""
        return [list(range(start, min(start + size, len(self.files)))) for start in range(0, len(self.files), size)]


def discover(root: str | Path, categories: Sequence[str] | None, limit: int | None = None) -> Folder:
    """The files under ``root`` (at most ``limit``, spread evenly over the sorted list, so a
    quick look still covers every class folder) with their labels."""
    root = folder_path(root)
    names = sorted(_walk(root))
    if not names:
        raise LayerscopeError(f"no files in {root}")
    labels, note = _labels(root, names, categories)
    files = [ImageFile(root / name, name, labels.get(name.split("/", 1)[0])) for name in names]
    if limit is not None and limit < len(files):
        files = [files[i * len(files) // limit] for i in range(limit)]
    return Folder(root=root, files=tuple(files), labelled=bool(labels), note=note)


def folder_label(name: str, categories: Sequence[str] | None) -> int | None:
    """The class a folder's name stands for: an index, or a category name (``_`` for spaces,
    any case); None when it is neither."""
    number = as_int(name)
    if number is not None:
        classes = len(categories) if categories else None
        return number if number >= 0 and (classes is None or number < classes) else None
    folded = {c.casefold(): i for i, c in enumerate(categories or ())}
    return folded.get(name.casefold(), folded.get(name.replace("_", " ").casefold()))


def folder_path(root: str | Path) -> Path:
    """The images folder, resolved, or one line saying why it is not one."""
    path = expand(root, "folder")
    info = status(path)
    if info is None:
        raise LayerscopeError(f"no such folder: {path}")
    if not path.is_dir():
        raise LayerscopeError(f"{path} is not a folder; --images takes a folder of images")
    return path.resolve()


def _walk(root: Path) -> list[str]:
    """Relative names of every non-hidden file below ``root`` (links to folders not followed)."""
    found = []
    for folder, dirs, files in os.walk(root, onerror=_unreadable):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        base = Path(folder).relative_to(root)
        found += [(base / f).as_posix() for f in files if not f.startswith(".")]
    return found


def _unreadable(exc: OSError) -> None:
    raise LayerscopeError(f"cannot list {exc.filename}: {exc.strerror or exc}") from exc


def _labels(root: Path, names: list[str], categories: Sequence[str] | None) -> tuple[dict[str, int], str]:
    """``{class folder: label}`` when the first level is class folders, else nothing."""
    Image.init()
    image_suffixes = set(Image.registered_extensions())
    top_files = [n for n in names if "/" not in n]
    folders = sorted({n.split("/", 1)[0] for n in names if "/" in n})
    if not folders or any(Path(n).suffix.lower() in image_suffixes for n in top_files):
        return {}, ""
    labels = {name: folder_label(name, categories) for name in folders}
    unknown = [name for name, label in labels.items() if label is None]
    if len(unknown) == len(folders):
        return {}, (
            f"the class folders ({', '.join(folders[:3])}{', …' if len(folders) > 3 else ''}) are not "
            f"class indices or names of this model: the images have no labels"
        )
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:3])
        raise LayerscopeError(
            f"class folder{'s' if len(unknown) > 1 else ''} {shown} in {root} "
            f"{'are' if len(unknown) > 1 else 'is'} neither a class index nor a class name of "
            f"this model, while {len(folders) - len(unknown)} other(s) are; rename or move "
            f"{'them' if len(unknown) > 1 else 'it'}"
        )
    return {name: label for name, label in labels.items() if label is not None}, ""
