"""A diff as JSON-ready data: what ``layerscope diff --json`` prints.

Floats that are not finite (a NaN in a checkpoint) become ``null``: JSON has no NaN.
"""

from __future__ import annotations

import math
from typing import Any

from layerscope.diff.records import STRUCTURAL, LoraReport, NodeDiff, TensorDiff, TensorInfo
from layerscope.diff.result import DiffResult, moved_at_least


def diff_json(result: DiffResult, *, depth: int | None = None, threshold: float | None = None) -> dict[str, Any]:
    """``tensors`` and ``nodes`` under ``threshold`` (as the text view hides them) and, for
    nodes, down to ``depth``; the summary always counts everything."""
    visible = result.visible(threshold)
    tensors = [
        t
        for t in result.tensors
        if threshold is None
        or t.status in STRUCTURAL
        or moved_at_least(t.relative_change, t.status != "same", threshold)
    ]
    return {
        "a": result.a,
        "b": result.b,
        "architecture": result.architecture,
        "summary": summary_json(result),
        "tensors": [tensor_json(t, result.owner(t.key)) for t in tensors],
        "nodes": [node_json(n) for n in result.nodes if n.index in visible and (depth is None or n.depth <= depth)],
        "lora": None if result.lora is None else lora_json(result.lora),
        "notes": list(result.notes),
    }


def summary_json(result: DiffResult) -> dict[str, Any]:
    moved, frozen_weights = result.drifted_statistics()
    return {
        "tensors": len(result.tensors),
        "counts": result.counts(),
        "relative_change": finite(result.root.relative_change),
        "frozen": [n.name for n in result.frozen()],
        "largest": [{"key": t.key, "relative_change": finite(t.relative_change)} for t in result.largest()],
        "largest_buffers": [
            {"key": t.key, "relative_change": finite(t.relative_change)} for t in result.largest(buffers=True)
        ],
        "running_statistics_moved": [n.name for n in moved],
        "running_statistics_moved_under_frozen_weights": [n.name for n in frozen_weights],
        "unplaced_keys": list(result.unplaced),
    }


def tensor_json(t: TensorDiff, owner: NodeDiff) -> dict[str, Any]:
    return {
        "key": t.key,
        "node": owner.name,
        "status": t.status,
        "shape_a": shape(t.a),
        "shape_b": shape(t.b),
        "dtype_a": t.a.dtype if t.a else None,
        "dtype_b": t.b.dtype if t.b else None,
        "relative_change": finite(t.relative_change),
        "max_abs_diff": finite(t.max_abs_diff),
        "cosine": finite(t.cosine),
    }


def node_json(n: NodeDiff) -> dict[str, Any]:
    return {
        "name": n.name,
        "access_expression": n.access,
        "class": n.class_name or None,
        "depth": n.depth,
        "status": n.status,
        "relative_change": finite(n.relative_change),
        "changed": n.changed,
        "total": n.total,
        "counts": dict(n.counts),
    }


def lora_json(lora: LoraReport) -> dict[str, Any]:
    return {
        "folder": lora.folder,
        "r": lora.rank,
        "lora_alpha": lora.alpha,
        "rank_pattern": dict(lora.rank_pattern),
        "alpha_pattern": dict(lora.alpha_pattern),
        "use_rslora": lora.use_rslora,
        "target_modules": list(lora.target_modules),
        "adapted_modules": list(lora.adapted),
        "replaced_tensors": list(lora.replaced),
        "unmatched_target_modules": list(lora.unmatched_targets),
    }


def shape(info: TensorInfo | None) -> list[int] | None:
    return None if info is None else list(info.shape)


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
