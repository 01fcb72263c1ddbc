"""Hooks, one forward pass, one ``torch.autograd.grad`` call, and the maps that follow.

Why it is fast: parameters stop requiring gradients for the duration, the forward
starts under ``no_grad``, and the first capture hook detaches its activation into a
fresh leaf and only then turns gradients on. The layers before it run exactly like
a plain inference pass (not even autograd's dispatch overhead), and the backward
pass only crosses from the output to the hooked activations: no parameter gradient
is ever computed, and nothing lands in ``.grad``.

Why it is clean: every hook is removed, every ``requires_grad`` and ``training`` flag
restored in ``finally``, even when the forward or the backward raises. The hooks hand
a clone of each captured output downstream, so an in-place ReLU after the layer
cannot overwrite the activation (or its gradient) that the map is made from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from layerscope import naming
from layerscope.cam import detection
from layerscope.cam.methods import CamInputs, Method, get_method
from layerscope.cam.reshape import Layout, Reshape, infer_layout, model_hints
from layerscope.cam.scoring import ResolvedTarget, TargetSpec, class_index, resolve_target
from layerscope.errors import LayerscopeError
from layerscope.locking import model_lock
from layerscope.probe import call_model
from layerscope.tree import ModuleTree, build_tree

LayerRef = str | nn.Module
Progress = Callable[[int, int], None]
Cancel = Callable[[], bool] | Any  # a callable, or anything with ``is_set()`` (threading.Event)


class CamCancelled(RuntimeError):
    """Raised when ``cancel`` asks a Score-CAM or Ablation-CAM run to stop; hooks are already gone."""


@dataclass(frozen=True)
class CamResult:
    """One method's map for one layer.

    For a single image ``heatmap`` is ``H×W`` and ``raw`` ``h×w``; for a batch of N > 1
    both gain a leading ``N`` dimension (``per_image()`` splits them) and ``target``
    is a tuple of per-image classes. ``all_zero`` is true when no map in the result
    has anything to show (zero or constant everywhere): common with random weights,
    and not an error.
    """

    heatmap: Tensor
    raw: Tensor
    target: int | tuple[int, ...] | str | None
    target_name: str | None
    scores: object
    layer: str
    method: str
    layout: str = ""

    @property
    def all_zero(self) -> bool:
        """Asked on demand: reading a GPU tensor's value waits for the device, and a sweep
        should not wait once per layer."""
        return _is_flat(self.heatmap)

    def per_image(self) -> list["CamResult"]:
        if self.heatmap.dim() == 2:
            return [self]
        targets = self.target if isinstance(self.target, tuple) else (self.target,) * len(self.heatmap)
        return [
            replace(self, heatmap=h, raw=r, target=t)
            for h, r, t in zip(self.heatmap, self.raw, targets)
        ]


def resolve_layer(model: nn.Module, layer: LayerRef, tree: ModuleTree | None = None) -> tuple[str, nn.Module]:
    """A qualified name and module for a dotted name, an access expression or the module itself."""
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name, module
        raise LayerscopeError(f"the {type(layer).__name__} passed as layer is not part of this model")
    found = _walk(model, layer)
    if found is not None:
        return found
    node = (tree or build_tree(model)).resolve(layer)  # raises with the closest names
    return node.name, model.get_submodule(node.name)


def _walk(model: nn.Module, expression: str) -> tuple[str, nn.Module] | None:
    """Follow ``layer4[-1]`` / ``layer4.2`` without building the whole tree (the common case),
    by the same rules as ``ModuleTree.resolve``: an exact dotted name first, then the parsed
    expression, positions only inside a Sequential or ModuleList."""
    dotted = expression.strip().removeprefix("model.")
    try:
        return dotted, model.get_submodule(dotted)
    except AttributeError:
        pass
    module, names = model, []
    for step in naming.parse(expression):
        children = list(module.named_children())
        keys = [key for key, _ in children]
        sequence = isinstance(module, (nn.Sequential, nn.ModuleList))
        if isinstance(step, str) and step in keys:
            index = keys.index(step)
        elif sequence and (isinstance(step, int) or step.lstrip("-").isdigit()):
            index = int(step)
            if not -len(children) <= index < len(children):
                return None
        else:
            return None
        key, module = children[index]
        names.append(key)
    return ".".join(names), module


@contextmanager
def model_guard(model: nn.Module, *, grad: bool) -> Iterator[list[RemovableHandle]]:
    """Eval mode, frozen parameters, grad mode as asked; everything undone on the way out.

    Holds the model's lock (``layerscope.locking``) throughout, so another thread's pass
    cannot see these hooks or flags. Yields the list that callers append their hook
    handles to.
    """
    with model_lock(model):
        modules = list(model.modules())  # one walk for both lists: this runs once per map
        training = [m for m in modules if m.training]  # only these change: an eval model costs nothing
        frozen = [p for m in modules for p in m._parameters.values() if p is not None and p.requires_grad]
        handles: list[RemovableHandle] = []
        try:
            for p in frozen:
                p.requires_grad_(False)
            for module in training:
                module.training = False
            with torch.inference_mode(False), torch.set_grad_enabled(grad):
                yield handles
        finally:
            for handle in handles:
                handle.remove()
            for p in frozen:
                p.requires_grad_(True)
            for module in training:
                module.training = True


def _flatten(output: object) -> tuple[list[Tensor], Callable[[list[Tensor]], object]]:
    """The float tensors inside a layer's output, and how to rebuild it from replacements."""
    if isinstance(output, Tensor):
        return ([output], lambda new: new[0]) if output.is_floating_point() else ([], lambda new: output)
    if isinstance(output, Mapping):
        keys = [k for k, v in output.items() if isinstance(v, Tensor) and v.is_floating_point()]

        def rebuild_mapping(new: list[Tensor]) -> object:
            out = type(output)(output)  # type: ignore[call-arg]
            out.update(zip(keys, new))
            return out

        return [output[k] for k in keys], rebuild_mapping
    if isinstance(output, (tuple, list)) and not hasattr(output, "_fields"):
        slots = [i for i, v in enumerate(output) if isinstance(v, Tensor) and v.is_floating_point()]

        def rebuild_sequence(new: list[Tensor]) -> object:
            items = list(output)
            for i, t in zip(slots, new):
                items[i] = t
            return type(output)(items)

        return [output[i] for i in slots], rebuild_sequence
    return [], lambda new: output


