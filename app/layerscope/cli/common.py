"""Options every command shares, and the one way each command loads its model."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:  # the app parses its arguments before torch is imported, so load lazily
    from layerscope.loading import LoadedModel

DEFAULT_MODEL = "mobilenet_v2"
DEFAULT_WEIGHTS = "IMAGENET1K_V1"  # the default model's cached weights (what the screenshots show)


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes end like every other user error: one line on stderr, exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def add_model_options(parser: argparse.ArgumentParser, *, model_required: bool = True) -> None:
    """MODEL plus --weights/--device/--arch/--arg/--trust, spelled the same in every command."""
    if model_required:
        parser.add_argument("model", metavar="MODEL", help="torchvision name, timm:NAME, pkg.module:factory, a file, "
                                                           "or a Hugging Face folder / hf:ORG/NAME")
    else:
        parser.add_argument("model", metavar="MODEL", nargs="?", default=None,
                            help=f"model spec (default: {DEFAULT_MODEL}, with its ImageNet weights when cached)")
    parser.add_argument("--weights", default="auto",
                        help="auto (the default: the pretrained weights already in the local cache, never a download; "
                        "else random init), none, DEFAULT, a torchvision weights name, or a state_dict path")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps, or meta (structure only, no weight memory)")
    parser.add_argument("--arch", default=None, help="architecture spec to load a state_dict file into")
    parser.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                        help="keyword argument for the model builder (Python literal), repeatable")
    parser.add_argument("--trust", action="store_true",
                        help="allow full unpickling of a file (runs code from it: only for files you trust)")


def add_input_option(parser: argparse.ArgumentParser | argparse._ActionsContainer, default_text: str = "the weights' own size") -> None:
    """``--input``, repeatable: one per positional argument of ``forward`` in order, or NAME=… for a keyword."""
    parser.add_argument("--input", action="append", default=None, metavar="[NAME=]SHAPE[:dtype]",
                        help="example input, e.g. 3x224x224, 128:long or decoder_input_ids=16:long; repeat it for "
                             f"a forward that takes several (default: {default_text})")


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def load_from_args(args: argparse.Namespace) -> LoadedModel:
    """The model named on the command line; no MODEL means the built-in default, mobilenet_v2."""
    from layerscope.loading import load_model, parse_kwargs

    spec = DEFAULT_MODEL if args.model is None else args.model  # "" is a mistake, not the default
    return load_model(
        spec, weights=args.weights, device=args.device, arch=args.arch, trust=args.trust, kwargs=parse_kwargs(args.arg)
    )


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=False)


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

