"""``layerscope.explore(model)``: the app, in the calling terminal, on a model held in Python.

The app takes a ``LoadedModel`` as readily as a spec (``LayerscopeApp(loaded)``), so this
builds one from the module (``LoadedModel.from_module``) and runs the app in this process,
not through ``launch.run``, which ends the process when the app quits: here the caller's
script, debugger or IPython session goes on. The app already restores what its passes touch;
``left_as_found`` guards the rest (training flags, ``requires_grad``, gradients, hooks,
device) so a notebook's model is the one it had, whatever the user did in the app.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from layerscope.errors import BadArgumentError
from layerscope.models.loaded import LoadedModel
from layerscope.running.example_inputs import InputSpec

if TYPE_CHECKING:
    from PIL import Image

    from layerscope.tui.app import LayerscopeApp

NO_TERMINAL = (
    "layerscope.explore needs a terminal (this is a notebook or a pipe): print(layerscope.summary(model)) "
    "here, or call explore from a script or IPython in a terminal"
)
HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


def explore(
    model: nn.Module,
    *,
    example: Any = None,
    image: str | Path | Image.Image | None = None,
    categories: Sequence[str] | None = None,
    preprocess: Any = None,
) -> None:
    """Open the layerscope app on ``model`` in this terminal; return when the user quits (``q``).

    Everything the app does for a spec works on the object: the tree, stats, cost, Grad-CAM and
    transformer maps, activations. The model is left as found: training flags,
    ``requires_grad``, gradients, hooks and device are as they were when ``explore`` returns.

    Args:
        model: any ``torch.nn.Module``, on any device.
        example: what ``forward`` takes, for the shape probe, MACs and activations: a tensor, a
            tuple of positional arguments or a dict of keyword arguments (their shapes and dtypes
            are used, batch apart). Default: one ``3×H×W`` image at the preprocessing's crop.
        image: the photo for Grad-CAM (a path or a PIL image; default: the bundled one).
        categories: class names, index by index, for the CAM's target and predictions.
        preprocess: how a photo becomes the input (see ``LoadedModel.from_module``).

    Raises:
        BadArgumentError: ``model`` is no module, or ``example``/``preprocess`` cannot be read.

    Examples:
        >>> import layerscope, torchvision                      # doctest: +SKIP
        >>> layerscope.explore(torchvision.models.resnet18())   # doctest: +SKIP
    """
    app_for = explore_app(model, example=example, categories=categories, preprocess=preprocess)
    from layerscope.tui.launch import has_terminal

    if not has_terminal():
        print(NO_TERMINAL, file=sys.stderr)
        return
    from layerscope.tui.launch import terminal_pixels

    with ExitStack() as stack, left_as_found(model):
        app = app_for(_photo(image, stack), terminal_pixels())
        app.run()


def explore_app(
    model: nn.Module, *, example: Any = None, categories: Sequence[str] | None = None, preprocess: Any = None
) -> Any:
    """A maker of the app on ``model``: ``make(image_path, pixels)`` (split so tests drive the
    same app with Textual's pilot, and bad arguments fail before the terminal changes)."""
    loaded = LoadedModel.from_module(model, preprocess=preprocess, categories=categories)
    inputs = input_specs(example)

    def make(image: Path | None = None, pixels: str | None = None) -> LayerscopeApp:
        from layerscope.options import loader_for_line
        from layerscope.tui.app import LayerscopeApp

        return LayerscopeApp(
            loaded,
            spec=loaded.spec,
            image=image,
            probe_input=inputs,
            pixels=pixels,
            read_line=loader_for_line,
            save_dir=Path.cwd(),
        )

    return make


def input_specs(example: Any) -> tuple[str, ...]:
    """``example`` as the app's ``--input`` specs: ``3x224x224``, ``12:long``, ``mask=32x32:bool``."""
    if example is None:
        return ()
    named = (
        list(example.items())
        if isinstance(example, Mapping)
        else [(None, v) for v in (example if isinstance(example, (tuple, list)) else (example,))]
    )
    specs = []
    for name, value in named:
        if not isinstance(value, torch.Tensor) or value.dim() < 1:
            raise BadArgumentError(
                f"example: {name or 'an argument'} is a {type(value).__name__}; the app's "
                "probe needs batched tensors (a tensor, a tuple of them or a dict of them)"
            )
        specs.append(InputSpec(tuple(value.shape[1:]), value.dtype, name).describe())
    return tuple(specs)


def _photo(image: Any, stack: ExitStack) -> Path | None:
    """A path as given; a PIL image saved to a temporary PNG for the app's lifetime."""
    if image is None or isinstance(image, (str, Path)):
        return Path(image) if image is not None else None
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="layerscope-")))
    image.save(folder / "photo.png")
    return folder / "photo.png"


@contextmanager
def left_as_found(model: nn.Module) -> Iterator[None]:
    """Whatever runs inside, ``model`` leaves with its own training flags, ``requires_grad``,
    gradients, hooks and device (hooks added inside are removed; none of the caller's is)."""
    modules = list(model.modules())
    flags = [m.training for m in modules]
    params = list(model.parameters())
    state = [(p.requires_grad, p.grad, p.device) for p in params]
    hooks = [{name: list(getattr(m, name, {})) for name in HOOK_DICTS} for m in modules]
    try:
        yield
    finally:
        for module, flag, kept in zip(modules, flags, hooks):
            module.training = flag
            for name, keys in kept.items():
                added = [k for k in getattr(module, name, {}) if k not in keys]
                for key in added:
                    getattr(module, name).pop(key)
        with torch.no_grad():
            for p, (requires_grad, grad, device) in zip(params, state):
                p.requires_grad_(requires_grad)
                p.grad = grad
                if p.device != device:
                    p.data = p.data.to(device)
