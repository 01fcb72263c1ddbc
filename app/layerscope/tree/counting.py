"""Per-node counters for the module tree: one pass over the registrations, then subtree sums.

Kept apart from ``layerscope.tree.module_tree`` so that module reads as what a node *is*;
this one is how 100,000 nodes' figures are added up without 100,000 objects: one list per
figure, each tensor's facts read once (``numel``, bytes, dtype, device, storage), and every
subtree summed as the difference of two prefix sums (a subtree is contiguous in pre-order).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from operator import sub

import torch
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin

UNINITIALIZED = "uninitialized"  # shown among a node's dtypes: a lazy module's parameter, not yet sized

COUNTERS = (
    "params",
    "trainable",
    "param_tensors",
    "param_bytes",
    "buffers",
    "persistent",
    "buffer_elements",
    "buffer_bytes",
    "sd_entries",
    "sd_bytes",
    "sd_unique_bytes",
)


def plain_state_dicts(modules: Sequence[nn.Module]) -> bool:
    """Whether every module's ``state_dict()`` writes just its non-None parameters and persistent
    buffers, by torch's own ``Module._save_to_state_dict``: no override, no extra state, no hook.
    Then the entries can be counted from the registrations, without building the dict."""
    plain_classes: dict[type, bool] = {}
    for module in modules:
        cls = type(module)
        plain = plain_classes.get(cls)
        if plain is None:
            plain = plain_classes[cls] = not isinstance(module, torch.jit.ScriptModule) and all(
                getattr(cls, name, None) is getattr(nn.Module, name)
                for name in ("state_dict", "_save_to_state_dict", "get_extra_state")
            )
        if not plain or module._state_dict_hooks or module._state_dict_pre_hooks:
            return False
    return True


class Totals:
    """Per-node counters as one list per figure, filled by ``count_module`` (or, for a model
    whose ``state_dict()`` has its own rules, ``count_entry`` per entry), summed by ``sum_subtrees``."""

    def __init__(self, size: int) -> None:
        self.columns = {name: [0] * size for name in COUNTERS}
        self.own = [(0, 0, 0)] * size  # own params, own param tensors, own buffers
        self.dtypes = Flags(size)
        self.devices = Flags(size)
        self.first_owner: dict[int, int] = {}  # id(tensor) -> the node that counts it
        self.extra_owners: list[tuple[torch.Tensor, int, str]] = []  # later owners, patched in afterwards
        self.storage_owner: dict[object, int] = {}  # storage key -> the node whose unique bytes hold it
        self.extra_storages: list[tuple[object, int, int]] = []

    def facts(self, t: torch.Tensor) -> tuple[int, int, int, int, object, int]:
        """numel, bytes, dtype bit, device bit, storage key and storage bytes of ``t``. A lazy
        module's ``UninitializedParameter`` has no size yet (``numel`` raises): 0 bytes, dtype
        ``uninitialized``. The storage key is what ``torch.save`` writes once, however many
        entries view it; meta tensors have no data pointer, so their object stands in."""
        device, device_bit = self.devices.known.get(t.device) or self.devices.bit(t.device)
        if isinstance(t, UninitializedTensorMixin):
            return 0, 0, self.dtypes.bit(UNINITIALIZED)[1], device_bit, id(t), 0
        n = t.numel()
        nbytes = n * t.element_size()
        dtype_bit = (self.dtypes.known.get(t.dtype) or self.dtypes.bit(t.dtype))[1]
        try:
            storage = t.untyped_storage()
            pointer = storage.data_ptr()
            if pointer:
                return n, nbytes, dtype_bit, device_bit, (device, pointer), storage.nbytes()
        except (RuntimeError, NotImplementedError):  # quantized or otherwise opaque tensors
            pass
        return n, nbytes, dtype_bit, device_bit, id(t), nbytes

    def count_module(self, i: int, module: nn.Module, state_dict: bool) -> None:
        """Node ``i``'s own tensors (a tensor registered twice on one module counts once), each
        counted in the figures of its first owner only, and, with ``state_dict``, the entries
        ``_save_to_state_dict`` writes. Called once per node, in pre-order: the hot loop of a
        100,000-module build, hence one read of each tensor and sums kept in locals."""
        params, buffers = module._parameters, module._buffers
        if not params and not buffers:
            return
        first_owner, storage_owner = self.first_owner, self.storage_owner
        facts_of, storage_of = self.facts, self._storage
        own_params = own_tensors = own_buffers = entries = entry_bytes = unique_bytes = 0
        counted = counted_params = counted_bytes = trainable = dtype_mask = device_mask = 0
        met: set[int] = set()  # a tensor registered twice on one module is one tensor
        for p in params.values():
            if p is None:
                continue
            facts = facts_of(p)
            if state_dict:
                entries += 1
                entry_bytes += facts[1]
                if facts[4] not in storage_owner:  # the usual case, inlined: a storage met first
                    storage_owner[facts[4]] = i
                    unique_bytes += facts[5]
                else:
                    storage_of(i, facts)
            if id(p) in met:
                continue
            met.add(id(p))
            own_params += facts[0]
            own_tensors += 1
            if first_owner.setdefault(id(p), i) != i:
                self.extra_owners.append((p, i, "param"))
                continue
            counted += 1
            counted_params += facts[0]
            counted_bytes += facts[1]
            if p.requires_grad:
                trainable += facts[0]
            dtype_mask |= facts[2]
            device_mask |= facts[3]
        non_persistent = module._non_persistent_buffers_set
        for name, b in buffers.items():
            if b is None:
                continue
            facts = facts_of(b)
            persistent = name not in non_persistent
            if state_dict and persistent:
                entries += 1
                entry_bytes += facts[1]
                storage_of(i, facts)
            if id(b) not in met:
                met.add(id(b))
                own_buffers += 1
                self._attribute(b, i, "persistent" if persistent else "buffer", facts)
        self.own[i] = (own_params, own_tensors, own_buffers)
        cols = self.columns
        if counted:
            cols["params"][i] += counted_params
            cols["param_tensors"][i] += counted
            cols["param_bytes"][i] += counted_bytes
            cols["trainable"][i] += trainable
            self.dtypes.masks[i] |= dtype_mask
            self.devices.masks[i] |= device_mask
        if entries:
            cols["sd_entries"][i] += entries
            cols["sd_bytes"][i] += entry_bytes
            cols["sd_unique_bytes"][i] += unique_bytes

    def count_entry(self, i: int, value: object) -> None:
        """One ``state_dict()`` entry owned by node ``i`` (extra state may be any object)."""
        self.columns["sd_entries"][i] += 1
        if isinstance(value, torch.Tensor):
            facts = self.facts(value)
            self.columns["sd_bytes"][i] += facts[1]
            self._storage(i, facts)

    def _storage(self, i: int, facts: tuple) -> None:
        """Each storage's bytes once, at its first owner; the other owners are patched in later."""
        storage, nbytes = facts[4], facts[5]
        if storage not in self.storage_owner:
            self.storage_owner[storage] = i
            self.columns["sd_unique_bytes"][i] += nbytes
        else:
            self.extra_storages.append((storage, i, nbytes))

    def _attribute(self, t: torch.Tensor, i: int, kind: str, facts: tuple) -> None:
        """Count each tensor once, at its first owner; shared tensors are patched in later."""
        if self.first_owner.setdefault(id(t), i) != i:
            self.extra_owners.append((t, i, kind))
            return
        self.add_tensor(i, t, kind, facts)

    def add_tensor(self, i: int, t: torch.Tensor, kind: str, facts: tuple | None = None) -> None:
        n, nbytes, dtype_bit, device_bit = (facts or self.facts(t))[:4]
        cols = self.columns
        self.dtypes.masks[i] |= dtype_bit
        self.devices.masks[i] |= device_bit
        if kind == "param":
            cols["params"][i] += n
            cols["param_tensors"][i] += 1
            cols["param_bytes"][i] += nbytes
            if t.requires_grad:
                cols["trainable"][i] += n
            return
        cols["buffers"][i] += 1
        cols["buffer_elements"][i] += n
        cols["buffer_bytes"][i] += nbytes
        if kind == "persistent":
            cols["persistent"][i] += 1

    def sum_subtrees(self, parents: Sequence[int | None], ends: Sequence[int]) -> None:
        """Every node's figures become its subtree's: pre-order keeps the subtree of ``i`` at
        ``i … ends[i] - 1``, so its sum is the difference of two prefix sums."""
        for name, column in self.columns.items():
            if not any(column):
                continue  # no buffers anywhere, say: every subtree's sum is 0 too
            prefix = list(accumulate(column, initial=0))
            self.columns[name] = list(map(sub, map(prefix.__getitem__, ends), prefix[:-1]))
        self.dtypes.spread_up(parents)
        self.devices.spread_up(parents)


