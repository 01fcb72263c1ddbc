"""One forward pass, one ``torch.autograd.grad`` call, and the maps that follow.

``CamPass`` runs the pass with capture hooks on every requested layer
(``cam.hooks``) and caches their activations and gradients as grids, so any hooked
layer can be redrawn with any method without touching the model again; the
perturbation methods get their many forwards from ``cam.perturb``. Why this is fast
and clean is explained in ``cam.hooks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from layerscope.cam import detection
from layerscope.cam.attention import RolloutOptions
from layerscope.cam.attention_maps import AttentionInputs, AttentionMaps, recorder_for, reduce_attention
from layerscope.cam.hooks import capture_hook, checked_input, detached, keep_hook, model_guard
from layerscope.cam.layers import LayerRef, resolve_layer, resolve_layers
from layerscope.cam.methods import CamInputs, Method, get_method
from layerscope.cam.perturb import Cancel, ModelPerturber, PerturbContext, Progress, memory_guard
from layerscope.cam.reshape import Layout, Reshape, infer_layout, model_hints
from layerscope.cam.scoring import ResolvedTarget, TargetSpec, class_index, class_scores, maybe_target
from layerscope.errors import LayerscopeError
from layerscope.models.adapters import text_model_problem
from layerscope.running.probe import call_model
from layerscope.tree import ModuleTree, build_tree


@dataclass(frozen=True)
class CamResult:
    """One method's map for one layer.

    For a single image ``heatmap`` is ``H×W`` and ``raw`` ``h×w``; for a batch of N > 1
    both gain a leading ``N`` dimension (``per_image()`` splits them) and ``target``
    is a tuple of per-image classes. ``all_zero`` is true when no map in the result
    has anything to show (zero or constant everywhere): common with random weights,
    and not an error. ``precision``: what the masked forwards that scored a Score-CAM map
    ran in (``cam.precision``); float32 for every other method.
    """

    heatmap: Tensor
    raw: Tensor
    target: int | tuple[int, ...] | str | None
    target_name: str | None
    scores: object
    layer: str
    method: str
    layout: str = ""
    precision: str = "float32"
    on_photo: Tensor | None = None  # the map on the original photo's H×W (``PhotoExplainer.maps``)

    @property
    def all_zero(self) -> bool:
        """Asked on demand: reading a GPU tensor's value waits for the device, and a sweep
        should not wait once per layer."""
        return _is_flat(self.heatmap)

    def per_image(self) -> list["CamResult"]:
        if self.heatmap.dim() == 2:
            return [self]
        targets = self.target if isinstance(self.target, tuple) else (self.target,) * len(self.heatmap)
        return [replace(self, heatmap=h, raw=r, target=t) for h, r, t in zip(self.heatmap, self.raw, targets)]


class CamPass:
    """One forward (and, for gradient methods, one backward) with hooks on many layers.

    Activations and gradients of every hooked layer are cached as ``N×C×h×w`` grids,
    so ``result(layer, method)`` redraws any of them, with any gradient or
    activation method, without touching the model again; Score-CAM and Ablation-CAM
    run their own perturbed forwards. A new target needs a new pass.

    With ``attention=True`` the pass is for the transformer-native methods instead
    (``rollout``, ``gradrollout``, ``legrad``): it records every block's attention
    probabilities (``cam.attention_maps``), and each hooked layer names the last block whose
    attention enters its map; ``rollout`` sets rollout's head fusion and discard ratio.
    """

    def __init__(
        self,
        model: nn.Module,
        input_tensor: Tensor,
        layers: Sequence[LayerRef],
        target: TargetSpec = None,
        *,
        categories: Sequence[str] | None = None,
        reshape: Reshape = None,
        gradients: bool = True,
        need_target: bool = True,
        tree: ModuleTree | None = None,
        attention: bool = False,
        rollout: RolloutOptions = RolloutOptions(),
    ) -> None:
        problem = text_model_problem(model)
        if problem:
            raise LayerscopeError(problem)
        self.model = model
        self.input = checked_input(model, input_tensor)
        self.input_hw = (self.input.shape[-2], self.input.shape[-1])
        resolved, self.tree = resolve_layers(model, layers, tree)  # one tree for the whole pass
        self.modules = dict(resolved)
        self.layers: tuple[str, ...] = tuple(self.modules)
        self.gradients = gradients
        self.attention = attention
        self.rollout = rollout
        self.attention_maps: AttentionMaps | None = None
        self.detection = detection.is_detection_model(model)
        if self.detection and (gradients or need_target) and not callable(target):
            # a class for a detector means: the best box of that class
            label = None if target is None else class_index(target, categories)
            target = detection.BoxTarget(label=label)
        self.base_scores: Tensor | None = None  # the target score of each image, before any perturbation
        acts, grads, output, self.target, self.frame = self._run(target, categories, gradients or need_target)
        self.scores = detached(class_scores(output))
        self.layouts = {name: self._layout(name, acts[name], reshape) for name in self.layers}
        self.activations = {n: self._grid(n, acts[n]) for n in self.layers}
        self.grads = {n: self._grid(n, grads[n]) for n in self.layers} if gradients and not attention else {}

    def _run(self, target: TargetSpec, categories: Sequence[str] | None, need_target: bool):
        if self.attention:
            return self._run_attention(target, categories, need_target)
        store: dict[str, list[Tensor]] = {}
        with model_guard(self.model, grad=False) as handles:  # the first capture hook turns gradients on
            for name, module in self.modules.items():
                handles.append(module.register_forward_hook(capture_hook(name, store, self.gradients)))
            frame = detection.FrameRecorder.attach(self.model, handles) if self.detection else None
            device = self.input.device.type
            free = "free memory on the GPU or use the cpu" if device != "cpu" else "close other programs"
            with memory_guard(
                f"running {type(self.model).__name__} on a {'×'.join(map(str, self.input.shape))} input on {device}",
                free,
            ):
                output = call_model(self.model, self.input)
            missing = [name for name in self.layers if name not in store]
            if missing:
                raise LayerscopeError(f"layer {missing[0]!r} did not run during the model's forward pass")
            resolved = maybe_target(target, output, categories, required=need_target)
            with memory_guard(
                f"computing the gradients at {len(self.layers)} layer(s) on {device}",
                "hook fewer layers, or use eigencam (no gradients)",
            ):
                grads = self._backward(store, output, resolved) if self.gradients else {}
            self.base_scores = resolved.score(output).detach() if resolved is not None else None
        acts = {name: [t.detach() for t in store[name]] for name in self.layers}
        return acts, grads, output, resolved, frame

    def _run_attention(self, target: TargetSpec, categories: Sequence[str] | None, need_target: bool):
        """The forward with attention recorded and, for gradient methods, the graph kept from
        the input on (every block's attention must be reachable from the score)."""
        store: dict[str, list[Tensor]] = {}
        with model_guard(self.model, grad=self.gradients) as handles:
            for name, module in self.modules.items():
                handles.append(module.register_forward_hook(keep_hook(name, store)))
            recorder, rollout = recorder_for(self.model, handles, self.rollout, self.gradients)
            x = self.input.detach().clone().requires_grad_(self.gradients)
            with memory_guard(
                f"recording attention of {type(self.model).__name__} on a {'×'.join(map(str, x.shape))} input",
                "use a smaller input or fewer images",
            ):
                with recorder.recording():
                    output = call_model(self.model, x)
                resolved = maybe_target(target, output, categories, required=need_target)
                maps = reduce_attention(
                    recorder, rollout, x.shape[0], output, resolved if self.gradients else None, self.model
                )
            missing = [name for name in self.layers if name not in store]
            if missing:
                raise LayerscopeError(f"layer {missing[0]!r} did not run during the model's forward pass")
            for name in self.layers:
                maps.last_call(name)  # a layer no attention reaches: one line, before any layout
            self.attention_maps = maps
            self.base_scores = resolved.score(output).detach() if resolved is not None else None
        acts = {name: [t.detach() for t in store[name]] for name in self.layers}
        return acts, {}, detached(output), resolved, None

    def _backward(self, store: dict[str, list[Tensor]], output: object, target: ResolvedTarget | None):
        assert target is not None
        leaves = [t for name in self.layers for t in store[name]]
        score = target.score(output).sum()
        if score.requires_grad and leaves:
            found = torch.autograd.grad(score, leaves, allow_unused=True)
        else:  # nothing detected, or the layer does not reach the output: an all-zero map
            found = (None,) * len(leaves)
        flat = [torch.zeros_like(t) if g is None else g.detach() for t, g in zip(leaves, found)]
        grads, start = {}, 0
        for name in self.layers:
            grads[name] = flat[start : start + len(store[name])]
            start += len(store[name])
        return grads

    def _layout(self, name: str, tensors: list[Tensor], reshape: Reshape) -> Layout:
        layout = infer_layout([tuple(t.shape) for t in tensors], self.input_hw, model_hints(self.model), reshape)
        if isinstance(layout, Layout):
            return layout
        from layerscope.cam.targets import eligible_layers

        shape = tuple(self.input.shape[1:])
        names = [n for n, _ in eligible_layers(self.model, shape)]
        label = f"the last 8 of {len(names)} eligible layers" if len(names) > 8 else "eligible layers"
        raise LayerscopeError(
            f"layer {name!r} has no spatial output: {layout}; {label}: {', '.join(names[-8:]) or 'none found'}"
        )

    def _grid(self, name: str, tensors: list[Tensor]) -> Tensor:
        grid = self.layouts[name].apply(tensors)
        if grid.dim() != 4:
            raise LayerscopeError(f"the reshape for {name!r} gave {grid.dim()} dimensions, not N×C×h×w")
        return self.frame.crop(grid) if self.frame is not None else grid

    def result(
        self,
        layer: LayerRef,
        method: str = "gradcam",
        *,
        progress: Progress | None = None,
        cancel: Cancel | None = None,
        batch_size: int | None = None,
        precision: str = "auto",
    ) -> CamResult:
        """The map of ``method`` at ``layer`` (one of ``self.layers``) from the cached pass;
        ``precision`` of Score-CAM's masked forwards: ``cam.precision``."""
        spec = get_method(method)
        name = layer if isinstance(layer, str) and layer in self.activations else self._resolve(layer)
        self._check(name, spec)
        if spec.attends:
            raw = self._attention_raw(name, spec)
            return self._result(name, spec, raw, self._heatmaps(raw))
        perturber = (
            ModelPerturber(self._context(name), batch_size, progress, cancel, precision) if spec.perturbs else None
        )
        raw = _clean(spec.compute(CamInputs(self.activations[name], self.grads.get(name), perturber)))
        return self._result(name, spec, raw, self._heatmaps(raw), perturber.precision if perturber else "float32")

    def _resolve(self, layer: LayerRef) -> str:
        """The qualified name of a layer this pass may not have hooked, through the pass's one tree."""
        if self.tree is None and not isinstance(layer, nn.Module):
            self.tree = build_tree(self.model)
        return resolve_layer(self.model, layer, self.tree)[0]

    def results(self, method: str = "gradcam", layers: Sequence[str] | None = None, **kwargs: Any) -> list[CamResult]:
        """The maps of ``layers`` (every hooked layer when None). Layers whose grids have one
        shape (the blocks of a stage) are computed, upsampled and scaled as one batch: a few
        kernels per shape instead of a dozen per layer, which on a GPU is most of a sweep's
        cost after the backward pass."""
        spec = get_method(method)
        names = self.layers if layers is None else tuple(layers)
        if spec.perturbs or spec.attends:
            return [self.result(name, method, **kwargs) for name in names]
        by_shape: dict[tuple[int, ...], list[str]] = {}
        for name in names:
            self._check(name, spec)
            by_shape.setdefault(tuple(self.activations[name].shape), []).append(name)
        raws: dict[str, Tensor] = {}
        heat: dict[str, Tensor] = {}
        images = self.input.shape[0]
        for group in by_shape.values():
            grads = torch.cat([self.grads[n] for n in group]) if spec.needs_grad else None
            cam = spec.compute(CamInputs(torch.cat([self.activations[n] for n in group]), grads))
            raw = _clean(cam)
            raws.update(zip(group, raw.split(images)))
            heat.update(zip(group, self._heatmaps(raw).split(images)))
        return [self._result(name, spec, raws[name], heat[name]) for name in names]

    def _check(self, name: str, spec: Method) -> None:
        if name not in self.activations:
            raise LayerscopeError(f"layer {name!r} was not hooked in this pass; hooked: {', '.join(self.layers)}")
        if spec.attends != self.attention:
            kind = "attention was not recorded" if spec.attends else "it recorded attention, not channels"
            raise LayerscopeError(f"{spec.name} needs a pass of its own kind; in this one {kind}")
        if spec.needs_grad and not self.gradients:
            raise LayerscopeError(f"{spec.name} needs gradients; this pass was run without them")

    def _attention_raw(self, name: str, spec: Method) -> Tensor:
        """The patch grid ``N×h×w`` of a transformer-native map, laid out as the layer's tokens are."""
        assert self.attention_maps is not None
        layout = self.layouts[name]
        if layout.kind != "tokens":
            raise LayerscopeError(
                f"{spec.name} needs a layer that returns tokens (a transformer block); "
                f"{name!r} gives {layout.describe()}"
            )
        patches = spec.compute(AttentionInputs(self.attention_maps, name, layout.prefix))  # type: ignore[arg-type]
        h, w = layout.grid
        if patches.shape[-1] != h * w:
            raise LayerscopeError(
                f"{spec.name}: the attention covers {patches.shape[-1]} patch tokens but {name!r} "
                f"lays out {h}×{w}; give --grid HxW --prefix-tokens N"
            )
        return _clean(patches.reshape(-1, h, w))

    def _context(self, name: str) -> PerturbContext:
        if self.target is None or self.base_scores is None:
            raise LayerscopeError("Score-CAM and Ablation-CAM need a target score; pass a target")
        return PerturbContext(
            model=self.model,
            input=self.input,
            module=self.modules[name],
            layout=self.layouts[name],
            target=self.target,
            base_scores=self.base_scores,
        )

    def _heatmaps(self, raw: Tensor) -> Tensor:
        return normalise(F.interpolate(raw[:, None], size=self.input_hw, mode="bilinear", align_corners=False)[:, 0])

    def _result(self, name: str, spec: Method, raw: Tensor, heatmap: Tensor, precision: str = "float32") -> CamResult:
        single = heatmap.shape[0] == 1
        target = None if spec.class_blind else self.target
        return CamResult(
            heatmap=heatmap[0] if single else heatmap,
            raw=raw[0] if single else raw,
            target=target.label if target is not None else None,
            target_name=target.name if target is not None else None,
            scores=self.scores,
            layer=name,
            method=spec.name,
            layout=self.layouts[name].describe(),
            precision=precision,
        )


def _clean(cam: Tensor) -> Tensor:
    """The ReLU every method ends with; NaN and infinities (a dead layer) count as no evidence."""
    return torch.nan_to_num(cam.float(), nan=0.0, posinf=0.0, neginf=0.0).relu_()


def normalise(maps: Tensor) -> Tensor:
    """Per-image min-max scaling to [0, 1]; a constant map becomes all zeros."""
    low, high = maps.flatten(-2).aminmax(dim=-1)
    low, span = low[..., None, None], (high - low)[..., None, None]
    return ((maps - low) / span.clamp_min(1e-12) * (span > 1e-12)).float()


def _is_flat(heatmap: Tensor) -> bool:
    return not bool(heatmap.max() > 0)
