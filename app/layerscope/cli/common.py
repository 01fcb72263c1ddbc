"""What the subcommands share beyond the model options (``layerscope.options``): printing
and the argparse types that turn a mistyped number into a usage error."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")


class PipeConsole(Console):
    """A Console whose broken pipe is the command's, not Rich's: Rich would exit with status 1;
    raising lets ``cli.main`` end every command alike (status 141, text or ``--json``)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


class TrimmedLines(io.TextIOBase):
    """A pipe's view of ``stream``: each line without the blanks Rich pads table cells with,
    so ``layerscope stats … | grep`` sees ``depth  0``, not ``depth  0`` and twenty spaces."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.pending = ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        if lines:
            self.stream.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        self.stream.write(self.pending)
        self.pending = ""
        self.stream.flush()


UNBOUNDED = 100_000  # cells: a line in a pipe or file is never cut or wrapped (wider than any real line)


def stdout_console() -> Console:
    """Where a command's text goes: plain (no highlighting, no wrapping), 141 when the reader leaves.

    In a terminal, lines fit its width. Into a pipe or a file they are written whole and
    unpadded, the same lines whatever terminal the command was started from (only an
    explicit ``COLUMNS`` sets a width there).
    """
    if sys.stdout.isatty():
        return PipeConsole(highlight=False, soft_wrap=False)
    width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else UNBOUNDED
    return PipeConsole(file=TrimmedLines(sys.stdout), width=width, highlight=False, soft_wrap=False)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def int_between(low: int, high: int | None = None, unit: str = "") -> Callable[[str], int]:
    """argparse type for counts and sizes: a mistake, or a value whose allocation would be
    absurd (``--width 100000``), is a usage error (status 2), not a traceback or an OOM kill."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a number of at least {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"expected at most {high}{unit}, got {value}")
        return value

    return parse


positive_int = int_between(1)


def fraction(text: str) -> float:
    """argparse type for a weight between 0 and 1 (``--alpha``), checked before any work starts."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value}")
    return value
