"""What each node costs: MACs and FLOPs, activation memory, and whether the model fits.

``counter`` runs the shape probe's forward pass under torch's ``FlopCounterMode`` and
watches every tensor it creates, ``records`` holds what it found per module, ``memory``
turns that into inference and training estimates and the figures the CLI and app show.
"""

from layerscope.cost.counter import CostCounter, probe_cost
from layerscope.cost.memory import (
    COST_KEYS, DTYPES, MemoryEstimate, cost_stats, estimate_memory, own_flops, parse_dtype,
)
from layerscope.cost.records import CostTable, Footprint, NodeCost, footprint_of, tensors_in

__all__ = [
    "COST_KEYS", "CostCounter", "CostTable", "DTYPES", "Footprint", "MemoryEstimate", "NodeCost", "cost_stats",
    "estimate_memory", "footprint_of", "own_flops", "parse_dtype", "probe_cost", "tensors_in",
]
