"""Comparing two tensors (or a tensor and an update to it), in float64, a chunk at a time.

The figures are sums over elements (‖A‖², ‖B − A‖², A·B, max|B − A|), so they are
gathered over slices of a few million elements: a 1 GiB tensor never turns into a
2 GiB float64 copy, and peak memory stays at the two tensors plus a few chunks.
Bit identity is a byte comparison, so ``-0.0`` vs ``0.0`` is a change and equal NaNs
are not.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from layerscope.diff.records import Status, TensorDiff, TensorInfo, relative

CHUNK = 1 << 22  # elements per float64 slice: 32 MiB each


def info_of(tensor: torch.Tensor) -> TensorInfo:
    return TensorInfo(shape=tuple(tensor.shape), dtype=dtype_name(tensor.dtype))


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def one_sided(key: str, info: TensorInfo, status: Status) -> TensorDiff:
    """A key only A holds (``removed``) or only B holds (``added``)."""
    return TensorDiff(key=key, status=status, a=info if status == "removed" else None,
                      b=info if status == "added" else None)


def reshaped(key: str, a: TensorInfo, b: TensorInfo) -> TensorDiff:
    return TensorDiff(key=key, status="reshaped", a=a, b=b)


class Sums:
    """Running float64 sums over slices of A and B (B − A given or computed)."""

    def __init__(self) -> None:
        self.norm_a = self.norm_b = self.dot = self.delta = self.max_abs = 0.0

    def add(self, a: torch.Tensor, b: torch.Tensor, d: torch.Tensor) -> None:
        self.norm_a += float(torch.dot(a, a))
        self.norm_b += float(torch.dot(b, b))
        self.dot += float(torch.dot(a, b))
        self.delta += float(torch.dot(d, d))
        if d.numel():
            self.max_abs = max(self.max_abs, float(d.abs().max()))

    def add_same(self, a: torch.Tensor) -> None:
        """B is A, bit for bit: one dot product gives every sum."""
        norm = float(torch.dot(a, a))
        self.norm_a += norm
        self.norm_b += norm
        self.dot += norm

    def diff(self, key: str, status: Status, a: TensorInfo, b: TensorInfo) -> TensorDiff:
        both = self.norm_a * self.norm_b
        cosine = self.dot / math.sqrt(both) if both > 0 else None
        return TensorDiff(
            key=key, status=status, a=a, b=b, relative_change=relative(self.delta, self.norm_a),
            max_abs_diff=self.max_abs, cosine=None if cosine is None else max(-1.0, min(1.0, cosine)),
            delta_sq=self.delta, norm_sq=self.norm_a,
        )


def compare(key: str, a: torch.Tensor, b: torch.Tensor) -> TensorDiff:
    """``same``, ``changed`` or ``retyped`` for two tensors of one shape, with the figures."""
    ia, ib = info_of(a), info_of(b)
    status: Status = "retyped" if a.dtype != b.dtype else "same" if bit_identical(a, b) else "changed"
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    sums = Sums()
    for start in range(0, flat_a.numel(), CHUNK):
        xa = as_float64(flat_a[start:start + CHUNK])
        if status == "same":
            sums.add_same(xa)
        else:
            xb = as_float64(flat_b[start:start + CHUNK])
            sums.add(xa, xb, xb - xa)
    return sums.diff(key, status, ia, ib)


def compare_update(key: str, a: torch.Tensor, slices: Iterator[torch.Tensor]) -> TensorDiff:
    """A against A + ΔW, where ``slices`` yields ΔW's rows in order (float64, flattened):
    ``changed``, or ``same`` when the update is exactly zero everywhere."""
    flat_a = a.reshape(-1)
    sums = Sums()
    start = 0
    for delta in slices:
        xa = as_float64(flat_a[start:start + delta.numel()])
        sums.add(xa, xa + delta, delta)
        start += delta.numel()
    if start != flat_a.numel():
        raise ValueError(f"{key}: the update covers {start} of {flat_a.numel()} elements")
    info = info_of(a)
    return sums.diff(key, "same" if sums.delta == 0.0 else "changed", info, info)


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


def as_float64(t: torch.Tensor) -> torch.Tensor:
    """Complex numbers count as pairs of reals (‖z‖² = re² + im²)."""
    if t.is_complex():
        return torch.view_as_real(t).reshape(-1).to(torch.float64)
    return t.to(torch.float64)
