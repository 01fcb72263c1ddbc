"""``l``: type a model as on the command line (``resnet50 --weights DEFAULT``) to open it; tab
completes models and ``--weights`` names from the weights on this machine."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Static

from layerscope.options import complete_model_line
from layerscope.tui.screens.image_path import MAX_PROMPT

if TYPE_CHECKING:
    from layerscope.models.cached import CachedWeights


class CachedWeightsSuggester(Suggester):
    """Suggests from ``models.cached.cached_weights``, read once, off the UI thread (it imports torchvision)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.cached: list[CachedWeights] | None = None

    async def get_suggestion(self, value: str) -> str | None:
        if self.cached is None:
            from layerscope.models.cached import cached_weights

            self.cached = await asyncio.to_thread(cached_weights)
        return complete_model_line(value, self.cached)


class ModelSpecScreen(ModalScreen[str | None]):
    """Dismissed with the typed line (None or "" when closed): the app parses and loads it."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("tab", "complete", "Complete", priority=True, show=False),
    ]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="picker"):
            yield Static(Text("Open model", style="bold"))
            yield Input(
                value=self.current[:MAX_PROMPT],
                suggester=CachedWeightsSuggester(),
                id="model-spec",
                max_length=MAX_PROMPT,
            )
            yield Static(
                Text(
                    "MODEL [--weights W] [--device D] [--arch A] [--arg K=V] [--trust]; tab completes "
                    "what is cached, enter opens",
                    style="dim",
                )
            )

    def on_mount(self) -> None:
        """The current value shown and selected, so typing replaces it (Input selects on focus
        only when the focus is not the terminal's own, hence said here)."""
        field = self.query_one(Input)
        field.focus()
        field.select_all()

    def action_complete(self) -> None:
        """Tab takes the suggestion shown after the cursor (as the image prompt does)."""
        field = self.query_one(Input)
        field.cursor_position = len(field.value)
        field.action_cursor_right()  # accepts the shown completion

    @on(Input.Submitted, "#model-spec")
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())