class Flags:
    """Which dtypes (or devices) occur in each subtree, as bit masks: a union is one ``|``."""

    def __init__(self, size: int) -> None:
        self.masks = [0] * size
        self.bits: dict[str, int] = {}
        self.known: dict[object, tuple[str, int]] = {}  # a dtype or device object -> its name and bit
        self._decoded: dict[int, tuple[str, ...]] = {}

    def bit(self, value: object) -> tuple[str, int]:
        """The name of ``value`` (``float32``, ``cpu``) and its bit."""
        found = self.known.get(value)
        if found is None:
            name = str(value).removeprefix("torch.")
            bit = self.bits.setdefault(name, 1 << len(self.bits))
            found = self.known[value] = (name, bit)
        return found

    def spread_up(self, parents: Sequence[int | None]) -> None:
        masks = self.masks
        for i in range(len(masks) - 1, 0, -1):
            if masks[i]:
                masks[parents[i]] |= masks[i]

    def decode(self, mask: int) -> tuple[str, ...]:
        found = self._decoded.get(mask)
        if found is None:
            found = self._decoded[mask] = tuple(sorted(n for n, bit in self.bits.items() if mask & bit))
        return found

    def all_names(self) -> list[tuple[str, ...]]:
        return list(map(self.decode, self.masks))
