"""The app's one doorway into the Grad-CAM engine (``layerscope.cam``, ``imaging``, ``render``).

Everything the app asks of that engine goes through these functions and comes back as the
engine's own types (``Eligibility``, ``CamResult``, ``Faithfulness``, ``Ranking``), so the
widgets stay independent of its exact names. Importing this module imports torch: the
screens import it when a key or a worker first needs it, never before the first frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from layerscope.cam import CamCancelled, CamResult, PhotoExplainer, get_method, layer_eligibility, top_predictions  # noqa: F401  CamCancelled: what a stopped worker raises
from layerscope.cam.applies import has_global_attention, methods_for
from layerscope.cam.attention import APPLIES_TO
from layerscope.cam.attention_view import HeadMaps, all_head_maps
from layerscope.cam.detection import Detection, explained_detections
from layerscope.cam.metrics import Faithfulness, faithfulness
from layerscope.cam.ranking import Ranking, rank_maps, score_target, verdict  # noqa: F401  verdict: as the CLI says it
from layerscope.cam.reshape import model_hints
from layerscope.cam.scoring import Prediction
from layerscope.cam.targets import Eligibility, family_names, suggest_from_shapes, table_target
from layerscope.errors import LayerscopeError
from layerscope.io import imaging
from layerscope.io.savenames import map_stem, unused_stem
from layerscope.presentation.render import HeatmapPreview, heatmap_preview
from layerscope.running.jobcontrol import Cancel, Progress
from layerscope.running.probe import ShapeInfo
from layerscope.tree import ModuleTree
from layerscope.tui.session import Session

MAX_CANDIDATES = 32  # layers hooked in one pass, so moving the target among them needs no new forward

Box = tuple[float, float, float, float]


def methods(model: nn.Module) -> list[str]:
    """The methods the picker offers for ``model``: the attention methods only for a transformer
    with global attention (the engine decides, from the model's structure: ``cam.applies``)."""
    return methods_for(model)


def input_hw(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """The H×W of a probe input (``3×224×224``); token ids (``128``) have none, so the engine's default."""
    return (int(input_shape[-2]), int(input_shape[-1])) if len(input_shape) >= 3 else (224, 224)


def eligibility(model: nn.Module, shapes: Mapping[str, ShapeInfo], hw: tuple[int, int]) -> dict[str, Eligibility]:
    """Every probed module's verdict, judged as the engine judges it: with the probe input's H×W and
    the model's hints (run this in the probe worker)."""
    hints = model_hints(model)
    return {name: layer_eligibility(info, hw, hints=hints) for name, info in shapes.items()}


def probed_target(
    model: nn.Module, tree: ModuleTree, shapes: Mapping[str, ShapeInfo], hw: tuple[int, int]
) -> str | None:
    """The engine's choice from probed shapes (the last spatial or token-grid output, stepped into
    plain containers: ``features[-1]``), as the CLI makes it; None when no layer fits. Run it in
    the probe worker."""
    try:
        return suggest_from_shapes(model, tree, dict(shapes), hw)
    except LayerscopeError:
        return None


class ProbePending(Exception):
    """The shapes are still being probed: a suggestion from them has to wait."""


def suggested_target(session: Session) -> int:
    """The node to suggest as the Grad-CAM target, without any forward pass on this thread: the
    engine's per-architecture table (a pure lookup), else the probe's guess.

    Raises ``ProbePending`` while the shape probe runs, ``LayerscopeError`` when nothing fits."""
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


@dataclass(frozen=True)
class CamView:
    """What the Grad-CAM tab shows and ``s`` saves: one map laid on its photo."""

    result: CamResult
    image: Image.Image  # the photo, original size
    photo: Path  # where the photo came from (the saved files are named after it)
    heat: Tensor  # the map on the original photo (H×W)
    mask: Tensor  # where the model saw the photo; the overlay leaves the rest unpainted
    top5: tuple[Prediction, ...]
    reused: bool  # redrawn from cached activations, no forward pass
    class_blind: bool  # the method reads neither gradients nor target scores: one map for every class
    detections: tuple[Detection, ...] = ()  # a detector's best boxes
    box: Box | None = None  # the detected box the map explains
    class_index: int | None = None  # the class asked for (None: the top prediction)

    def answers(self, layer: str, method: str, class_index: int | None, image: Path) -> bool:
        """Whether this is the map those choices ask for: the tab shows it only then."""
        result = self.result
        return (result.layer, result.method, self.class_index, self.photo) == (layer, method, class_index, image)

    def preview(self, width: int, height: int, *, ascii_only: bool = False):
        """The map as ``width``×``height`` terminal cells: coloured over the photo, or (no colour)
        drawn by the ASCII ramp alone."""
        return heatmap_preview(
            self.heat,
            width,
            height,
            image=None if ascii_only else self.image,
            ascii=True if ascii_only else None,
            mask=self.mask,
            box=self.box,
        )

    def overlay(self) -> Image.Image:
        """The overlay at the photo's resolution, with a detector's explained box outlined: what ``s``
        saves and what a terminal that draws pixels shows."""
        picture = imaging.overlay(self.image, self.heat, mask=self.mask)
        return picture if self.box is None else imaging.draw_box(picture, self.box)


@dataclass(frozen=True)
class CamRequest:
    """What one ``g`` asks for, taken on the UI thread: the worker reads only this, so keys
    pressed while it runs (``t``, ``m``, ``c``) change the next map, never the running one."""

    target: int  # node index of the layer
    method: str
    class_index: int | None
    image: Path
    eligibility: Mapping[str, Eligibility] = field(default_factory=dict, compare=False)  # candidates come from it

    @classmethod
    def of(cls, session: Session, target: int | None = None) -> CamRequest:
        """The session's current choices, for ``target`` (default: the session's target)."""
        index = session.target if target is None else target
        assert index is not None
        return cls(index, session.method, session.class_index, session.image, dict(session.eligibility))


def candidates(session: Session, target: int, verdicts: Mapping[str, Eligibility]) -> list[str]:
    """The target and the eligible layers around it: ancestors, siblings, and its sweep family
    (``layer4.1`` → every ``layerN.M``) from the target's own container on, nearest first, at
    most ``MAX_CANDIDATES``.

    A family member before that container (``layer1.0`` for ``layer4.2``) would carry the first
    map's backward pass through nearly the whole network: resnet50's first map cost 2.8× a
    forward with ``layer1``–``layer3`` hooked, 1.3× without. ``r`` hooks the whole family itself."""
    tree = session.tree
    node = tree.nodes[target]
    eligible = {name for name, seen in verdicts.items() if seen.eligible}
    near: list[str] = []
    parent = node.parent
    while parent is not None:
        near.append(tree.nodes[parent].name)
        parent = tree.nodes[parent].parent
    first = node.index  # pre-order: what comes before the target's container runs before it
    if node.parent is not None:
        siblings = tree.nodes[node.parent].children
        near += [tree.nodes[i].name for i in siblings]
        first = siblings[0]
    near += [name for name in family_names(tree, node.name) if tree.resolve(name).index >= first]
    chosen = [node.name]
    for name in near:
        if name in eligible and name not in chosen:
            chosen.append(name)
        if len(chosen) >= MAX_CANDIDATES:
            break
    return chosen


def explainer_for(session: Session, request: CamRequest, explainer: PhotoExplainer | None) -> PhotoExplainer:
    """``explainer`` when it explains the requested photo, else a new one (reads the photo)."""
    if explainer is None or explainer.path != request.image:
        explainer = PhotoExplainer(session.loaded, request.image, tree=session.tree)
    return explainer


def compute(
    session: Session,
    request: CamRequest,
    explainer: PhotoExplainer | None,
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> tuple[CamView, PhotoExplainer]:
    """The map ``request`` asks for, from ``explainer`` (the photo's) when its pass hooked that
    layer. Runs in a worker: reads ``request`` and the session's fixed parts (model, tree),
    never its choices."""
    explainer = explainer_for(session, request, explainer)
    layer = session.tree.nodes[request.target].name
    reused = explainer.has_pass([layer], request.method, request.class_index)
    [result] = explainer.maps(
        [layer],
        request.method,
        request.class_index,
        progress=progress,
        cancel=cancel,
        hook=candidates(session, request.target, request.eligibility),
    )
    categories = session.loaded.categories
    found, target = explained_detections(result.scores, request.class_index, categories)
    box = target.box if target is not None and result.target is not None else None  # eigencam explains none
    spec = get_method(request.method)
    view = CamView(
        result=result,
        image=explainer.image,
        photo=request.image,
        heat=result.on_photo,
        mask=explainer.mask,
        top5=tuple(top_predictions(result.scores, categories)),
        reused=reused,
        class_blind=not (spec.needs_grad or spec.perturbs),
        detections=tuple(found),
        box=box,
        class_index=request.class_index,
    )
    return view, explainer


def score(
    view: CamView,
    explainer: PhotoExplainer,
    class_index: int | None = None,
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> Faithfulness:
    """Deletion, insertion and average drop of the shown map for ``class_index`` (None: the map's
    class, else the top one): the function ``layerscope rank`` calls, at its default steps.
    Runs in the map's worker."""
    target = score_target(view.result, class_index)
    [found] = faithfulness(
        explainer.model, explainer.input, [view.result.heatmap], target, progress=progress, cancel=cancel
    )
    return found


def rank(
    session: Session,
    request: CamRequest,
    explainer: PhotoExplainer | None,
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> tuple[Ranking, PhotoExplainer]:
    """The family of ``request.target`` ranked by ``cam.ranking.rank_maps`` (sanity check included),
    as ``layerscope rank`` does; runs in a worker."""
    explainer = explainer_for(session, request, explainer)
    family = explainer.layer_family(session.tree.nodes[request.target].name)
    maps = explainer.maps(family, request.method, request.class_index, progress=progress, cancel=cancel)
    ranking = rank_maps(
        explainer.model,
        explainer.input,
        maps,
        target=request.class_index,
        categories=session.loaded.categories,
        reshape=explainer.reshape,
        progress=progress,
        cancel=cancel,
        random_weights=not session.loaded.pretrained,
    )
    return ranking, explainer


def save(view: CamView, folder: Path, spec: str) -> tuple[Path, Path]:
    """The overlay PNG and the map as ``.npy`` (original photo size), side by side in ``folder``,
    named after the model, layer, method, photo and class; an existing pair is never replaced."""
    result = view.result
    stem = unused_stem(
        folder,
        map_stem(
            spec=spec,
            layer=result.layer,
            method=result.method,
            image=view.photo,
            target=result.target,
            target_name=result.target_name,
        ),
    )
    png = imaging.save_png(view.overlay(), stem.parent / f"{stem.name}.png")
    npy = imaging.save_npy(view.heat, stem.parent / f"{stem.name}.npy")
    return png, npy


def check_image(path: Path) -> None:
    """Raise ``LayerscopeError`` unless ``path`` is an image the engine can read."""
    imaging.load_image(path)


@dataclass(frozen=True)
class AttentionShot:
    """What the attention view shows: every block's per-head maps of one photo through one model."""

    maps: HeadMaps
    image: Image.Image  # the photo, original size
    photo: Path
    geometry: imaging.Geometry
    mask: Tensor  # where the model saw the photo
    model: int  # id() of the model: a shot never outlives the model or photo it was taken of

    def tile(self, block: int, head: int, width: int, height: int, *, ascii_only: bool = False) -> HeatmapPreview:
        """Head ``head`` of block ``block`` over the photo in ``width``×``height`` cells, scaled
        to its own range (a head's probabilities are small; its pattern is what shows)."""
        grid = self.maps.maps[block][0, head]
        low, high = grid.min(), grid.max()
        scaled = (grid - low) / (high - low) if high > low else torch.zeros_like(grid)
        size = (self.geometry.crop[3], self.geometry.crop[2])
        heat = imaging.to_original(F.interpolate(scaled[None, None], size=size, mode="bilinear")[0, 0], self.geometry)
        return heatmap_preview(
            heat,
            width,
            height,
            image=None if ascii_only else self.image,
            ascii=True if ascii_only else None,
            mask=self.mask,
        )


def attention_shot(session: Session, photo: Path) -> AttentionShot:
    """One no-grad forward of ``photo`` with every block's attention recorded (``cam.attention_view``);
    runs in the view's worker. A model without global attention: one line, no forward."""
    model = session.loaded.model
    if not has_global_attention(model):
        raise LayerscopeError(
            f"{type(model).__name__} has no global self-attention; the attention view applies to {APPLIES_TO}"
        )
    explainer = PhotoExplainer(session.loaded, photo, tree=session.tree)
    return AttentionShot(
        all_head_maps(model, explainer.input), explainer.image, photo, explainer.geometry, explainer.mask, id(model)
    )
