"""How a long engine run reports progress and is stopped: one definition for every engine
loop (Grad-CAM sweeps and metrics, checkpoint diffs, activation statistics).

- ``Progress``: called as ``progress(done, total)`` between steps (tensors, perturbed passes,
  examples); ``total`` is the count in all, as far as the run knows it (never below ``done``).
- ``Cancel``: asked between steps; a callable returning true once the caller wants the run
  stopped (Textual's ``lambda: worker.is_cancelled``), or anything with ``is_set()`` (a
  ``threading.Event``).
- ``Cancelled``: what the run raises then, once its hooks are gone and nothing is left open.
  Not a ``LayerscopeError``: nothing went wrong, so neither front reports it as a mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool] | Any  # a callable, or anything with ``is_set()`` (threading.Event)


class Cancelled(Exception):
    """The caller's ``cancel`` said stop; the message says how far the run got."""


def is_cancelled(cancel: Cancel | None) -> bool:
    """Whether ``cancel`` asks to stop now."""
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)
    return bool(is_set() if callable(is_set) else cancel())
