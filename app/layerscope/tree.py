"""The module tree: one pass over a model, an immutable node per module.

Every figure a view shows (own and total parameters, buffers, state_dict entries,
dtypes, devices) is computed here once, in O(modules + tensors): totals are summed
bottom-up instead of re-walking ``parameters()`` for each node, which would cost
O(modules × depth) and make a 100,000-module model unusable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from layerscope import naming


@dataclass(frozen=True, slots=True)
class Node:
    """One module as ``named_modules()`` yields it, with its subtree's figures."""

    index: int
    name: str
    key: str
    depth: int
    parent: int | None
    children: tuple[int, ...]
    class_name: str
    extra_repr: str
    access: str
    access_negative: str | None
    own_params: int
    own_param_tensors: int
    total_params: int
    trainable_params: int
    param_tensors: int
    param_bytes: int
    own_buffers: int
    buffers: int
    persistent_buffers: int
    buffer_elements: int
    buffer_bytes: int
    state_dict_entries: int
    state_dict_bytes: int
    dtypes: tuple[str, ...]
    devices: tuple[str, ...]
    is_sequence: bool = False  # an nn.Sequential / nn.ModuleList: children indexable by position

    @property
    def frozen_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def display_name(self) -> str:
        return self.name or "(model)"


@dataclass(frozen=True, slots=True)
class RepeatRun:
    """Consecutive siblings of one class (the 3 Bottlenecks of ``layer4``): a view folds them as ×N."""

    first: int
    length: int
    class_name: str
    members: tuple[int, ...]


class ModuleTree:
    """Immutable nodes in ``named_modules()`` order (pre-order depth-first); index 0 is the model."""

    def __init__(self, nodes: list[Node], model_class: str) -> None:
        self.nodes = nodes
        self.model_class = model_class
        self._by_name = {n.name: n.index for n in nodes}
        self._child_keys: dict[int, dict[str, int]] = {}

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def get(self, name: str) -> Node | None:
        """The node with this exact qualified name, if any."""
        idx = self._by_name.get(name)
        return None if idx is None else self.nodes[idx]

    def children_of(self, node: Node) -> list[Node]:
        return [self.nodes[i] for i in node.children]

    def child_by_key(self, node: Node, key: str) -> Node | None:
        table = self._child_keys.get(node.index)
        if table is None:
            table = {self.nodes[i].key: i for i in node.children}
            self._child_keys[node.index] = table
        idx = table.get(key)
        return None if idx is None else self.nodes[idx]

    def resolve(self, expression: str) -> Node:
        """Find a node by dotted name (``layer4.1``) or access expression (``model.layer4[-1]``)."""
        return naming.resolve(self, expression)

    def descendants(self, node: Node) -> range:
        """Indices of the subtree below ``node``: pre-order keeps every subtree contiguous."""
        end = node.index + 1
        while end < len(self.nodes) and self.nodes[end].depth > node.depth:
            end += 1
        return range(node.index + 1, end)

    def repeat_runs(self, node: Node, minimum: int = 2) -> list[RepeatRun]:
        """Runs of consecutive children of one kind inside a Sequential or ModuleList (named
        siblings such as ``patch_drop`` and ``norm_pre`` are separate parts, not repeats)."""
        runs: list[RepeatRun] = []
        if not node.is_sequence:
            return runs
        kids = node.children
        start = 0
        while start < len(kids):
            cls = self.nodes[kids[start]].class_name
            end = start + 1
            while end < len(kids) and self._same_kind(kids[start], kids[end]):
                end += 1
            if end - start >= minimum:
                runs.append(RepeatRun(kids[start], end - start, cls, tuple(kids[start:end])))
            start = end
        return runs


    def run_params(self, members: tuple[int, ...]) -> int:
        """Parameters of a folded run of sibling ``members``. When the run is the whole
        container, the container's total is exact (tensors tied across members count
        once); otherwise the members' sum."""
        first = self.nodes[members[0]]
        parent = self.nodes[first.parent] if first.parent is not None else None
        if parent is not None and len(members) == len(parent.children) and not parent.own_params:
            return parent.total_params
        return sum(self.nodes[m].total_params for m in members)

    def _same_kind(self, a: int, b: int) -> bool:
        """Blocks of one class repeat (a Bottleneck with a downsample still counts); generic
        containers only when their insides and sizes match, so ``layer1…layer4`` stay visible."""
        first, other = self.nodes[a], self.nodes[b]
        if first.class_name != other.class_name:
            return False
        if first.class_name not in CONTAINER_CLASSES:
            return True
        return first.total_params == other.total_params and self._shape_of(a) == self._shape_of(b)

    def _shape_of(self, index: int) -> tuple:
        node = self.nodes[index]
        return (node.class_name, tuple((self.nodes[c].key, self._shape_of(c)) for c in node.children))


CONTAINER_CLASSES = frozenset({"Sequential", "ModuleList", "ModuleDict"})


def build_tree(model: nn.Module) -> ModuleTree:
    """Walk ``model`` once and return its immutable module tree."""
    return _TreeBuilder(model).build()


def class_name_of(module: nn.Module) -> str:
    """TorchScript modules report ``RecursiveScriptModule``; their original class is more useful."""
    if isinstance(module, torch.jit.ScriptModule):
        return getattr(module, "original_name", None) or type(module).__name__
    return type(module).__name__


COUNTERS = (
    "params", "trainable", "param_tensors", "param_bytes", "buffers", "persistent",
    "buffer_elements", "buffer_bytes", "sd_entries", "sd_bytes",
)


