"""Per-node figures: which module each key belongs to, and sums over every subtree.

With an architecture the nodes are ``layerscope tree``'s own (same order, same names,
same access expressions, so node ``i`` here is node ``i`` of the ``ModuleTree``), and a
key belongs to the node its module prefix names, as ``state_dict()`` builds keys;
checkpoint spellings the model renamed (transformers 5's ``encoder.layer`` →
``layers``) go through the tree's renamer first. Without one, every dotted prefix of
a key is a node. Sums run bottom-up once over the pre-order list: O(nodes + keys).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from layerscope.diff.records import NodeDiff, TensorDiff, relative
from layerscope.tree import ModuleTree, naming

Runs = dict[int, tuple[tuple[int, ...], ...]]  # node → its children's foldable runs (member indices)


class Skeleton:
    """The nodes before their figures: names, spellings, the tree's shape and its foldable runs."""

    def __init__(
        self,
        *,
        names: list[str],
        access: list[str],
        classes: list[str],
        parents: list[int | None],
        runs: Runs,
        renamer: Callable[[str], str | None] | None = None,
    ) -> None:
        self.names, self.access, self.classes, self.parents, self.runs = names, access, classes, parents, runs
        self.renamer = renamer
        self.children: list[list[int]] = [[] for _ in names]
        self.depths = [0] * len(names)
        for i, parent in enumerate(parents):
            if parent is not None:
                self.children[parent].append(i)
                self.depths[i] = self.depths[parent] + 1
        self.index = {name: i for i, name in enumerate(names)}
        self.placed: dict[str, tuple[int, bool]] = {}

    def place(self, key: str) -> tuple[int, bool]:
        """The node holding ``key``, and whether its module prefix named that node exactly
        (else the key sits at the closest ancestor: a file that does not fit the model)."""
        prefix = key.rpartition(".")[0]
        found = self.placed.get(prefix)
        if found is None:
            found = self.placed[prefix] = self.find(prefix)
        return found

    def find(self, prefix: str) -> tuple[int, bool]:
        if prefix in self.index:
            return self.index[prefix], True
        renamed = self.renamer(prefix) if self.renamer is not None and prefix else None
        if renamed is not None and naming.as_dotted(renamed) in self.index:
            return self.index[naming.as_dotted(renamed)], True
        while prefix and prefix not in self.index:
            prefix = prefix.rpartition(".")[0]
        return self.index.get(prefix, 0), False


def skeleton_of_tree(tree: ModuleTree) -> Skeleton:
    """``layerscope tree``'s nodes and the runs it folds."""
    runs = {n.index: tuple(r.members for r in tree.repeat_runs(n)) for n in tree.nodes if n.is_sequence}
    return Skeleton(
        names=[n.name for n in tree.nodes],
        access=[n.access for n in tree.nodes],
        classes=[n.class_name for n in tree.nodes],
        parents=[n.parent for n in tree.nodes],
        runs={i: r for i, r in runs.items() if r},
        renamer=tree.renamer,
    )


def skeleton_of_keys(tensors: Sequence[TensorDiff]) -> Skeleton:
    """Every dotted prefix of a key as a node, in the order keys first name them (numbered
    siblings by number), spelt as Python would reach them; numbered siblings that hold the
    same keys and shapes fold into runs, as ``tree`` folds repeated blocks."""
    kids: dict[str, dict[str, None]] = {"": {}}
    for diff in tensors:
        parts = diff.key.split(".")[:-1]
        for depth in range(len(parts)):
            parent, name = ".".join(parts[:depth]), ".".join(parts[: depth + 1])
            kids[parent].setdefault(name, None)
            kids.setdefault(name, {})
    names, access, parents = [""], ["model"], [None]
    stack = [(0, list(reversed(ordered(kids[""]))))]
    while stack:
        parent, todo = stack[-1]
        if not todo:
            stack.pop()
            continue
        name = todo.pop()
        step = name.rpartition(".")[2]
        names.append(name)
        spelt = naming.spell_position(int(step)) if step.isdigit() else naming.spell_attribute(step)
        access.append(access[parent] + spelt)
        parents.append(parent)
        stack.append((len(names) - 1, list(reversed(ordered(kids[name])))))
    skeleton = Skeleton(names=names, access=access, classes=[""] * len(names), parents=parents, runs={})
    skeleton.runs = key_runs(skeleton, tensors)
    return skeleton


