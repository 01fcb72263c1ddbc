"""Regular expressions from an adapter's config, matched with a bound on time.

PEFT matches ``target_modules`` (when it is a string) and the keys of ``rank_pattern`` and
``alpha_pattern`` with Python's ``re``, so these are the adapter author's data, and the
backtracking engine can spend forever on one (``(x+)+y`` against a long name of ``x``).
A pattern of names and dots only is matched here (it cannot backtrack far). Any other is
matched by the same engine, so with PEFT's answers, in a child Python process that is
killed after ``SECONDS``: a pattern that never ends costs seconds and one line. Nothing
else runs in that process, and no process-wide switch (a signal, an alarm) is touched.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Sequence

from layerscope.errors import LayerscopeError, first_line

SECONDS = 5.0
MAX_PATTERN = 1000  # characters: a config's patterns are module names, tens of characters long
PLAIN = re.compile(r"[\w.-]*")  # names and dots: matched in this process
CHILD = (
    "import json, re, sys\n"
    "query = json.load(sys.stdin)\n"
    "for pattern in query['patterns']:\n"
    "    print(json.dumps([re.fullmatch(pattern, name) is not None for name in query['names']]), flush=True)\n"
)


def checked(pattern: object, where: str) -> str:
    """``pattern`` if Python's ``re`` reads it; a one-line error (``"(["``) otherwise."""
    if not isinstance(pattern, str):
        raise LayerscopeError(f"{where}: {json.dumps(pattern)[:80]} is not a string")
    if len(pattern) > MAX_PATTERN:
        raise LayerscopeError(f"{where}: a pattern of {len(pattern):,} characters; at most {MAX_PATTERN:,} are read")
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise LayerscopeError(
            f"{where}: {pattern!r} is not a regular expression Python reads ({first_line(exc)})"
        ) from exc
    return pattern


def fullmatches(patterns: Sequence[str], names: Sequence[str], where: str, prefix: str = "") -> list[list[bool]]:
    """For each pattern, whether ``prefix`` + the pattern matches each name whole (``prefix``
    is the caller's own regex, such as PEFT's ``(.*\\.)?`` before a pattern key)."""
    full = {pattern: f"{prefix}(?:{pattern})" for pattern in patterns}
    slow = [pattern for pattern in full if not PLAIN.fullmatch(pattern)]
    answers = dict(zip(slow, _in_child(slow, [full[p] for p in slow], names, where))) if slow else {}
    return [answers.get(p) or [re.fullmatch(full[p], n) is not None for n in names] for p in patterns]


def _in_child(shown: list[str], patterns: list[str], names: Sequence[str], where: str) -> list[list[bool]]:
    """``fullmatches`` of ``patterns`` (the user's ``shown``) run by a child interpreter killed
    after ``SECONDS``."""
    query = json.dumps({"patterns": patterns, "names": list(names)})
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", CHILD],
            input=query,
            capture_output=True,
            text=True,
            timeout=SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        stuck = shown[min(output.count("\n"), len(shown) - 1)]
        raise LayerscopeError(
            f"{where}: matching {stuck[:80]!r} against the module names took over {SECONDS:g} s "
            "(a regular expression that backtracks without end?); simplify it"
        ) from None
    except OSError as exc:
        raise LayerscopeError(f"{where}: cannot start Python to match the patterns: {first_line(exc)}") from exc
    rows = done.stdout.splitlines()
    if done.returncode != 0 or len(rows) != len(patterns):
        why = (done.stderr.strip().splitlines() or [f"status {done.returncode}"])[-1][:200]
        raise LayerscopeError(f"{where}: matching the patterns failed: {why}")
    return [json.loads(row) for row in rows]
