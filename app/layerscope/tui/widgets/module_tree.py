"""The module tree: Textual's ``Tree`` filled lazily from a ``ModuleTree``.

Only expanded nodes get children, repeat runs fold into one ``×N`` line, and a
node with very many children shows them a page at a time, so a model of 100,000
modules opens and scrolls like resnet18: the widget never holds more lines than
the user has opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from layerscope.tui import difftext
from layerscope.tui.treeline import COLUMNS, Column, LineFacts, TreeLine, column_named

if TYPE_CHECKING:
    from layerscope.activations import ActivationReport
    from layerscope.cost import CostTable
    from layerscope.diff import DiffResult
    from layerscope.tree import ModuleTree, Node

PAGE = 100  # child lines added per page

MARKS = {"spatial": ("▦", "green"), "tokens": ("▤", "cyan"), "none": ("·", "bright_black")}


@dataclass(frozen=True, slots=True)
class Row:
    """What one tree line stands for: a module, a folded run of modules, or "more…"."""

    kind: Literal["module", "run", "more"]
    index: int  # the module's node index; for "run" and "more", the parent's
    rows: tuple[tuple[str, int | tuple[int, ...]], ...] = ()  # a run's members / the lines still hidden


class ModuleTreeView(Tree[Row]):
    """A lazily filled tree over a ``ModuleTree``; ``reveal(index)`` opens the path to any node."""

    BINDINGS = [
        Binding("left", "collapse_or_parent", "Collapse", show=False),
        Binding("right", "expand_or_child", "Expand", show=False),
        Binding("shift+space", "toggle_node", "Toggle", show=False),  # no expand-all on 100k modules
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(Text("loading…"), **kwargs)
        self.model_tree: ModuleTree | None = None
        self.fold = True
        self.marks: dict[str, str] = {}
        self.target: int | None = None
        self.ranks: dict[str, tuple[int, float]] = {}  # the last ``r``: layer -> (place, insertion − deletion)
        self.matches: frozenset[int] = frozenset()
        self.cost: CostTable | None = None  # from the shape probe
        self.column: Column = COLUMNS[0]  # the figure at the end of each line (x cycles)
        self.diff: DiffResult | None = None  # after ``d``: what changed, node for node
        self.top_change = 0.0  # the diff's largest relative change: the red end of the colour scale
        self.activity: ActivationReport | None = None  # after ``A``: the activity column's figures
        self.shapes: dict[str, str] = {}  # name -> output shape ("1×64×56×56"), once probed
        self.show_shapes = False  # S: "→ shape" at the end of each line, as `layerscope tree --shapes`
        self._lines: dict[int, TreeNode[Row]] = {}  # node index -> its line, once added
        self._parts: dict[int, TreeLine] = {}  # line id -> its parts, fitted to the width when drawn
        self.guide_depth = 3
        self.auto_expand = False

    # --- filling ---------------------------------------------------------------------

    def show_diff(self, diff: DiffResult | None) -> None:
        """Show ``diff`` in the change column (None: drop it); runs refold to split blocks that
        moved differently, as ``layerscope diff`` does."""
        self.diff = diff
        self.top_change = difftext.largest_change(diff) if diff is not None else 0.0
        self.column = column_named("change") if diff is not None else COLUMNS[0]
        self.refold(self.fold)

    def show(self, model_tree: ModuleTree) -> None:
        """Replace the contents with ``model_tree``, root expanded one level."""
        self.model_tree = model_tree
        self._lines = {}
        root = model_tree.root
        self._parts = {}
        self.reset(self.label_for(root), Row("module", 0))
        self._set_line(self.root, self.line_for(root))
        self._lines[0] = self.root
        self._fill(self.root)
        self.root.expand()
        self.move_cursor(self.root)

    def refold(self, fold: bool) -> None:
        """Rebuild with folding on or off, keeping the cursor on the same module."""
        if self.model_tree is None:
            return
        here = self.current_index()
        opened = sorted(i for i, line in self._lines.items() if line.is_expanded)
        self.fold = fold
        self.show(self.model_tree)
        for index in opened:
            line = self._line_of(index)
            self._fill(line)
            line.expand()
        if here is not None:
            self.reveal(here)

    def _fill(self, line: TreeNode[Row]) -> None:
        row = line.data
        if row is None or line.children or self.model_tree is None:
            return
        if row.kind == "module":
            self._add_rows(line, self._child_rows(self.model_tree.nodes[row.index]))
        elif row.kind == "run":
            self._add_rows(line, row.rows)

    def _child_rows(self, node: Node) -> list[tuple[str, int | tuple[int, ...]]]:
        tree = self.model_tree
        assert tree is not None
        runs = {r.first: r for r in tree.repeat_runs(node)} if self.fold else {}  # the CLI's minimum (2)
        rows: list[tuple[str, int | tuple[int, ...]]] = []
        skip = 0
        for child in node.children:
            if skip:
                skip -= 1
                continue
            run = runs.get(child)
            if run is not None:
                groups = self.diff.alike(run.members) if self.diff is not None else [list(run.members)]
                rows += [("run", tuple(group)) if len(group) > 1 else ("module", group[0]) for group in groups]
                skip = run.length - 1
            else:
                rows.append(("module", child))
        return rows

    def _add_rows(self, parent: TreeNode[Row], rows, before: TreeNode[Row] | None = None) -> TreeNode[Row] | None:
        """Add the first page of ``rows`` (before ``before``, else at the end) and a "more" line
        for the rest; returns the first line added."""
        rows = tuple(rows)
        tree = self.model_tree
        assert tree is not None
        added: list[TreeNode[Row]] = []
        for kind, value in rows[:PAGE]:
            if kind == "module":
                node = tree.nodes[value]
                parts = self.line_for(node)
                line = parent.add(parts.full(), Row("module", value), before=before, allow_expand=bool(node.children))
                self._lines[value] = line
            else:
                parts = self._run_label(value)
                line = parent.add(
                    parts.full(), Row("run", parent.data.index, tuple(("module", m) for m in value)), before=before
                )
            self._parts[line.id] = parts
            added.append(line)
        if rows[PAGE:]:
            self._add_more(parent, rows[PAGE:], before)
        return added[0] if added else None

    def _add_more(self, parent: TreeNode[Row], rows: tuple, before: TreeNode[Row] | None) -> None:
        parent.add_leaf(
            Text.assemble((f"… {len(rows):,} more", "italic"), ("  enter shows the next page", "dim")),
            Row("more", parent.data.index, rows),
            before=before,
        )

    def show_more(self, line: TreeNode[Row], index: int | None = None) -> TreeNode[Row] | None:
        """Replace a "more" line, in place, by its next page, or by the page that holds module
        ``index`` with "more" lines on both sides: a jump deep into 10,000 siblings adds one
        page, not every page before it. Returns the page's first line."""
        parent, row = line.parent, line.data
        if parent is None or row is None or row.kind != "more":
            return None
        start = 0
        if index is not None:
            position = next(
                i for i, (_, v) in enumerate(row.rows) if v == index or (isinstance(v, tuple) and index in v)
            )
            start = position - position % PAGE
        if start:
            self._add_more(parent, row.rows[:start], before=line)
        first = self._add_rows(parent, row.rows[start:], before=line)
        line.remove()
        return first

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[Row]) -> None:
        event.stop()
        self._fill(event.node)

    def on_tree_node_selected(self, event: Tree.NodeSelected[Row]) -> None:
        line = event.node
        if line.data is not None and line.data.kind == "more":
            event.stop()
            first = self.show_more(line)
            if first is not None:
                self._tree_lines  # noqa: B018  rebuild line numbers before moving
                self.move_cursor(first)
        elif line.allow_expand:
            line.toggle()

    # --- labels ----------------------------------------------------------------------

    def label_for(self, node: Node) -> Text:
        return self.line_for(node).full()

    def line_for(self, node: Node) -> TreeLine:
        """A module's line: marks, name and class, then its figures."""
        name = node.key if node.name else (self.model_tree.model_class if self.model_tree else "model")
        lead, short = self._leads(node.name, [node.name], node.index == self.target)
        found = node.index in self.matches
        label = Text(name, "bold reverse" if found else "bold")
        if node.name:
            label.append(f" {node.class_name}", "italic reverse" if found else "italic")
        figures = Text.assemble(("  ", "dim"), self._figure((node.index,)))  # a coloured figure keeps its colour
        if node.uninitialized:  # a lazy module not yet run: its 0 is no count
            figures.append(" + uninitialized", "yellow")
        if node.same_as is not None and self.model_tree is not None:  # one module registered twice
            figures.append(f"  same module as {self.model_tree.nodes[node.same_as].name}", "dim italic")
        self._append_shape(figures, node.name)
        return TreeLine(lead, label, figures, short)

    def _leads(self, first: str, names: list[str], target: bool) -> tuple[Text, Text]:
        """The line's lead (mark, target, rank with its score) and its short form (rank alone)."""
        lead = Text()
        self._append_mark(lead, first)
        if target:
            lead.append("◎ ", "bold magenta")
        short = lead.copy()
        self._append_rank(lead, names)
        self._append_rank(short, names, short=True)
        return lead, short

    def _figure(self, members: tuple[int, ...]) -> Text:
        column = self.column if self.column.ready(self._facts(members)) else COLUMNS[0]
        return column.cell(self._facts(members))

    def _facts(self, members: tuple[int, ...]) -> LineFacts:
        assert self.model_tree is not None
        return LineFacts(self.model_tree, members, self.cost, self.diff, self.top_change, self.activity)

    def next_column(self) -> Column | None:
        """``x``: the next column that has its figures (None when only parameters have)."""
        if self.model_tree is None:
            return None
        facts = self._facts((0,))
        ready = [c for c in COLUMNS if c.ready(facts)]
        if len(ready) < 2:
            return None
        self.column = ready[(ready.index(self.column) + 1) % len(ready)] if self.column in ready else ready[0]
        self.relabel()
        return self.column

    def _append_mark(self, text: Text, name: str) -> None:
        """The CAM mark leads the line; a blank keeps the place until shapes are probed, so
        labels do not shift when marks arrive."""
        symbol, style = MARKS.get(self.marks.get(name, ""), (" ", ""))
        text.append(f"{symbol} ", style)

    def _append_rank(self, text: Text, names: list[str], short: bool = False) -> None:
        """``#2 +0.68``: the line's place in the last ranking and its insertion − deletion; a folded
        run shows its best member's (``#1 at 16``); ``short``: the place alone."""
        ranked = sorted((self.ranks[n], n) for n in names if n in self.ranks)
        if not ranked:
            return
        (place, gap), name = ranked[0]
        where = f" at {name.rsplit('.', 1)[-1]}" if len(names) > 1 else ""
        said = f"#{place} " if short else f"#{place} {gap:+.2f}{where} "
        text.append(said, "bold green" if place == 1 else "yellow")

    def _append_shape(self, text: Text, name: str) -> None:
        shape = self.shapes.get(name) if self.show_shapes else None
        if shape is not None:
            text.append(f"  → {shape}", "cyan")

    def _run_label(self, members: tuple[int, ...]) -> TreeLine:
        tree = self.model_tree
        assert tree is not None
        first, last = tree.nodes[members[0]], tree.nodes[members[-1]]
        lead, short = self._leads(first.name, [tree.nodes[i].name for i in members], self.target in members)
        label = Text(f"{first.key}…{last.key}", "bold")
        label.append(f" {first.class_name} ×{len(members)}", "italic")
        figures = Text.assemble(("  ", "dim"), self._figure(members))  # a coloured figure keeps its colour
        self._append_shape(figures, first.name)
        return TreeLine(lead, label, figures, short)

    def _set_line(self, line: TreeNode[Row], parts: TreeLine) -> None:
        self._parts[line.id] = parts
        line.set_label(parts.full())

    def render_label(self, node: TreeNode[Row], base_style: Style, style: Style) -> Text:
        """The label fitted to the room right of the guides: names give way, figures never."""
        parts = self._parts.get(node.id)
        if parts is None:
            return super().render_label(node, base_style, style)
        depth, parent = 0, node.parent
        while parent is not None:
            depth, parent = depth + 1, parent.parent
        icon = len(self.ICON_NODE) if node.allow_expand else 0
        room = self.scrollable_content_region.width - depth * self.guide_depth - icon
        label = parts.fitted(room)
        label.stylize(style)
        plain = super().render_label(node, base_style, style)  # Textual's toggle icon, its click meta kept
        return Text.assemble(plain[:icon], label)

    def relabel(self) -> None:
        """Redraw the labels of every line added so far (marks, target or matches changed)."""
        if self.model_tree is None:
            return
        nodes = self.model_tree.nodes
        for index, line in self._lines.items():
            self._set_line(line, self.line_for(nodes[index]))
        for line in self._tree_nodes.values():
            row = line.data
            if row is not None and row.kind == "run":
                self._set_line(line, self._run_label(tuple(v for _, v in row.rows)))

    # --- navigation ------------------------------------------------------------------

    def current_index(self) -> int | None:
        """The module under the cursor (a folded run counts as its first member)."""
        line = self.cursor_node
        if line is None or line.data is None:
            return None
        row = line.data
        if row.kind == "module":
            return row.index
        if row.kind == "run" and row.rows:
            return row.rows[0][1]
        return None

    def current_run(self) -> tuple[int, ...] | None:
        """The members of the folded run under the cursor, if the cursor is on one."""
        line = self.cursor_node
        row = line.data if line is not None else None
        if row is None or row.kind != "run":
            return None
        return tuple(v for _, v in row.rows)

    def reveal(self, index: int) -> None:
        """Expand the path to module ``index`` (runs and pages included) and put the cursor on it."""
        if self.model_tree is None:
            return
        line = self._line_of(index)
        self._tree_lines  # noqa: B018  one rebuild after all the expanding
        self.move_cursor(line)
        self.scroll_to_node(line, animate=False)

    def _line_of(self, index: int) -> TreeNode[Row]:
        if index in self._lines:
            return self._lines[index]
        tree = self.model_tree
        assert tree is not None
        parent = tree.nodes[index].parent
        assert parent is not None
        holder = self._line_of(parent)
        while True:
            self._fill(holder)
            holder.expand()
            if index in self._lines:
                return self._lines[index]
            holder = self._next_holder(holder, index)

    def _next_holder(self, holder: TreeNode[Row], index: int) -> TreeNode[Row]:
        """The run or "more" line under ``holder`` that hides ``index``; a "more" is opened."""
        for line in holder.children:
            row = line.data
            if row is None or row.kind == "module":
                continue
            if row.kind == "more":
                if any(index == v or (isinstance(v, tuple) and index in v) for _, v in row.rows):
                    self.show_more(line, index)
                    return holder
                continue
            if any(index == v for _, v in row.rows):
                return line
        raise LookupError(f"module {index} is not below {holder.data}")

    def action_collapse_or_parent(self) -> None:
        line = self.cursor_node
        if line is None:
            return
        if line.is_expanded:
            line.collapse()
        elif line.parent is not None:
            self.move_cursor(line.parent)

    def action_expand_or_child(self) -> None:
        line = self.cursor_node
        if line is None or not line.allow_expand:
            return
        if not line.is_expanded:
            line.expand()
        elif line.children:
            self._tree_lines  # noqa: B018  the rebuild before moving
            self.move_cursor(line.children[0])