class _Totals:
    """Per-node counters as one list per figure: summing 100,000 nodes bottom-up stays a
    handful of tight loops instead of 100,000 objects poked attribute by attribute."""

    def __init__(self, size: int) -> None:
        self.columns = {name: [0] * size for name in COUNTERS}
        self.dtypes = _Flags(size)
        self.devices = _Flags(size)

    def add_tensor(self, i: int, t: torch.Tensor, kind: str) -> None:
        n = t.numel()
        size = n * t.element_size()
        cols = self.columns
        self.dtypes.mark(i, str(t.dtype).removeprefix("torch."))
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


class _Flags:
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


class _TreeBuilder:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.modules: list[tuple[str, nn.Module]] = list(model.named_modules())
        self.parents: list[int | None] = []
        self.depths: list[int] = []
        self.children: list[list[int]] = [[] for _ in self.modules]
        self.totals = _Totals(len(self.modules))
        self.own: list[tuple[int, int, int]] = []  # own params, own param tensors, own buffers
        self.first_owner: dict[int, int] = {}
        self.extra_owners: list[tuple[torch.Tensor, int, str]] = []

    def build(self) -> ModuleTree:
        index = {name: i for i, (name, _) in enumerate(self.modules)}
        for i, (name, module) in enumerate(self.modules):
            parent = index[name.rpartition(".")[0]] if name else None
            self.parents.append(parent)
            self.depths.append(0 if parent is None else self.depths[parent] + 1)
            if parent is not None:
                self.children[parent].append(i)
            self.own.append(self._count_direct(i, module))
        self._count_state_dict(index)
        self._sum_bottom_up()
        self._add_shared_tensors()
        return ModuleTree(self._make_nodes(), class_name_of(self.model))

    def _count_direct(self, i: int, module: nn.Module) -> tuple[int, int, int]:
        own_params = own_tensors = own_buffers = 0
        for p in module._parameters.values():
            if p is None:
                continue
            own_params += p.numel()
            own_tensors += 1
            self._attribute(p, i, "param")
        for name, b in module._buffers.items():
            if b is None:
                continue
            own_buffers += 1
            persistent = name not in module._non_persistent_buffers_set
            self._attribute(b, i, "persistent" if persistent else "buffer")
        return own_params, own_tensors, own_buffers

    def _attribute(self, t: torch.Tensor, i: int, kind: str) -> None:
        """Count each tensor once, at its first owner; shared tensors are patched in later."""
        key = id(t)
        if key in self.first_owner:
            if self.first_owner[key] != i:
                self.extra_owners.append((t, i, kind))
            return
        self.first_owner[key] = i
        self.totals.add_tensor(i, t, kind)

    def _count_state_dict(self, index: dict[str, int]) -> None:
        entries, sizes = self.totals.columns["sd_entries"], self.totals.columns["sd_bytes"]
        for key, value in self.model.state_dict(keep_vars=True).items():
            prefix = key.rpartition(".")[0]
            while prefix and prefix not in index:
                prefix = prefix.rpartition(".")[0]
            owner = index.get(prefix, 0)
            entries[owner] += 1
            if isinstance(value, torch.Tensor):
                sizes[owner] += value.numel() * value.element_size()

    def _sum_bottom_up(self) -> None:
        self.totals.sum_bottom_up(self.parents, self.depths)

    def _add_shared_tensors(self) -> None:
        """A tied tensor counts once in every subtree that holds any of its owners."""
        counted: dict[int, set[int]] = {}
        for t, owner, kind in self.extra_owners:
            seen = counted.setdefault(id(t), set(self._chain(self.first_owner[id(t)])))
            for node in self._chain(owner):
                if node in seen:
                    break
                seen.add(node)
                self.totals.add_tensor(node, t, kind)

    def _chain(self, i: int | None) -> Iterator[int]:
        while i is not None:
            yield i
            i = self.parents[i]

    def _make_nodes(self) -> list[Node]:
        nodes: list[Node] = []
        rows = self.totals.rows()
        for i, (name, module) in enumerate(self.modules):
            parent = self.parents[i]
            key = name.rpartition(".")[2]
            if parent is None:
                access, negative, depth = "model", None, 0
            else:
                up = nodes[parent]
                parent_module = self.modules[parent][1]
                is_last = self.children[parent][-1] == i
                access, negative = naming.child_access(
                    up.access, up.access_negative, parent_module, key, is_last, len(self.children[parent])
                )
                depth = up.depth + 1
            nodes.append(self._node(i, name, key, depth, module, access, negative, rows[i]))
        return nodes

    def _node(
        self, i: int, name: str, key: str, depth: int, module: nn.Module, access: str, negative: str | None,
        counters: tuple[int, ...],
    ) -> Node:
        own_params, own_tensors, own_buffers = self.own[i]
        params, trainable, param_tensors, param_bytes, buffers, persistent, buffer_elements, buffer_bytes, \
            sd_entries, sd_bytes = counters
        return Node(
            i, name, key, depth, self.parents[i], tuple(self.children[i]), class_name_of(module),
            _extra_repr(module), access, negative, own_params, own_tensors, params, trainable,
            param_tensors, param_bytes, own_buffers, buffers, persistent, buffer_elements, buffer_bytes,
            sd_entries, sd_bytes, self.totals.dtypes.names(i), self.totals.devices.names(i),
            isinstance(module, (nn.Sequential, nn.ModuleList)),
        )


def _extra_repr(module: nn.Module) -> str:
    try:
        return module.extra_repr()
    except Exception:  # a user's extra_repr may fail on meta tensors; the tree must still build
        return ""
