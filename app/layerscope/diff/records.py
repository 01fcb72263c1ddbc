"""What a diff finds, as plain frozen records: one per tensor, one per node, one for the run.

The CLI's text and ``--json`` and the app's tree column all read these objects, so they
cannot disagree. Node records carry the sums they were computed from (``delta_sq``,
``norm_sq``), so a view that groups nodes (a folded run of blocks) gets the exact figure
for the group without touching a tensor again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["same", "changed", "added", "removed", "reshaped", "retyped"]
STATUSES: tuple[Status, ...] = ("same", "changed", "added", "removed", "reshaped", "retyped")
UNCOMPARED: frozenset[str] = frozenset({"added", "removed", "reshaped"})  # no figures: nothing to set against
STRUCTURAL: frozenset[str] = UNCOMPARED | {"retyped"}  # changes a threshold on figures never hides


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorInfo:
    """A tensor's shape and dtype as its file's header says, before any byte is read."""

    shape: tuple[int, ...]
    dtype: str  # torch's name without the prefix: float32, bfloat16, int64

    @property
    def floating(self) -> bool:
        return self.dtype.startswith(("float", "bfloat", "complex"))


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorDiff:
    """One state_dict key in A, B or both.

    ``relative_change`` is ‖B − A‖₂ / ‖A‖₂ (Frobenius, in float64); it, ``max_abs_diff`` and
    ``cosine`` are ``None`` where they mean nothing: an added, removed or reshaped tensor, a
    change from an all-zero A, a cosine with an all-zero side.
    """

    key: str
    status: Status
    a: TensorInfo | None
    b: TensorInfo | None
    relative_change: float | None = None
    max_abs_diff: float | None = None
    cosine: float | None = None
    delta_sq: float = 0.0  # ‖B − A‖², for sums over nodes
    norm_sq: float = 0.0  # ‖A‖²

    @property
    def floating(self) -> bool:
        """Counts in a node's relative change: a floating tensor present, same-shaped, on both sides."""
        return self.status not in UNCOMPARED and self.a is not None and self.a.floating


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeDiff:
    """One module of the tree (or one key prefix when no architecture is known).

    ``status`` is ``same`` when every tensor in the subtree is bit-identical (or it has none),
    else ``changed``; ``relative_change`` = sqrt(Σ‖ΔW‖²) / sqrt(Σ‖W_A‖²) over the subtree's
    floating tensors; ``counts`` has one entry per status found below the node.
    """

    index: int
    name: str  # as named_modules() and state_dict() spell it; "" is the model
    access: str  # the expression `layerscope tree` shows: model.layer4[-1]
    class_name: str  # "" when the nodes come from key prefixes
    depth: int
    parent: int | None
    children: tuple[int, ...]
    keys: tuple[str, ...]  # the tensors this node holds itself, not its children's
    status: Literal["same", "changed"]
    relative_change: float | None
    changed: int
    total: int
    counts: dict[str, int] = field(default_factory=dict)
    delta_sq: float = 0.0
    norm_sq: float = 0.0

    @property
    def display_name(self) -> str:
        return self.name or "(model)"

    @property
    def mark(self) -> str:
        """What the tree's change column shows: ``=`` bit-identical, ``+``/``−`` wholly
        added/removed, else the relative change (``""`` for a node without tensors)."""
        if self.total == 0:
            return ""
        if self.status == "same":
            return "="
        for status, sign in (("added", "+"), ("removed", "−")):
            if self.counts.get(status) == self.total:
                return sign
        return percent(self.relative_change)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoraReport:
    """What a PEFT LoRA adapter holds and touched."""

    folder: str
    rank: int
    alpha: float
    use_rslora: bool
    target_modules: tuple[str, ...]
    adapted: tuple[str, ...]  # modules given a low-rank update ΔW = scale · B·A
    replaced: tuple[str, ...]  # base keys the adapter stores whole (modules_to_save, trained biases)
    unmatched_targets: tuple[str, ...]  # target_modules entries that matched no module
    rank_pattern: dict[str, int] = field(default_factory=dict)  # module pattern → its own r
    alpha_pattern: dict[str, float] = field(default_factory=dict)  # module pattern → its own lora_alpha


def relative(delta_sq: float, norm_sq: float) -> float | None:
    """sqrt(Δ²)/sqrt(A²): 0 for no change, ``None`` for a change from all zeros."""
    if delta_sq == 0.0:
        return 0.0
    if norm_sq == 0.0 or math.isnan(delta_sq):
        return None
    return math.sqrt(delta_sq) / math.sqrt(norm_sq)


def percent(value: float | None) -> str:
    """A relative change for a tree line: a percentage to three significant digits (whole
    percents from 100% up)."""
    if value is None:
        return "≠"
    return f"{value * 100:.0f}%" if value >= 1 else f"{value * 100:.3g}%"