def _capture_hook(name: str, store: dict[str, list[Tensor]], grad: bool):
    """Record the first call's output; hand a clone downstream so in-place ops cannot touch it."""

    def hook(_module: nn.Module, _inputs: object, output: object) -> object:
        if name in store:
            return None
        tensors, rebuild = _flatten(output)
        if grad:
            torch.set_grad_enabled(True)  # from here on: the layers before this one ran without autograd
        kept = [t if t.requires_grad or not grad else t.detach().requires_grad_(True) for t in tensors]
        store[name] = kept
        return rebuild([t.clone() for t in kept]) if kept else None

    return hook


def _checked_input(model: nn.Module, input_tensor: Tensor) -> Tensor:
    if not isinstance(input_tensor, Tensor) or input_tensor.dim() != 4:
        shape = "×".join(map(str, getattr(input_tensor, "shape", ()))) or type(input_tensor).__name__
        raise LayerscopeError(f"input must be an N×C×H×W tensor, got {shape}")
    first = next(model.parameters(), None)
    device = first.device if first is not None else input_tensor.device
    with torch.inference_mode(False):
        # inference-mode tensors cannot enter autograd; a clone made outside it can
        return input_tensor.detach().to(device).clone()


class CamSession:
    """One forward (and, for gradient methods, one backward) with hooks on many layers.

    Activations and gradients of every hooked layer are cached as ``N×C×h×w`` grids,
    so ``result(layer, method)`` redraws any of them, with any gradient or
    activation method, without touching the model again; Score-CAM and Ablation-CAM
    run their own perturbed forwards. A new target needs a new session.
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
    ) -> None:
        self.model = model
        self.input = _checked_input(model, input_tensor)
        self.input_hw = (self.input.shape[-2], self.input.shape[-1])
        resolved = [resolve_layer(model, layer, tree) for layer in layers]
        self.modules = dict(resolved)
        self.layers: tuple[str, ...] = tuple(self.modules)
        self.gradients = gradients
        self.detection = detection.is_detection_model(model)
        if self.detection and (gradients or need_target) and not callable(target):
            # a class for a detector means: the best box of that class
            label = None if target is None else class_index(target, categories)
            target = detection.BoxTarget(label=label)
        acts, grads, output, self.target, self.frame = self._run(target, categories, gradients or need_target)
        self.scores = _detached(output)
        self.layouts = {name: self._layout(name, acts[name], reshape) for name in self.layers}
        self.activations = {n: self._grid(n, acts[n]) for n in self.layers}
        self.grads = {n: self._grid(n, grads[n]) for n in self.layers} if gradients else {}

    def _run(self, target: TargetSpec, categories: Sequence[str] | None, need_target: bool):
        store: dict[str, list[Tensor]] = {}
        with model_guard(self.model, grad=False) as handles:  # the first capture hook turns gradients on
            for name, module in self.modules.items():
                handles.append(module.register_forward_hook(_capture_hook(name, store, self.gradients)))
            frame = detection.FrameRecorder.attach(self.model, handles) if self.detection else None
            output = call_model(self.model, self.input)
            missing = [name for name in self.layers if name not in store]
            if missing:
                raise LayerscopeError(f"layer {missing[0]!r} did not run during the model's forward pass")
            resolved = _maybe_target(target, output, categories, required=need_target)
            grads = self._backward(store, output, resolved) if self.gradients else {}
            self.base_scores_value = resolved.score(output).detach() if resolved is not None else None
        acts = {name: [t.detach() for t in store[name]] for name in self.layers}
        return acts, grads, output, resolved, frame

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
            grads[name] = flat[start:start + len(store[name])]
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
        batch_size: int = 32,
    ) -> CamResult:
        """The map of ``method`` at ``layer`` (one of ``self.layers``) from the cached pass."""
        spec = get_method(method)
        name = layer if isinstance(layer, str) and layer in self.activations else resolve_layer(self.model, layer)[0]
        if name not in self.activations:
            raise LayerscopeError(f"layer {name!r} was not hooked in this session; hooked: {', '.join(self.layers)}")
        if spec.needs_grad and not self.gradients:
            raise LayerscopeError(f"{spec.name} needs gradients; this session was run without them")
        perturber = None
        if spec.perturbs:
            perturber = _ModelPerturber(self, name, batch_size, progress, cancel)
        inputs = CamInputs(self.activations[name], self.grads.get(name), perturber)
        cam = spec.compute(inputs)
        return self._finish(name, spec, cam)

    def results(self, method: str = "gradcam", **kwargs: Any) -> list[CamResult]:
        return [self.result(name, method, **kwargs) for name in self.layers]

    def _finish(self, name: str, spec: Method, cam: Tensor) -> CamResult:
        raw = F.relu(torch.nan_to_num(cam.float(), nan=0.0, posinf=0.0, neginf=0.0))
        heatmap = normalise(F.interpolate(raw[:, None], size=self.input_hw, mode="bilinear", align_corners=False)[:, 0])
        single = heatmap.shape[0] == 1
        target = self.target
        return CamResult(
            heatmap=heatmap[0] if single else heatmap,
            raw=raw[0] if single else raw,
            target=target.label if target is not None else None,
            target_name=target.name if target is not None else None,
            scores=self.scores,
            layer=name,
            method=spec.name,
            layout=self.layouts[name].describe(),
        )


def normalise(maps: Tensor) -> Tensor:
    """Per-image min-max scaling to [0, 1]; a constant map becomes all zeros."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    span = maps.amax(dim=(-2, -1), keepdim=True) - low
    scaled = (maps - low) / span.clamp_min(1e-12)
    return torch.where(span > 1e-12, scaled, torch.zeros_like(maps)).float()


