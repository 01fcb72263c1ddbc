"""Whole numbers in what users type (class indices, layer positions), ASCII digits only.

``str.isdigit`` accepts ``²`` and ``"--5".lstrip("-")`` looks like a number, yet ``int``
rejects both with a traceback; one regex decides instead, everywhere.
"""

from __future__ import annotations

import re

_INTEGER = re.compile(r"[+-]?[0-9]+")


def as_int(text: str) -> int | None:
    """``"-1"`` → -1; ``"²"``, ``"--5"``, ``"٣"``, ``"layer"`` → None."""
    text = text.strip()
    return int(text) if _INTEGER.fullmatch(text) else None
