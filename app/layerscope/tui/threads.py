"""Blocking work in daemon threads, awaited by the app's async workers.

Textual's thread workers run in asyncio's default executor, which ``asyncio.run``
joins when the app ends: one worker stuck opening a FIFO or reading a hung network
disk would keep ``q`` from ever ending the process. Here the blocking call runs in a
daemon thread that an async worker awaits: cancelling the worker returns at once,
a result that arrives later is dropped, and ``launch.run`` ends the process without
waiting for the thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
PREFIX = "layerscope-work"


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a daemon thread; its exception, traceback included, is raised here."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()  # Textual's active app, as its own thread workers see it

    def deliver(result: Any, error: BaseException | None) -> None:
        if future.done():  # the worker was cancelled: nobody wants this any more
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def run() -> None:
        result, error = None, None
        try:
            result = context.run(fn, *args, **kwargs)
        except BaseException as exc:  # handed to the awaiting worker whole, traceback and all
            error = exc
        try:
            loop.call_soon_threadsafe(deliver, result, error)
        except RuntimeError:  # the app has closed its loop while this ran
            pass

    name = f"{PREFIX}-{getattr(fn, '__name__', 'call')}"
    threading.Thread(target=run, name=name, daemon=True).start()
    return await future
