"""Memory estimates with their formulas, and the cost keys ``stats --cost`` adds (``nodestats`` formats them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from layerscope.cost.records import CostTable, NodeCost
from layerscope.errors import LayerscopeError
from layerscope.tree import ModuleTree, Node

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "float8": torch.float8_e4m3fn,
    "int8": torch.int8,
}
TRAINING_DTYPE = torch.bfloat16  # mixed precision computes activations in 16 bits
ADAM_MIXED_BYTES = 16  # fp16/bf16 weight + gradient (2 + 2), fp32 master weight + two moments (4 + 4 + 4): ZeRO §3


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """Bytes needed to run a node, each with the formula that produced it."""

    inference_bytes: int
    training_bytes: int
    inference_formula: str
    training_formula: str
    dtype: str
    training_dtype: str
    batch: int

    def as_json(self) -> dict[str, Any]:
        return {
            "inference_bytes": self.inference_bytes,
            "training_bytes": self.training_bytes,
            "formula": {"inference": self.inference_formula, "training": self.training_formula},
            "dtype": self.dtype,
            "training_dtype": self.training_dtype,
            "batch": self.batch,
        }


def parse_dtype(name: str | None) -> torch.dtype | None:
    if name is None:
        return None
    dtype = DTYPES.get(name.strip().lower())
    if dtype is None:
        raise LayerscopeError(f"unknown --dtype {name!r} (use {', '.join(DTYPES)})")
    return dtype


def estimate_memory(
    node: Node, cost: NodeCost, batch: int | None = None, dtype: torch.dtype | None = None
) -> MemoryEstimate:
    """Inference: weights at ``dtype`` + buffers + the most activation memory alive at once.
    Training with Adam in mixed precision: 16 bytes per trainable parameter (ZeRO's count),
    frozen ones at the compute dtype, buffers, and every activation the forward keeps.

    The activations are those the probe measured, at its batch (``cost.batch``); ``batch``,
    when given, must be that batch: activation memory does not scale exactly with the batch
    (workspaces, shapes that do not grow), so a figure for another batch would be a guess
    under the probe's name. Probe at the batch you mean (``probe_cost(..., batch=32)``).

    Raises ``LayerscopeError`` when ``batch`` is not the probe's.
    """
    if batch is not None and batch != cost.batch:
        raise LayerscopeError(
            f"these figures were probed at batch {cost.batch}, not {batch}: activations are "
            f"measured, never scaled; probe at batch {batch} (probe_cost(..., batch={batch}))"
        )
    batch = cost.batch
    infer = dtype or _param_dtype(node)
    train = dtype or TRAINING_DTYPE
    s, t = infer.itemsize, train.itemsize
    inference = node.total_params * s + node.buffer_bytes + cost.peak.bytes(s if dtype else None)  # None: as it ran
    training = (
        ADAM_MIXED_BYTES * node.trainable_params + node.frozen_params * t + node.buffer_bytes + cost.allocated.bytes(t)
    )
    infer_name, train_name = _dtype_name(infer), _dtype_name(train)
    return MemoryEstimate(
        inference_bytes=inference,
        training_bytes=training,
        inference_formula=f"params × {s} B ({infer_name}) + buffers + peak live activations "
        f"({infer_name}, batch {batch})",
        training_formula=f"trainable params × {ADAM_MIXED_BYTES} B (Adam, mixed precision: 16-bit weight and "
        f"gradient, fp32 master weight and two moments) + frozen params × {t} B + buffers + "
        f"forward activations ({train_name}, batch {batch})",
        dtype=infer_name,
        training_dtype=train_name,
        batch=batch,
    )


def _param_dtype(node: Node) -> torch.dtype:
    """The floating dtype the node's parameters are stored in, told by their bytes per element
    (a bfloat16 model keeps float32 buffers such as rotary frequencies); float32 without any."""
    if not node.total_params:
        return torch.float32
    size = round(node.param_bytes / node.total_params)
    floats = [DTYPES[d] for d in node.dtypes if d in DTYPES and DTYPES[d].is_floating_point]
    return next((d for d in floats if d.itemsize == size), torch.float32)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# --- figures for the CLI and the app -----------------------------------------------------


COST_KEYS = (
    "macs",
    "macs_share",
    "flops",
    "calls",
    "output_bytes",
    "activation_bytes",
    "activation_peak_bytes",
    "memory",
    "uncounted_ops",
)


def cost_stats(node: Node, table: CostTable, dtype: torch.dtype | None = None) -> dict[str, Any]:
    """The cost keys ``layerscope stats --cost --json`` adds (the app's Stats tab shows the same)."""
    cost = table.get(node.name)
    if cost is None:  # never ran (an auxiliary head in eval mode)
        return {key: 0 if key == "calls" else {} if key == "uncounted_ops" else None for key in COST_KEYS}
    s = dtype.itemsize if dtype else None  # None: the bytes as the pass ran them
    return {
        "macs": cost.macs,
        "macs_share": table.share(cost.macs),
        "flops": cost.flops,
        "calls": cost.calls,
        "output_bytes": cost.output.bytes(s),
        "activation_bytes": cost.allocated.bytes(s),
        "activation_peak_bytes": cost.peak.bytes(s),
        "memory": estimate_memory(node, cost, table.batch, dtype).as_json(),
        "uncounted_ops": cost.uncounted_ops,
    }


def own_flops(tree: ModuleTree, node: Node, table: CostTable) -> int:
    """FLOPs a module computes itself, outside any child (attention's products in its ``forward``)."""
    cost = table.get(node.name)
    if cost is None:
        return 0
    children = sum(c.flops for c in (table.get(tree.nodes[i].name) for i in node.children) if c is not None)
    return cost.flops - children
