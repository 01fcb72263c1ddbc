"""Which target layer to use, answered with evidence: every layer's map scored and ranked.

``rank_maps`` takes the maps of one photo (one per layer, from one pass), scores them
all in one stream of batched perturbed forwards (``cam.metrics``), runs the
randomisation check down the same layers as one cascade (``cam.sanity``), and sorts
the layers by insertion minus deletion AUC, best first. The CLI's ``rank`` and the
app's ``r`` both call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from layerscope.cam.core import CamResult
from layerscope.cam.metrics import Faithfulness, faithfulness
from layerscope.cam.perturb import Cancel, Progress
from layerscope.cam.reshape import Reshape
from layerscope.cam.sanity import BLIND, is_blind, randomization_checks
from layerscope.errors import LayerscopeError

# an average drop at or above this: the photo kept only where the map lights loses at least 80% of the
# score, so that region does not carry it (Grad-CAM++ reports 36–47% for good maps on ImageNet)
DROP_LIMIT = 0.8


def layer_sanity(rho: float | None) -> str:
    """One layer's sanity verdict in a word: ``passed``, ``class-blind`` (ρ ≥ ``BLIND``),
    ``flat`` (the randomised map has nothing to compare: it changed) or ``not checked``."""
    if rho is None:
        return "not checked"
    if rho != rho:
        return "flat"
    return "class-blind" if is_blind(rho) else "passed"


def not_eligible(average_drop: float, rho: float | None, all_zero: bool = False) -> str | None:
    """Why a map cannot be called best whatever its insertion − deletion, or None when it can.

    Deletion and insertion reward maps that exploit the perturbation itself (a border, a
    corner), so a high gap alone is no evidence: the map must also follow the model (the
    sanity check) and its region must carry the score (average drop below ``DROP_LIMIT``)."""
    if all_zero:
        return "its map is zero everywhere"
    if rho is not None and is_blind(rho):
        return f"fails the sanity check: ρ {rho:+.2f} ≥ {BLIND:.2f} (the map ignores the layers above)"
    if average_drop >= DROP_LIMIT:
        return f"average drop {average_drop:.3f} ≥ {DROP_LIMIT} (its region does not carry the score)"
    return None


@dataclass(frozen=True)
class LayerScore:
    """One layer's map and its evidence; ``rho`` is the sanity check's Spearman ρ (None: not run)."""

    layer: str
    scores: Faithfulness
    rho: float | None
    all_zero: bool = False
    method: str = ""

    @property
    def label(self) -> str:
        """``method@layer`` when a ranking mixes methods, else the layer alone."""
        return f"{self.method}@{self.layer}" if self.method else self.layer

    @property
    def sanity(self) -> str:
        return layer_sanity(self.rho)

    @property
    def excluded(self) -> str | None:
        """Why this map cannot be called best (None: it can)."""
        return not_eligible(self.scores.average_drop, self.rho, self.all_zero)


@dataclass(frozen=True)
class Ranking:
    """Layers (or method × layer pairs) best first (highest insertion − deletion; all-zero maps
    last), for one class; ``method`` joins the methods' names with commas when there are several."""

    target: int
    target_name: str | None
    method: str
    layers: tuple[LayerScore, ...]
    random_weights: bool = False  # the model is untrained: nothing here means anything

    @property
    def best(self) -> LayerScore:
        """The first of the order (highest insertion − deletion), eligible or not."""
        return self.layers[0]

    @property
    def leading(self) -> LayerScore | None:
        """The first map that may be called best (``LayerScore.excluded`` is None), if any."""
        return next((s for s in self.layers if s.excluded is None), None)

    @property
    def blind(self) -> bool:
        """True when every checked map survived the randomisation: the method ignores the model's
        later layers (and so the class), whatever its scores say."""
        rhos = [s.rho for s in self.layers if s.rho is not None]
        return bool(rhos) and all(is_blind(r) for r in rhos)

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.method.split(","))

    def score_of(self, layer: str, method: str | None = None) -> LayerScore | None:
        return next((s for s in self.layers if s.layer == layer and (method is None or s.method in ("", method))), None)

    def blind_methods(self) -> list[str]:
        """The methods whose every checked map survived the randomisation."""
        found = []
        for method in self.methods:
            rhos = [s.rho for s in self.layers if s.rho is not None and s.method in ("", method)]
            if rhos and all(is_blind(r) for r in rhos):
                found.append(method)
        return found


