"""``o``: type an image path; tab completes file and folder names."""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Static

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def complete_path(value: str) -> str | None:
    """The value extended to the first matching folder or image file, or None."""
    if not value:
        return None
    expanded = os.path.expanduser(value)
    folder, _, stem = expanded.rpartition(os.sep)
    base = Path(folder or ".") if folder or not expanded.startswith(os.sep) else Path(os.sep)
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return None
    for name in names:
        if not name.startswith(stem) or name == stem or name.startswith("."):
            continue
        full = base / name
        if full.is_dir():
            return value + name[len(stem):] + os.sep
        if full.suffix.lower() in IMAGE_SUFFIXES:
            return value + name[len(stem):]
    return None


class PathSuggester(Suggester):
    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return complete_path(value)


class ImagePathScreen(ModalScreen[Path | None]):
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("tab", "complete", "Complete", priority=True, show=False),
    ]

    def __init__(self, current: Path) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="picker"):
            yield Static(Text("Open image", style="bold"))
            yield Input(value=str(self.current), suggester=PathSuggester(), id="image-path")
            yield Static(Text("→ or tab accepts the completion, enter opens", style="dim"))

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def action_complete(self) -> None:
        field = self.query_one(Input)
        field.cursor_position = len(field.value)
        field.action_cursor_right()  # accepts the shown completion

    @on(Input.Submitted, "#image-path")
    def _submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(Path(os.path.expanduser(value)) if value else None)  # ~nosuchuser: left as typed, refused when read
