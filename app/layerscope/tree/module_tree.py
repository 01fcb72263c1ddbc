"""What a module tree is and how it is queried: an immutable node per registration.

Every figure a view shows (own and total parameters, buffers, state_dict entries,
dtypes, devices) is computed once, in O(modules + tensors) (``layerscope.tree.build``):
totals are summed bottom-up instead of re-walking ``parameters()`` for each node, which
would cost O(modules × depth) and make a 100,000-module model unusable.

The walk follows each container's real ``_modules``, as ``state_dict()`` and
``named_modules(remove_duplicate=False)`` do: a module registered under two names
is a node at both places (the second marked ``same_as`` the first), and positions
(``features[3]``) are the container's own, so every access expression evaluates
to its module. Looking names up (``resolve``, the closest names to a typo) lives
here; ``layerscope.tree.naming`` only reads and writes the text.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from layerscope.errors import LayerscopeError, NotFoundError
from layerscope.parsing import as_int
from layerscope.tree import naming
from layerscope.tree.counting import UNINITIALIZED


class Node(NamedTuple):
    """One registration of a module (its place in the tree), with its subtree's figures.

    Subtree figures count what ``module.parameters()`` / ``buffers()`` yield there: a
    tensor shared by several places counts once. Public API: ``name``, ``class_name``,
    ``access``, ``access_negative``, ``own_params``, ``total_params``.

    Immutable; a named tuple rather than a frozen dataclass because a 100,000-module
    model makes 100,000 of them: a tuple is built from the builder's columns in C, where a
    frozen dataclass's ``__init__`` sets its 29 fields one ``object.__setattr__`` at a time
    (0.7 s against 0.05 s). The module's ``extra_repr`` is not a field: the tree asks the
    module when a view shows it (``ModuleTree.extra_repr``).
    """

    index: int
    name: str  # the qualified name, as named_modules() and state_dict() spell it
    key: str  # the last step of ``name``
    depth: int
    parent: int | None
    children: tuple[int, ...]
    class_name: str
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
    def uninitialized(self) -> bool:
        """A lazy module's parameters in this subtree are not sized yet (counted 0 until a forward)."""
        return UNINITIALIZED in self.dtypes

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

    def __init__(
        self,
        nodes: list[Node],
        model_class: str,
        shared: tuple[SharedTensor, ...] = (),
        renamer: Callable[[str], str | None] | None = None,
        modules: Sequence[nn.Module] = (),
    ) -> None:
        self.nodes = nodes
        self.model_class = model_class
        self.shared = shared
        self.renamer = renamer  # old spellings of names (``layerscope.models.adapters.checkpoint_renamer``)
        self._modules = modules  # the module at each node, asked for its extra_repr when a view shows it
        self._by_name = {n.name: n.index for n in nodes}  # a later registration of a name wins
        self._child_keys: dict[int, dict[str, int]] = {}
        self._positions: dict[int, dict[int, int]] = {}
        self._expressions: dict[str, Node] | None = None  # a cache filled on first use, not state

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

    def extra_repr(self, node: Node) -> str:
        """The module's ``extra_repr()`` (``in_features=512, out_features=1000, bias=True``), asked
        when a view shows it rather than for each of 100,000 nodes at build time; "" when it fails
        (a user's ``extra_repr`` may on meta tensors) or the tree was built without its modules."""
        if node.index >= len(self._modules):
            return ""
        try:
            return self._modules[node.index].extra_repr()
        except Exception:
            return ""

    def buffer_keys(self) -> frozenset[str]:
        """The state_dict keys that are buffers (running statistics, position ids), not
        parameters: what a diff ranks apart from what training changed. Empty for a tree
        built without its modules."""
        return frozenset(
            f"{node.name}.{name}" if node.name else name
            for node, module in zip(self.nodes, self._modules)
            for name in module._buffers
        )

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
        for step in self._parse(text):
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
        raise NotFoundError(self._not_found(text))

    def _parse(self, text: str) -> list[naming.Step]:
        """A dotted name with a typo in an odd key (``heads.box-rex``) is a wrong name, not
        unreadable Python: it gets the closest names too."""
        try:
            return naming.parse(text)
        except LayerscopeError:
            if any(c in text for c in "[]()'\""):
                raise
            raise NotFoundError(self._not_found(text)) from None

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


def class_name_of(module: nn.Module) -> str:
    """TorchScript modules report ``RecursiveScriptModule``; their original class is more useful."""
    if isinstance(module, torch.jit.ScriptModule):
        return getattr(module, "original_name", None) or type(module).__name__
    return type(module).__name__
