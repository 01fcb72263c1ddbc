"""Score-CAM's masked inputs and Ablation-CAM's zeroed channels: many forwards, in batches.

Progress is reported and cancellation checked between batches, so a long run can be
watched and stopped; every pass goes through ``model_guard`` like the others.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from layerscope.cam.folding import folded_copy
from layerscope.cam.hooks import flatten_output, model_guard
from layerscope.cam.masks import plan_masks, score_masks
from layerscope.cam.precision import check_precision, choose_precision, considered, flops_per_copy, scores_in
from layerscope.cam.reshape import Layout
from layerscope.cam.scoring import ResolvedTarget
from layerscope.errors import LayerscopeError
from layerscope.running.jobcontrol import Cancel, Progress, is_cancelled
from layerscope.running.jobcontrol import Cancelled as CamCancelled
from layerscope.running.probe import call_model


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


class BatchSizes:
    """Perturbed copies per forward: ``fixed``, or (``fixed`` None) chosen by throughput on the CPU.

    Chosen: each size of ``LADDER`` is timed on its second full batch (the first batch of a
    shape also pays for the kernels' set-up), up the ladder until one costs 25% more per copy
    than the best so far; the rest runs at the best. On a 2-core CPU the best size moves with
    the thread count and the load (4 copies at one thread, 16 or more at two on a busy machine),
    so it is measured on the work itself; every probe is real work. Elsewhere, and for
    Ablation-CAM, ``DEFAULT`` copies.
    """

    LADDER = (2, 4, 8, 16, 32)
    DEFAULT = 32

    def __init__(self, fixed: int | None, tune: bool) -> None:
        self.fixed = max(1, int(fixed)) if fixed is not None else (None if tune else self.DEFAULT)
        self.current = self.fixed or self.LADDER[0]
        self._uses: dict[int, int] = {}
        self.cost: dict[int, float] = {}  # size → seconds per copy, as measured
        self._probing = True

    def next(self) -> int:
        if self.fixed is None:
            ladder = [size for size in self.LADDER if size not in self.cost]
            self.current = ladder[0] if ladder and self._probing else min(self.cost, key=self.cost.__getitem__)
        return self.current

    def record(self, asked: int, copies: int, seconds: float) -> None:
        """A batch of ``copies`` (``asked`` for) took ``seconds``; partial batches are not timed."""
        if self.fixed is not None or copies != asked or asked in self.cost or not self._probing:
            return
        self._uses[asked] = self._uses.get(asked, 0) + 1
        if self._uses[asked] == 2:
            best = min(self.cost.values(), default=float("inf"))
            self.cost[asked] = seconds / copies
            self._probing = self.cost[asked] <= 1.25 * best


class ModelPerturber:
    """Score-CAM's masked inputs and Ablation-CAM's zeroed channels, in batches.

    Progress is reported and ``cancel`` checked between batches. ``batch_size`` None: chosen
    by throughput for Score-CAM on the CPU (``BatchSizes``). Score-CAM runs one forward per
    distinct mask (``cam.masks``), on a copy with its batch norms folded (``cam.folding``),
    channels-last on the CPU (oneDNN's faster layout there), in the ``precision`` that
    ``cam.precision`` chooses; ``self.precision`` is the one that ran (float32 for Ablation-CAM).
    """

    def __init__(
        self,
        context: PerturbContext,
        batch_size: int | None,
        progress: Progress | None,
        cancel: Cancel | None,
        precision: str = "auto",
    ) -> None:
        self.context = context
        self._precision = check_precision(precision)
        self.precision = "float32"
        self._on_cpu = context.input.device.type == "cpu"
        self._asked = batch_size
        self.sizes = BatchSizes(batch_size, tune=False)  # each method sets its own
        self.progress, self.cancel = progress, cancel
        self._upstream_once = True
        self._channels_last = self._on_cpu and context.input.dim() == 4

    @property
    def batch_size(self) -> int:
        return self.sizes.current

    def base_scores(self) -> Tensor:
        return self.context.base_scores.float()

    def _batches(self, weights: list[list[int]]) -> Iterator[tuple[int, slice]]:
        """``(image, units)`` batches over each image's units, ``self.sizes.next()`` at a time;
        ``weights[image][u]`` is how many channels unit ``u`` stands for (progress counts channels)."""
        total, done = sum(map(sum, weights)), 0
        for image, units in enumerate(weights):
            start = 0
            while start < len(units):
                if is_cancelled(self.cancel):
                    raise CamCancelled(f"cancelled after {done} of {total} perturbed passes")
                asked = self.sizes.next()
                part = slice(start, min(start + asked, len(units)))
                began = time.perf_counter()
                yield image, part
                self.sizes.record(asked, part.stop - part.start, time.perf_counter() - began)
                done += sum(units[part])
                start = part.stop
                if self.progress is not None:
                    self.progress(done, total)

    def _forward(self, x: Tensor, copies: int, model: nn.Module | None = None) -> object:
        device = x.device.type
        with memory_guard(
            f"running {copies} perturbed copies at once on {device}",
            f"use a smaller batch size (now {self.batch_size}; the CLI's --batch-size)",
        ):
            return call_model(self.context.model if model is None else model, x)

    def _masked_forward(self, model: nn.Module, image: int, masks: Tensor) -> object:
        x = self.context.input[image : image + 1] * masks[:, None]
        if self._channels_last:
            try:
                return self._forward(x.contiguous(memory_format=torch.channels_last), len(masks), model)
            except RuntimeError:  # e.g. a model that views its input as contiguous: plain layout from now on
                self._channels_last = False
        return self._forward(x, len(masks), model)

    def masked_scores(self, activations: Tensor) -> Tensor:
        ctx = self.context
        plans = [plan_masks(grid, ctx.input_hw) for grid in activations]
        found = [torch.zeros(len(plan.run), device=activations.device) for plan in plans]
        self.sizes = BatchSizes(self._asked, tune=self._on_cpu)
        with model_guard(ctx.model, grad=False):
            model = folded_copy(ctx.model)
            self.precision = self._chosen_precision(model, sum(len(plan.run) for plan in plans))
            with scores_in(self.precision, ctx.input.device):
                for image, part in self._batches([plan.channels_per_run().tolist() for plan in plans]):
                    channels = plans[image].run[part]
                    out = self._masked_forward(model, image, score_masks(activations[image, channels], ctx.input_hw))
                    found[image][part] = ctx.target.for_image(image)(out).float()
        return torch.stack([scores[plan.source] for scores, plan in zip(found, plans)])

    def _chosen_precision(self, model: nn.Module, masks: int) -> str:
        """The precision asked for; for ``"auto"``, ``cam.precision``'s rule, from the number of
        ``masks`` and one unmasked copy's arithmetic on ``model``. Every score of a map comes
        from the one precision chosen here."""
        if self._precision != "auto":
            return self._precision
        ctx = self.context
        if not considered(ctx.input.device, masks):
            return "float32"
        return choose_precision(flops_per_copy(model, ctx.input[:1]))

    def ablated_scores(self, channels: int) -> Tensor:
        ctx = self.context
        if ctx.layout.kind in ("levels", "custom"):
            raise LayerscopeError("ablationcam needs a layer with one output tensor; use eigencam or gradcam here")
        n = ctx.input.shape[0]
        scores = torch.zeros(n, channels, device=ctx.input.device)
        current: list[int] = []
        self.sizes = BatchSizes(self._asked, tune=False)

        def ablate(_module: nn.Module, _inputs: object, output: object) -> object:
            # rebuilt like the capture hooks do: a layer may return (tensor, int) or a dict
            tensors, rebuild = flatten_output(output)
            return rebuild([ctx.layout.ablate(tensors[0][:1], current)])

        with model_guard(ctx.model, grad=False) as handles:
            handles.append(ctx.module.register_forward_hook(ablate))
            for image, part in self._batches([[1] * channels] * n):
                ks = list(range(part.start, part.stop))
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
        x = self.context.input[image : image + 1]
        if self._upstream_once:
            try:
                out = self._forward(x, count)
            except RuntimeError:  # out of memory is not one: _forward raised it as a LayerscopeError
                out = None
            if out is not None and (not isinstance(out, Tensor) or out.shape[0] == count):
                return out
            self._upstream_once = False
        return self._forward(x.expand(count, *x.shape[1:]), count)
