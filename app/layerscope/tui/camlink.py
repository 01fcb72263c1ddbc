"""The app's one doorway into the Grad-CAM engine (``layerscope.cam``, ``imaging``, ``render``).

Everything the app asks of that engine goes through these functions, so the
widgets stay independent of its exact names.
"""

from __future__ import annotations

from typing import Any

from layerscope.tui.session import Session


def available() -> bool:
    """Whether the Grad-CAM engine is importable (the app browses models without it)."""
    try:
        from layerscope.cam import compute_cam, layer_eligibility, suggest_target_layer  # noqa: F401
    except ImportError:
        return False
    return True


def methods() -> list[str]:
    if not available():
        return ["gradcam"]
    from layerscope.cam import METHODS

    return list(METHODS)


def eligibility(shapes: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """``{name: (kind, reason)}`` for every probed module; empty without the CAM engine."""
    if not available():
        return {}
    from layerscope.cam import layer_eligibility

    out = {}
    for name, info in shapes.items():
        verdict = layer_eligibility(info)
        out[name] = (str(verdict.kind), str(verdict.reason))
    return out


def suggested_target(session: Session) -> int:
    from layerscope.errors import LayerscopeError

    if not available():
        raise LayerscopeError("the Grad-CAM engine (layerscope.cam) is not installed")
    from layerscope.cam import suggest_target_layer

    layer = suggest_target_layer(session.loaded.model, session.tree)
    name = layer if isinstance(layer, str) else getattr(layer, "name", None)
    if name is None:
        raise LayerscopeError("no layer with a spatial or token output to suggest")
    node = session.tree.get(name)
    if node is None:
        node = session.tree.resolve(name)
    return node.index
