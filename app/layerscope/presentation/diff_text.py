"""A diff as people read it: the module tree with a change column, then a short summary.

The column shows ``=`` for a bit-identical subtree, ``+``/``−`` for one only B/A has, else
its relative change. Repeated blocks fold as ``layerscope tree`` folds them, but a run
is cut where its members moved differently, so ten frozen blocks and two fine-tuned ones
read as two lines, not one that hides the difference; the lines under a folded run are
its first member's. ``threshold`` hides nodes (with all they hold) that moved less; without ``show_all``,
bit-identical subtrees are hidden too (the summary names them and says how many).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from rich.text import Text

from layerscope.diff.records import STATUSES, NodeDiff, percent
from layerscope.diff.result import DiffResult
from layerscope.presentation.guides import guided_lines

MARK_STYLES = {"=": "dim green", "+": "green", "−": "red"}
SHOWN_FROZEN = 6


class DiffText:
    """The lines of one diff for one set of view options."""

    def __init__(
        self,
        result: DiffResult,
        *,
        depth: int | None = None,
        threshold: float | None = None,
        fold: bool = True,
        width: int = 120,
        show_all: bool = True,
    ) -> None:
        self.result, self.depth, self.threshold, self.fold, self.width = result, depth, threshold, fold, width
        self.visible = result.visible(threshold)
        self.hidden = 0  # unchanged subtrees left out (``show_all`` off): the summary says how many
        if not show_all:
            same = {n.index for n in result.frozen() if n.index != 0 and n.index in self.visible}
            self.hidden = sum(1 for i in same if depth is None or result.nodes[i].depth <= depth)
            self.visible -= {i for index in same for i in (index, *result.descendants(result.nodes[index]))}
            for node in reversed(result.nodes):  # and modules with no tensors (a ReLU) left with nothing under them
                if node.index and not node.total and not any(c in self.visible for c in node.children):
                    self.visible.discard(node.index)

    def lines(self) -> Iterator[Text]:
        yield from self.header()
        yield from guided_lines([self.result.root], self.rows, self.row_label, self.width)
        yield Text("")
        yield from self.summary()

    # --- the tree -------------------------------------------------------------------

    def rows(self, row: list[NodeDiff]) -> list[tuple[list[NodeDiff], bool]]:
        """The lines under a node (or a folded run: under its first member): a child, or a run
        of alike children, with "is it the last"."""
        node = row[0]
        if self.depth is not None and node.depth >= self.depth:
            return []
        nodes = self.result.nodes
        runs = {run[0]: list(run) for run in self.result.runs.get(node.index, ())} if self.fold else {}
        groups: list[list[NodeDiff]] = []
        taken: set[int] = set()
        for child in node.children:
            if child in taken or child not in self.visible:
                continue
            run = [nodes[i] for i in runs.get(child, [child]) if i in self.visible]
            kind = self.result.change_kind
            cut = next((k for k, m in enumerate(run) if kind(m) != kind(run[0])), len(run))
            if len(run) - cut >= 2:
                runs[run[cut].index] = [m.index for m in run[cut:]]  # the rest folds on its own
            group = run[:cut] if cut >= 2 else run[:1]
            taken.update(m.index for m in group)
            groups.append(group)
        return [(group, i == len(groups) - 1) for i, group in enumerate(groups)]

    def row_label(self, row: list[NodeDiff]) -> Text:
        return self.label(row[0]) if len(row) == 1 else self.run_label(row)

    def label(self, node: NodeDiff) -> Text:
        text = Text()
        text.append(node.name.rpartition(".")[2] if node.name else "model", style="bold cyan")
        if node.class_name:
            text.append(f"  {node.class_name}")
        return self.with_change(text, node.mark, node)

    def run_label(self, members: Sequence[NodeDiff]) -> Text:
        """A folded run: its members' figures summed (exact: the sums, not an average of ratios)."""
        first, last = members[0], members[-1]
        text = Text()
        text.append(f"{first.name.rpartition('.')[2]}…{last.name.rpartition('.')[2]}", style="bold cyan")
        if first.class_name:
            text.append(f"  {first.class_name}")
        text.append(f" ×{len(members)}", style="bold magenta")
        mark = self.result.run_mark(members)
        changed, total = sum(m.changed for m in members), sum(m.total for m in members)
        return self.with_change(text, mark, None, changed, total)

    def with_change(self, text: Text, mark: str, node: NodeDiff | None, changed: int = 0, total: int = 0) -> Text:
        if not mark:
            return text
        text.append(f"  {mark}", style=MARK_STYLES.get(mark, "bold yellow"))
        if node is not None:
            changed, total = node.changed, node.total
        special = self.special(node) if node is not None and mark not in ("+", "−") else ""
        if special:
            text.append(f"  ({changed} of {total} differ: {special})", style="dim")
        elif 0 < changed < total:
            text.append(f"  ({changed} of {total} changed)", style="dim")
        return text

    @staticmethod
    def special(node: NodeDiff) -> str:
        """The statuses a relative change does not show, when any: ``1 changed, 1 removed``."""
        if not any(node.counts.get(s) for s in ("added", "removed", "reshaped", "retyped")):
            return ""
        return ", ".join(f"{node.counts[s]} {s}" for s in STATUSES[1:] if node.counts.get(s))

    # --- header and summary -------------------------------------------------------------

    def header(self) -> Iterator[Text]:
        result = self.result
        source = f"the tree of {result.architecture}" if result.architecture else "key prefixes (no architecture)"
        yield Text.assemble(("A: ", "dim"), (result.a, "bold"))
        yield Text.assemble(("B: ", "dim"), (result.b, "bold"))
        yield Text(f"nodes: {source}", style="dim")

    def summary(self) -> Iterator[Text]:
        result = self.result
        counts = result.counts()
        found = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        yield Text(f"{sum(counts.values())} tensors: {found}")
        root = result.root
        if root.relative_change is not None:
            yield Text(f"whole model: {percent(root.relative_change)} relative change (floating tensors in both)")
        frozen = [n.display_name for n in result.frozen()]
        if frozen and root.status != "same":
            more = f", … {len(frozen) - SHOWN_FROZEN} more" if len(frozen) > SHOWN_FROZEN else ""
            yield Text(f"frozen (bit-identical): {', '.join(frozen[:SHOWN_FROZEN])}{more}")
        moved, frozen_weights = result.drifted_statistics()
        if moved:
            names = ", ".join(n.name for n in frozen_weights[:SHOWN_FROZEN])
            more = f", … {len(frozen_weights) - SHOWN_FROZEN} more" if len(frozen_weights) > SHOWN_FROZEN else ""
            tail = f", {len(frozen_weights)} of them with bit-identical weights ({names}{more})"
            yield Text(f"batch-norm running statistics moved in {len(moved)} layer(s){tail if frozen_weights else ''}")
        if self.hidden:
            yield Text(f"{self.hidden} unchanged subtree(s) not shown (--all shows them)", style="dim")
        for kind, largest in (("parameters", result.largest()), ("buffers", result.largest(buffers=True))):
            if largest:  # trained weights first, running statistics apart
                yield Text(f"largest changes in {kind}:")
                for t in largest:
                    yield Text(f"  {t.key}  {percent(t.relative_change)}")
        yield from self.lora_lines()
        for note in result.notes:
            yield Text(f"note: {note}", style="yellow")

    def lora_lines(self) -> Iterator[Text]:
        lora = self.result.lora
        if lora is None:
            return
        rule = "lora_alpha/√r (rsLoRA)" if lora.use_rslora else "lora_alpha/r"
        yield Text(
            f"LoRA: r={lora.rank}, lora_alpha={lora.alpha:g}, ΔW = {rule} · B·A; "
            f"{len(lora.adapted)} module(s) adapted, {len(lora.replaced)} tensor(s) replaced whole"
        )
        for name, table in (("rank_pattern", lora.rank_pattern), ("alpha_pattern", lora.alpha_pattern)):
            if table:  # the figures use each module's own r and alpha: say which differ from the line above
                pairs = ", ".join(f"{pattern} → {value:g}" for pattern, value in table.items())
                yield Text(f"  {name} (overrides for matching modules): {pairs}")
        if lora.unmatched_targets:
            yield Text(f"target_modules that matched nothing: {', '.join(lora.unmatched_targets)}", style="yellow")


def diff_lines(result: DiffResult, **options) -> list[Text]:
    """Every line of the text view (``options``: depth, threshold, fold, width, show_all)."""
    return list(DiffText(result, **options).lines())
