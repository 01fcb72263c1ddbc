"""The module tree: one pass over a model, an immutable node per registration.

Every figure a view shows (own and total parameters, buffers, state_dict entries,
dtypes, devices) is computed here once, in O(modules + tensors): totals are summed
bottom-up instead of re-walking ``parameters()`` for each node, which would cost
O(modules × depth) and make a 100,000-module model unusable.

The walk follows each container's real ``_modules``, as ``state_dict()`` and
``named_modules(remove_duplicate=False)`` do: a module registered under two names
is a node at both places (the second marked ``same_as`` the first), and positions
(``features[3]``) are the container's own, so every access expression evaluates
to its module. Looking names up (``resolve``, the closest names to a typo) lives
here too; ``layerscope.naming`` only reads and writes the text.
"""

from __future__ import annotations

import difflib
import gc
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from layerscope import naming
from layerscope.counting import Totals, storage_of
from layerscope.errors import LayerscopeError
from layerscope.parsing import as_int


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """One registration of a module (its place in the tree), with its subtree's figures.

    Subtree figures count what ``module.parameters()`` / ``buffers()`` yield there: a
    tensor shared by several places counts once. Public API: ``name``, ``class_name``,
    ``access``, ``access_negative``, ``own_params``, ``total_params``.
    """

    index: int
    name: str  # the qualified name, as named_modules() and state_dict() spell it
    key: str  # the last step of ``name``
    depth: int
    parent: int | None
    children: tuple[int, ...]
    class_name: str
    extra_repr: str
    access: str  # Python reaching the module from ``model``: model.features[3]
    access_negative: str | None  # the same with [-1] for a last child, when that differs
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
    state_dict_bytes: int  # every entry's bytes summed, as a loop over state_dict() adds them
    state_dict_unique_bytes: int  # each storage once: what torch.save of this subtree writes
    dtypes: tuple[str, ...]
    devices: tuple[str, ...]
    is_sequence: bool = False  # an nn.Sequential / nn.ModuleList: ``module[i]`` reads a position
    length: int = 0  # len(module) for a sequence: its positions run 0 … length-1
    position: int | None = None  # ``parent[position]`` is this module, when the parent is a sequence
    same_as: int | None = None  # the node where this very module object is registered first

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


@dataclass(frozen=True, slots=True)
class SharedTensor:
    """A parameter with several owners (tied weights, a module registered twice)."""

    numel: int
    owners: tuple[int, ...]


