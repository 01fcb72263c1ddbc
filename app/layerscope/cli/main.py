"""``layerscope COMMAND``: the subcommands for scripts (``layerscope.entry`` sends the rest
to the app).

User mistakes (LayerscopeError) end with one line on stderr and exit status 2;
``--debug`` shows the traceback instead. A reader that leaves early (``| head -1``)
ends the command with status 141, text and ``--json`` alike (``reader_went_away``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence

from layerscope import __version__
from layerscope.errors import LayerscopeError

COMMANDS = ("tree", "stats", "api", "cam", "sweep", "rank", "report", "diff", "activations", "weights", "lens")


def build_parser() -> argparse.ArgumentParser:
    from layerscope.cli import (
        activations_cmd,
        cam_cmd,
        diff_cmd,
        inspect_cmd,
        lens_cmd,
        rank_cmd,
        report_cmd,
        weights_cmd,
    )
    from layerscope.options import OneLineParser

    parser = OneLineParser(
        prog="layerscope",
        description="Look inside PyTorch models.",
        epilog="Without a COMMAND, `layerscope [MODEL] [--image IMG] [--weights W] [--device D]` opens the "
        "interactive app (no MODEL: ImageNet mobilenet_v2 and a bundled photo).",
    )
    parser.add_argument("--version", action="version", version=f"layerscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    inspect_cmd.add_parsers(sub)
    cam_cmd.add_parsers(sub)
    rank_cmd.add_parser(sub)
    report_cmd.add_parser(sub)
    diff_cmd.add_parser(sub)
    activations_cmd.add_parser(sub)
    weights_cmd.add_parser(sub)
    lens_cmd.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand (``argv`` without the program name) and return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    with _quiet(debug):
        args = build_parser().parse_args(argv)
        return _guarded(args.func, args, debug=debug)


@contextlib.contextmanager
def _quiet(debug: bool) -> Iterator[None]:
    """No deprecation, pickle or torch log warnings around the one line an error prints
    (``--debug`` shows them)."""
    if debug:
        yield
        return
    torch_log = logging.getLogger("torch")
    level = torch_log.level
    torch_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch_log.setLevel(level)


def _guarded(func, args: argparse.Namespace, *, debug: bool) -> int:
    try:
        code = func(args)
        sys.stdout.flush()  # a short output still in the buffer meets a gone reader here, not at exit
        return code
    except LayerscopeError as exc:
        if debug:
            raise
        print(f"layerscope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("layerscope: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return reader_went_away()


READER_WENT_AWAY = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader left


def reader_went_away() -> int:
    """``layerscope tree ... | head -1``: the reader closed the pipe, which is not an error.

    Text (through Rich, ``cli.common.stdout_console``) and ``--json`` both end here, with
    ``READER_WENT_AWAY`` and nothing on stderr. stdout is pointed at devnull so the
    interpreter's final flush of what is still buffered does not raise again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return READER_WENT_AWAY
