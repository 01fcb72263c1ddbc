"""Per-node counters for the module tree, summed bottom-up in a handful of tight loops.

Kept apart from ``layerscope.tree.module_tree`` so that module reads as what a node *is*;
this one is how 100,000 nodes' figures are added up without 100,000 objects.
"""

from __future__ import annotations

import torch
from torch.nn.parameter import is_lazy

UNINITIALIZED = "uninitialized"  # shown among a node's dtypes: a lazy module's parameter, not yet sized

COUNTERS = (
    "params", "trainable", "param_tensors", "param_bytes", "buffers", "persistent",
    "buffer_elements", "buffer_bytes", "sd_entries", "sd_bytes", "sd_unique_bytes",
)


class Totals:
    """Per-node counters as one list per figure: summing 100,000 nodes bottom-up stays a
    handful of tight loops instead of 100,000 objects poked attribute by attribute."""

    def __init__(self, size: int) -> None:
        self.columns = {name: [0] * size for name in COUNTERS}
        self.dtypes = Flags(size)
        self.devices = Flags(size)

    def add_tensor(self, i: int, t: torch.Tensor, kind: str) -> None:
        """A lazy module's ``UninitializedParameter`` has no size yet (``numel`` raises): counted
        0 and marked ``uninitialized`` among the dtypes, until a forward pass sizes it."""
        lazy = is_lazy(t)
        n = 0 if lazy else t.numel()
        size = 0 if lazy else n * t.element_size()
        cols = self.columns
        self.dtypes.mark(i, UNINITIALIZED if lazy else str(t.dtype).removeprefix("torch."))
        self.devices.mark(i, str(t.device))
        if kind == "param":
            cols["params"][i] += n
            cols["param_tensors"][i] += 1
            cols["param_bytes"][i] += size
            if t.requires_grad:
                cols["trainable"][i] += n
            return
        cols["buffers"][i] += 1
        cols["buffer_elements"][i] += n
        cols["buffer_bytes"][i] += size
        if kind == "persistent":
            cols["persistent"][i] += 1

    def sum_bottom_up(self, parents: list[int | None], depths: list[int]) -> None:
        """Sum every subtree, deepest level first: one vectorised add per level, not per node."""
        table = torch.tensor([self.columns[name] for name in COUNTERS], dtype=torch.int64)
        by_depth: dict[int, list[int]] = {}
        for i in range(1, len(parents)):
            by_depth.setdefault(depths[i], []).append(i)
        for depth in sorted(by_depth, reverse=True):
            members = torch.tensor(by_depth[depth])
            ups = torch.tensor([parents[i] for i in by_depth[depth]])
            table.index_add_(1, ups, table[:, members])
        self.dtypes.spread_up(parents)
        self.devices.spread_up(parents)
        self.columns = dict(zip(COUNTERS, table.tolist()))

    def rows(self) -> list[tuple[int, ...]]:
        """One tuple of counters per node, in ``COUNTERS`` order."""
        return list(zip(*(self.columns[name] for name in COUNTERS)))


class Flags:
    """Which dtypes (or devices) occur in each subtree, as bit masks: a union is one ``|``."""

    def __init__(self, size: int) -> None:
        self.masks = [0] * size
        self.bits: dict[str, int] = {}
        self._decoded: dict[int, tuple[str, ...]] = {}

    def mark(self, i: int, value: str) -> None:
        bit = self.bits.setdefault(value, 1 << len(self.bits))
        self.masks[i] |= bit

    def spread_up(self, parents: list[int | None]) -> None:
        masks = self.masks
        for i in range(len(masks) - 1, 0, -1):
            if masks[i]:
                masks[parents[i]] |= masks[i]

    def names(self, i: int) -> tuple[str, ...]:
        mask = self.masks[i]
        found = self._decoded.get(mask)
        if found is None:
            found = self._decoded[mask] = tuple(sorted(n for n, bit in self.bits.items() if mask & bit))
        return found


def storage_of(t: torch.Tensor) -> tuple[object, int]:
    """A key for the storage behind ``t`` and its size: what ``torch.save`` writes once, however
    many entries view it. Meta tensors have no data pointer, so their object stands in."""
    if is_lazy(t):
        return id(t), 0
    try:
        storage = t.untyped_storage()
        if storage.data_ptr():
            return (str(t.device), storage.data_ptr()), storage.nbytes()
    except (RuntimeError, NotImplementedError):  # quantized or otherwise opaque tensors
        pass
    return id(t), t.numel() * t.element_size()
