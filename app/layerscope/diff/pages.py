"""A mapped checkpoint's pages: asked for ahead of use, handed back after.

``safe_open`` and ``torch.load(mmap=True)`` map the whole file; every page a comparison
touches then stays in the process's resident set (as file-backed memory) until the
mapping goes, so diffing two 2 GiB files would end near 4 GiB resident. After each
window of a tensor is compared its pages are dropped from this process with
``MADV_DONTNEED``: for a file mapping that only unmaps them (the page cache keeps them,
a later read faults them back from the file). On anonymous memory the same call would
zero the bytes, so it is only made on ranges ``/proc/self/maps`` shows to be a mapping of
that very file (device and inode). ``MADV_WILLNEED`` starts the disk on a tensor before
the comparison reaches it. Linux only; elsewhere both are no-ops and only memory is higher.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
from pathlib import Path

import torch

MADV_WILLNEED = 3
MADV_DONTNEED = 4
_PAGE = mmap.PAGESIZE


def _madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    function.restype = ctypes.c_int
    return function


_MADVISE = _madvise()


class FileMapping:
    """Where this process maps one file, so that pages are only dropped where they are the file's."""

    def __init__(self, path: Path) -> None:
        info = os.stat(path)
        self.device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}"
        self.inode = str(info.st_ino)
        self.ranges: list[tuple[int, int]] = []
        self.unmapped: set[int] = set()  # storages found not to be in the file: never rescanned

    def release(self, tensor: torch.Tensor) -> None:
        """Drop the whole pages under ``tensor`` (a contiguous tensor or a slice of one) from this
        process; its bytes stay readable from the file."""
        span = _span(tensor, inward=True)
        if span is None or not self.covers(*span, tensor.untyped_storage().data_ptr()):
            return
        _MADVISE(span[0], span[1] - span[0], MADV_DONTNEED)

    def covers(self, start: int, end: int, storage: int) -> bool:
        if storage in self.unmapped:
            return False
        if not self._inside(start, end):
            self.ranges = self._scan()
            if not self._inside(start, end):
                self.unmapped.add(storage)
                return False
        return True

    def _inside(self, start: int, end: int) -> bool:
        return any(low <= start and end <= high for low, high in self.ranges)

    def _scan(self) -> list[tuple[int, int]]:
        ranges = []
        try:
            with open("/proc/self/maps") as maps:
                for line in maps:
                    fields = line.split()
                    if len(fields) >= 6 and fields[3] == self.device and fields[4] == self.inode:
                        low, high = fields[0].split("-")
                        ranges.append((int(low, 16), int(high, 16)))
        except OSError:
            return []
        return ranges


def mapping(path: Path) -> FileMapping | None:
    """A ``FileMapping`` for ``path`` where pages can be handed back (Linux), else ``None``."""
    return FileMapping(path) if _MADVISE is not None else None


def prefetch(tensor: torch.Tensor) -> None:
    """Ask the kernel to start reading a mapped tensor now, in large requests: the page cache
    fills ahead of the comparison instead of one fault at a time (harmless on other memory)."""
    span = _span(tensor, inward=False)
    if span is not None and _MADVISE is not None:
        _MADVISE(span[0], span[1] - span[0], MADV_WILLNEED)


def _span(tensor: torch.Tensor, *, inward: bool) -> tuple[int, int] | None:
    """The page-aligned address range of a contiguous CPU tensor: only whole pages inside it
    (``inward``), or every page it touches."""
    if tensor.device.type != "cpu" or not tensor.is_contiguous() or not tensor.numel():
        return None
    first = tensor.data_ptr()
    last = first + tensor.numel() * tensor.element_size()
    start = -(-first // _PAGE) * _PAGE if inward else first // _PAGE * _PAGE
    end = last // _PAGE * _PAGE if inward else -(-last // _PAGE) * _PAGE
    return (start, end) if end > start else None
