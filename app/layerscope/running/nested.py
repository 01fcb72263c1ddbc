"""Walking what a model or an op returns: tensors inside tuples, lists, dicts and model outputs.

One walker for every part of layerscope that looks inside an output (the counted pass, the
activation statistics, the CAM's detached scores), so they agree on what "inside" means:
tuples and lists (named tuples included), and mappings (Hugging Face's ``ModelOutput`` is
one). Hot: the counted pass calls ``tensors_in`` for every op, so these are plain loops, not
torch's general pytree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import torch


def tensors_in(value: object) -> Iterator[torch.Tensor]:
    """Every tensor inside ``value``, depth first, in order."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors_in(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from tensors_in(item)


def first_float_tensor(value: object) -> torch.Tensor | None:
    """The first floating-point tensor inside ``value`` (an LSTM's sequence, a Hugging Face
    output's first field), or None."""
    return next((t for t in tensors_in(value) if t.is_floating_point()), None)


def map_tensors(fn: Callable[[torch.Tensor], torch.Tensor], value: object) -> object:
    """``value`` with every tensor replaced by ``fn(tensor)``; mappings become dicts, lists and
    tuples keep their type, named tuples are left as they are (their fields may not be
    rebuildable from positions)."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, Mapping):
        return {k: map_tensors(fn, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(map_tensors(fn, v) for v in value) if not hasattr(value, "_fields") else value
    return value
