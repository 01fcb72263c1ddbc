"""What the Stats, state_dict and API tabs show for one node, as plain records.

A worker (or, for a small subtree, the UI thread) reads the figures from the model
(``jobs.tab_content``); the tab's panel only lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from layerscope.activations import NodeActivity
    from layerscope.cam.targets import Eligibility
    from layerscope.diff import NodeDiff, TensorDiff
    from layerscope.tree.iteration import IterationSummary

TABS = ("stats", "state_dict", "api", "gradcam")  # in the order of their keys, 1 to 4
SELF_FILLED = ("gradcam", "lens")  # their panels fill themselves (a map, a prompt), not from the cursor's node
SLOW_TABS = ("state_dict", "api")  # they walk the module's tensors: a big subtree fills in a worker


@dataclass(frozen=True)
class NodeChanges:
    """In diff mode, the Stats tab's first part: the node's change and its subtree's tensors
    (the first ``ROW_LIMIT``; ``more`` says how many follow), coloured on the diff's scale
    whose red end is ``top``."""

    node: NodeDiff
    tensors: list[TensorDiff]
    more: int
    top: float


@dataclass(frozen=True)
class NodeActivations:
    """After ``A``, the Stats tab's first part: the node's activation statistics (None: it did
    not run, or returned no floating-point tensor) and what ran through the model."""

    node: NodeActivity | None
    over: str  # "chelsea.png (1 example)"


@dataclass(frozen=True)
class NodeFigures:
    """The Stats tab: ``nodestats.node_stats`` (cost keys included, once counted), the node's
    Grad-CAM eligibility (None until the shapes are probed), after ``d`` its changes, and
    after ``A`` its activations."""

    stats: dict[str, Any]
    eligibility: Eligibility | None
    changes: NodeChanges | None = None
    activations: NodeActivations | None = None
    tab: ClassVar[str] = "stats"


@dataclass(frozen=True, slots=True)
class StateRow:
    """One ``state_dict`` entry, keyed relative to the node."""

    key: str
    shape: str
    dtype: str
    elements: int
    kind: str  # "parameter" or "buffer"


@dataclass(frozen=True)
class StateEntries:
    """The state_dict tab: the first rows under the node, how many there are, and the node's name."""

    rows: list[StateRow]
    total: int
    name: str
    tab: ClassVar[str] = "state_dict"


@dataclass(frozen=True)
class IterationCounts:
    """The API tab: what each ``nn.Module`` iteration method yields at the node's access expression."""

    access: str
    rows: list[IterationSummary]
    tab: ClassVar[str] = "api"


TabContent = NodeFigures | StateEntries | IterationCounts
