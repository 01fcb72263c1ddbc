"""Which pixel protocol the terminal speaks: asked once through a real pseudo-terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

CHILD = "from layerscope.presentation.pixels import terminal_graphics; import sys; print(terminal_graphics(), file=sys.stderr)"


def ask_through_a_pty(answer: bytes | None) -> str:
    """Run ``terminal_graphics`` in a child whose terminal is a pty; ``answer`` replies to the
    Sixel query (the primary device attributes, ``ESC [ c``), None leaves every query unanswered."""
    master, slave = os.openpty()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    os.close(slave)

    def terminal() -> None:
        seen = b""
        while b"\x1b[c" not in seen:
            try:
                seen += os.read(master, 1024)
            except OSError:
                return
        if answer is not None:
            os.write(master, answer)
        try:
            while os.read(master, 1024):  # drain whatever else is asked
                pass
        except OSError:
            pass

    threading.Thread(target=terminal, daemon=True).start()
    _, err = child.communicate(timeout=60)
    os.close(master)
    return err.decode().strip().splitlines()[-1]


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_a_terminal_that_does_not_answer_gets_cells():
    assert ask_through_a_pty(None) == "None"


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_a_terminal_that_answers_sixel_gets_sixel():
    assert ask_through_a_pty(b"\x1b[?62;4;22c") == "sixel"
