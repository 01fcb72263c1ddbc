"""Building a ``ModuleTree``: the walk over real registrations and the spelling of each step.

The walk follows each container's ``_modules`` as ``state_dict()`` does; the spelling of
each step is checked against what Python really does (``Sequential[i]`` counts positions,
``ModuleList[i]`` looks up ``str(i)``, ``getattr`` may meet a class attribute first), so
every access expression evaluates to its module. Kept apart from
``layerscope.tree.module_tree``, which holds what a tree is and how it is queried.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from layerscope import naming
from layerscope.models.adapters import checkpoint_renamer
from layerscope.tree.counting import Totals, storage_of
from layerscope.tree.module_tree import ModuleTree, Node, SharedTensor, class_name_of


def build_tree(model: nn.Module) -> ModuleTree:
    """Walk ``model`` once and return its immutable module tree.

    The cyclic garbage collector is paused meanwhile: the build only allocates (two objects
    per module, none of them garbage), and on 100,000 modules its repeated full scans
    cost more than the walk itself."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return TreeBuilder(model).build()
    finally:
        if paused:
            gc.enable()


@dataclass(slots=True)
class _Place:
    """One registration found by the walk, before its figures are known."""

    name: str
    key: str
    module: nn.Module
    parent: int | None
    depth: int
    slot: int  # the registration's place among the parent's ``_modules`` (None entries included)


def _walk(model: nn.Module) -> list[_Place]:
    """Every registration in pre-order, following ``_modules`` as ``state_dict()`` does (no
    recursion: 300-deep models are fine). A module inside itself is listed, not entered."""
    places = [_Place("", "", model, None, 0, 0)]
    stack = [(0, iter(enumerate(model._modules.items())))]
    inside = {id(model)}
    while stack:
        parent, entries = stack[-1]
        for slot, (key, module) in entries:
            if module is None:
                continue
            up = places[parent]
            places.append(_Place(f"{up.name}.{key}" if up.name else key, key, module, parent, up.depth + 1, slot))
            if id(module) not in inside:
                inside.add(id(module))
                stack.append((len(places) - 1, iter(enumerate(module._modules.items()))))
            break
        else:
            stack.pop()
            inside.discard(id(places[parent].module))
    return places


def _is_sequence(module: nn.Module) -> bool:
    """Sequential / ModuleList whose ``[i]`` is still torch's own (a subclass may redefine it)."""
    getitem = getattr(type(module), "__getitem__", None)
    return getitem is nn.Sequential.__getitem__ or getitem is nn.ModuleList.__getitem__


def _is_dict(module: nn.Module) -> bool:
    return getattr(type(module), "__getitem__", None) is nn.ModuleDict.__getitem__


def _position(parent: nn.Module, place: _Place) -> int | None:
    """Where ``parent[i]`` finds this child: a Sequential counts its ``_modules`` in order; a
    ModuleList looks up ``str(i)``, so only a key that reads back as its own number counts."""
    if isinstance(parent, nn.Sequential):
        return place.slot
    key = place.key
    if key.isdigit() and str(int(key)) == key and int(key) < len(parent._modules):
        return int(key)
    return None


def _segments(parent: nn.Module, place: _Place, position: int | None) -> tuple[str, str]:
    """The step from ``parent`` to this child as Python, and its ``[-1]`` form."""
    key = place.key
    through_getattr = _getattr(parent, key) is place.module
    reachable = through_getattr and naming.is_attribute(key)
    if position is not None:
        segment = f".{key}" if reachable else naming.spell_position(position)  # a named Sequential reads .name
        last = position == len(parent._modules) - 1 and len(parent._modules) > 1
        return segment, naming.spell_position(-1) if last else segment
    if _is_dict(parent):
        return (naming.spell_item(key),) * 2
    if through_getattr and (naming.is_attribute(key) or not isinstance(parent, torch.jit.ScriptModule)):
        return (naming.spell_attribute(key),) * 2  # .get_submodule('block1-0') goes through getattr too
    return (naming.spell_private(key),) * 2  # hidden by a class attribute; a ScriptModule has no get_submodule


def _getattr(parent: nn.Module, key: str) -> object:
    """What ``getattr`` really returns: a class attribute may hide the child, and a model's own
    ``__getattr__`` may raise anything; the spelling must follow what Python would do."""
    try:
        return getattr(parent, key)
    except Exception:
        return None


