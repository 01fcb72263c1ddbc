"""What changed between two checkpoints (or a base and its LoRA adapter), per tensor and per node.

    result = diff_checkpoints("base.pt", "finetuned.safetensors", arch="resnet18")
    result.node("layer4").relative_change      # sqrt(Σ‖ΔW‖²) / sqrt(Σ‖W_A‖²) over its floating tensors
    [t.status for t in result.tensors_of(result.node("fc"))]

Streaming: a tensor pair at a time, never a whole checkpoint (``layerscope.diff.engine``).
"""

from layerscope.diff.engine import DiffCancelled, diff_checkpoints
from layerscope.diff.records import STATUSES, LoraReport, NodeDiff, Status, TensorDiff, TensorInfo
from layerscope.diff.result import DiffResult

__all__ = [
    "STATUSES",
    "DiffCancelled",
    "DiffResult",
    "LoraReport",
    "NodeDiff",
    "Status",
    "TensorDiff",
    "TensorInfo",
    "diff_checkpoints",
]