def _is_flat(heatmap: Tensor) -> bool:
    return not bool(heatmap.max() > 0)


def _detached(output: object) -> object:
    if isinstance(output, Tensor):
        return output.detach()
    if isinstance(output, Mapping):
        return {k: _detached(v) for k, v in output.items()}
    if isinstance(output, (list, tuple)):
        return type(output)(_detached(v) for v in output) if not hasattr(output, "_fields") else output
    return output


def _maybe_target(target: TargetSpec, output: object, categories, *, required: bool) -> ResolvedTarget | None:
    try:
        return resolve_target(target, output, categories)
    except LayerscopeError:
        if required or target is not None:
            raise
        return None


def _cancelled(cancel: Cancel | None) -> bool:
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)
    return bool(is_set() if callable(is_set) else cancel())


class _ModelPerturber:
    """Score-CAM's masked inputs and Ablation-CAM's zeroed channels, in batches.

    Progress is reported and ``cancel`` checked between batches.
    """

    def __init__(
        self, session: CamSession, layer: str, batch_size: int, progress: Progress | None, cancel: Cancel | None
    ) -> None:
        if session.target is None:
            raise LayerscopeError("Score-CAM and Ablation-CAM need a target score; pass a target")
        self.session, self.layer = session, layer
        self.batch_size = max(1, int(batch_size))
        self.progress, self.cancel = progress, cancel
        self._upstream_once = True

    def base_scores(self) -> Tensor:
        assert self.session.base_scores_value is not None
        return self.session.base_scores_value.float()

    def _batches(self, channels: int) -> Iterator[tuple[int, list[int]]]:
        n = self.session.input.shape[0]
        total, done = n * channels, 0
        for image in range(n):
            for start in range(0, channels, self.batch_size):
                if _cancelled(self.cancel):
                    raise CamCancelled(f"cancelled after {done} of {total} perturbed passes")
                ks = list(range(start, min(start + self.batch_size, channels)))
                yield image, ks
                done += len(ks)
                if self.progress is not None:
                    self.progress(done, total)

    def masked_scores(self, activations: Tensor) -> Tensor:
        session = self.session
        n, channels = activations.shape[:2]
        scores = torch.zeros(n, channels, device=activations.device)
        with model_guard(session.model, grad=False):
            for image, ks in self._batches(channels):
                masks = F.interpolate(activations[image:image + 1, ks], size=session.input_hw, mode="bilinear",
                                      align_corners=False)[0]
                low = masks.amin(dim=(1, 2), keepdim=True)
                high = masks.amax(dim=(1, 2), keepdim=True)
                masks = (masks - low) / (high - low + 1e-7)
                batch = session.input[image:image + 1] * masks[:, None]
                out = call_model(session.model, batch)
                scores[image, ks] = session.target.for_image(image)(out).float()
        return scores

    def ablated_scores(self, channels: int) -> Tensor:
        session = self.session
        layout = session.layouts[self.layer]
        if layout.kind in ("levels", "custom"):
            raise LayerscopeError("ablationcam needs a layer with one output tensor; use eigencam or gradcam here")
        n = session.input.shape[0]
        scores = torch.zeros(n, channels, device=session.input.device)
        with model_guard(session.model, grad=False) as handles:
            current: list[int] = []
            handles.append(session.modules[self.layer].register_forward_hook(
                lambda _m, _i, out: layout.ablate(out[:1], current)))
            for image, ks in self._batches(channels):
                current[:] = ks
                out = self._ablated_forward(image, len(ks))
                scores[image, ks] = session.target.for_image(image)(out).float()
        return scores

    def _ablated_forward(self, image: int, count: int) -> object:
        """Run the layers before the target once, the ones after it on ``count`` ablated copies.

        A model that reuses its input's batch size after the layer cannot do that; it
        falls back, for good, to a full batch of copies.
        """
        x = self.session.input[image:image + 1]
        if self._upstream_once:
            try:
                out = call_model(self.session.model, x)
                if not isinstance(out, Tensor) or out.shape[0] == count:
                    return out
            except RuntimeError:
                pass
            self._upstream_once = False
        return call_model(self.session.model, x.expand(count, *x.shape[1:]))


