"""Output shapes: one forward pass of a dummy input with a hook on every module.

Shapes are what tell a spatial feature map from pooled logits, so both the tree view
and the choice of Grad-CAM layers rest on them. On the meta device the pass does no
arithmetic, so even a huge model's shapes cost next to nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from layerscope.errors import LayerscopeError, first_line
from layerscope.running.example_inputs import ExampleInputs, Inputs, as_specs, describe_inputs, example_inputs
from layerscope.running.locking import model_lock, watched_pass


@dataclass(frozen=True, slots=True)
class ShapeInfo:
    """A module's output: a tensor's shape, or the shapes inside a tuple / dict, or a type name."""

    kind: str  # "tensor", "sequence", "mapping" or "other"
    shape: tuple[int, ...] | None = None
    items: tuple[tuple[str, ShapeInfo], ...] = ()
    type_name: str = ""

    def describe(self) -> str:
        if self.kind == "tensor":
            return "×".join(str(d) for d in self.shape or ()) or "scalar"
        if self.kind == "sequence":
            return "(" + ", ".join(item.describe() for _, item in self.items) + ")"
        if self.kind == "mapping":
            return "{" + ", ".join(f"{k}: {v.describe()}" for k, v in self.items) + "}"
        return self.type_name


def describe_output(value: object) -> ShapeInfo:
    if isinstance(value, torch.Tensor):
        return ShapeInfo("tensor", tuple(value.shape))
    if isinstance(value, Mapping):
        return ShapeInfo("mapping", items=tuple((str(k), describe_output(v)) for k, v in value.items()))
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ShapeInfo("sequence", items=tuple((str(i), describe_output(v)) for i, v in enumerate(value)))
    return ShapeInfo("other", type_name=type(value).__name__)


def call_model(model: nn.Module, x: torch.Tensor) -> object:
    """Detection models take a list of images; everything else takes the batch."""
    if _takes_image_list(model):
        return model(list(x))
    return model(x)


def call_with(model: nn.Module, example: ExampleInputs) -> object:
    """``forward`` on example inputs: one tensor goes through ``call_model`` (detectors take a list)."""
    if len(example.args) == 1 and not example.kwargs and isinstance(example.args[0], torch.Tensor):
        return call_model(model, example.args[0])
    return model(*example.args, **example.kwargs)


def _takes_image_list(model: nn.Module) -> bool:
    transform = getattr(model, "transform", None)
    return type(transform).__name__ == "GeneralizedRCNNTransform"


class ProbeObserver(Protocol):
    """Something that watches the probe's pass (``layerscope.cost``): a context manager around
    the forward, told when each module's forward starts and ends."""

    def __enter__(self) -> object: ...

    def __exit__(self, *exc: object) -> object: ...

    def enter(self, name: str, inputs: object) -> None: ...

    def leave(self, name: str, output: object) -> None: ...


def probe_shapes(
    model: nn.Module,
    inputs: Inputs = (3, 224, 224),
    dtype: torch.dtype = torch.float32,
    *,
    batch: int = 1,
    observer: ProbeObserver | None = None,
) -> dict[str, ShapeInfo]:
    """Run one eval-mode forward pass and record every module's output, keyed by qualified name;
    an ``observer`` (the cost counter) rides along on the same pass. ``inputs`` is one shape,
    specs (one per argument) or real tensors (``layerscope.running.example_inputs``).

    Training flags are restored and every hook removed even when the forward raises.
    """
    with model_lock(model):
        return _probe_locked(model, inputs, dtype, batch, observer)


def _probe_locked(
    model: nn.Module, inputs: Inputs, dtype: torch.dtype, batch: int, observer: ProbeObserver | None
) -> dict[str, ShapeInfo]:
    shapes: dict[str, ShapeInfo] = {}
    try:
        with watched_pass(model) as handles:
            for name, module in model.named_modules():
                if not name or isinstance(module, torch.jit.ScriptModule):
                    continue  # the model is watched around its call; TorchScript takes no hooks (its ops count above it)
                if observer is not None:
                    handles.append(module.register_forward_pre_hook(_starter(observer, name)))
                handles.append(module.register_forward_hook(_recorder(shapes, name, observer)))
            with torch.no_grad(), observer if observer is not None else nullcontext():
                _watched_call(model, example_inputs(model, inputs, dtype, batch), shapes, observer)
    except Exception as exc:
        raise LayerscopeError(
            f"shape probe failed with input {describe_inputs(inputs, dtype)}"
            f"{_text_model_hint(model, inputs, dtype)}: {first_line(exc)}"
        ) from exc
    return shapes


def _watched_call(
    model: nn.Module, example: ExampleInputs, shapes: dict[str, ShapeInfo], observer: ProbeObserver | None
) -> None:
    """The model's own call, seen as its hooks would see it, keywords included."""
    if observer is not None:
        observer.enter("", (example.args, dict(example.kwargs)))
    output = call_with(model, example)
    shapes[""] = describe_output(output)
    if observer is not None:
        observer.leave("", output)


def _text_model_hint(model: nn.Module, inputs: Inputs, dtype: torch.dtype) -> str:
    specs = as_specs(inputs, dtype)
    floats = not isinstance(specs, ExampleInputs) and any(s.dtype.is_floating_point for s in specs)
    text_model = getattr(model, "main_input_name", None) == "input_ids" and floats
    return " (a text model takes token ids: --input 128:long)" if text_model else ""


def _recorder(shapes: dict[str, ShapeInfo], name: str, observer: ProbeObserver | None):
    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        shapes.setdefault(name, describe_output(output))
        if observer is not None:
            observer.leave(name, output)

    return hook


def _starter(observer: ProbeObserver, name: str):
    def hook(_module: nn.Module, inputs: object) -> None:
        observer.enter(name, inputs)

    return hook
