"""A footer that keeps the keys people need most when the terminal is narrow.

Textual's footer lists every shown binding in order and cuts off whatever passes the
right edge: at 80 columns that hid ``s``, ``y``, ``?`` and ``q``. This one drops keys
from the least needed up (the command palette's first) until the rest fit; every key
still works and is listed in ``?`` and the palette.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.widget import Widget
from textual.widgets import Footer

from layerscope.tui.thirdparty import FooterKey


def key_width(key_display: str, description: str) -> int:
    """Columns a non-compact ``FooterKey`` takes: `` k `` then ``label `` (Textual's padding)."""
    return len(key_display) + 2 + len(description) + (1 if description else 0)


def keys_that_fit(keys: Sequence[tuple[str, int]], width: int, keep: Sequence[str]) -> set[str]:
    """Actions of ``keys`` (``(action, width)`` in footer order) to show in ``width`` columns.

    Actions earlier in ``keep`` go last; actions not in ``keep`` go first, right to left."""
    rank = {action: i for i, action in enumerate(keep)}
    drop_order = sorted((action for action, _ in reversed(keys)), key=lambda a: (a in rank, -rank.get(a, 0)))
    shown = {action for action, _ in keys}
    used = sum(w for _, w in keys)
    for action in drop_order:
        if used <= width:
            break
        shown.discard(action)
        used -= dict(keys)[action]
    return shown


class KeyFooter(Footer):
    """``Footer`` that fits its width, keeping the actions of ``keep`` longest."""

    def __init__(self, keep: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.keep = tuple(keep)
        self._fitted_width = 0

    def compose(self) -> Iterable[Widget]:
        widgets = list(super().compose())
        keys = [(w.action, key_width(w.key_display, w.description)) for w in widgets if isinstance(w, FooterKey)]
        shown = keys_that_fit(keys, self.size.width or self.app.size.width, self.keep)
        self._fitted_width = self.size.width
        for widget in widgets:
            if not isinstance(widget, FooterKey) or widget.action in shown:
                yield widget

    def on_resize(self) -> None:
        if self.size.width != self._fitted_width:
            self.call_after_refresh(self.recompose)
