"""``y``: confirm a copy through a clipboard command, or say that it could not be confirmed.

Textual's ``copy_to_clipboard`` writes an OSC 52 escape, and a terminal never answers
one: macOS Terminal, tmux without ``set-clipboard``, and many others drop it silently.
The only confirmation to be had is a clipboard command's exit status (``pbcopy``,
``wl-copy``, ``xclip``, ``xsel``, ``clip.exe``), so "Copied" is said only after one
succeeded; otherwise the app shows the text to copy by hand.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import sys
from collections.abc import Mapping

UNCONFIRMED = "sent to the terminal (OSC 52), which does not confirm it: select the line above to copy"
TIMEOUT = 2.0  # seconds a clipboard command may take


def clipboard_command(env: Mapping[str, str] = os.environ) -> list[str] | None:
    """The first clipboard command this session can reach, or None (e.g. over SSH)."""
    candidates: list[list[str]] = []
    if sys.platform == "darwin":
        candidates.append(["pbcopy"])
    if env.get("WAYLAND_DISPLAY"):
        candidates.append(["wl-copy"])
    if env.get("DISPLAY"):
        candidates += [["xclip", "-selection", "clipboard"], ["xsel", "--clipboard", "--input"]]
    if "microsoft" in platform.release().lower():  # WSL: the Windows clipboard
        candidates.append(["clip.exe"])
    path = env.get("PATH")
    return next((c for c in candidates if shutil.which(c[0], path=path)), None)


async def copy(text: str) -> bool:
    """True when a clipboard command took ``text`` and exited with status 0."""
    command = clipboard_command()
    if command is None:
        return False
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return False
    try:
        await asyncio.wait_for(process.communicate(text.encode()), TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        return False
    return process.returncode == 0
