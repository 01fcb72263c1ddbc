"""``L``: type the prompt the Lens tab reads (a causal language model's input text)."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from layerscope.tui.screens.image_path import MAX_PROMPT


class LensPromptScreen(ModalScreen[str | None]):
    """Dismissed with the text as typed (spaces kept: a BPE tokenizer reads them), or None on escape."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="picker"):
            yield Static(Text("Lens prompt", style="bold"))
            yield Input(
                value=self.current[:MAX_PROMPT],
                id="lens-prompt",
                max_length=MAX_PROMPT,
                placeholder="text the model reads",
            )
            yield Static(
                Text(
                    f"enter reads it: each layer's next-token guess at each token (at most {MAX_PROMPT:,} characters)",
                    style="dim",
                )
            )

    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.focus()
        field.select_all()  # typing replaces the last prompt; an arrow key keeps it for editing

    @on(Input.Submitted, "#lens-prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)