def rank_maps(
    model: nn.Module,
    x: Tensor,
    results: Sequence[CamResult],
    *,
    target: int | None = None,
    steps: int = 20,
    batch_size: int = 32,
    sanity: bool = True,
    categories: Sequence[str] | None = None,
    reshape: Reshape = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    random_weights: bool = False,
) -> Ranking:
    """Score and rank ``results`` (one ``CamResult`` per layer and method, one image, one class):
    maps of several methods are ranked together, each ``LayerScore`` naming its method, so the
    table answers "which method at which layer" by the same evidence.

    ``random_weights``: the model is untrained (``not LoadedModel.pretrained``); the ranking is
    still computed, and ``verdict`` says it means nothing.

    ``target`` is the class whose probability scores the maps: by default the maps' own class,
    or for a class-blind method's maps made without one, the top class. ``progress(done,
    total)`` counts the perturbed forwards, then one step per sanity check."""
    if not results:
        raise LayerscopeError("nothing to rank: no layers given")
    target = _common_target(results) if target is None else int(target)
    methods = list(dict.fromkeys(r.method for r in results))
    mixed = len(methods) > 1
    name = results[0].target_name if results[0].target == target else _class_name(target, categories)
    checks = len(results) if sanity else 0
    passes = len(results) * (2 * steps - 1)  # the photo and the blank run once for all maps
    total = passes + checks
    report = None if progress is None else (lambda done, _total: progress(done, total))
    scores = faithfulness(
        model, x, [r.heatmap for r in results], target, steps, batch_size=batch_size, progress=report, cancel=cancel
    )
    rhos: dict[tuple[str, str], float] = {}
    done = 0
    for method in methods if sanity else ():
        mine = [r for r in results if r.method == method]
        after = None if progress is None else (lambda d, _t, base=done: progress(passes + base + d, total))
        checked = randomization_checks(
            model,
            x,
            [r.layer for r in mine],
            method,
            target,
            originals=[r.heatmap for r in mine],
            categories=categories,
            reshape=reshape,
            progress=after,
            cancel=cancel,
            precision=mine[0].precision,
        )
        rhos.update(((method, layer), rho) for layer, rho in checked.items())
        done += len(mine)
    found = [
        LayerScore(
            layer=r.layer,
            scores=s,
            rho=rhos.get((r.method, r.layer)),
            all_zero=r.all_zero,
            method=r.method if mixed else "",
        )
        for r, s in zip(results, scores)
    ]
    # an all-zero map claims nothing (its "order" is reading order), so it goes last whatever it scores;
    # the sort is stable: equal scores keep the forward order
    found.sort(key=lambda s: (s.all_zero, -s.scores.gap))
    return Ranking(
        target=target, target_name=name, method=",".join(methods), layers=tuple(found), random_weights=random_weights
    )


RANDOM_VERDICT = (
    "meaningless: the weights are random (untrained), so these maps and this ranking mean nothing; "
    "load trained weights (--weights; `layerscope weights` lists those on this machine)"
)


def verdict(ranking: Ranking) -> str:
    """What the randomisation check says about the method, in one line (the CLI and the app).

    On random weights every score is noise around chance, and a check that the maps change
    when layers are re-initialised proves nothing: the model was never anything but random.
    """
    if ranking.random_weights:
        return RANDOM_VERDICT
    rhos = [s.rho for s in ranking.layers if s.rho is not None]
    if not rhos:
        return "not checked"
    finite = [r for r in rhos if r == r]
    low, high = (f"{min(finite):+.2f}", f"{max(finite):+.2f}") if finite else ("", "")
    span = "the maps went flat" if not finite else f"ρ {low}" if low == high else f"ρ {low} to {high}"
    blind = ranking.blind_methods()
    if len(ranking.methods) > 1:
        passed = [m for m in ranking.methods if m not in blind]
        parts = [f"passed: {', '.join(passed)} (maps change when later layers are re-initialised)"] if passed else []
        parts += [f"class-blind: {', '.join(blind)} (maps survive re-initialising the later layers)"] if blind else []
        return f"{'; '.join(parts)}; {span} overall"
    if ranking.blind:
        return (
            f"class-blind: {ranking.method}'s maps stay the same ({span}) when every layer after the target "
            f"is re-initialised; they show where the layer is active, not what decided the class"
        )
    return (
        f"passed: {ranking.method}'s maps change when the layers after the target are re-initialised "
        f"({span}); they follow the model"
    )


def score_target(result: CamResult, chosen: int | None = None) -> int:
    """The class whose probability scores ``result``: ``chosen``, else its own target, else (a
    class-blind map made without one) the top class of the logits it was made with."""
    if chosen is not None:
        return int(chosen)
    if isinstance(result.target, int):
        return result.target
    scores = result.scores
    if result.target is None and isinstance(scores, Tensor) and scores.dim() == 2:
        return int(scores[0].argmax())
    raise LayerscopeError("scoring a map needs a classifier's class (the model's output is not N×classes scores)")


def _common_target(results: Sequence[CamResult]) -> int:
    if any(r.heatmap.dim() != 2 for r in results):
        raise LayerscopeError("ranking explains one image; these maps are a batch")
    targets = {score_target(r) for r in results}
    if len(targets) != 1:
        raise LayerscopeError("ranking needs the maps of one image for one class")
    return targets.pop()


def _class_name(target: int, categories: Sequence[str] | None) -> str | None:
    return categories[target] if categories and 0 <= target < len(categories) else None
