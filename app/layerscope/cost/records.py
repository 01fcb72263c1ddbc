"""The cost of a module as plain records: FLOPs, calls and activation footprints.

Activation memory is kept as floating-point elements (and their bytes as they ran) plus
other bytes, so a different ``--dtype`` rescales it without another forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from layerscope.running.nested import tensors_in


@dataclass(frozen=True, slots=True)
class Footprint:
    """Activation memory as floating-point elements, the bytes they took as the pass ran them
    (a bfloat16 model upcasts its norms to float32), and other bytes (indices, masks), so a
    different ``--dtype`` rescales it without another forward pass."""

    float_elements: int = 0
    float_bytes: int = 0
    other_bytes: int = 0

    def bytes(self, itemsize: int | None = None) -> int:
        """As the pass ran (``None``), or with every float at ``itemsize`` bytes."""
        floats = self.float_bytes if itemsize is None else self.float_elements * itemsize
        return floats + self.other_bytes

    def __add__(self, other: Footprint) -> Footprint:
        return Footprint(
            self.float_elements + other.float_elements,
            self.float_bytes + other.float_bytes,
            self.other_bytes + other.other_bytes,
        )

    def __sub__(self, other: Footprint) -> Footprint:
        return Footprint(
            self.float_elements - other.float_elements,
            self.float_bytes - other.float_bytes,
            self.other_bytes - other.other_bytes,
        )


def footprint_of(value: object) -> Footprint:
    """The tensors inside an output (tuples and dicts included)."""
    floats = float_bytes = other = 0
    for t in tensors_in(value):
        if t.is_floating_point():
            floats += t.numel()
            float_bytes += t.numel() * t.element_size()
        else:
            other += t.numel() * t.element_size()
    return Footprint(floats, float_bytes, other)


@dataclass(frozen=True, slots=True)
class NodeCost:
    """One module's cost over every call in the pass (children included)."""

    flops: int
    calls: int  # 0: a container that is iterated, never called (ModuleList): its children's sum
    allocated: Footprint  # every tensor its forward created on fresh storage
    output: Footprint  # what its calls returned
    peak: Footprint  # most activation memory alive at once while it ran, its inputs included
    uncounted_ops: dict[str, int] = field(default_factory=dict)  # ops with no formula and no zero-cost convention
    batch: int = 1  # the batch the probe ran at: these activations are that batch's, never scaled

    @property
    def macs(self) -> int:
        """torch counts 2 FLOPs per multiply-accumulate for every op it counts (matmul, conv,
        attention), so MACs are exactly half."""
        return self.flops // 2


@dataclass(frozen=True)
class CostTable:
    """The cost of every module that ran, keyed by qualified name; ``""`` is the model."""

    nodes: dict[str, NodeCost]
    inputs: str  # what the pass was fed, batch not included: "3x224x224", "input_ids=128:long, …"
    batch: int

    def get(self, name: str) -> NodeCost | None:
        return self.nodes.get(name)

    @property
    def total(self) -> NodeCost:
        return self.nodes[""]

    @property
    def uncounted_ops(self) -> dict[str, int]:
        """Ops that ran with no FLOP formula although they multiply-add: their MACs are missing."""
        return self.total.uncounted_ops

    def run_macs(self, names: list[str]) -> int:
        """A folded run of siblings: their calls are distinct, so their MACs add up."""
        return sum(self.nodes[n].macs for n in names if n in self.nodes)

    def share(self, macs: int) -> float:
        total = self.total.macs
        return macs / total if total else 0.0
