"""A finished diff: every tensor, every node, and the questions views ask of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from layerscope.diff.nodes import Runs
from layerscope.diff.records import STATUSES, STRUCTURAL, LoraReport, NodeDiff, TensorDiff, percent, relative


@dataclass(frozen=True, kw_only=True)
class DiffResult:
    """What changed from checkpoint ``a`` to ``b``.

    ``nodes`` is in pre-order and, when ``architecture`` is known, index for index the
    nodes of that model's ``ModuleTree``; ``architecture`` is ``None`` when the nodes come
    from the keys' dotted prefixes.
    """

    a: str
    b: str
    architecture: str | None
    tensors: tuple[TensorDiff, ...]
    nodes: tuple[NodeDiff, ...]
    runs: Runs = field(default_factory=dict)
    lora: LoraReport | None = None
    unplaced: tuple[str, ...] = ()  # keys whose module the architecture does not have
    notes: tuple[str, ...] = ()
    buffer_keys: frozenset[str] = frozenset()  # keys the architecture registers as buffers

    def is_buffer(self, key: str) -> bool:
        return is_buffer_key(key, self.buffer_keys)

    def ranked(self, tensors: Sequence[TensorDiff], *, counters: bool = False) -> list[TensorDiff]:
        """What training changed first: changed parameters, then changed buffers, each with the
        structural changes first and then by relative change, largest first; unchanged last.
        ``num_batches_tracked`` is left out unless ``counters``: a step count moves every epoch."""
        kept = [t for t in tensors if counters or not t.key.endswith(COUNTER)]

        def order(t: TensorDiff) -> tuple[bool, bool, bool, float]:
            change = t.relative_change
            return t.status == "same", self.is_buffer(t.key), change is not None, -(change or 0.0)

        return sorted(kept, key=order)

    @property
    def root(self) -> NodeDiff:
        return self.nodes[0]

    def node(self, name: str) -> NodeDiff | None:
        """The node of this qualified name (``layer4.1.conv2``; ``""`` is the model)."""
        index = self.by_name.get(name)
        return None if index is None else self.nodes[index]

    def tensor(self, key: str) -> TensorDiff | None:
        return self.by_key.get(key)

    def tensors_of(self, node: NodeDiff, *, subtree: bool = False) -> list[TensorDiff]:
        """The tensors ``node`` holds itself, or (``subtree``) all of those below it too."""
        table = self.by_key
        nodes = [node, *(self.nodes[i] for i in self.descendants(node))] if subtree else [node]
        return [table[key] for n in nodes for key in n.keys]

    def descendants(self, node: NodeDiff) -> range:
        """Indices below ``node``: pre-order keeps every subtree contiguous."""
        end = node.index + 1
        while end < len(self.nodes) and self.nodes[end].depth > node.depth:
            end += 1
        return range(node.index + 1, end)

    def change_kind(self, node: NodeDiff) -> tuple[str, frozenset[tuple[str, str]]]:
        """What folds together: blocks whose same tensors (by their name inside the block) moved
        the same way, so ten blocks whose only change is drifted batch-norm statistics do not
        fold into one line with the four that were trained."""
        mark = node.mark if node.mark in ("", "=", "+", "−") else "%"
        cut = len(node.name) + 1
        tensors = self.tensors_of(node, subtree=True)
        return mark, frozenset((t.key[cut:], t.status) for t in tensors if t.status != "same")

    def alike(self, members: Sequence[int]) -> list[list[int]]:
        """A run of repeated blocks (node indices) cut where its members moved differently:
        the groups a view folds, in order (a group of one is a plain line)."""
        groups: list[list[int]] = []
        for index in members:
            kind = self.change_kind(self.nodes[index])
            if groups and self.change_kind(self.nodes[groups[-1][0]]) == kind:
                groups[-1].append(index)
            else:
                groups.append([index])
        return groups

    def run_change(self, members: Sequence[NodeDiff]) -> float | None:
        """A folded run's relative change: its members' sums (exact: not an average of ratios)."""
        norm = sum(m.norm_sq for m in members)
        return relative(sum(m.delta_sq for m in members), norm) if norm else members[0].relative_change

    def run_mark(self, members: Sequence[NodeDiff]) -> str:
        """A folded run's change column, as ``NodeDiff.mark`` is a node's."""
        mark = members[0].mark
        return mark if mark in ("", "=", "+", "−") else percent(self.run_change(members))

    def counts(self) -> dict[str, int]:
        """Tensors per status, every status listed (zeros included), in ``STATUSES`` order."""
        found = self.root.counts
        return {status: found.get(status, 0) for status in STATUSES}

    def frozen(self) -> list[NodeDiff]:
        """The highest nodes whose every tensor is bit-identical, shallowest first (a frozen
        subtree is named once, not with each of its modules)."""
        out = []
        for node in self.nodes:
            parent = self.nodes[node.parent] if node.parent is not None else None
            if node.total and node.status == "same" and (parent is None or parent.status != "same"):
                out.append(node)
        return sorted(out, key=lambda n: n.depth)

    def drifted_statistics(self) -> tuple[list[NodeDiff], list[NodeDiff]]:
        """Normalisation layers whose running statistics (``running_mean``/``running_var``)
        changed, and those of them whose own weights did not: a layer frozen with
        ``requires_grad=False`` but trained in ``train()`` mode still updates them."""
        moved, frozen = [], []
        for node in self.nodes:
            tensors = [self.by_key[key] for key in node.keys]
            stats = [t for t in tensors if t.key.endswith(RUNNING_STATISTICS)]
            if any(t.status != "same" for t in stats):
                moved.append(node)
                weights = [t for t in tensors if t.floating and not t.key.endswith(RUNNING_STATISTICS)]
                if weights and all(t.status == "same" for t in weights):
                    frozen.append(node)
        return moved, frozen

    def visible(self, threshold: float | None) -> set[int]:
        """Indices of the nodes a view shows under ``threshold``: those that moved at least that
        much, those with a change a figure cannot say (added, removed, reshaped, retyped),
        and their ancestors. ``None`` shows every node."""
        if threshold is None:
            return set(range(len(self.nodes)))
        keep: set[int] = {0}
        for node in reversed(self.nodes):  # children before parents
            structural = any(node.counts.get(status) for status in STRUCTURAL)
            if node.total and (structural or moved_at_least(node.relative_change, node.changed, threshold)):
                keep.add(node.index)
            if node.index in keep and node.parent is not None:
                keep.add(node.parent)
        return keep

    def largest(self, count: int = 5, *, buffers: bool = False) -> list[TensorDiff]:
        """The floating parameters (or, ``buffers``, buffers) that moved most, by relative
        change: ranked apart, so drifted running statistics never crowd out trained weights
        (and a step counter's jump from 7 to 9 is not a fine-tuning result)."""
        moved = [
            t
            for t in self.tensors
            if t.floating and t.relative_change is not None and t.status != "same" and self.is_buffer(t.key) == buffers
        ]
        return sorted(moved, key=lambda t: -t.relative_change)[:count]  # type: ignore[operator]

    @cached_property
    def by_name(self) -> dict[str, int]:
        """Node index by qualified name."""
        return {n.name: n.index for n in self.nodes}

    def owner(self, key: str) -> NodeDiff:
        """The node that holds tensor ``key`` (the model itself for a key no module claims)."""
        return self.nodes[self.owners.get(key, 0)]

    @cached_property
    def owners(self) -> dict[str, int]:
        """Node index by tensor key."""
        return {key: n.index for n in self.nodes for key in n.keys}

    @cached_property
    def by_key(self) -> dict[str, TensorDiff]:
        """Tensor record by state_dict key."""
        return {t.key: t for t in self.tensors}


RUNNING_STATISTICS = (".running_mean", ".running_var")
COUNTER = ".num_batches_tracked"


def is_buffer_key(key: str, buffer_keys: frozenset[str]) -> bool:
    """A buffer, not a parameter: the architecture says so, or (no architecture, or a key it
    spells otherwise) a batch norm's statistics and step counter, by their standard names."""
    return key in buffer_keys or key.endswith((*RUNNING_STATISTICS, COUNTER))


def moved_at_least(change: float | None, changed: int, threshold: float) -> bool:
    """A figure at or above ``threshold``; a change without a figure always counts."""
    if change is None:
        return changed > 0
    return change >= threshold