def compute_cam(
    model: nn.Module,
    input_tensor: Tensor,
    layer: LayerRef,
    method: str = "gradcam",
    target: TargetSpec = None,
    *,
    categories: Sequence[str] | None = None,
    reshape: Reshape = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    batch_size: int = 32,
    **options: Any,
) -> CamResult:
    """The class-activation map of ``method`` at ``layer`` for ``target`` (top-1 when None)."""
    if options:
        raise LayerscopeError(f"unknown CAM option(s): {', '.join(sorted(options))}")
    spec = get_method(method)
    session = _session_for(spec, model, input_tensor, [layer], target, categories, reshape)
    return session.result(session.layers[0], spec.name, progress=progress, cancel=cancel, batch_size=batch_size)


def compute_sweep(
    model: nn.Module,
    input_tensor: Tensor,
    layers: Sequence[LayerRef],
    method: str = "gradcam",
    target: TargetSpec = None,
    *,
    categories: Sequence[str] | None = None,
    reshape: Reshape = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    batch_size: int = 32,
) -> list[CamResult]:
    """Maps at many layers from ONE forward and ONE ``torch.autograd.grad`` call."""
    spec = get_method(method)
    session = _session_for(spec, model, input_tensor, layers, target, categories, reshape)
    return session.results(spec.name, progress=progress, cancel=cancel, batch_size=batch_size)


def _session_for(
    spec: Method, model: nn.Module, input_tensor: Tensor, layers: Sequence[LayerRef], target: TargetSpec,
    categories: Sequence[str] | None, reshape: Reshape,
) -> CamSession:
    """A session computing exactly what ``spec`` needs: gradients only for gradient methods."""
    return CamSession(
        model, input_tensor, layers, target, categories=categories, reshape=reshape,
        gradients=spec.needs_grad, need_target=spec.needs_grad or spec.perturbs,
    )
