"""The app's one doorway into the Grad-CAM engine (``layerscope.cam``, ``imaging``, ``render``).

Everything the app asks of that engine goes through these functions, so the
widgets stay independent of its exact names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layerscope.tui.session import Session


def methods() -> list[str]:
    from layerscope.cam import METHODS

    return list(METHODS)


def eligibility(shapes: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """``{name: (kind, reason)}`` for every probed module."""
    from layerscope.cam import layer_eligibility

    out = {}
    for name, info in shapes.items():
        verdict = layer_eligibility(info)
        out[name] = (str(verdict.kind), str(verdict.reason))
    return out


def suggested_target(session: Session) -> int:
    from layerscope.cam import suggest_target_layer
    from layerscope.errors import LayerscopeError

    layer = suggest_target_layer(session.loaded.model, session.tree)
    name = layer if isinstance(layer, str) else getattr(layer, "name", None)
    if name is None:
        raise LayerscopeError("no layer with a spatial or token output to suggest")
    node = session.tree.get(name)
    if node is None:
        node = session.tree.resolve(name)
    return node.index


MAX_CANDIDATES = 32  # layers hooked in one pass, so moving the target among them needs no new forward


@dataclass
class CamCache:
    """One pass of the engine (``CamSession``) and the photo it saw, reusable while its key holds."""

    key: tuple
    engine: Any  # layerscope.cam.CamSession
    image: Any  # PIL image, original size
    geometry: Any  # layerscope.imaging.Geometry
    mask: Any  # the photo's pixels the model saw (imaging.seen_mask)


@dataclass(frozen=True)
class CamView:
    """What the Grad-CAM tab shows and ``s`` saves."""

    result: Any  # layerscope.cam.CamResult
    image: Any  # PIL image, original size
    heat: Any  # the map on the original photo (H×W tensor)
    mask: Any  # where the model saw the photo; the overlay leaves the rest unpainted
    top5: tuple[Any, ...]  # layerscope.cam.Prediction (index, name, probability)
    reused: bool  # redrawn from cached activations, no forward pass


def candidates(session: Session, target: int) -> list[str]:
    """The target and the eligible layers around it: ancestors, siblings, and its numbered family
    (``layer4.1`` → every ``layerN.M``), nearest first, at most ``MAX_CANDIDATES``."""
    tree = session.tree
    node = tree.nodes[target]
    eligible = {name for name, (kind, _) in session.eligibility.items() if kind != "none"}
    near: list[str] = []
    parent = node.parent
    while parent is not None:
        near.append(tree.nodes[parent].name)
        parent = tree.nodes[parent].parent
    if node.parent is not None:
        near += [tree.nodes[i].name for i in tree.nodes[node.parent].children]
    pattern = re.compile("^" + re.sub(r"\d+", r"\\d+", re.escape(node.name)) + "$")
    near += [n.name for n in tree.nodes if n.name and pattern.match(n.name)]
    chosen = [node.name]
    for name in near:
        if name in eligible and name not in chosen:
            chosen.append(name)
        if len(chosen) >= MAX_CANDIDATES:
            break
    return chosen


def compute(session: Session, cache: CamCache | None, *, progress=None, cancel=None) -> tuple[CamView, CamCache]:
    """The map for the session's target, from ``cache`` when it already hooked that layer."""
    from layerscope import imaging
    from layerscope.cam import CamSession, get_method, top_predictions
    from layerscope.errors import LayerscopeError

    loaded = session.loaded
    if loaded.device.type == "meta":
        raise LayerscopeError("Grad-CAM needs real weights: reopen with --device cpu or cuda, not meta")
    assert session.target is not None
    layer = session.node(session.target).name
    method = get_method(session.method)
    key = (str(session.image), session.class_index)
    reused = cache is not None and cache.key == key and layer in cache.engine.layers
    if not reused:
        image = imaging.load_image(session.image)
        tensor, geometry = imaging.preprocess(image, loaded.preprocess)
        engine = CamSession(
            loaded.model, tensor.to(loaded.device), candidates(session, session.target), session.class_index,
            categories=loaded.categories, gradients=True, need_target=True, tree=session.tree,
        )
        cache = CamCache(key, engine, image, geometry, imaging.seen_mask(geometry))
    assert cache is not None
    result = cache.engine.result(layer, method.name, progress=progress, cancel=cancel)
    heat = imaging.to_original(result.heatmap, cache.geometry)
    top5 = tuple(top_predictions(cache.engine.scores, loaded.categories))
    return CamView(result, cache.image, heat, cache.mask, top5, reused), cache


def save(view: CamView, folder: Path, stem: str) -> tuple[Path, Path]:
    """The overlay PNG and the map as ``.npy`` (original photo size), side by side in ``folder``."""
    from layerscope import imaging

    png = imaging.save_png(imaging.overlay(view.image, view.heat, mask=view.mask), folder / f"{stem}.png")
    npy = imaging.save_npy(view.heat, folder / f"{stem}.npy")
    return png, npy


def check_image(path: Path) -> None:
    """Raise ``LayerscopeError`` unless ``path`` is an image the engine can read."""
    from layerscope import imaging

    imaging.load_image(path)
