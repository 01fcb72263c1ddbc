"""The search bar: ``/`` opens it, typing highlights matches, enter jumps to the first.

The bar keeps the search (the names it looks at, the matches); it tells the screen
what to highlight (``Matched``) and where enter goes (``Chosen``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.containers import Horizontal
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Static

from layerscope.tui.screens.image_path import MAX_PROMPT

if TYPE_CHECKING:
    from layerscope.tree import ModuleTree

SEARCH_PAUSE = 0.15  # seconds of no typing before matches are highlighted


def search_keys(tree: ModuleTree) -> list[str]:
    """What search looks at, once per tree: lower-case ``name`` and ``class`` (a tab cannot match)."""
    return [f"{n.name}\t{n.class_name}".lower() for n in tree.nodes]


def find_matches(keys: list[str], query: str) -> list[int]:
    """Indices (pre-order) of the modules whose dotted name or class contains ``query``."""
    needle = query.strip().lower()
    if not needle or "\t" in needle:
        return []
    return [i for i, key in enumerate(keys) if needle in key]


class SearchBar(Horizontal):
    @dataclass
    class Matched(Message):
        """Typing paused: the modules (pre-order indices) whose name or class holds the query."""

        matches: list[int]

    @dataclass
    class Chosen(Message):
        """Enter: the search is done; ``query`` as typed, ``matches`` as last highlighted."""

        query: str
        matches: list[int]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.matches: list[int] = []
        self._tree: ModuleTree | None = None
        self._keys: list[str] | None = None  # built on the first search of a tree
        self._searched = ""
        self._timer: Timer | None = None

    def search_in(self, tree: ModuleTree) -> None:
        """Search ``tree`` from now on (another model: nothing matches yet)."""
        self._tree, self._keys, self._searched, self.matches = tree, None, "", []

    def after(self, index: int) -> int | None:
        """The next match after node ``index``, wrapping round; None without matches."""
        return next((m for m in self.matches if m > index), self.matches[0]) if self.matches else None

    def before(self, index: int) -> int | None:
        """The match before node ``index``, wrapping round; None without matches."""
        return next((m for m in reversed(self.matches) if m < index), self.matches[-1]) if self.matches else None

    @on(Input.Changed, "#search-input")
    def _changed(self, event: Input.Changed) -> None:
        """Highlight matches once typing pauses: 100,000 names per keystroke would lag."""
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(SEARCH_PAUSE, lambda: self._apply(event.value))

    def _apply(self, query: str) -> None:
        if self._tree is None or query == self._searched:
            return
        self._searched = query
        if self._keys is None:
            self._keys = search_keys(self._tree)
        self.matches = find_matches(self._keys, query)
        self.count(len(self.matches))
        self.post_message(self.Matched(list(self.matches)))

    @on(Input.Submitted, "#search-input")
    def _submitted(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._apply(self.value)
        self.close()
        self.post_message(self.Chosen(self.value.strip(), list(self.matches)))

    def compose(self):
        yield Static("/", id="search-prompt")
        yield Input(
            placeholder="press / to search names and classes; enter jumps, n/N next/prev",
            id="search-input",
            max_length=MAX_PROMPT,
        )
        yield Static("", id="search-count")

    def on_mount(self) -> None:
        self.query_one(Input).can_focus = False  # only "/" focuses it; tab skips it

    def open(self) -> None:
        """Always on screen, so focus moves at once: keys typed right after "/" land in the field."""
        field = self.query_one(Input)
        field.can_focus = True
        field.value = ""
        self.add_class("active")
        self.screen.set_focus(field)

    def close(self) -> None:
        self.query_one(Input).can_focus = False
        self.remove_class("active")

    @property
    def active(self) -> bool:
        return self.has_class("active")

    @property
    def value(self) -> str:
        return self.query_one(Input).value

    def count(self, found: int, position: int | None = None) -> None:
        if not self.value.strip():
            text = Text("")
        elif not found:
            text = Text("no match", style="bold red")
        elif position is None:
            text = Text(f"{found:,} matches", style="bold")
        else:
            text = Text(f"{position + 1:,}/{found:,}", style="bold")
        self.query_one("#search-count", Static).update(text)
