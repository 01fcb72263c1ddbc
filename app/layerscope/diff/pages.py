"""Handing a mapped tensor's pages back to the kernel once it has been compared.

``torch.load(mmap=True)`` maps the whole checkpoint; every page a comparison touches
then stays in the process's resident set (as file-backed memory) until the mapping
goes, so diffing two 2 GiB files would end near 4 GiB resident. ``MADV_PAGEOUT``
(Linux 5.4+) asks the kernel to reclaim a range now. It never loses data: clean file
pages are re-read from the file if touched again, anonymous pages would be swapped
(or, with no swap, left alone), so calling it on a tensor that is not mapped is harmless.
Elsewhere (other systems, older kernels) it is a no-op and memory is only a little higher.
"""

from __future__ import annotations

import ctypes
import mmap
import sys

import torch

MADV_PAGEOUT = 21
_PAGE = mmap.PAGESIZE


def _madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    function.restype = ctypes.c_int
    return function


_MADVISE = _madvise()


def release(tensor: torch.Tensor) -> None:
    """Let the kernel reclaim the whole pages of ``tensor``'s storage (its bytes stay readable)."""
    if _MADVISE is None or tensor.device.type != "cpu":
        return
    storage = tensor.untyped_storage()
    start = -(-storage.data_ptr() // _PAGE) * _PAGE  # first whole page inside the storage
    end = (storage.data_ptr() + storage.nbytes()) // _PAGE * _PAGE
    if end > start:
        _MADVISE(start, end - start, MADV_PAGEOUT)  # a refusal (EINVAL on old kernels) changes nothing
