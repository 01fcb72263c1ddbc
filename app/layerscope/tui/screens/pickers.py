"""``m`` and ``c``: pick the CAM method, pick the target class (by index or name, filtered)."""

from __future__ import annotations

import re

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from layerscope.tui.screens.image_path import MAX_PROMPT

TOP = -1  # "the top prediction" in the class picker
INDEX_DIGITS = 9  # a class index typed without class names: more digits than any model has classes


class MethodPicker(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, methods: list[str], current: str) -> None:
        super().__init__()
        self.methods = methods
        self.current = current

    def compose(self) -> ComposeResult:
        options = [Option(Text.assemble(m, (" ✓" if m == self.current else "", "green")), id=m) for m in self.methods]
        with Vertical(classes="picker"):
            yield Static(Text("CAM method", style="bold"))
            yield OptionList(*options, id="method-list")

    def on_mount(self) -> None:
        option_list = self.query_one(OptionList)
        if self.current in self.methods:
            option_list.highlighted = self.methods.index(self.current)
        option_list.focus()

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


def class_options(categories: list[str], query: str, limit: int = 200) -> list[tuple[int, str]]:
    """``(index, label)`` of the classes whose index starts with or whose name contains ``query``."""
    needle = query.strip().lower()
    found = [(TOP, "top prediction")] if not needle or needle in "top prediction" else []
    for i, name in enumerate(categories):
        if not needle or str(i).startswith(needle) or needle in name.lower():
            found.append((i, f"{i} {name}"))
            if len(found) >= limit:
                break
    if not categories and re.fullmatch(f"[0-9]{{1,{INDEX_DIGITS}}}", needle):  # not isdigit(): int("²") raises
        found.append((int(needle), f"class index {int(needle)}"))
    return found


class ClassPicker(ModalScreen[int | None]):
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("down", "move(1)", show=False),
        Binding("up", "move(-1)", show=False),
    ]

    def __init__(self, categories: list[str]) -> None:
        super().__init__()
        self.categories = categories

    def compose(self) -> ComposeResult:
        hint = "type a class index or part of a name" if self.categories else "no class names: type an index"
        with Vertical(classes="picker"):
            yield Static(Text("Target class", style="bold"))
            yield Input(placeholder=hint, id="class-filter", max_length=MAX_PROMPT)
            yield OptionList(id="class-list")

    def on_mount(self) -> None:
        self._refill("")
        self.query_one(Input).focus()

    @on(Input.Changed, "#class-filter")
    def _filter(self, event: Input.Changed) -> None:
        self._refill(event.value)

    def _refill(self, query: str) -> None:
        option_list = self.query_one(OptionList)
        option_list.clear_options()
        option_list.add_options([Option(label, id=str(i)) for i, label in class_options(self.categories, query)])
        if option_list.option_count:
            option_list.highlighted = 0

    def action_move(self, step: int) -> None:
        option_list = self.query_one(OptionList)
        if option_list.option_count:
            current = option_list.highlighted or 0
            option_list.highlighted = max(0, min(option_list.option_count - 1, current + step))

    @on(Input.Submitted, "#class-filter")
    def _submitted(self) -> None:
        option_list = self.query_one(OptionList)
        if option_list.highlighted is not None:
            self.dismiss(int(option_list.get_option_at_index(option_list.highlighted).id))

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id))
