"""The ``layerscope`` console script: a subcommand runs the CLI, anything else opens the app.

Sits above both fronts so that neither imports the other: ``layerscope.cli`` knows
its commands, ``layerscope.tui`` its app, and only this module knows there are two.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

CLI_WORDS = ("-h", "--help", "--version")  # the CLI's own help and version, not the app's


def main(argv: Sequence[str] | None = None) -> int:
    """``layerscope tree resnet18`` → the CLI; ``layerscope``, ``layerscope resnet18 …`` → the app."""
    from layerscope.cli.main import COMMANDS

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and (argv[0] in COMMANDS or argv[0] in CLI_WORDS):
        from layerscope.cli.main import main as run_command

        return run_command(argv)
    from layerscope.tui.launch import launch

    return launch(argv, COMMANDS)
