"""One lock per model for everything that changes module state for a moment.

Hooks, ``training`` flags and ``requires_grad`` live on the modules themselves, so two
threads that probe or explain the same model at once would read each other's
activations and restore each other's flags. Every such pass takes this lock; it is
re-entrant so a pass may call another (a CAM that probes shapes) on the same thread.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


@contextmanager
def model_lock(model: nn.Module) -> Iterator[None]:
    """Hold ``model`` exclusively: other threads' hooked passes on it wait until this one ends."""
    with _GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
    with lock:
        yield
