"""Score-CAM's masked inputs and Ablation-CAM's zeroed channels: many forwards, in batches.

Progress is reported and cancellation checked between batches, so a long run can be
watched and stopped; every pass goes through ``model_guard`` like the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from layerscope.cam.hooks import flatten_output, model_guard
from layerscope.cam.reshape import Layout
from layerscope.cam.scoring import ResolvedTarget
from layerscope.errors import LayerscopeError
from layerscope.probe import call_model

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool] | Any  # a callable, or anything with ``is_set()`` (threading.Event)


class CamCancelled(RuntimeError):
    """Raised when ``cancel`` asks a Score-CAM or Ablation-CAM run to stop; hooks are already gone."""


@dataclass(frozen=True)
class PerturbContext:
    """What the perturbed forwards need from a finished pass, and nothing else: the pass
    builds one, so this module never reads the pass's own state."""

    model: nn.Module
    input: Tensor  # N×C×H×W, as the model saw it
    module: nn.Module  # the explained layer
    layout: Layout  # how that layer's output becomes N×C×h×w
    target: ResolvedTarget
    base_scores: Tensor  # the target score of each unperturbed image (N)

    @property
    def input_hw(self) -> tuple[int, int]:
        return (self.input.shape[-2], self.input.shape[-1])


def is_cancelled(cancel: Cancel | None) -> bool:
    """Whether ``cancel`` (a callable, or a ``threading.Event``-like object) asks to stop now;
    asked between batches by every loop that runs the model many times."""
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)
    return bool(is_set() if callable(is_set) else cancel())


@contextmanager
def memory_guard(what: str, hint: str) -> Iterator[None]:
    """Turn an out-of-memory error into one line that says what did not fit and what to try;
    nothing retries behind the user's back."""
    try:
        yield
    except torch.OutOfMemoryError as exc:
        raise LayerscopeError(f"out of memory {what}; {hint}") from exc
    except RuntimeError as exc:  # the CPU allocator's failure is a plain RuntimeError
        if "can't allocate memory" not in str(exc):
            raise
        raise LayerscopeError(f"out of memory {what}; {hint}") from exc


class ModelPerturber:
    """Score-CAM's masked inputs and Ablation-CAM's zeroed channels, in batches.

    Progress is reported and ``cancel`` checked between batches.
    """

    def __init__(
        self, context: PerturbContext, batch_size: int, progress: Progress | None, cancel: Cancel | None
    ) -> None:
        self.context = context
        self.batch_size = max(1, int(batch_size))
        self.progress, self.cancel = progress, cancel
        self._upstream_once = True

    def base_scores(self) -> Tensor:
        return self.context.base_scores.float()

    def _batches(self, channels: int) -> Iterator[tuple[int, list[int]]]:
        n = self.context.input.shape[0]
        total, done = n * channels, 0
        for image in range(n):
            for start in range(0, channels, self.batch_size):
                if is_cancelled(self.cancel):
                    raise CamCancelled(f"cancelled after {done} of {total} perturbed passes")
                ks = list(range(start, min(start + self.batch_size, channels)))
                yield image, ks
                done += len(ks)
                if self.progress is not None:
                    self.progress(done, total)

    def _forward(self, x: Tensor, copies: int) -> object:
        device = x.device.type
        with memory_guard(f"running {copies} perturbed copies at once on {device}",
                          f"use a smaller batch size (now {self.batch_size}; the CLI's --batch-size)"):
            return call_model(self.context.model, x)

    def masked_scores(self, activations: Tensor) -> Tensor:
        ctx = self.context
        n, channels = activations.shape[:2]
        scores = torch.zeros(n, channels, device=activations.device)
        with model_guard(ctx.model, grad=False):
            for image, ks in self._batches(channels):
                masks = F.interpolate(activations[image:image + 1, ks], size=ctx.input_hw, mode="bilinear",
                                      align_corners=False)[0]
                low = masks.amin(dim=(1, 2), keepdim=True)
                high = masks.amax(dim=(1, 2), keepdim=True)
                masks = (masks - low) / (high - low + 1e-7)
                out = self._forward(ctx.input[image:image + 1] * masks[:, None], len(ks))
                scores[image, ks] = ctx.target.for_image(image)(out).float()
        return scores

    def ablated_scores(self, channels: int) -> Tensor:
        ctx = self.context
        if ctx.layout.kind in ("levels", "custom"):
            raise LayerscopeError("ablationcam needs a layer with one output tensor; use eigencam or gradcam here")
        n = ctx.input.shape[0]
        scores = torch.zeros(n, channels, device=ctx.input.device)
        current: list[int] = []

        def ablate(_module: nn.Module, _inputs: object, output: object) -> object:
            # rebuilt like the capture hooks do: a layer may return (tensor, int) or a dict
            tensors, rebuild = flatten_output(output)
            return rebuild([ctx.layout.ablate(tensors[0][:1], current)])

        with model_guard(ctx.model, grad=False) as handles:
            handles.append(ctx.module.register_forward_hook(ablate))
            for image, ks in self._batches(channels):
                current[:] = ks
                out = self._ablated_forward(image, len(ks))
                scores[image, ks] = ctx.target.for_image(image)(out).float()
        return scores

    def _ablated_forward(self, image: int, count: int) -> object:
        """Run the layers before the target once, the ones after it on ``count`` ablated copies.

        A model that reuses its input's batch size after the layer cannot do that: it
        raises a shape error or returns the wrong number of rows, and from then on gets
        a full batch of copies. Running out of memory is not such an error: it stops here.
        """
        x = self.context.input[image:image + 1]
        if self._upstream_once:
            try:
                out = self._forward(x, count)
            except RuntimeError:  # out of memory is not one: _forward raised it as a LayerscopeError
                out = None
            if out is not None and (not isinstance(out, Tensor) or out.shape[0] == count):
                return out
            self._upstream_once = False
        return self._forward(x.expand(count, *x.shape[1:]), count)
