"""The search bar: ``/`` opens it, typing highlights matches, enter jumps to the first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import Horizontal
from textual.widgets import Input, Static

if TYPE_CHECKING:
    from layerscope.tree import ModuleTree


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
    def compose(self):
        yield Static("/", id="search-prompt")
        yield Input(placeholder="press / to search names and classes; enter jumps, n/N next/prev",
                    id="search-input")
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
