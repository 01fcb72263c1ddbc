"""``l``: type a model as on the command line (``resnet50 --weights DEFAULT``) to open it."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class ModelSpecScreen(ModalScreen[str | None]):
    """Dismissed with the typed line (None or "" when closed): the app parses and loads it."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="picker"):
            yield Static(Text("Open model", style="bold"))
            yield Input(value=self.current, id="model-spec")
            yield Static(Text("MODEL [--weights W] [--device D] [--arch A] [--arg K=V] [--trust]; enter opens",
                              style="dim"))

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted, "#model-spec")
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())
