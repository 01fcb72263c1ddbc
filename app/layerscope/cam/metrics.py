"""How faithful a map is to the model: deletion, insertion and confidence change.

A heatmap claims "these pixels carry the class". The perturbation metrics test the
claim on the model itself (score = the softmax probability of ``target``):

- **deletion** (Petsiuk et al., RISE, 2018): zero the pixels the map ranks highest,
  in ``steps`` equal slices, and watch the score fall. Zero in normalised space is the
  dataset's mean colour. The area under the curve is lower for a better map.
- **insertion**: start from the all-zero (mean-colour) image and put the pixels back
  in the map's order; the area is higher for a better map.
- **confidence change** (Chattopadhay et al., Grad-CAM++, 2018): the score of the
  photo multiplied by its own map; *average drop* is the relative loss, and
  *increased* says the masked photo scored higher than the whole one.

``faithfulness`` scores many maps of one photo in a single stream of batched
forwards under ``no_grad`` (through ``model_guard``: no hook left, flags restored),
checking ``cancel`` and reporting ``progress`` between batches. The two inputs every
curve shares, the photo and the blank, run once for all maps. ``randomization_check``
(``cam.sanity``) is the model-side test: does the map change when the model does?
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from layerscope.cam.hooks import checked_input, model_guard
from layerscope.cam.perturb import CamCancelled, Cancel, Progress, is_cancelled, memory_guard
from layerscope.cam.sanity import is_blind, randomization_check, randomization_checks, spearman
from layerscope.errors import LayerscopeError
from layerscope.running.probe import call_model

__all__ = [
    "Faithfulness",
    "confidence_change",
    "deletion_auc",
    "faithfulness",
    "insertion_auc",
    "is_blind",
    "randomization_check",
    "randomization_checks",
    "spearman",
]


@dataclass(frozen=True)
class Faithfulness:
    """The perturbation scores of one map; the curves hold the ``steps + 1`` probabilities."""

    deletion_auc: float
    insertion_auc: float
    average_drop: float
    increased: bool
    deletion_curve: tuple[float, ...]
    insertion_curve: tuple[float, ...]

    @property
    def gap(self) -> float:
        """Insertion minus deletion: one number, higher is better, that ``rank`` sorts by."""
        return self.insertion_auc - self.deletion_auc


@dataclass(frozen=True)
class _Job:
    """One perturbed input: map ``slot``'s deletion or insertion step ``k``, or its product."""

    slot: int  # the map's place in the flattened list of every image's maps
    kind: str  # "del", "ins", "mult"
    k: int = 0


