"""Output shapes: one forward pass of a dummy input with a hook on every module.

Shapes are what tell a spatial feature map from pooled logits, so both the tree view
and the choice of Grad-CAM layers rest on them. On the meta device the pass does no
arithmetic, so even a huge model's shapes cost next to nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from layerscope.errors import LayerscopeError, first_line
from layerscope.locking import model_lock
from layerscope.parsing import whole

MAX_INPUT_ELEMENTS = 1 << 26  # 3×4096×4096 fits; more is an allocation no probe needs
MAX_BATCH = 64  # the probe runs the whole batch at once; MACs grow linearly with it, so more tells nothing new
_DTYPES = {"float": torch.float32, "float32": torch.float32, "long": torch.long, "int64": torch.long,
           "int": torch.long, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True, slots=True)
class ShapeInfo:
    """A module's output: a tensor's shape, or the shapes inside a tuple / dict, or a type name."""

    kind: str  # "tensor", "sequence", "mapping" or "other"
    shape: tuple[int, ...] | None = None
    items: tuple[tuple[str, "ShapeInfo"], ...] = ()
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


def parse_input_spec(spec: str) -> tuple[tuple[int, ...], torch.dtype]:
    """``3x224x224`` (an image; batch 1 is added) or ``128:long`` (token ids)."""
    dims, _, dtype_name = spec.strip().lower().partition(":")
    if not re.fullmatch(r"[0-9]+(x[0-9]+)*", dims):
        raise LayerscopeError(f"--input expects sizes like 3x224x224 or 128:long, got {spec!r}")
    dtype = _DTYPES.get(dtype_name or "float")
    if dtype is None:
        raise LayerscopeError(f"unknown input dtype {dtype_name!r} (use {', '.join(sorted(_DTYPES))})")
    shape = tuple(whole(d, "--input size") for d in dims.split("x"))
    if min(shape) < 1 or math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise LayerscopeError(f"--input {spec} must have sizes of at least 1 and at most "
                              f"{MAX_INPUT_ELEMENTS:,} elements in all (got {math.prod(shape):,})")
    return shape, dtype


def check_batch(batch: int, input_shape: tuple[int, ...]) -> None:
    """A one-line refusal of a batch over ``MAX_BATCH`` or an input over ``MAX_INPUT_ELEMENTS``."""
    elements = batch * math.prod(input_shape)
    if not 1 <= batch <= MAX_BATCH or elements > MAX_INPUT_ELEMENTS:
        raise LayerscopeError(f"--batch {batch} with input {'x'.join(map(str, input_shape))}: the batch must be "
                              f"1 to {MAX_BATCH} and the input at most {MAX_INPUT_ELEMENTS:,} elements in all "
                              "(MACs grow linearly with the batch)")


def dummy_input(
    model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype = torch.float32, batch: int = 1
) -> torch.Tensor:
    """A batch (of one unless asked) of zero-ish input on the model's own device and float dtype."""
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    if dtype.is_floating_point and first is not None and first.dtype.is_floating_point:
        dtype = first.dtype
    if dtype.is_floating_point:
        return torch.rand((batch, *shape), device=device, dtype=dtype) if device.type != "meta" else torch.empty(
            (batch, *shape), device=device, dtype=dtype
        )
    return torch.zeros((batch, *shape), device=device, dtype=dtype)


def call_model(model: nn.Module, x: torch.Tensor) -> object:
    """Detection models take a list of images; everything else takes the batch."""
    if _takes_image_list(model):
        return model(list(x))
    return model(x)


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
    model: nn.Module, input_shape: tuple[int, ...] = (3, 224, 224), dtype: torch.dtype = torch.float32,
    *, batch: int = 1, observer: ProbeObserver | None = None,
) -> dict[str, ShapeInfo]:
    """Run one eval-mode forward pass and record every module's output, keyed by qualified name;
    an ``observer`` (the cost counter) rides along on the same pass.

    Training flags are restored and every hook removed even when the forward raises. The
    batch is bounded (``MAX_BATCH``, and ``MAX_INPUT_ELEMENTS`` for the whole input) before
    anything is allocated: ``--batch 2000`` on a real device once took 5 GB.
    """
    check_batch(batch, input_shape)
    with model_lock(model):
        return _probe_locked(model, input_shape, dtype, batch, observer)


def _probe_locked(
    model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype, batch: int, observer: ProbeObserver | None
) -> dict[str, ShapeInfo]:
    shapes: dict[str, ShapeInfo] = {}
    handles = []
    flags = [(m, m.training) for m in model.modules()]
    try:
        for name, module in model.named_modules():
            if observer is not None:
                handles.append(module.register_forward_pre_hook(_starter(observer, name)))
            handles.append(module.register_forward_hook(_recorder(shapes, name, observer)))
        model.eval()
        with torch.no_grad(), observer if observer is not None else nullcontext():
            call_model(model, dummy_input(model, input_shape, dtype, batch))
    except Exception as exc:
        text_model = getattr(model, "main_input_name", None) == "input_ids" and dtype.is_floating_point
        hint = " (a text model takes token ids: --input 128:long)" if text_model else ""
        raise LayerscopeError(f"shape probe failed with input {'x'.join(map(str, input_shape))}{hint}: "
                              f"{first_line(exc)}") from exc
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in flags:
            module.training = flag
    return shapes


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