class TreeBuilder:
    """One pass over a model: registrations, own tensors, state_dict entries, then nodes."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.places = _walk(model)
        self.parents = [p.parent for p in self.places]
        self.children: list[list[int]] = [[] for _ in self.places]
        self.totals = Totals(len(self.places))
        self.own: list[tuple[int, int, int]] = []  # own params, own param tensors, own buffers
        self.first_owner: dict[int, int] = {}
        self.extra_owners: list[tuple[torch.Tensor, int, str]] = []
        self.first_place: dict[int, int] = {}
        self._storage_owner: dict[object, int] = {}

    def build(self) -> ModuleTree:
        index = {p.name: i for i, p in enumerate(self.places)}
        for i, place in enumerate(self.places):
            if place.parent is not None:
                self.children[place.parent].append(i)
            self.own.append(self._count_direct(i, place.module))
        extra_storages = self._count_state_dict(index)
        self.totals.sum_bottom_up(self.parents, [p.depth for p in self.places])
        shared = self._add_shared_tensors()
        self._add_shared_storages(extra_storages)
        return ModuleTree(self._make_nodes(), class_name_of(self.model), shared, checkpoint_renamer(self.model))

    def _count_direct(self, i: int, module: nn.Module) -> tuple[int, int, int]:
        """A parameter registered twice on one module (``a`` and ``b``) is one tensor: once."""
        own_params = own_tensors = own_buffers = 0
        seen: set[int] = set()
        for p in module._parameters.values():
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            own_params += 0 if is_lazy(p) else p.numel()
            own_tensors += 1
            self._attribute(p, i, "param")
        for name, b in module._buffers.items():
            if b is None or id(b) in seen:
                continue
            seen.add(id(b))
            own_buffers += 1
            persistent = name not in module._non_persistent_buffers_set
            self._attribute(b, i, "persistent" if persistent else "buffer")
        return own_params, own_tensors, own_buffers

    def _attribute(self, t: torch.Tensor, i: int, kind: str) -> None:
        """Count each tensor once, at its first owner; shared tensors are patched in later."""
        key = id(t)
        if key in self.first_owner:
            self.extra_owners.append((t, i, kind))
            return
        self.first_owner[key] = i
        self.totals.add_tensor(i, t, kind)

    def _count_state_dict(self, index: dict[str, int]) -> list[tuple[object, int, int]]:
        """Entries and bytes at the node that owns each key; each storage's bytes once, at the
        first owner (the other owners are returned, to be patched in like shared tensors)."""
        columns = self.totals.columns
        entries, sizes, unique = columns["sd_entries"], columns["sd_bytes"], columns["sd_unique_bytes"]
        first = self._storage_owner
        extra: list[tuple[object, int, int]] = []
        for key, value in self.model.state_dict(keep_vars=True).items():
            prefix = key.rpartition(".")[0]
            while prefix and prefix not in index:
                prefix = prefix.rpartition(".")[0]
            owner = index.get(prefix, 0)
            entries[owner] += 1
            if not isinstance(value, torch.Tensor):
                continue
            if not is_lazy(value):
                sizes[owner] += value.numel() * value.element_size()
            storage, nbytes = storage_of(value)
            if storage not in first:
                first[storage] = owner
                unique[owner] += nbytes
            else:
                extra.append((storage, owner, nbytes))
        return extra

    def _add_shared_tensors(self) -> tuple[SharedTensor, ...]:
        """A tied tensor counts once in every subtree that holds any of its owners."""
        counted: dict[int, set[int]] = {}
        owners: dict[int, list[int]] = {}
        numel: dict[int, int] = {}
        for t, owner, kind in self.extra_owners:
            key = id(t)
            first = self.first_owner[key]
            owners.setdefault(key, [first]).append(owner)
            numel[key] = t.numel() if kind == "param" else 0
            for node in self._new_ancestors(counted.setdefault(key, set(self._chain(first))), owner):
                self.totals.add_tensor(node, t, kind)
        return tuple(SharedTensor(numel[k], tuple(v)) for k, v in owners.items() if numel[k])

    def _add_shared_storages(self, extra: list[tuple[object, int, int]]) -> None:
        unique = self.totals.columns["sd_unique_bytes"]
        counted: dict[object, set[int]] = {}
        for storage, owner, nbytes in extra:
            seen = counted.setdefault(storage, set(self._chain(self._storage_owner[storage])))
            for node in self._new_ancestors(seen, owner):
                unique[node] += nbytes

    def _new_ancestors(self, seen: set[int], owner: int) -> Iterator[int]:
        """``owner`` and its ancestors up to the first one already counted (which is marked)."""
        for node in self._chain(owner):
            if node in seen:
                return
            seen.add(node)
            yield node

    def _chain(self, i: int | None) -> Iterator[int]:
        while i is not None:
            yield i
            i = self.parents[i]

    def _make_nodes(self) -> list[Node]:
        self._rows = self.totals.rows()
        nodes: list[Node] = []
        for i, place in enumerate(self.places):
            if place.parent is None:
                nodes.append(self._node(i, "model", None, None))
                continue
            up, parent = nodes[place.parent], self.places[place.parent].module
            position = _position(parent, place) if up.is_sequence else None
            segment, negative = _segments(parent, place, position)
            access = up.access + segment
            access_negative = (up.access_negative or up.access) + negative
            nodes.append(self._node(i, access, access_negative if access_negative != access else None, position))
        return nodes

    def _node(self, i: int, access: str, negative: str | None, position: int | None) -> Node:
        place = self.places[i]
        module = place.module
        own_params, own_tensors, own_buffers = self.own[i]
        params, trainable, param_tensors, param_bytes, buffers, persistent, buffer_elements, buffer_bytes, \
            sd_entries, sd_bytes, sd_unique_bytes = self._rows[i]
        same_as = self.first_place.setdefault(id(module), i)
        sequence = _is_sequence(module)
        return Node(
            index=i, name=place.name, key=place.key, depth=place.depth, parent=place.parent,
            children=tuple(self.children[i]), class_name=class_name_of(module), extra_repr=_extra_repr(module),
            access=access, access_negative=negative,
            own_params=own_params, own_param_tensors=own_tensors, total_params=params,
            trainable_params=trainable, param_tensors=param_tensors, param_bytes=param_bytes,
            own_buffers=own_buffers, buffers=buffers, persistent_buffers=persistent,
            buffer_elements=buffer_elements, buffer_bytes=buffer_bytes, state_dict_entries=sd_entries,
            state_dict_bytes=sd_bytes, state_dict_unique_bytes=sd_unique_bytes,
            dtypes=self.totals.dtypes.names(i), devices=self.totals.devices.names(i),
            is_sequence=sequence, length=len(module._modules) if sequence else 0, position=position,
            same_as=None if same_as == i else same_as,
        )


def _extra_repr(module: nn.Module) -> str:
    try:
        return module.extra_repr()
    except Exception:  # a user's extra_repr may fail on meta tensors; the tree must still build
        return ""
