"""What each node costs: MACs and FLOPs, activation memory, and whether the model fits.

``counter`` runs the shape probe's forward pass under torch's ``FlopCounterMode`` and
watches every tensor it creates, ``records`` holds what it found per module, ``memory``
turns that into inference and training estimates and the figures the CLI and app show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from layerscope.cost.memory import (
    COST_KEYS,
    DTYPES,
    MemoryEstimate,
    cost_stats,
    estimate_memory,
    own_flops,
    parse_dtype,
)
from layerscope.cost.records import CostTable, Footprint, NodeCost, footprint_of, tensors_in

if TYPE_CHECKING:
    from layerscope.cost.counter import CostCounter, probe_cost


def __getattr__(name: str) -> Any:
    """``CostCounter`` and ``probe_cost`` are imported when first asked for: the counter needs
    ``torch.utils.flop_counter``, whose import (0.1–0.2 s) every CLI command would pay otherwise."""
    if name in ("CostCounter", "probe_cost"):
        from layerscope.cost import counter

        return getattr(counter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "COST_KEYS",
    "CostCounter",
    "CostTable",
    "DTYPES",
    "Footprint",
    "MemoryEstimate",
    "NodeCost",
    "cost_stats",
    "estimate_memory",
    "footprint_of",
    "own_flops",
    "parse_dtype",
    "probe_cost",
    "tensors_in",
]
