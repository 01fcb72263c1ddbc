"""``?``: every key, what it does, and what the marks on tree lines mean."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from layerscope.tui.keys import Key

NAVIGATION = [
    ("↑ ↓", "move the cursor"),
    ("← →", "collapse / expand (or go to parent / first child)"),
    ("enter", "expand or collapse; on “… more”, show the next page"),
    ("1 2 3 4", "Stats, state_dict, API, Grad-CAM tab"),
    ("escape", "close search, cancel a running diff, activations, map, scoring or ranking"),
    ("ctrl+p", "command palette (every key is there too)"),
]

TREE_MARKS = [
    ("▦", "spatial output (N×C×H×W): a Grad-CAM target as it is"),
    ("▤", "token grid (a transformer's N×tokens×C): a target laid out as H×W"),
    ("·", "not eligible: no spatial or token-grid output (Stats says why)"),
    ("◎", "the Grad-CAM target (t sets it, a jumps to the suggested one)"),
    ("×N", "N repeated blocks folded into one line (f unfolds)"),
    ("→", "output shape from the probe (S shows or hides them)"),
]

CHANGE_COLUMN = [
    ("=", "bit-identical in both checkpoints (frozen)"),
    ("4.2%", "relative change ‖B − A‖ / ‖A‖ over the subtree's floating tensors"),
    ("", "coloured from blue (barely moved) to red (the most-changed node), four decades on a log scale"),
    ("+  −", "only the other checkpoint (B) / only the weights file (A) has its tensors"),
    ("≠", "changed from all zeros: no relative figure"),
]


ACTIVITY_COLUMN = [
    ("12.5% dead", "share of the node's output channels that were exactly 0 on every element (yellow when any)"),
    ("NaN!", "NaN or ±Inf came out of the node (red); Stats counts them"),
    ("—", "an output without a channel dimension (one number per example)"),
    ("not run", "the node did not run, or returned no floating-point tensor"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, keys: list[tuple[str, str, str, str, bool]], log: Path) -> None:
        super().__init__()
        self.keys = keys
        self.log_path = log

    def compose(self) -> ComposeResult:
        keys = [(Key(*key).display, key[3]) for key in self.keys]  # "/", "?", "[", "]" as typed
        table = _two_columns(NAVIGATION + keys)
        with VerticalScroll(id="help-box"):
            yield Static(
                Text.assemble(("layerscope keys", "bold"), (" · tab, then pgdn: scroll the pane", "dim")),
                id="help-title",
            )  # on top: a long Stats pane scrolls only once focused
            yield Static(table)
            yield Static(Text("\ntree marks", style="bold"))
            yield Static(_two_columns(TREE_MARKS))
            yield Static(
                Text("\nchange column (d compares the weights file A with a checkpoint B; x shows it)", style="bold")
            )
            yield Static(_two_columns(CHANGE_COLUMN))
            yield Static(
                Text("\nactivity column (A collects activations over the photo or --input; x shows them)", style="bold")
            )
            yield Static(_two_columns(ACTIVITY_COLUMN))
            yield Static(
                Text(f"errors that are bugs: traceback in {home_short(self.log_path)}", style="dim"), id="help-log"
            )
            yield Static(Text("escape closes this", style="dim"))


def _two_columns(rows: list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for left, right in rows:
        table.add_row(left, right)
    return table


def home_short(path: Path) -> str:
    """``~/.local/state/…`` rather than the full home folder: shorter, and the same on every machine."""
    try:
        return f"~/{path.relative_to(Path.home())}"
    except (ValueError, RuntimeError):  # outside home, or no home folder at all
        return str(path)