def ordered(children: dict[str, None]) -> list[str]:
    """First-seen order, except that all-numbered siblings go by number (``2`` before ``10``)."""
    names = list(children)
    steps = [n.rpartition(".")[2] for n in names]
    if steps and all(s.isdigit() for s in steps):
        return [n for _, n in sorted(zip((int(s) for s in steps), names))]
    return names


def key_runs(skeleton: Skeleton, tensors: Sequence[TensorDiff]) -> Runs:
    """Consecutive numbered siblings with the same keys and shapes below them."""
    shapes: dict[int, list[tuple[str, object]]] = {}
    for diff in tensors:
        info = diff.a or diff.b
        node, _ = skeleton.place(diff.key)
        while node is not None:
            prefix = skeleton.names[node]
            shapes.setdefault(node, []).append((diff.key[len(prefix) :], info.shape if info else None))
            node = skeleton.parents[node]
    runs: Runs = {}
    for node, children in enumerate(skeleton.children):
        if not children or not all(skeleton.names[c].rpartition(".")[2].isdigit() for c in children):
            continue
        signatures = [tuple(sorted(shapes.get(c, []), key=repr)) for c in children]
        found, start = [], 0
        while start < len(children):
            end = start + 1
            while end < len(children) and signatures[end] == signatures[start]:
                end += 1
            if end - start >= 2:
                found.append(tuple(children[start:end]))
            start = end
        if found:
            runs[node] = tuple(found)
    return runs


def aggregate(skeleton: Skeleton, tensors: Sequence[TensorDiff]) -> tuple[list[NodeDiff], list[str]]:
    """One ``NodeDiff`` per node, and the keys that fit no node exactly (placed at the closest one).

    Sums use ``math.fsum`` (exactly rounded, whatever the order), so a checkpoint gives the
    same figures whether its file lists keys in module order (``.pt``) or sorted (``.safetensors``)."""
    count = len(skeleton.names)
    own: list[list[str]] = [[] for _ in range(count)]
    deltas: list[list[float]] = [[] for _ in range(count)]
    norms: list[list[float]] = [[] for _ in range(count)]
    counts: list[dict[str, int]] = [{} for _ in range(count)]
    unplaced: list[str] = []
    for diff in tensors:
        node, exact = skeleton.place(diff.key)
        if not exact:
            unplaced.append(diff.key)
        own[node].append(diff.key)
        if diff.floating:
            deltas[node].append(diff.delta_sq)
            norms[node].append(diff.norm_sq)
        counts[node][diff.status] = counts[node].get(diff.status, 0) + 1
    nodes: list[NodeDiff | None] = [None] * count
    floating = [0] * count
    for i in range(count - 1, -1, -1):  # pre-order: every child comes after its parent
        kids = skeleton.children[i]
        floating[i] = len(norms[i]) + sum(floating[c] for c in kids)
        for c in kids:
            deltas[i].append(nodes[c].delta_sq)  # type: ignore[union-attr]
            norms[i].append(nodes[c].norm_sq)  # type: ignore[union-attr]
            for status, n in nodes[c].counts.items():  # type: ignore[union-attr]
                counts[i][status] = counts[i].get(status, 0) + n
        norm = math.fsum(norms[i])
        nodes[i] = node_diff(skeleton, i, own[i], counts[i], math.fsum(deltas[i]), norm if floating[i] else None)
    return nodes, unplaced  # type: ignore[return-value]


def node_diff(
    skeleton: Skeleton, i: int, keys: list[str], counts: dict[str, int], delta: float, norm: float | None
) -> NodeDiff:
    """``norm`` is ``None`` when the subtree holds no floating tensor to measure."""
    total = sum(counts.values())
    same = counts.get("same", 0)
    return NodeDiff(
        index=i,
        name=skeleton.names[i],
        access=skeleton.access[i],
        class_name=skeleton.classes[i],
        depth=skeleton.depths[i],
        parent=skeleton.parents[i],
        children=tuple(skeleton.children[i]),
        keys=tuple(keys),
        status="same" if same == total else "changed",
        relative_change=None if norm is None else relative(delta, norm),
        changed=total - same,
        total=total,
        counts=dict(counts),
        delta_sq=delta,
        norm_sq=norm or 0.0,
    )
