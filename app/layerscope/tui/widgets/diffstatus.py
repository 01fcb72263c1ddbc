"""The line under the tree while ``d`` compares two checkpoints (hidden otherwise)."""

from __future__ import annotations

from textual.widgets import Static

from layerscope.tui import difftext


class DiffStatus(Static):
    """How far the diff has come; escape stops it."""

    def running(self, other: str, done: int = 0, total: int = 0) -> None:
        self.update(difftext.progress_text(other, done, total))
        self.add_class("running")

    def idle(self) -> None:
        self.remove_class("running")
