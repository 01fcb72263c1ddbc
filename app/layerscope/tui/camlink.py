"""The app's one doorway into the Grad-CAM engine (``layerscope.cam``, ``imaging``, ``render``).

Everything the app asks of that engine goes through these functions, so the
widgets stay independent of its exact names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layerscope.tui.session import Session

if TYPE_CHECKING:
    from layerscope.tree import ModuleTree


def methods() -> list[str]:
    from layerscope.cam import METHODS

    return list(METHODS)


def input_hw(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """The H×W of a probe input (``3×224×224``); token ids (``128``) have none, so the engine's default."""
    return (int(input_shape[-2]), int(input_shape[-1])) if len(input_shape) >= 3 else (224, 224)


def eligibility(shapes: dict[str, Any], hw: tuple[int, int] = (224, 224), hints: Any = None) -> dict[str, tuple[str, str]]:
    """``{name: (kind, reason)}`` for every probed module, judged as the engine judges them: with
    the probe input's H×W and ``model_hints(model)`` (run this in the probe worker)."""
    from layerscope.cam import layer_eligibility

    extra = {} if hints is None else {"hints": hints}
    out = {}
    for name, info in shapes.items():
        verdict = layer_eligibility(info, hw, **extra)
        out[name] = (str(verdict.kind), str(verdict.reason))
    return out


def model_hints(model: Any) -> Any:
    from layerscope.cam.reshape import model_hints as hints_of

    return hints_of(model)


def table_target(model: Any, tree: ModuleTree) -> str | None:
    """The engine's per-architecture choice (``layer4[-1]``, ``features[-1]``…), or None when the
    model is not in its table: a pure lookup, safe on the UI thread (``suggest_target_layer``
    is not: for other models it runs a probe forward)."""
    from layerscope.cam.targets import table_target as lookup

    return lookup(model, tree)


def probed_target(model: Any, tree: ModuleTree, shapes: dict[str, Any], hw: tuple[int, int]) -> str | None:
    """The engine's choice from probed shapes (the last spatial or token-grid output, stepped into
    plain containers: ``features[-1]``), as the CLI makes it; None when no layer fits. Run it in
    the probe worker."""
    from layerscope.cam.targets import suggest_from_shapes
    from layerscope.errors import LayerscopeError

    try:
        return suggest_from_shapes(model, tree, shapes, hw)
    except LayerscopeError:
        return None


class ProbePending(Exception):
    """The shapes are still being probed: a suggestion from them has to wait."""


def suggested_target(session: Session) -> int:
    """The node to suggest as the Grad-CAM target, without any forward pass on this thread.

    Raises ``ProbePending`` while the shape probe runs, ``LayerscopeError`` when nothing fits."""
    from layerscope.errors import LayerscopeError

    name = table_target(session.loaded.model, session.tree)
    if name is None:
        if session.probe_error is not None:
            raise LayerscopeError(f"the shape probe failed, so no layer can be suggested: {session.probe_error}")
        if session.shapes is None:
            raise ProbePending("probing shapes… try again in a moment")
        name = session.suggested
    if name is None:
        raise LayerscopeError("no layer with a spatial or token-grid output to suggest")
    node = session.tree.get(name)
    if node is None:
        node = session.tree.resolve(name)
    return node.index


MAX_CANDIDATES = 32  # layers hooked in one pass, so moving the target among them needs no new forward


CamCache = Any  # the layerscope.cam.PhotoExplainer of the current photo, with its last pass


@dataclass(frozen=True)
class CamView:
    """What the Grad-CAM tab shows and ``s`` saves."""

    result: Any  # layerscope.cam.CamResult
    image: Any  # PIL image, original size
    heat: Any  # the map on the original photo (H×W tensor)
    mask: Any  # where the model saw the photo; the overlay leaves the rest unpainted
    top5: tuple[Any, ...]  # layerscope.cam.Prediction (index, name, probability, logit)
    reused: bool  # redrawn from cached activations, no forward pass
    detections: tuple[Any, ...] = ()  # a detector's best boxes (layerscope.cam.detection.Detection)
    box: tuple[float, float, float, float] | None = None  # the detected box the map explains


@dataclass(frozen=True)
class CamRequest:
    """What one ``g`` asks for, taken on the UI thread: the worker reads only this, so keys
    pressed while it runs (``t``, ``m``, ``c``) change the next map, never the running one."""

    target: int  # node index of the layer
    method: str
    class_index: int | None
    image: Path
    eligibility: Any = field(default=None, compare=False)  # the verdicts the candidates come from

    @classmethod
    def of(cls, session: Session) -> CamRequest:
        assert session.target is not None
        return cls(session.target, session.method, session.class_index, session.image, session.eligibility)


