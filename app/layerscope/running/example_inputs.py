"""What a model's ``forward`` is fed when nobody gave it real data: example inputs.

The shape probe, the cost counter and ``layerscope activations`` all run a model on
something. Most models take one image batch, but a siamese net takes two tensors, T5
takes ``input_ids`` and ``decoder_input_ids`` by keyword: so an input is a list of
specs, one per positional argument in order (``3x224x224``) or per keyword
(``input_ids=128:long``), each turned into a batch of example tensors on the model's
device. Python callers can hand over real tensors instead (``ExampleInputs``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from layerscope.errors import BadArgumentError
from layerscope.parsing import whole

MAX_INPUT_ELEMENTS = 1 << 26  # 3×4096×4096 fits; more is an allocation no probe needs
MAX_BATCH = 64  # the probe runs the whole batch at once; MACs grow linearly with it, so more tells nothing new
INPUT_DTYPES = {
    "float": torch.float32,
    "float32": torch.float32,
    "long": torch.long,
    "int64": torch.long,
    "int": torch.long,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bool": torch.bool,
}
SPEC_HELP = "SHAPE[:dtype] or NAME=SHAPE[:dtype], e.g. 3x224x224, 128:long, decoder_input_ids=16:long"
_SPEC = re.compile(r"(?:(?P<name>[A-Za-z_]\w*)=)?(?P<dims>[0-9]+(?:x[0-9]+)*)(?::(?P<dtype>\w+))?")


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One argument of ``forward``: its shape without the batch dimension, its dtype, and the
    keyword it is passed by (``None``: positional, in the order given)."""

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    name: str | None = None

    def describe(self) -> str:
        dims = "x".join(map(str, self.shape))
        dtype = "" if self.dtype == torch.float32 else f":{_dtype_name(self.dtype)}"
        return f"{self.name}={dims}{dtype}" if self.name else f"{dims}{dtype}"


@dataclass(frozen=True)
class ExampleInputs:
    """Real arguments for ``forward`` (tensors, or whatever the model takes), passed as given:
    ``probe_cost(model, ExampleInputs((left, right)))``. The batch is what they hold."""

    args: tuple[object, ...] = ()
    kwargs: Mapping[str, object] = field(default_factory=dict)

    def describe(self) -> str:
        """Shapes as given (batch included): ``2x3x32x32, mask=2x32``."""
        parts = [_value_text(a) for a in self.args]
        parts += [f"{k}={_value_text(v)}" for k, v in self.kwargs.items()]
        return ", ".join(parts)


# One shape (``(3, 224, 224)``), specs, or real tensors: every probe accepts all three.
Inputs = tuple[int, ...] | Sequence[InputSpec] | ExampleInputs


def parse_input(text: str) -> InputSpec:
    """``3x224x224`` (an image; the batch is added), ``128:long`` (token ids),
    ``decoder_input_ids=16:long`` (a keyword argument)."""
    match = _SPEC.fullmatch(text.strip().replace("X", "x"))
    if match is None:
        raise BadArgumentError(f"--input expects {SPEC_HELP}; got {text!r}")
    dtype_name = (match["dtype"] or "float").lower()
    dtype = INPUT_DTYPES.get(dtype_name)
    if dtype is None:
        raise BadArgumentError(f"unknown input dtype {dtype_name!r} (use {', '.join(sorted(INPUT_DTYPES))})")
    shape = tuple(whole(d, "--input size") for d in match["dims"].split("x"))
    if min(shape) < 1 or math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise BadArgumentError(
            f"--input {text} must have sizes of at least 1 and at most "
            f"{MAX_INPUT_ELEMENTS:,} elements in all (got {math.prod(shape):,})"
        )
    return InputSpec(shape, dtype, match["name"])


def parse_inputs(texts: Sequence[str]) -> tuple[InputSpec, ...]:
    """Every ``--input``: positional ones in the order given, keywords by name, each name once."""
    specs = tuple(parse_input(t) for t in texts)
    names = [s.name for s in specs if s.name]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BadArgumentError(f"--input {repeated[0]}=… is given more than once")
    return specs


def as_specs(inputs: Inputs, dtype: torch.dtype = torch.float32) -> tuple[InputSpec, ...] | ExampleInputs:
    """The three forms every probe accepts, told apart: a bare shape is one positional spec."""
    if isinstance(inputs, ExampleInputs):
        return inputs
    items = tuple(inputs)
    if all(isinstance(d, int) for d in items):
        return (InputSpec(tuple(items), dtype),)
    if not all(isinstance(s, InputSpec) for s in items):
        raise TypeError("inputs are a shape, a sequence of InputSpec, or ExampleInputs")
    return items


def describe_inputs(inputs: Inputs, dtype: torch.dtype = torch.float32) -> str:
    """``3x224x224`` or ``3x224x224, 3x224x224`` or ``input_ids=128:long, decoder_input_ids=16:long``."""
    specs = as_specs(inputs, dtype)
    return specs.describe() if isinstance(specs, ExampleInputs) else ", ".join(s.describe() for s in specs)


def example_inputs(
    model: nn.Module, inputs: Inputs, dtype: torch.dtype = torch.float32, batch: int = 1
) -> ExampleInputs:
    """Tensors for ``inputs`` on the model's device: random floats in the model's own float
    dtype (empty on meta, where nothing is computed), zeros for integer ids. The batch is
    bounded before anything is allocated: ``--batch 2000`` on a real device once took 5 GB."""
    specs = as_specs(inputs, dtype)
    if isinstance(specs, ExampleInputs):
        return specs
    for spec in specs:
        check_batch(batch, spec.shape)
    args = tuple(example_tensor(model, s.shape, s.dtype, batch) for s in specs if s.name is None)
    kwargs = {s.name: example_tensor(model, s.shape, s.dtype, batch) for s in specs if s.name is not None}
    return ExampleInputs(args, kwargs)


def check_batch(batch: int, shape: tuple[int, ...]) -> None:
    """A one-line refusal of a batch over ``MAX_BATCH`` or a batched input over ``MAX_INPUT_ELEMENTS``."""
    if not 1 <= batch <= MAX_BATCH or batch * math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise BadArgumentError(
            f"--batch {batch} with input {'x'.join(map(str, shape))}: the batch must be 1 to "
            f"{MAX_BATCH} and the input at most {MAX_INPUT_ELEMENTS:,} elements in all "
            "(MACs grow linearly with the batch)"
        )


def example_tensor(
    model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype = torch.float32, batch: int = 1
) -> torch.Tensor:
    """A batch of example input on the model's own device and float dtype."""
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    if dtype.is_floating_point and first is not None and first.dtype.is_floating_point:
        dtype = first.dtype
    if not dtype.is_floating_point:
        return torch.zeros((batch, *shape), device=device, dtype=dtype)
    if device.type == "meta":
        return torch.empty((batch, *shape), device=device, dtype=dtype)
    return torch.rand((batch, *shape), device=device, dtype=dtype)


def _value_text(value: object) -> str:
    if isinstance(value, torch.Tensor):
        dtype = "" if value.dtype == torch.float32 else f":{_dtype_name(value.dtype)}"
        return "x".join(map(str, value.shape)) + dtype
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_value_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_value_text(v) for v in value) + ")"
    return type(value).__name__


def _dtype_name(dtype: torch.dtype) -> str:
    short = {torch.long: "long"}
    return short.get(dtype, str(dtype).removeprefix("torch."))
