"""One lock per model for everything that changes module state for a moment, and the one
guard every hooked pass runs under (``watched_pass``).

Hooks, ``training`` flags and ``requires_grad`` live on the modules themselves, so two
threads that probe or explain the same model at once would read each other's
activations and restore each other's flags. Every such pass takes this lock; it is
re-entrant so a pass may call another (a CAM that probes shapes) on the same thread.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

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


@contextmanager
def watched_pass(
    model: nn.Module, *, grad: bool | None = None, freeze: bool = False
) -> Iterator[list[RemovableHandle]]:
    """Every module in eval mode, ``grad`` mode when given, parameters frozen when ``freeze``;
    the model's lock held throughout. Yields the list callers append their hook handles to.

    On the way out, even when the pass raises, every hook is removed and only what was changed
    is changed back: each module's own ``training`` flag (never ``train()``, which would flip
    modules a user froze in eval mode on purpose, and runs a class's own override) and each
    frozen parameter's ``requires_grad``. Flags are set directly for the same reason."""
    with model_lock(model):
        modules = list(model.modules())  # one walk for both lists: this runs once per pass
        training = [m for m in modules if m.training]
        frozen = [p for m in modules for p in m.parameters(recurse=False) if p.requires_grad] if freeze else []
        handles: list[RemovableHandle] = []
        try:
            for p in frozen:
                p.requires_grad_(False)
            for module in training:
                module.training = False
            with ExitStack() as modes:
                if grad is not None:
                    modes.enter_context(torch.inference_mode(False))
                    modes.enter_context(torch.set_grad_enabled(grad))
                yield handles
        finally:
            for handle in handles:
                handle.remove()
            for p in frozen:
                p.requires_grad_(True)
            for module in training:
                module.training = True