def candidates(session: Session, target: int, eligibility: dict[str, tuple[str, str]] | None = None) -> list[str]:
    """The target and the eligible layers around it: ancestors, siblings, and its sweep family
    (``layer4.1`` → every ``layerN.M``), nearest first, at most ``MAX_CANDIDATES``."""
    from layerscope.cam.targets import family_names

    tree = session.tree
    node = tree.nodes[target]
    verdicts = session.eligibility if eligibility is None else eligibility
    eligible = {name for name, (kind, _) in verdicts.items() if kind != "none"}
    near: list[str] = []
    parent = node.parent
    while parent is not None:
        near.append(tree.nodes[parent].name)
        parent = tree.nodes[parent].parent
    if node.parent is not None:
        near += [tree.nodes[i].name for i in tree.nodes[node.parent].children]
    near += family_names(tree, node.name)
    chosen = [node.name]
    for name in near:
        if name in eligible and name not in chosen:
            chosen.append(name)
        if len(chosen) >= MAX_CANDIDATES:
            break
    return chosen


def compute(
    session: Session, request: CamRequest, cache: CamCache | None, *, progress=None, cancel=None
) -> tuple[CamView, CamCache]:
    """The map ``request`` asks for, from ``cache`` (the photo's ``PhotoExplainer``) when its
    pass hooked that layer. Runs in a worker: reads ``request`` and the session's fixed parts
    (model, tree), never its choices."""
    from layerscope.cam import PhotoExplainer, top_predictions

    layer = session.tree.nodes[request.target].name
    if cache is None or cache.path != request.image:
        cache = PhotoExplainer(session.loaded, request.image, tree=session.tree)
    reused = cache.has_pass([layer], request.method, request.class_index)
    [result] = cache.maps([layer], request.method, request.class_index, progress=progress, cancel=cancel,
                          hook=candidates(session, request.target, request.eligibility))
    top5 = tuple(top_predictions(result.scores, session.loaded.categories))
    found, box = _detections(result, request.class_index, session.loaded.categories)
    return CamView(result, cache.image, result.on_photo, cache.mask, top5, reused, found, box), cache


def _detections(result: Any, class_index: int | None, categories: Any) -> tuple[tuple[Any, ...], Any]:
    """A detector's best boxes and the one the map explains (eigencam explains none)."""
    from layerscope.cam.detection import explained_detections

    found, target = explained_detections(result.scores, class_index, categories)
    return tuple(found), target.box if target is not None and result.target is not None else None


def overlay_picture(view: CamView) -> Any:
    """The overlay at the photo's resolution, with a detector's explained box outlined: what ``s``
    saves and what a terminal that draws pixels shows."""
    from layerscope import imaging

    picture = imaging.overlay(view.image, view.heat, mask=view.mask)
    return picture if view.box is None else imaging.draw_box(picture, view.box)


def save(view: CamView, folder: Path, stem: str) -> tuple[Path, Path]:
    """The overlay PNG and the map as ``.npy`` (original photo size), side by side in ``folder``."""
    from layerscope import imaging

    png = imaging.save_png(overlay_picture(view), folder / f"{stem}.png")
    npy = imaging.save_npy(view.heat, folder / f"{stem}.npy")
    return png, npy


def check_image(path: Path) -> None:
    """Raise ``LayerscopeError`` unless ``path`` is an image the engine can read."""
    from layerscope import imaging

    imaging.load_image(path)


def score(view: CamView, cache: CamCache, class_index: int | None = None, *, progress=None, cancel=None) -> Any:
    """Deletion, insertion and average drop of the shown map (``cam.metrics.Faithfulness``) for
    ``class_index`` (None: the map's class, else the top one): the function ``layerscope rank``
    calls, at its default steps. Runs in the map's worker."""
    from layerscope.cam.metrics import faithfulness
    from layerscope.cam.ranking import score_target

    target = score_target(view.result, class_index)
    [found] = faithfulness(cache.model, cache.input, [view.result.heatmap], target, progress=progress, cancel=cancel)
    return found


def class_blind(method: str) -> bool:
    """A method that reads neither gradients nor target scores makes the same map for every class."""
    from layerscope.cam import get_method

    spec = get_method(method)
    return not (spec.needs_grad or spec.perturbs)


def rank(
    session: Session, request: CamRequest, cache: CamCache | None, *, progress=None, cancel=None
) -> tuple[Any, CamCache]:
    """The family of ``request.target`` ranked by ``cam.ranking.rank_maps`` (sanity check included),
    as ``layerscope rank`` does; runs in a worker. Returns the ``Ranking`` and the photo's explainer."""
    from layerscope.cam import PhotoExplainer
    from layerscope.cam.ranking import rank_maps

    if cache is None or cache.path != request.image:
        cache = PhotoExplainer(session.loaded, request.image, tree=session.tree)
    family = cache.layer_family(session.tree.nodes[request.target].name)
    maps = cache.maps(family, request.method, request.class_index, progress=progress, cancel=cancel)
    ranking = rank_maps(cache.model, cache.input, maps, target=request.class_index, categories=session.loaded.categories,
                        reshape=cache.reshape, progress=progress, cancel=cancel)
    return ranking, cache


def verdict(ranking: Any) -> str:
    from layerscope.cam.ranking import verdict as says

    return says(ranking)
