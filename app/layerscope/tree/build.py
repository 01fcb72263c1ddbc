"""Building a ``ModuleTree``: the walk over real registrations and the spelling of each step.

The walk follows each container's ``_modules`` as ``state_dict()`` does; the spelling of
each step is checked against what Python really does (``Sequential[i]`` counts positions,
``ModuleList[i]`` looks up ``str(i)``, ``getattr`` may meet a class attribute first), so
every access expression evaluates to its module. Kept apart from
``layerscope.tree.module_tree``, which holds what a tree is and how it is queried.

Built for 100,000 modules: one pass over the registrations counts every figure
(``layerscope.tree.counting``), the nodes are made from columns, and what a node's
class says about it (its name, whether ``[i]`` reads a position) is asked once per class.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from layerscope.models.adapters import checkpoint_renamer
from layerscope.running.gcpause import gc_paused
from layerscope.tree import naming
from layerscope.tree.counting import Totals, plain_state_dicts
from layerscope.tree.module_tree import ModuleTree, Node, SharedTensor, class_name_of


def build_tree(model: nn.Module) -> ModuleTree:
    """Walk ``model`` once and return its immutable module tree.

    The cyclic garbage collector is paused meanwhile: the build only allocates (a few
    objects per module, none of them garbage), and on 100,000 modules its repeated full
    scans cost more than the walk itself."""
    with gc_paused():
        return TreeBuilder(model).build()


@dataclass(frozen=True, slots=True)
class _Places:
    """Every registration found by the walk, in pre-order, one sequence per fact."""

    names: Sequence[str]
    keys: Sequence[str]
    modules: Sequence[nn.Module]
    parents: Sequence[int | None]
    depths: Sequence[int]
    slots: Sequence[int]  # the place among the parent's ``_modules`` (None entries included)
    ends: Sequence[int]  # the subtree of i is i … ends[i] - 1


def _walk(model: nn.Module) -> _Places:
    """Every registration in pre-order, following ``_modules`` as ``state_dict()`` does (no
    recursion: 300-deep models are fine). A module inside itself is listed, not entered."""
    rows: list[tuple[str, str, nn.Module, int | None, int, int]] = [("", "", model, None, 0, 0)]
    ends = [1]
    stack = [(0, "", 1, iter(enumerate(model._modules.items())))]  # parent, prefix of its children's names, depth
    inside = {id(model)}
    while stack:
        parent, prefix, depth, entries = stack[-1]
        for slot, (key, module) in entries:
            if module is None:
                continue
            i = len(rows)
            name = prefix + key
            rows.append((name, key, module, parent, depth, slot))
            ends.append(i + 1)
            if module._modules and id(module) not in inside:  # a leaf needs no frame
                inside.add(id(module))
                stack.append((i, f"{name}." if name else "", depth + 1, iter(enumerate(module._modules.items()))))
                break
        else:
            stack.pop()
            ends[parent] = len(rows)
            inside.discard(id(rows[parent][2]))
    names, keys, modules, parents, depths, slots = zip(*rows)
    return _Places(names, keys, modules, parents, depths, slots, ends)


class _Kinds:
    """What a module's class says, asked once per class: its name, whether ``[i]`` is torch's
    own Sequential / ModuleList / ModuleDict lookup, and whether ``getattr(module, key)`` goes
    straight to ``Module.__getattr__`` (no class attribute, no override in the way)."""

    def __init__(self) -> None:
        self.names: dict[type, str] = {}
        self.sequences: dict[type, bool] = {}
        self.plain: dict[tuple[type, str], bool] = {}
        self.steps: dict[tuple[type, str], tuple[tuple[str, str] | None, ...]] = {}

    def class_name(self, module: nn.Module) -> str:
        name = self.names.get(type(module))
        if name is None:
            if isinstance(module, torch.jit.ScriptModule):  # per instance: its original class
                return class_name_of(module)
            name = self.names[type(module)] = class_name_of(module)
        return name

    def is_sequence(self, module: nn.Module) -> bool:
        """Sequential / ModuleList whose ``[i]`` is still torch's own (a subclass may redefine it)."""
        found = self.sequences.get(type(module))
        if found is None:
            getitem = getattr(type(module), "__getitem__", None)
            found = self.sequences[type(module)] = (
                getitem is nn.Sequential.__getitem__ or getitem is nn.ModuleList.__getitem__
            )
        return found

    def step(self, parent: nn.Module, key: str, module: nn.Module, position: int | None) -> tuple[str, str]:
        """The step from ``parent`` to its child ``module`` (registered as ``key``) as Python, and its
        ``[-1]`` form. What the parent's class decides is worked out once per class and key."""
        if position is not None:
            reachable = naming.is_attribute(key) and self._reaches(parent, key, module)
            segment = f".{key}" if reachable else naming.spell_position(position)  # a named Sequential reads .name
            last = position == len(parent._modules) - 1 and len(parent._modules) > 1
            return segment, naming.spell_position(-1) if last else segment
        found = self.steps.get((type(parent), key))
        if found is None:
            found = self.steps[(type(parent), key)] = self._class_steps(type(parent), key)
        item, attribute, private = found
        if item is not None:
            return item
        if attribute is not None and self._reaches(parent, key, module):
            return attribute  # .get_submodule('block1-0') goes through getattr too
        return private  # hidden by a class attribute; a ScriptModule has no get_submodule

    def _class_steps(self, cls: type, key: str) -> tuple[tuple[str, str] | None, ...]:
        """For a child ``key`` of a ``cls``: the ``['key']`` step of a ModuleDict, else the attribute
        step (None where only ``._modules[...]`` can work), and that last resort."""
        if getattr(cls, "__getitem__", None) is nn.ModuleDict.__getitem__:
            return (naming.spell_item(key),) * 2, None, None
        attribute = naming.is_attribute(key) or not issubclass(cls, torch.jit.ScriptModule)
        return None, (naming.spell_attribute(key),) * 2 if attribute else None, (naming.spell_private(key),) * 2

    def _reaches(self, parent: nn.Module, key: str, module: nn.Module) -> bool:
        """Whether ``getattr(parent, key)`` returns ``module``, as Python would find it. Without a
        class attribute, an instance attribute or an override in the way, Python ends in
        ``Module.__getattr__``, which looks in ``_parameters``, ``_buffers``, then ``_modules``:
        answered without raising and catching an ``AttributeError`` per node."""
        cls = type(parent)
        plain = self.plain.get((cls, key))
        if plain is None:
            plain = self.plain[(cls, key)] = (
                cls.__getattribute__ is object.__getattribute__
                and cls.__getattr__ is nn.Module.__getattr__
                and not any(key in vars(k) for k in cls.__mro__)
            )
        if plain and key not in parent.__dict__:
            return key not in parent._parameters and key not in parent._buffers and parent._modules.get(key) is module
        return _getattr(parent, key) is module


