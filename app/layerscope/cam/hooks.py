"""Hooks and flags around one pass of the model, restored whatever happens.

The forward starts under ``no_grad`` with parameters frozen; the first capture hook
detaches its activation into a fresh leaf and only then turns gradients on, so the
layers before it run like plain inference and the backward pass only crosses from
the output to the hooked activations. Each hook hands a clone downstream, so an
in-place ReLU after the layer cannot overwrite the activation the map is made from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from layerscope.errors import LayerscopeError
from layerscope.running.locking import watched_pass
from layerscope.running.nested import map_tensors


@contextmanager
def model_guard(model: nn.Module, *, grad: bool) -> Iterator[list[RemovableHandle]]:
    """``locking.watched_pass`` with parameters frozen and ``grad`` mode as asked: what every CAM
    pass runs under. A TorchScript archive (loaded with ``--trust``) takes no hooks: refused."""
    if isinstance(model, torch.jit.ScriptModule):  # a --trust'ed archive: browsable, not hookable
        raise LayerscopeError(
            "Grad-CAM needs forward hooks, which TorchScript modules do not support; load the "
            "model's Python class with its weights instead (a state_dict with --arch)"
        )
    with watched_pass(model, grad=grad, freeze=True) as handles:
        yield handles


def flatten_output(output: object) -> tuple[list[Tensor], Callable[[list[Tensor]], object]]:
    """The float tensors inside a layer's output, and how to rebuild it from replacements."""
    if isinstance(output, Tensor):
        return ([output], lambda new: new[0]) if output.is_floating_point() else ([], lambda new: output)
    if isinstance(output, Mapping):
        keys = [k for k, v in output.items() if isinstance(v, Tensor) and v.is_floating_point()]

        def rebuild_mapping(new: list[Tensor]) -> object:
            if dataclasses.is_dataclass(output):  # transformers' ModelOutput refuses update()
                return type(output)(**{**output, **dict(zip(keys, new))})
            out = type(output)(output)  # type: ignore[call-arg]
            out.update(zip(keys, new))
            return out

        return [output[k] for k in keys], rebuild_mapping
    if isinstance(output, (tuple, list)) and not hasattr(output, "_fields"):
        slots = [i for i, v in enumerate(output) if isinstance(v, Tensor) and v.is_floating_point()]

        def rebuild_sequence(new: list[Tensor]) -> object:
            items = list(output)
            for i, t in zip(slots, new):
                items[i] = t
            return type(output)(items)

        return [output[i] for i in slots], rebuild_sequence
    return [], lambda new: output


def capture_hook(name: str, store: dict[str, list[Tensor]], grad: bool):
    """Record the first call's output; hand a clone downstream so in-place ops cannot touch it."""

    def hook(_module: nn.Module, _inputs: object, output: object) -> object:
        if name in store:
            return None
        tensors, rebuild = flatten_output(output)
        if grad:
            torch.set_grad_enabled(True)  # from here on: the layers before this one ran without autograd
        kept = [t if t.requires_grad or not grad else t.detach().requires_grad_(True) for t in tensors]
        store[name] = kept
        return rebuild([t.clone() for t in kept]) if kept else None

    return hook


def keep_hook(name: str, store: dict[str, list[Tensor]]):
    """Record a layer's first output as it is, graph included (the attention pass needs the
    graph unbroken from input to score, so nothing is detached or cloned here)."""

    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        if name not in store:
            store[name] = flatten_output(output)[0]

    return hook


def checked_input(model: nn.Module, input_tensor: Tensor) -> Tensor:
    if not isinstance(input_tensor, Tensor) or input_tensor.dim() != 4:
        shape = "×".join(map(str, getattr(input_tensor, "shape", ()))) or type(input_tensor).__name__
        raise LayerscopeError(f"input must be an N×C×H×W tensor, got {shape}")
    first = next(model.parameters(), None)
    device = first.device if first is not None else input_tensor.device
    with torch.inference_mode(False):
        # inference-mode tensors cannot enter autograd; a clone made outside it can
        return input_tensor.detach().to(device).clone()


def detached(output: object) -> object:
    """``output`` with every tensor detached (the scores kept after a pass)."""
    return map_tensors(torch.Tensor.detach, output)
