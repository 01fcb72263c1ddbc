"""Pausing Python's cyclic garbage collector while a big structure is built.

Building 100,000 modules (or the tree that describes them) only allocates: objects that
live on, not garbage. The collector does not know that; its full passes rescan every
object the process holds, again and again as the count grows, and took half the time of
building the 100,000-module test model. Paused for the step, it runs once afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block; the collector's state is restored after it, on
    errors too (nested use is fine: only the outermost pause turns it back on)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
