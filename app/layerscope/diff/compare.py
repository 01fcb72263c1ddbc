"""Comparing two tensors (or a tensor and an update to it), in float64, a chunk at a time.

The figures are sums over elements (‖A‖², ‖B‖², ‖B − A‖², max|B − A|), so they are
gathered over slices small enough to stay in the CPU's cache: a 1 GiB tensor never
turns into a 2 GiB float64 copy. A·B, for the cosine, is (‖A‖² + ‖B‖² − ‖B − A‖²)/2:
exact enough for a cosine, and one pass fewer (the difference itself is never derived
from the norms, which would cancel).
Bit identity is a byte comparison, so ``-0.0`` vs ``0.0`` is a change and equal NaNs
are not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from layerscope.diff.records import Status, TensorDiff, TensorInfo, relative

CHUNK = 1 << 15  # elements per slice: 256 KiB of float64 stays in cache, and torch runs it on one thread
WINDOW = 1 << 22  # elements compared between two calls of ``done`` (page hand-backs are syscalls)


def info_of(tensor: torch.Tensor) -> TensorInfo:
    return TensorInfo(shape=tuple(tensor.shape), dtype=dtype_name(tensor.dtype))


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def one_sided(key: str, info: TensorInfo, status: Status) -> TensorDiff:
    """A key only A holds (``removed``) or only B holds (``added``)."""
    return TensorDiff(
        key=key, status=status, a=info if status == "removed" else None, b=info if status == "added" else None
    )


def reshaped(key: str, a: TensorInfo, b: TensorInfo) -> TensorDiff:
    return TensorDiff(key=key, status="reshaped", a=a, b=b)


class Sums:
    """Running float64 sums over slices of A and B (B − A given or computed)."""

    def __init__(self) -> None:
        self.norm_a = self.norm_b = self.delta = self.max_abs = 0.0

    def add_pair(self, part_a: torch.Tensor, part_b: torch.Tensor) -> None:
        xa = as_float64(part_a)
        xb = as_float64(part_b, copy=True)  # becomes B − A in place: never the reader's own memory
        self.norm_a += float(torch.dot(xa, xa))
        self.norm_b += float(torch.dot(xb, xb))
        self.add_delta(xb.sub_(xa))

    def add_update(self, part_a: torch.Tensor, delta: torch.Tensor) -> None:
        """B = A + ``delta`` (float64, a block of ΔW used once: overwritten)."""
        xa = as_float64(part_a)
        xb = xa + delta
        self.norm_a += float(torch.dot(xa, xa))
        self.norm_b += float(torch.dot(xb, xb))
        self.add_delta(delta)

    def add_delta(self, d: torch.Tensor) -> None:
        """‖d‖² and max|d| (``d`` is overwritten)."""
        self.delta += float(torch.dot(d, d))
        if d.numel():
            self.max_abs = max(self.max_abs, float(d.abs_().max()))

    def add_same(self, part: torch.Tensor) -> None:
        """B is A, bit for bit: one dot product gives every sum."""
        x = as_float64(part)
        norm = float(torch.dot(x, x))
        self.norm_a += norm
        self.norm_b += norm

    def diff(self, key: str, status: Status, a: TensorInfo, b: TensorInfo) -> TensorDiff:
        both = self.norm_a * self.norm_b
        dot = (self.norm_a + self.norm_b - self.delta) / 2
        cosine = dot / math.sqrt(both) if both > 0 else None
        return TensorDiff(
            key=key,
            status=status,
            a=a,
            b=b,
            relative_change=relative(self.delta, self.norm_a),
            max_abs_diff=self.max_abs,
            cosine=None if cosine is None else max(-1.0, min(1.0, cosine)),
            delta_sq=self.delta,
            norm_sq=self.norm_a,
        )


Done = Callable[[torch.Tensor, torch.Tensor], None]  # told each pair of slices once they are summed


def compare(key: str, a: torch.Tensor, b: torch.Tensor, done: Done | None = None) -> TensorDiff:
    """``same``, ``changed`` or ``retyped`` for two tensors of one shape, with the figures.

    One pass, slice by slice: each slice's bytes are compared, then summed; every ``WINDOW``
    elements the compared part goes to ``done`` (a mapped reader gives its pages back), so
    a mapped tensor is never resident whole."""
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    retyped = a.dtype != b.dtype
    identical = not retyped
    sums = Sums()
    for start, end in slices(flat_a.numel(), flat_a, flat_b, done):
        part_a, part_b = flat_a[start:end], flat_b[start:end]
        if identical and (a is b or bit_identical(part_a, part_b)):  # once a slice differs, stop checking
            sums.add_same(part_a)
        else:
            identical = False
            sums.add_pair(part_a, part_b)
    status: Status = "retyped" if retyped else "same" if identical else "changed"
    return sums.diff(key, status, info_of(a), info_of(b))


def compare_update(key: str, a: torch.Tensor, rows: Iterator[torch.Tensor], done: Done | None = None) -> TensorDiff:
    """A against A + ΔW, where ``rows`` yields ΔW a block of rows at a time (float64, flattened):
    ``changed``, or ``same`` when the update is exactly zero everywhere."""
    flat_a = a.reshape(-1)
    sums = Sums()
    start = 0
    for delta in rows:
        end = start + delta.numel()
        for low, high in slices(end - start, flat_a[start:end], flat_a[start:end], done):
            sums.add_update(flat_a[start + low : start + high], delta[low:high])
        start = end
    if start != flat_a.numel():
        raise ValueError(f"{key}: the update covers {start} of {flat_a.numel()} elements")
    info = info_of(a)
    return sums.diff(key, "same" if sums.delta == 0.0 else "changed", info, info)


def slices(count: int, flat_a: torch.Tensor, flat_b: torch.Tensor, done: Done | None) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each slice; after every ``WINDOW`` elements, and at the end, the
    window's part of both tensors goes to ``done``."""
    handed = 0
    for start in range(0, count, CHUNK):
        end = min(start + CHUNK, count)
        yield start, end
        if done is not None and (end - handed >= WINDOW or end == count):
            done(flat_a[handed:end], flat_b[handed:end])
            handed = end


def bit_identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same bytes: exact for every dtype, NaN payloads and signed zeros included."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a is b or a.numel() == 0:
        return True
    return torch.equal(as_bytes(a), as_bytes(b))


def as_bytes(t: torch.Tensor) -> torch.Tensor:
    flat = t.reshape(-1)
    return flat.view(torch.uint8) if flat.element_size() > 0 else flat


def as_float64(t: torch.Tensor, *, copy: bool = False) -> torch.Tensor:
    """Complex numbers count as pairs of reals (‖z‖² = re² + im²); ``copy`` even when ``t`` is
    float64 already, for a result that will be written to."""
    if t.is_complex():
        t = torch.view_as_real(t).reshape(-1)
    return t.to(torch.float64, copy=copy)
