"""The figures shown for a node, as plain data: one function for the CLI and the app.

``layerscope stats --json`` prints exactly ``node_stats(...)``, and the app's Stats
tab renders the same dictionary, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from layerscope.running.probe import ShapeInfo
from layerscope.tree import ModuleTree, Node

_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))
_MAC_UNITS = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))


def node_stats(tree: ModuleTree, node: Node, shapes: dict[str, ShapeInfo] | None = None) -> dict[str, Any]:
    """Every figure layerscope knows about ``node``, JSON-ready."""
    stats: dict[str, Any] = {
        "qualified_name": node.name,
        "same_module_as": tree.nodes[node.same_as].name if node.same_as is not None else None,
        "access_expression": node.access,
        "access_expression_negative": node.access_negative,
        "class": node.class_name,
        "extra_repr": tree.extra_repr(node),
        "depth": node.depth,
        "children": len(node.children),
        "submodules": len(tree.descendants(node)),
        "own_params": node.own_params,
        "total_params": node.total_params,
        "trainable_params": node.trainable_params,
        "frozen_params": node.frozen_params,
        "param_tensors": node.param_tensors,
        "param_bytes": node.param_bytes,
        "buffers": node.buffers,
        "persistent_buffers": node.persistent_buffers,
        "buffer_elements": node.buffer_elements,
        "buffer_bytes": node.buffer_bytes,
        "state_dict_entries": node.state_dict_entries,
        "state_dict_bytes": node.state_dict_bytes,
        "state_dict_unique_bytes": node.state_dict_unique_bytes,
        "dtypes": list(node.dtypes),
        "devices": list(node.devices),
    }
    if shapes is not None:
        shape = shapes.get(node.name)
        stats["output_shape"] = shape.describe() if shape else None
    return stats


OPTIONAL = frozenset({"access_expression_negative", "same_module_as", "uncounted_ops"})  # rows shown only when set


def format_figure(key: str, value: Any) -> str:
    """One figure as people read it, the same in ``layerscope stats`` and the Stats tab: exact
    counts with separators, bytes exact and humanised (``18,882,560 B (18.0 MiB)``)."""
    if value is None or value == "":
        return "—"
    if key in COST_FIGURES:
        return COST_FIGURES[key](value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) and key.endswith("_bytes"):
        return f"{exact(value)} B ({human_bytes(value)})" if value >= 1024 else f"{value} B"
    if isinstance(value, int):
        return exact(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "—"
    return str(value)


def shown_figures(stats: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key, text)`` for every row a view prints; optional rows only when they hold something."""
    return [(key, format_figure(key, value)) for key, value in stats.items() if value or key not in OPTIONAL]


def access_text(node: Node) -> str:
    """``model.features[18]`` plus its ``[-1]`` spelling, the one target-layer tables use."""
    if node.access_negative:
        return f"{node.access}  =  {node.access_negative}"
    return node.access


def human_count(n: int) -> str:
    """11689512 -> '11.7M': short enough for a tree line; the panel shows the exact figure."""
    for scale, unit in _UNITS:
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def human_macs(macs: int, unit: str = "MACs") -> str:
    """4089184256 -> '4.1 GMACs' (``unit='FLOPs'`` for FLOPs)."""
    for scale, prefix in _MAC_UNITS:
        if macs >= scale:
            return f"{macs / scale:.1f} {prefix}{unit}"
    return f"{macs} {unit}"


def _memory_text(memory: dict[str, Any]) -> str:
    return (
        f"inference {human_bytes(memory['inference_bytes'])} = {memory['formula']['inference']}\n"
        f"training {human_bytes(memory['training_bytes'])} = {memory['formula']['training']}"
    )


def uncounted_text(ops: dict[str, int]) -> str:
    """``2 ops not counted (no FLOP formula): _cdist_forward ×1, …``: MACs the figures miss."""
    listed = ", ".join(f"{op} ×{calls}" for op, calls in ops.items())
    return f"{len(ops)} op{'s' if len(ops) != 1 else ''} not counted (no FLOP formula): {listed}"


COST_FIGURES: dict[
    str, Callable[[Any], str]
] = {  # the keys ``layerscope.cost.cost_stats`` adds that are not plain counts or bytes
    "macs": lambda v: f"{human_macs(v)} ({exact(v)})",
    "flops": lambda v: f"{human_macs(v, 'FLOPs')} ({exact(v)})",
    "macs_share": lambda v: f"{v:.1%}",
    "memory": _memory_text,
    "uncounted_ops": uncounted_text,
}


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def exact(n: int) -> str:
    return f"{n:,}"
