"""What a failed worker tells the user: the one policy every worker's error goes through.

Expected failures (a ``LayerscopeError``: something about the user's input; a map
the user cancelled) become one-line notifications. Anything else is a bug: its
traceback is appended to the log file the help screen names, and the notification
says where, so the app never dies and never hides what went wrong.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Failure:
    """One notification's worth: the line to show, how loud, and whether it is a bug."""

    text: str
    severity: str  # "error" or "warning"
    cancelled: bool = False
    bug: bool = False  # not a user mistake: its traceback went to the log (or could not)


def log_path() -> Path:
    """``$LAYERSCOPE_LOG``, else ``$XDG_STATE_HOME/layerscope/app.log`` (``~/.local/state``)."""
    chosen = os.environ.get("LAYERSCOPE_LOG")
    if chosen:
        return Path(chosen).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or "~/.local/state"
    return Path(state).expanduser() / "layerscope" / "app.log"


def describe(error: BaseException, what: str, log: Path) -> Failure:
    """The notification for ``error`` raised while ``what`` ran; unexpected errors are logged."""
    from layerscope.errors import LayerscopeError, first_line

    if isinstance(error, _cancellations()):
        return Failure(text=first_line(error), severity="warning", cancelled=True)
    if isinstance(error, LayerscopeError):
        return Failure(text=first_line(error), severity="error")
    where = record(error, what, log)
    return Failure(text=f"{type(error).__name__}: {first_line(error)} ({where})", severity="error", bug=True)


def record(error: BaseException, what: str, log: Path) -> str:
    """Append ``error``'s traceback to ``log``; say where it went (or why it could not)."""
    from layerscope.errors import first_line

    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    text = "".join(traceback.format_exception(error))
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as out:
            out.write(f"--- {stamp} layerscope: error while {what}\n{text}\n")
    except OSError as exc:
        return f"traceback not logged: {first_line(exc)}"
    return f"traceback in {log}"


def _cancellations() -> tuple[type[BaseException], ...]:
    """The engine's "stopped on request" errors; only importable once the engine ran (torch)."""
    if "layerscope.cam" not in sys.modules:
        return ()
    from layerscope.cam import CamCancelled

    return (CamCancelled,)