def _position(parent: nn.Module, key: str, slot: int) -> int | None:
    """Where ``parent[i]`` finds this child: a Sequential counts its ``_modules`` in order; a
    ModuleList looks up ``str(i)``, so only a key that reads back as its own number counts."""
    if isinstance(parent, nn.Sequential):
        return slot
    if key.isdigit() and str(int(key)) == key and int(key) < len(parent._modules):
        return int(key)
    return None


def _getattr(parent: nn.Module, key: str) -> object:
    """What ``getattr`` really returns: a class attribute may hide the child, and a model's own
    ``__getattr__`` may raise anything; the spelling must follow what Python would do."""
    try:
        return getattr(parent, key)
    except Exception:
        return None


class TreeBuilder:
    """One pass over a model: registrations, own tensors and state_dict entries, then nodes."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.places = _walk(model)
        self.totals = Totals(len(self.places.names))
        self.kinds = _Kinds()

    def build(self) -> ModuleTree:
        places, totals = self.places, self.totals
        plain = plain_state_dicts(places.modules)
        for i, module in enumerate(places.modules):
            totals.count_module(i, module, state_dict=plain)
        if not plain:  # a class or a hook writes its own entries: count what state_dict() really yields
            self._count_state_dict()
        totals.sum_subtrees(places.parents, places.ends)
        shared = self._add_shared_tensors()
        self._add_shared_storages()
        return ModuleTree(
            self._make_nodes(), class_name_of(self.model), shared, checkpoint_renamer(self.model), places.modules
        )

    def _count_state_dict(self) -> None:
        """Each entry at the node whose name is the longest prefix of its key."""
        index = {name: i for i, name in enumerate(self.places.names)}
        for key, value in self.model.state_dict(keep_vars=True).items():
            prefix = key.rpartition(".")[0]
            while prefix and prefix not in index:
                prefix = prefix.rpartition(".")[0]
            self.totals.count_entry(index.get(prefix, 0), value)

    def _add_shared_tensors(self) -> tuple[SharedTensor, ...]:
        """A tied tensor counts once in every subtree that holds any of its owners."""
        counted: dict[int, set[int]] = {}
        owners: dict[int, list[int]] = {}
        numel: dict[int, int] = {}
        for t, owner, kind in self.totals.extra_owners:
            key = id(t)
            first = self.totals.first_owner[key]
            owners.setdefault(key, [first]).append(owner)
            numel[key] = t.numel() if kind == "param" else 0
            for node in self._new_ancestors(counted.setdefault(key, set(self._chain(first))), owner):
                self.totals.add_tensor(node, t, kind)
        return tuple(SharedTensor(numel[k], tuple(v)) for k, v in owners.items() if numel[k])

    def _add_shared_storages(self) -> None:
        unique = self.totals.columns["sd_unique_bytes"]
        counted: dict[object, set[int]] = {}
        for storage, owner, nbytes in self.totals.extra_storages:
            seen = counted.setdefault(storage, set(self._chain(self.totals.storage_owner[storage])))
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
            i = self.places.parents[i]

    def _spellings(self, sequence: list[bool]) -> tuple[list[str], list[str | None], list[int | None]]:
        """Every node's access expression, its ``[-1]`` form where that differs, and its position."""
        p, kinds = self.places, self.kinds
        access: list[str] = ["model"]
        negative: list[str | None] = [None]
        positions: list[int | None] = [None]
        for i in range(1, len(p.names)):
            up = p.parents[i]
            parent, key = p.modules[up], p.keys[i]
            position = _position(parent, key, p.slots[i]) if sequence[up] else None
            segment, last = kinds.step(parent, key, p.modules[i], position)
            here = access[up] + segment
            other = (negative[up] or access[up]) + last
            access.append(here)
            negative.append(other if other != here else None)
            positions.append(position)
        return access, negative, positions

    def _make_nodes(self) -> list[Node]:
        p, totals, kinds = self.places, self.totals, self.kinds
        n = len(p.names)
        children: list[list[int]] = [[] for _ in range(n)]
        for i in range(1, n):
            children[p.parents[i]].append(i)
        sequence = [kinds.is_sequence(m) for m in p.modules]
        first_place: dict[int, int] = {}
        same_as: list[int | None] = []
        for i, module in enumerate(p.modules):
            first = first_place.setdefault(id(module), i)
            same_as.append(None if first == i else first)
        access, negative, positions = self._spellings(sequence)
        cols = totals.columns
        own_params, own_tensors, own_buffers = zip(*totals.own)
        columns = {
            "index": range(n),
            "name": p.names,
            "key": p.keys,
            "depth": p.depths,
            "parent": p.parents,
            "children": map(tuple, children),
            "class_name": map(kinds.class_name, p.modules),
            "access": access,
            "access_negative": negative,
            "own_params": own_params,
            "own_param_tensors": own_tensors,
            "total_params": cols["params"],
            "trainable_params": cols["trainable"],
            "param_tensors": cols["param_tensors"],
            "param_bytes": cols["param_bytes"],
            "own_buffers": own_buffers,
            "buffers": cols["buffers"],
            "persistent_buffers": cols["persistent"],
            "buffer_elements": cols["buffer_elements"],
            "buffer_bytes": cols["buffer_bytes"],
            "state_dict_entries": cols["sd_entries"],
            "state_dict_bytes": cols["sd_bytes"],
            "state_dict_unique_bytes": cols["sd_unique_bytes"],
            "dtypes": totals.dtypes.all_names(),
            "devices": totals.devices.all_names(),
            "is_sequence": sequence,
            "length": [len(m._modules) if s else 0 for m, s in zip(p.modules, sequence)],
            "position": positions,
            "same_as": same_as,
        }
        rows = zip(*(columns[field] for field in Node._fields))  # KeyError if a field is missing
        return list(map(partial(tuple.__new__, Node), rows))  # Node._make, without a Python call each