def faithfulness(
    model: nn.Module,
    x: Tensor,
    heatmaps: Sequence[Tensor],
    target: int,
    steps: int = 20,
    *,
    batch_size: int = 32,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> list[Faithfulness]:
    """Deletion, insertion and confidence change of every map in ``heatmaps`` (each ``H×W``,
    like ``x``'s last two dimensions), all from one stream of batched forwards."""
    if isinstance(x, Tensor) and x.dim() == 4 and x.shape[0] != 1:
        raise LayerscopeError(f"the metrics explain one image, got a batch of {x.shape[0]}")
    return faithfulness_batch(
        model, x, [heatmaps], [target], steps, batch_size=batch_size, progress=progress, cancel=cancel
    )[0]


def faithfulness_batch(
    model: nn.Module,
    x: Tensor,
    heatmaps: Sequence[Sequence[Tensor]],
    targets: Sequence[int],
    steps: int = 20,
    *,
    batch_size: int = 32,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> list[list[Faithfulness]]:
    """``faithfulness`` for a batch of images (``x`` is ``N×C×H×W``; ``heatmaps[i]`` and
    ``targets[i]`` belong to image ``i``): the perturbed copies of every image share one
    stream of forwards, so a folder fills its batches however few maps each photo has.
    Image ``i``'s scores are computed exactly as ``faithfulness`` on that image alone."""
    if steps < 1:
        raise LayerscopeError(f"steps must be at least 1, got {steps}")
    x = checked_input(model, x)
    if len(heatmaps) != x.shape[0] or len(targets) != x.shape[0]:
        raise LayerscopeError(
            f"{x.shape[0]} images need as many map lists and targets, got {len(heatmaps)} and {len(targets)}"
        )
    owner = [i for i, maps in enumerate(heatmaps) for _ in maps]
    flat = [_checked_map(h, x) for maps in heatmaps for h in maps]
    plan = _Plan(x, flat, owner, steps)
    jobs = [_Job(s, kind, k) for s in range(len(flat)) for kind in ("del", "ins") for k in range(1, steps)]
    jobs += [_Job(s, "mult") for s in range(len(flat))]
    classes = torch.tensor([int(t) for t in targets], device=x.device)
    with model_guard(model, grad=False):
        # the photos and one blank in one forward: the blank is the same input for every image
        shared = _softmax(model, torch.cat([x, torch.zeros_like(x[:1])]), classes)
        whole = shared[torch.arange(len(classes)), classes.cpu()].tolist()
        blank = shared[-1, classes.cpu()].tolist()
        values = list(_stream(model, plan, jobs, classes, max(1, int(batch_size)), progress, cancel))
    found = dict(zip(jobs, values))
    scores = [_scores(s, steps, whole[owner[s]], blank[owner[s]], found) for s in range(len(flat))]
    return [[scores[s] for s in range(len(flat)) if owner[s] == i] for i in range(x.shape[0])]


def deletion_auc(model: nn.Module, x: Tensor, heatmap: Tensor, target: int, steps: int = 20, **kwargs) -> float:
    """Area under the score as the map's highest pixels are zeroed first; lower is better."""
    return faithfulness(model, x, [heatmap], target, steps, **kwargs)[0].deletion_auc


def insertion_auc(model: nn.Module, x: Tensor, heatmap: Tensor, target: int, steps: int = 20, **kwargs) -> float:
    """Area under the score as the map's highest pixels are restored first; higher is better."""
    return faithfulness(model, x, [heatmap], target, steps, **kwargs)[0].insertion_auc


def confidence_change(model: nn.Module, x: Tensor, heatmap: Tensor, target: int, **kwargs) -> tuple[float, bool]:
    """``(average drop, increased)``: Y = score(x), O = score(x·map); max(0, Y − O)/Y and O > Y."""
    scores = faithfulness(model, x, [heatmap], target, 1, **kwargs)[0]
    return scores.average_drop, scores.increased


class _Plan:
    """Builds the perturbed inputs of a batch of jobs from the photos and each map's pixel ranks."""

    def __init__(self, x: Tensor, heatmaps: list[Tensor], owner: list[int], steps: int) -> None:
        self.x, self.steps = x, steps
        self.ranks = torch.stack([_pixel_ranks(h) for h in heatmaps]) if heatmaps else None
        self.maps = torch.stack(heatmaps) if heatmaps else None
        self.owner = torch.tensor(owner, device=x.device, dtype=torch.long)
        self.pixels = x.shape[-2] * x.shape[-1]

    def count(self, k: int) -> int:
        """Pixels changed at step ``k``: round(k·H·W/steps), as the protocol writes it."""
        return round(k * self.pixels / self.steps)

    def images(self, jobs: Sequence[_Job]) -> Tensor:
        """The image each job perturbs (its row of ``x``)."""
        return self.owner[torch.tensor([j.slot for j in jobs], device=self.x.device)]

    def inputs(self, jobs: Sequence[_Job]) -> Tensor:
        assert self.ranks is not None and self.maps is not None
        index = torch.tensor([j.slot for j in jobs], device=self.x.device)
        counts = torch.tensor([self.count(j.k) for j in jobs], device=self.x.device)[:, None, None]
        ranks = self.ranks[index]
        deleting = torch.tensor([j.kind == "del" for j in jobs], device=self.x.device)[:, None, None]
        kept = torch.where(deleting, ranks >= counts, ranks < counts).float()
        mult = torch.tensor([j.kind == "mult" for j in jobs], device=self.x.device)[:, None, None]
        weights = torch.where(mult, self.maps[index], kept)
        return self.x[self.owner[index]] * weights[:, None]


def _stream(
    model: nn.Module,
    plan: _Plan,
    jobs: list[_Job],
    classes: Tensor,
    batch_size: int,
    progress: Progress | None,
    cancel: Cancel | None,
) -> Iterator[float]:
    done = 0
    for start in range(0, len(jobs), batch_size):
        if is_cancelled(cancel):
            raise CamCancelled(f"cancelled after {done} of {len(jobs)} perturbed passes")
        batch = jobs[start : start + batch_size]
        with memory_guard(
            f"scoring {len(batch)} perturbed copies at once on {plan.x.device.type}",
            f"use a smaller batch size (now {batch_size}; the CLI's --batch-size)",
        ):
            rows = _softmax(model, plan.inputs(batch), classes)
            yield from rows[torch.arange(len(batch)), classes[plan.images(batch)].cpu()].tolist()
        done += len(batch)
        if progress is not None:
            progress(done, len(jobs))


def _softmax(model: nn.Module, batch: Tensor, classes: Tensor) -> Tensor:
    """The model's class probabilities for ``batch`` (on the CPU), after checking that it is a
    classifier and that every class in ``classes`` is one of its outputs."""
    out = call_model(model, batch)
    if not isinstance(out, Tensor) or out.dim() != 2:
        kind = "×".join(map(str, out.shape)) if isinstance(out, Tensor) else type(out).__name__
        raise LayerscopeError(f"the metrics need a classifier's N×classes scores; the model returned {kind}")
    bad = [int(k) for k in classes.tolist() if not 0 <= int(k) < out.shape[1]]
    if bad:
        raise LayerscopeError(f"class index {bad[0]} is out of range: the model has {out.shape[1]} classes")
    return out.float().softmax(dim=1).cpu()


def _scores(index: int, steps: int, whole: float, blank: float, found: dict[_Job, float]) -> Faithfulness:
    deletion = (whole, *(found[_Job(index, "del", k)] for k in range(1, steps)), blank)
    insertion = (blank, *(found[_Job(index, "ins", k)] for k in range(1, steps)), whole)
    masked = found[_Job(index, "mult")]
    return Faithfulness(
        deletion_auc=_auc(deletion, steps),
        insertion_auc=_auc(insertion, steps),
        average_drop=max(0.0, whole - masked) / whole if whole > 0 else 0.0,
        increased=masked > whole,
        deletion_curve=deletion,
        insertion_curve=insertion,
    )


def _auc(curve: Sequence[float], steps: int) -> float:
    """The trapezoid mean over ``steps + 1`` equally spaced points."""
    return (sum(curve) - (curve[0] + curve[-1]) / 2) / steps


def _checked_map(heatmap: Tensor, x: Tensor) -> Tensor:
    """``heatmap`` as float32 on ``x``'s device, or one line saying why it cannot score ``x``."""
    if not isinstance(heatmap, Tensor) or tuple(heatmap.shape) != tuple(x.shape[-2:]):
        got = "×".join(map(str, getattr(heatmap, "shape", ()))) or type(heatmap).__name__
        raise LayerscopeError(f"the heatmap must be {x.shape[-2]}×{x.shape[-1]} like the input, got {got}")
    return heatmap.to(x.device, torch.float32)


def _pixel_ranks(heatmap: Tensor) -> Tensor:
    """Each pixel's place in the deletion order: highest value first, ties in reading order."""
    order = torch.argsort(-heatmap.flatten(), stable=True)
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel(), device=order.device)
    return ranks.view(heatmap.shape)
