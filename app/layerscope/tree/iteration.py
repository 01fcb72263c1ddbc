"""What each ``nn.Module`` iteration method yields at a node.

``modules()`` vs ``children()`` and ``parameters()`` vs ``state_dict()`` are the
distinctions people come to learn; this module answers them for one node by
calling the real methods, so the answer is PyTorch's own, not a re-implementation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

import torch
from torch import nn

from layerscope.tree import class_name_of

EXPLANATIONS = {
    "modules()": "every sub-module depth-first, this one first (shared modules once)",
    "named_modules()": "the same walk as modules(), with each module's dotted name",
    "children()": "direct sub-modules only, one level down",
    "named_children()": "direct sub-modules with their attribute names",
    "parameters()": "learnable tensors of the whole subtree (tied weights once)",
    "named_parameters()": "the same tensors as parameters(), with dotted names",
    "buffers()": "non-learnable state of the subtree (running statistics, counters)",
    "state_dict()": "what torch.save stores: parameters and persistent buffers as detached Tensors, by name",
}


@dataclass(frozen=True, slots=True)
class IterationSummary:
    method: str
    count: int
    first: tuple[str, ...]
    explanation: str


def iteration_view(module: nn.Module, first: int = 5) -> list[IterationSummary]:
    """Count and the first entries of each iteration method, called on ``module`` itself."""
    rows = {
        "modules()": (_module_label(None, m) for m in module.modules()),
        "named_modules()": (_module_label(n, m) for n, m in module.named_modules()),
        "children()": (_module_label(None, m) for m in module.children()),
        "named_children()": (_module_label(n, m) for n, m in module.named_children()),
        "parameters()": (_tensor_label(None, p) for p in module.parameters()),
        "named_parameters()": (_tensor_label(n, p) for n, p in module.named_parameters()),
        "buffers()": (_tensor_label(None, b) for b in module.buffers()),
        # the plain call, as scripts make it: detached Tensors, not the Parameters themselves
        "state_dict()": (_tensor_label(k, v) for k, v in module.state_dict().items()),
    }
    return [_summarise(method, labels, first) for method, labels in rows.items()]


def _summarise(method: str, labels: Iterable[str], first: int) -> IterationSummary:
    iterator = iter(labels)
    head = tuple(islice(iterator, first))
    count = len(head) + sum(1 for _ in iterator)
    return IterationSummary(method, count, head, EXPLANATIONS[method])


def _module_label(name: str | None, module: nn.Module) -> str:
    """Unnamed methods pass ``None``; ``named_modules()`` names the node itself ``""``."""
    cls = class_name_of(module)
    return cls if name is None else f"{name or '(self)'}: {cls}"


def _tensor_label(name: str | None, value: object) -> str:
    if isinstance(value, torch.Tensor):
        shape = "×".join(str(d) for d in value.shape) or "scalar"
        kind = "Parameter" if isinstance(value, nn.Parameter) else "Tensor"
        text = f"{kind} {shape} {str(value.dtype).removeprefix('torch.')}"
    else:
        text = type(value).__name__
    return text if name is None else f"{name}: {text}"
