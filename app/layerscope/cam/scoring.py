"""Which score a map explains: the top class, a class index or name, or a user callable.

Everything is checked against the real model output before any backward pass, so a
class index out of range or an unknown name fails with one line naming the problem.
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from layerscope.errors import LayerscopeError
from layerscope.parsing import as_int

TargetSpec = int | str | Sequence[int] | Callable[[object], Tensor] | None


@dataclass(frozen=True)
class ResolvedTarget:
    """A score function on the model output (one score per image) and how to name it."""

    score: Callable[[object], Tensor]
    label: int | tuple[int, ...] | str
    name: str | None
    classes: Tensor | None = None  # per-image class indices when the target is a class

    def for_image(self, index: int) -> Callable[[object], Tensor]:
        """Scores of a batch of perturbed copies of image ``index``."""
        if self.classes is None:
            return lambda out: _as_scores(self.score(out))
        k = int(self.classes[index])
        return lambda out: class_scores(out)[:, k]


def resolve_target(target: TargetSpec, output: object, categories: Sequence[str] | None) -> ResolvedTarget:
    """Turn the user's ``target`` into a score function, validated against ``output``."""
    if callable(target):
        name = getattr(target, "description", None) or getattr(target, "__name__", None) or type(target).__name__
        return ResolvedTarget(lambda out: _as_scores(target(out)), str(name), None)
    output = class_scores(output)
    if not isinstance(output, Tensor):
        raise LayerscopeError(
            f"the model returns a {type(output).__name__}, not a tensor of class scores; "
            "pass a target callable that picks the score (e.g. layerscope.cam.BoxTarget for detectors)"
        )
    if output.dim() != 2:
        dims = "×".join(map(str, output.shape))
        raise LayerscopeError(f"the model output is {dims}, not N×classes; pass a target callable")
    n, classes = output.shape
    target = _plain(target)
    if target is None:
        indices = output.argmax(dim=1)
    elif isinstance(target, str):
        indices = torch.full((n,), _class_from_name(target, categories, classes), device=output.device)
    elif isinstance(target, int):
        indices = torch.full((n,), _check_index(target, classes), device=output.device)
    else:
        values = [_check_index(k, classes) for k in target]
        if len(values) != n:
            raise LayerscopeError(f"{len(values)} target classes for a batch of {n} images")
        indices = torch.tensor(values, device=output.device)
    labels = tuple(int(k) for k in indices)
    names = [categories[k] if categories and k < len(categories) else None for k in labels]
    return ResolvedTarget(
        score=lambda out: class_scores(out).gather(1, indices[:, None]).squeeze(1),
        label=labels[0] if n == 1 else labels,
        name=names[0] if n == 1 else (", ".join(str(x) for x in names) if any(names) else None),
        classes=indices,
    )


def class_scores(output: object) -> object:
    """The class scores in a model's output: the tensor itself, or the ``logits`` attribute of a
    Hugging Face ``ModelOutput`` (which also holds pooled features, hidden states…). A plain
    dict stays as it is: its keys are the user's to interpret, with a target callable."""
    logits = getattr(output, "logits", None)
    return logits if isinstance(logits, Tensor) else output


def _plain(target: object) -> object:
    """Class targets as plain ``int`` / ``str`` / ``list[int]``: ``argmax`` hands out 0-d tensors
    and numpy integers, which must work like ints; bools and floats are mistakes."""
    if target is None or isinstance(target, str):
        return target
    if isinstance(target, Tensor):
        target = target.tolist()
    if isinstance(target, (list, tuple)):
        return [_as_index(k) for k in target]
    return _as_index(target)


def _as_index(value: object) -> int:
    if isinstance(value, bool):
        raise LayerscopeError(f"target {value!r} is a bool; give a class index, a class name or a callable")
    try:
        return operator.index(value)
    except TypeError:
        raise LayerscopeError(
            f"target must be a class index, a class name, a list of indices or a callable, "
            f"not {type(value).__name__} {value!r}"
        ) from None


def class_index(target: int | str, categories: Sequence[str] | None, classes: int | None = None) -> int:
    """One class given as an index or a name, checked against ``classes`` (or the names)."""
    target = _plain(target)
    if isinstance(target, list):
        raise LayerscopeError("one class is needed here, not a list")
    limit = classes if classes is not None else (len(categories) if categories else None)
    if isinstance(target, str):
        return _class_from_name(target, categories, limit if limit is not None else 1 << 31)
    return _check_index(target, limit) if limit is not None else target


def _check_index(k: int, classes: int) -> int:
    if not 0 <= k < classes:
        raise LayerscopeError(f"class index {k} is out of range: the model has {classes} classes (0–{classes - 1})")
    return k


def _class_from_name(name: str, categories: Sequence[str] | None, classes: int) -> int:
    if as_int(name) is not None:
        return _check_index(as_int(name), classes)
    if not categories:
        raise LayerscopeError(
            f"class name {name!r} given, but these weights have no class names; give a class index instead"
        )
    folded = [c.casefold() for c in categories]
    if name.casefold() in folded:
        return _check_index(folded.index(name.casefold()), classes)
    close = difflib.get_close_matches(name, list(categories), n=3, cutoff=0.6)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise LayerscopeError(f"unknown class name {name!r}{hint}")


def _as_scores(value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise LayerscopeError(f"the target callable returned a {type(value).__name__}, not a tensor")
    return value.reshape(-1) if value.dim() <= 1 else value.reshape(value.shape[0], -1).sum(dim=1)


class Prediction(NamedTuple):
    index: int
    name: str | None
    probability: float
    logit: float


def top_predictions(scores: object, categories: Sequence[str] | None, k: int = 5) -> list[Prediction]:
    """The top-``k`` classes of a classifier's ``N×classes`` logits (first image), with their
    softmax probabilities; empty for any other output (a detector's list of dicts).

    Ranked by the logits, as the default target (argmax) is: with random weights the softmax
    is so flat that float32 probabilities tie, and ranking them would put a class above the
    one the map explains. The CLI and the app print the same list."""
    scores = class_scores(scores)
    if not isinstance(scores, Tensor) or scores.dim() != 2:
        return []
    logits = scores[0].detach().float()
    values, indices = logits.topk(min(k, logits.numel()))
    probs = torch.softmax(logits, dim=0)[indices]
    names = list(categories or [])
    return [
        Prediction(i, names[i] if i < len(names) else None, p, v)
        for i, p, v in zip(indices.tolist(), probs.tolist(), values.tolist())
    ]


def maybe_target(
    target: TargetSpec, output: object, categories: Sequence[str] | None, *, required: bool
) -> ResolvedTarget | None:
    """``resolve_target``, or None when no target was asked for and none is required (an
    output that is not class scores, for a method that reads no class)."""
    try:
        return resolve_target(target, output, categories)
    except LayerscopeError:
        if required or target is not None:
            raise
        return None