class ModuleTree:
    """Immutable nodes in pre-order (``named_modules(remove_duplicate=False)`` order); index 0
    is the model. Iterating yields every node."""

    def __init__(self, nodes: list[Node], model_class: str, shared: tuple[SharedTensor, ...] = ()) -> None:
        self.nodes = nodes
        self.model_class = model_class
        self.shared = shared
        self._by_name = {n.name: n.index for n in nodes}
        self._child_keys: dict[int, dict[str, int]] = {}
        self._positions: dict[int, dict[int, int]] = {}
        self._expressions: dict[str, Node] | None = None
        self.renamer: Callable[[str], str | None] | None = None  # old spellings (``layerscope.hf``)

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
            table = self._child_keys[node.index] = {self.nodes[i].key: i for i in node.children}
        idx = table.get(key)
        return None if idx is None else self.nodes[idx]

    def child_at(self, node: Node, position: int) -> Node | None:
        """``module[position]`` for a Sequential / ModuleList, negative positions included."""
        if not node.is_sequence or not -node.length <= position < node.length:
            return None
        table = self._positions.get(node.index)
        if table is None:
            table = self._positions[node.index] = {
                self.nodes[i].position: i for i in node.children if self.nodes[i].position is not None
            }
        idx = table.get(position % node.length)
        return None if idx is None else self.nodes[idx]

    def module_of(self, model: nn.Module, node: Node) -> nn.Module:
        """The module at ``node`` in ``model``, following the registrations themselves (a class
        attribute of the same name cannot hide a child here, as it can from ``getattr``)."""
        keys: list[str] = []
        while node.parent is not None:
            keys.append(node.key)
            node = self.nodes[node.parent]
        module = model
        for key in reversed(keys):
            module = module._modules[key]
        return module

    # --- names ---------------------------------------------------------------------------

    def resolve(self, text: str) -> Node:
        """The node ``text`` names, read in this order:

        1. an access expression the tree shows (``model.layer4[-1]``): always its own node;
        2. a qualified name as ``named_modules()`` and ``state_dict()`` spell it, also after a
           leading ``model.`` (so ``model.layers.2`` in a model whose child is called ``model``
           is that child's layer, and ``model.heads.box-reg`` is ``heads.box-reg``);
        3. Python where a leading ``model`` is the root (``model.model.layers[-1]``): a dotted
           step is a key, a bracketed number a position.

        So the bare word ``model`` is the root, unless the root has a child called ``model``:
        then it is that child, as in the state_dict, and ``""`` names the root.

        A wrong name fails with the closest real ones.
        """
        return self._resolve(text.strip(), rename=True)

    def _resolve(self, text: str, *, rename: bool) -> Node:
        found = self.root if not text else self._shown().get(text)
        for name in (text, text.removeprefix("model.")):
            found = found or self.get(name)
        if found is not None:
            return found
        node = self.root
        for step in naming.parse(text):
            nxt = self._step(node, step)
            if nxt is None:
                return self._renamed(text) if rename else self._fail(text)
            node = nxt
        return node

    def _renamed(self, text: str) -> Node:
        """A name as a checkpoint file or older code spells it, where the model has such
        renames (transformers 5 calls ``vit.encoder.layer[-1]`` ``vit.layers[-1]``)."""
        renamed = self.renamer(text) if self.renamer is not None else None
        if renamed is None or renamed == text:
            return self._fail(text)
        try:
            return self._resolve(renamed, rename=False)  # one round of renames, never a loop
        except LayerscopeError:
            return self._fail(text)

    def _fail(self, text: str) -> Node:
        raise LayerscopeError(self._not_found(text))

    def _shown(self) -> dict[str, Node]:
        """Every access expression the views print, built on the first lookup."""
        if self._expressions is None:
            table: dict[str, Node] = {}
            for node in self.nodes[1:]:  # the root's "model" yields to a child called model
                table[node.access] = node
                if node.access_negative:
                    table[node.access_negative] = node
            self._expressions = table
        return self._expressions

    def _step(self, node: Node, step: naming.Step) -> Node | None:
        if isinstance(step, str):
            found = self.child_by_key(node, step)
            if found is not None or as_int(step) is None:
                return found
            step = as_int(step)  # layer4.-1: a dotted spelling of a position
        return self.child_at(node, step)

    def closest_names(self, text: str, n: int = 3) -> list[str]:
        """Real layer names that look like ``text`` (compared as dotted names)."""
        wanted = naming.as_dotted(text)
        depth = wanted.count(".") + 1
        pool = [node.name for node in self.nodes if node.name]
        if len(pool) > 20000:  # keep the error path quick on huge models
            pool = [name for name in pool if name.count(".") + 1 == depth][:20000]
        return difflib.get_close_matches(wanted, pool, n=n, cutoff=0.5)

    def _not_found(self, text: str) -> str:
        close = self.closest_names(text)
        hint = f"; closest: {', '.join(close)}" if close else ""
        return f"no layer {text!r} in {self.model_class}{hint}"

    # --- subtrees and runs ----------------------------------------------------------------

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
        """Parameters of a folded run of sibling ``members``, each tensor once: a tensor tied
        across members (or a module registered in two of them) is taken off the sum for
        every member that holds it beyond the first."""
        total = sum(self.nodes[m].total_params for m in members)
        spans = [(m, self.descendants(self.nodes[m]).stop) for m in members]
        for tensor in self.shared:
            holders = sum(1 for start, stop in spans if any(start <= o < stop for o in tensor.owners))
            total -= tensor.numel * max(0, holders - 1)
        return total

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
    """Walk ``model`` once and return its immutable module tree.

    The cyclic garbage collector is paused meanwhile: the build only allocates (two objects
    per module, none of them garbage), and on 100,000 modules its repeated full scans
    cost more than the walk itself."""
    from layerscope import hf  # imports transformers never: only a model made by it gets renames

    paused = gc.isenabled()
    gc.disable()
    try:
        tree = _TreeBuilder(model).build()
    finally:
        if paused:
            gc.enable()
    tree.renamer = hf.checkpoint_renamer(model)
    return tree


def class_name_of(module: nn.Module) -> str:
    """TorchScript modules report ``RecursiveScriptModule``; their original class is more useful."""
    if isinstance(module, torch.jit.ScriptModule):
        return getattr(module, "original_name", None) or type(module).__name__
    return type(module).__name__


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
    reachable = naming.is_attribute(key) and getattr(parent, key, None) is place.module
    if position is not None:
        segment = f".{key}" if reachable else naming.spell_position(position)  # a named Sequential reads .name
        last = position == len(parent._modules) - 1 and len(parent._modules) > 1
        return segment, naming.spell_position(-1) if last else segment
    if _is_dict(parent):
        return (naming.spell_item(key),) * 2
    if reachable or getattr(parent, key, None) is place.module:
        return (naming.spell_attribute(key),) * 2  # .get_submodule('block1-0') goes through getattr
    return (naming.spell_private(key),) * 2


class _TreeBuilder:
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
        return ModuleTree(self._make_nodes(), class_name_of(self.model), shared)

    def _count_direct(self, i: int, module: nn.Module) -> tuple[int, int, int]:
        """A parameter registered twice on one module (``a`` and ``b``) is one tensor: once."""
        own_params = own_tensors = own_buffers = 0
        seen: set[int] = set()
        for p in module._parameters.values():
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            own_params += p.numel()
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
