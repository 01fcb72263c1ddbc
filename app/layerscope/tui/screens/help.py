"""``?``: every key, what it does."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

NAVIGATION = [
    ("↑ ↓", "move the cursor"),
    ("← →", "collapse / expand (or go to parent / first child)"),
    ("enter", "expand or collapse; on “… more”, show the next page"),
    ("1 2 3 4", "Stats, state_dict, API, Grad-CAM tab"),
    ("escape", "close search, cancel a running map, scoring or ranking"),
    ("ctrl+p", "command palette (every key is there too)"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, keys: list[tuple[str, str, str, str, bool]], log: Path) -> None:
        super().__init__()
        self.keys = keys
        self.log_path = log

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, text in NAVIGATION:
            table.add_row(key, text)
        for key, _, _, description, _ in self.keys:
            table.add_row(key.replace("slash", "/").replace("question_mark", "?"), description)
        with VerticalScroll(id="help-box"):
            yield Static(Text("layerscope keys", style="bold"), id="help-title")
            yield Static(table)
            yield Static(Text(f"errors that are bugs: traceback in {home_short(self.log_path)}", style="dim"),
                         id="help-log")
            yield Static(Text("escape closes this", style="dim"))


def home_short(path: Path) -> str:
    """``~/.local/state/…`` rather than the full home folder: shorter, and the same on every machine."""
    try:
        return f"~/{path.relative_to(Path.home())}"
    except (ValueError, RuntimeError):  # outside home, or no home folder at all
        return str(path)
