"""The model options both fronts share, and the one way each front loads its model.

``layerscope tree resnet18 --weights none``, ``layerscope resnet18 --weights none`` (the
app) and ``l resnet18 --weights none`` typed in the app all go through
``add_model_options`` and ``load_from_args``, so a spec means the same everywhere.
Below both ``layerscope.cli`` and ``layerscope.tui``; imports neither.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from layerscope.errors import BadArgumentError

if TYPE_CHECKING:  # the app parses its arguments before torch is imported, so load lazily
    from layerscope.models.cached import CachedWeights
    from layerscope.models.loaded import LoadedModel

DEFAULT_MODEL = "mobilenet_v2"
DEFAULT_WEIGHTS = "IMAGENET1K_V1"  # the default model's cached weights (what the screenshots show)


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes end like every other user error: one line on stderr, exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


class LineParser(argparse.ArgumentParser):
    """The model options of a line typed in the app: a mistake raises, nothing exits or prints."""

    def error(self, message: str) -> NoReturn:
        raise BadArgumentError(f"{message} (type MODEL and options as on the command line)")


def add_model_options(parser: argparse.ArgumentParser, *, model_required: bool = True) -> None:
    """MODEL plus --weights/--device/--arch/--arg/--trust, spelled the same in every command."""
    if model_required:
        parser.add_argument(
            "model",
            metavar="MODEL",
            help="torchvision name, timm:NAME, pkg.module:factory, a file, or a Hugging Face folder / hf:ORG/NAME",
        )
    else:
        parser.add_argument(
            "model",
            metavar="MODEL",
            nargs="?",
            default=None,
            help=f"model spec (default: {DEFAULT_MODEL}, with its ImageNet weights when cached)",
        )
    parser.add_argument(
        "--weights",
        default="auto",
        help="auto (the default: the pretrained weights already in the local cache, never a download; "
        "else random init), none, DEFAULT, a torchvision weights name, or a state_dict path",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps, or meta (structure only, no weight memory)")
    parser.add_argument("--arch", default=None, help="architecture spec to load a state_dict file into")
    parser.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument for the model builder (Python literal), repeatable",
    )
    parser.add_argument(
        "--trust",
        action="store_true",
        help="allow full unpickling of a file (runs code from it: only for files you trust)",
    )


INPUT_HELP = (
    "example input, e.g. 3x224x224, 128:long or decoder_input_ids=16:long; repeat it for a forward that takes several"
)


def add_input_option(parser: argparse._ActionsContainer, help_text: str, *, repeatable: bool = False) -> None:
    """``--input CxHxW`` (or ``128:long``): the input the shape probe feeds the model. ``repeatable``:
    one per positional argument of ``forward``, or ``NAME=SHAPE[:dtype]`` for a keyword, read by
    ``layerscope.running.example_inputs.parse_inputs``."""
    if repeatable:
        parser.add_argument("--input", action="append", default=None, metavar="[NAME=]SHAPE[:dtype]", help=help_text)
    else:
        parser.add_argument("--input", default=None, metavar="CxHxW", help=help_text)


def load_from_args(args: argparse.Namespace) -> LoadedModel:
    """The model named on the command line; no MODEL means the built-in default, mobilenet_v2."""
    from layerscope.models import load_model, parse_kwargs

    spec = DEFAULT_MODEL if args.model is None else args.model  # "" is a mistake, not the default
    return load_model(
        spec, weights=args.weights, device=args.device, arch=args.arch, trust=args.trust, kwargs=parse_kwargs(args.arg)
    )


def loader_for_line(line: str) -> tuple[str, Callable[[], LoadedModel]]:
    """The spec and loader for ``resnet50 --weights DEFAULT`` typed after ``l``; as on the command
    line, a model given without ``--weights`` gets ``auto`` (cached pretrained weights, else random)."""
    parser = LineParser(prog="l", add_help=False)
    add_model_options(parser, model_required=False)
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise BadArgumentError(f"cannot read {line!r}: {exc}") from None
    args = parser.parse_args(words)
    return args.model or DEFAULT_MODEL, lambda: load_from_args(args)


def complete_model_line(value: str, cached: Sequence[CachedWeights]) -> str | None:
    """The app's ``l`` line extended from the weights on this machine (``models.cached``), or None:
    ``mobilenet`` → ``mobilenet_v2 --weights IMAGENET1K_V1``; ``mobilenet_v2 --weights I`` →
    ``… --weights IMAGENET1K_V1``. Only what loads offline is offered."""
    head, flag, partial = value.rpartition("--weights ")
    if flag and " " not in partial:
        model = head.split(" ", 1)[0]
        names = [w.weights for w in cached if w.weights and model in (w.model, f"torchvision:{w.model}")]
        return next((head + flag + n for n in names if n.startswith(partial) and n != partial), None)
    if value and " " not in value:
        for w in cached:
            if w.model.startswith(value):
                return f"{w.model} --weights {w.weights}" if w.weights else (w.model if w.model != value else None)
    return None
