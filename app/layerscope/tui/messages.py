"""Messages the workers post back to the app (``post_message`` is thread-safe)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from layerscope.tui.session import Session


class ModelReady(Message):
    """The model is loaded and its tree built."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session


class ShapesReady(Message):
    """Output shapes and Grad-CAM eligibility of every module."""

    def __init__(self, shapes: dict[str, Any], eligibility: dict[str, tuple[str, str]]) -> None:
        super().__init__()
        self.shapes = shapes
        self.eligibility = eligibility


class PanelReady(Message):
    """A slow tab (state_dict or API of a big subtree) computed off the UI thread."""

    def __init__(self, tab: str, index: int, payload: Any) -> None:
        super().__init__()
        self.tab = tab
        self.index = index
        self.payload = payload


class WorkFailed(Message):
    """A worker met a user error: say it, keep everything on screen as it was."""

    def __init__(self, what: str, error: str) -> None:
        super().__init__()
        self.what = what
        self.error = error
