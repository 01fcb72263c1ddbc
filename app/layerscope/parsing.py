"""Whole numbers in what users type (class indices, layer positions), ASCII digits only.

``str.isdigit`` accepts ``²`` and ``"--5".lstrip("-")`` looks like a number, yet ``int``
rejects both with a traceback; one regex decides instead, everywhere.
"""

from __future__ import annotations

import re

from layerscope.errors import BadArgumentError

_INTEGER = re.compile(r"[+-]?[0-9]+")
MAX_DIGITS = 18  # no index, size or class has more; Python refuses int() past 4,300 with a traceback


def as_int(text: str, what: str = "number") -> int | None:
    """``"-1"`` → -1; ``"²"``, ``"--5"``, ``"٣"``, ``"layer"`` → None; 5,000 digits: a one-line error."""
    text = text.strip()
    return whole(text, what) if _INTEGER.fullmatch(text) else None


def whole(digits: str, what: str = "number") -> int:
    """``int`` of a string the caller matched as ASCII digits, refused past ``MAX_DIGITS``."""
    count = len(digits.lstrip("+-"))
    if count > MAX_DIGITS:
        raise BadArgumentError(f"{what} {digits[:12]}… has {count:,} digits; at most {MAX_DIGITS} are read")
    return int(digits)
