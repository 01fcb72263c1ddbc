"""``o`` and ``d``: type a path (an image, a checkpoint); tab completes file and folder names."""

from __future__ import annotations

import os
from collections.abc import Collection
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
# what ``layerscope diff`` reads (``models.loaded.FILE_SUFFIXES``, spelled here: that module imports torch)
# characters any prompt takes: longer than any real path or model line. Typing stops there, so
# 100 KB typed key by key (a terminal without bracketed paste) costs each key a constant time
# (~0.15 ms once full) instead of re-rendering and re-completing an ever longer line.
MAX_PROMPT = 1024
CHECKPOINT_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".jit", ".torchscript", ".pt2"}


def complete_path(value: str, suffixes: Collection[str] = IMAGE_SUFFIXES) -> str | None:
    """The value extended to the first matching folder or file with one of ``suffixes``, or None."""
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
            return value + name[len(stem) :] + os.sep
        if full.suffix.lower() in suffixes:
            return value + name[len(stem) :]
    return None


class PathSuggester(Suggester):
    def __init__(self, suffixes: Collection[str]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.suffixes = suffixes

    async def get_suggestion(self, value: str) -> str | None:
        return complete_path(value, self.suffixes)


class PathScreen(ModalScreen[Path | None]):
    """A one-line path prompt: enter gives the path (expanded), escape gives None."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("tab", "complete", "Complete", priority=True, show=False),
    ]

    def __init__(self, current: str, *, title: str, suffixes: Collection[str], field_id: str, hint: str = "") -> None:
        super().__init__()
        self.current, self.title_text, self.suffixes, self.field_id, self.hint = (
            current,
            title,
            suffixes,
            field_id,
            hint,
        )

    def compose(self) -> ComposeResult:
        with Vertical(classes="picker"):
            yield Static(Text(self.title_text, style="bold"))
            yield Input(
                value=self.current[:MAX_PROMPT],
                suggester=PathSuggester(self.suffixes),
                id=self.field_id,
                max_length=MAX_PROMPT,
            )
            yield Static(Text(self.hint or "→ or tab accepts the completion, enter opens", style="dim"))

    def on_mount(self) -> None:
        """The current value shown and selected, so typing replaces it (Input selects on focus
        only when the focus is not the terminal's own, hence said here)."""
        field = self.query_one(Input)
        field.focus()
        field.select_all()

    def action_complete(self) -> None:
        field = self.query_one(Input)
        field.cursor_position = len(field.value)
        field.action_cursor_right()  # accepts the shown completion

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(
            Path(os.path.expanduser(value)) if value else None
        )  # ~nosuchuser: left as typed, refused when read


class ImagePathScreen(PathScreen):
    """``o``: the photo Grad-CAM explains."""

    def __init__(self, current: Path) -> None:
        super().__init__(str(current), title="Open image", suffixes=IMAGE_SUFFIXES, field_id="image-path")


class CheckpointPathScreen(PathScreen):
    """``d``: the checkpoint (file, Hugging Face folder or LoRA adapter folder) to compare with."""

    def __init__(self, base: str) -> None:
        super().__init__(
            beside(base),
            title=f"Compare {Path(base).name} with",
            suffixes=CHECKPOINT_SUFFIXES,
            field_id="diff-path",
            hint="a checkpoint, a Hugging Face folder or a LoRA adapter folder · tab completes, enter compares",
        )


def beside(base: str) -> str:
    """Where the prompt starts: the folder of A when it lies under the working folder (a
    fine-tune is usually saved next to its base), else the working folder itself."""
    folder = Path(base).expanduser().resolve().parent
    try:
        relative = folder.relative_to(Path.cwd())
    except ValueError:
        return ""
    return "" if str(relative) == "." else f"{relative}{os.sep}"
