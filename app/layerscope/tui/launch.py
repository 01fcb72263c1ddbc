"""``layerscope [MODEL] [--image IMG] ...``: parse the command line, open the app.

Arguments are the same as every subcommand's (``add_model_options``) and load the
same way (``load_from_args``); the loading itself happens inside the app, in a
worker, so the window appears before torch is imported. ``l`` in the app takes the
same MODEL and options (``layerscope.options.loader_for_line``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from layerscope.options import (
    DEFAULT_MODEL,
    INPUT_HELP,
    OneLineParser,
    add_input_option,
    add_model_options,
    load_from_args,
    loader_for_line,
)
from layerscope.tui.app import LayerscopeApp


def build_parser(commands: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The app's arguments; ``commands`` (the CLI's, handed over by ``layerscope.entry``) are named in the help."""
    listed = f"Subcommands for scripts: {', '.join(commands)} (layerscope COMMAND -h)." if commands else ""
    parser = OneLineParser(
        prog="layerscope",
        description=f"Browse a model's modules, parameter counts and Grad-CAM maps. {listed}".rstrip(),
    )
    add_model_options(parser, model_required=False)
    parser.add_argument(
        "--image", type=Path, default=None, help="photo for Grad-CAM (default: the bundled chelsea.png)"
    )
    add_input_option(
        parser,
        f"{INPUT_HELP} (for the shape probe, MACs and A's activations; default: the weights' "
        "own size, and the photo for A)",
        repeatable=True,
    )
    parser.add_argument(
        "--diff",
        metavar="B",
        default=None,
        help="start in diff mode: compare the model's weights file with checkpoint B "
        "(a file, a Hugging Face folder or a LoRA adapter folder), as d does",
    )
    return parser


def no_terminal(commands: Sequence[str]) -> str:
    """What a pipe or a script gets instead of the app: every CLI command, from the CLI's own table
    (``layerscope.cli.main.COMMANDS``, which ``layerscope.entry`` passes in), so none is left out."""
    return (
        "the interactive app needs a terminal (stdin and stdout); for scripts and pipes use "
        f"layerscope {'|'.join(commands)} MODEL (layerscope COMMAND -h)"
    )


def make_app(argv: list[str]) -> LayerscopeApp:
    """The app for ``argv``; argparse exits with status 2 on bad arguments, as the CLI does."""
    return _app_for(build_parser().parse_args(argv))


def _app_for(args: argparse.Namespace, pixels: str | None = None) -> LayerscopeApp:
    return LayerscopeApp(
        lambda: load_from_args(args),
        spec=args.model or DEFAULT_MODEL,
        image=args.image,
        probe_input=args.input,
        pixels=pixels,
        read_line=loader_for_line,
        diff=args.diff,
        trust=args.trust,
    )


def has_terminal() -> bool:
    """Without a terminal on both ends Textual writes escape codes into a file and spins waiting for keys."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def run(app: Any, **options: Any) -> NoReturn:
    """Run ``app``, then end the process with its exit status at once.

    Once the app has given the terminal back, Python's own teardown of a process that
    imported torch (freeing every module, tensor and thread pool) held the shell for
    2.5-5 s here; and a work thread still blocked after ``q`` (a FIFO, a hung disk)
    cannot be stopped from outside at all. Nothing of ours needs that teardown: files
    are written and closed as they are saved, the log is closed after each traceback.
    So the streams are flushed, logging is shut down, and the process ends."""
    app.run(**options)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(app.return_code or 0)


THREAD_WAITS = {"OMP_WAIT_POLICY": "PASSIVE"}


def sleeping_thread_waits() -> None:
    """Torch's OpenMP threads wait for their next task asleep instead of spinning (a setting the
    user made wins). Read once, when torch loads, so this runs before the app imports torch.

    Spinning is right for a program that owns the cores; the app shares them with its own
    UI thread and whatever else runs. A spinning thread that the OS descheduled holds every
    other thread at the next of the ~150 barriers of a resnet50 pass: measured on 2 cores
    beside other work, a forward took 2.5 s spinning and 0.15 s sleeping, and ``g`` to the
    map on screen 1.6–2.1 s against 0.55 s."""
    for name, value in THREAD_WAITS.items():
        os.environ.setdefault(name, value)


def launch(argv: list[str], commands: Sequence[str] = ()) -> int:
    """Open the app; ``commands`` are the CLI's, named in ``--help`` and in the no-terminal message."""
    sleeping_thread_waits()
    args = build_parser(commands).parse_args(argv)
    if not has_terminal():
        print(f"layerscope: error: {no_terminal(commands)}", file=sys.stderr)
        return 2
    return run(_app_for(args, terminal_pixels()))


def terminal_pixels() -> str | None:
    """Ask the terminal for Kitty graphics or Sixel now: once Textual runs, it reads the answers."""
    from layerscope.presentation.pixels import terminal_graphics

    graphics = terminal_graphics()
    if graphics is not None:
        import textual_image.widget  # noqa: F401  (measures the cells while it still can)
    return graphics
