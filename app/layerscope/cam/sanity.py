"""The model-randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", 2018).

A map that explains the model's decision must change when the layers that make the
decision change. On a copy of the model, every parameterised module that starts
after ``layer`` has produced its output is re-initialised (cascading from the top),
the map is computed again for the same class, and the Spearman rank correlation of
the two maps is returned. Grad-CAM's weights come from the gradient through those
layers, so its ρ falls well below 1; EigenCAM reads only the layer's activations,
which the re-initialised layers cannot touch, so its ρ is 1: it is blind to the head,
and to the class.

Each module's new weights come from a seed derived from its name, so checking one
layer alone or many layers in one cascade gives the same numbers.
"""

from __future__ import annotations

import copy
import itertools
import zlib
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from layerscope.cam.hooks import checked_input, model_guard
from layerscope.cam.layers import LayerRef, resolve_layers
from layerscope.cam.methods import get_method
from layerscope.cam.perturb import CamCancelled, Cancel, Progress, is_cancelled
from layerscope.cam.reshape import Reshape
from layerscope.cam.scoring import TargetSpec
from layerscope.errors import LayerscopeError, first_line
from layerscope.running.locking import model_lock
from layerscope.running.probe import call_model
from layerscope.tree import ModuleTree

SEED = 0
BLIND = 0.9  # ρ at or above this: the map barely moves when the model's later layers are randomised


def randomization_check(
    model: nn.Module, x: Tensor, layer: LayerRef, method: str = "gradcam", target: TargetSpec = None, **kwargs
) -> float:
    """Spearman ρ between the map at ``layer`` and the map after re-initialising, on a copy,
    every parameterised module that runs after ``layer``; near 1 means the method ignores them."""
    [rho] = randomization_checks(model, x, [layer], method, target, **kwargs).values()
    return rho


def randomization_checks(
    model: nn.Module,
    x: Tensor,
    layers: Sequence[LayerRef],
    method: str = "gradcam",
    target: TargetSpec = None,
    *,
    originals: Sequence[Tensor] | None = None,
    categories: Sequence[str] | None = None,
    reshape: Reshape = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    tree: ModuleTree | None = None,
    precision: str = "auto",
) -> dict[str, float]:
    """``randomization_check`` for many layers with one copy of the model, cascading from the
    last layer down: each step re-initialises the modules between it and the layer above.
    ``originals`` (the maps already computed, in ``layers`` order) save one pass. One module
    tree (``tree``, else built once here) resolves every layer, in the model and in its copy.
    ``precision``: Score-CAM's (``cam.precision``); pass the one the originals ran in, so that
    the comparison measures the randomisation, not a change of arithmetic."""
    from layerscope.cam.core import CamPass

    spec = get_method(method)
    resolved, tree = resolve_layers(model, layers, tree)
    names = [name for name, _ in resolved]
    starts, ends = _execution_order(model, x, names)
    owners = {name for name, module in model.named_modules() if _owns_weights(module)}
    last = max(names, key=ends.__getitem__)
    if not any(start > ends[last] and m in owners for m, start in starts.items()):
        raise LayerscopeError(f"no module with weights runs after {last!r}: nothing to randomise")
    options = dict(
        model=model,
        categories=categories,
        reshape=reshape,
        gradients=spec.needs_grad,
        need_target=True,
        tree=tree,
        attention=spec.attends,
    )  # the copy has the same structure: the same tree fits it
    if originals is None:
        base = CamPass(input_tensor=x, layers=names, target=target, **options)
        originals = [r.heatmap for r in base.results(spec.name, precision=precision)]
        target = base.target.label if base.target is not None else target
    elif target is None:
        raise LayerscopeError("pass the class the original maps explain, so the copy explains the same one")
    copied = _copy(model)
    modules = dict(copied.named_modules())
    rhos: dict[str, float] = {}
    done: set[str] = set()
    for step, (name, original) in enumerate(sorted(zip(names, originals), key=lambda p: -ends[p[0]]), 1):
        if is_cancelled(cancel):
            raise CamCancelled(f"cancelled after {step - 1} of {len(names)} sanity checks")
        later = [m for m, start in starts.items() if start > ends[name] and m in owners and m not in done]
        _reinitialise(modules, later)
        done.update(later)
        again = CamPass(input_tensor=x, layers=[name], target=target, **{**options, "model": copied})
        rhos[name] = spearman(original, again.result(name, spec.name, precision=precision).heatmap)
        if progress is not None:
            progress(step, len(names))
    return {name: rhos[name] for name in names}


def is_blind(rho: float) -> bool:
    """True when the map survived the randomisation: the method does not explain the later layers."""
    return rho == rho and rho >= BLIND


def _execution_order(model: nn.Module, x: Tensor, layers: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Per module, the tick at which it first starts; per layer, the tick at which its output is ready."""
    starts: dict[str, int] = {}
    ends: dict[str, int] = {}
    names = {id(m): n for n, m in model.named_modules()}
    wanted, clock = set(layers), itertools.count()

    def started(module: nn.Module, _inputs: object) -> None:
        starts.setdefault(names[id(module)], next(clock))

    def finished(module: nn.Module, _inputs: object, _output: object) -> None:
        name = names[id(module)]
        if name in wanted:
            ends.setdefault(name, next(clock))

    with model_guard(model, grad=False) as handles:
        for module in model.modules():
            handles.append(module.register_forward_pre_hook(started))
            handles.append(module.register_forward_hook(finished))
        call_model(model, checked_input(model, x))
    missing = [n for n in layers if n not in ends]
    if missing:
        raise LayerscopeError(f"layer {missing[0]!r} did not run during the model's forward pass")
    return starts, ends


def _copy(model: nn.Module) -> nn.Module:
    with model_lock(model):
        try:
            return copy.deepcopy(model)
        except Exception as exc:  # any object a model holds may refuse to be copied
            raise LayerscopeError(
                f"the sanity check needs a copy of the model, and it cannot be copied: "
                f"{type(exc).__name__}: {first_line(exc)}"
            ) from exc


def _owns_weights(module: nn.Module) -> bool:
    return any(p is not None for p in module._parameters.values())


def _reinitialise(modules: dict[str, nn.Module], names: list[str]) -> None:
    """Fresh weights as the module's own ``reset_parameters`` draws them (batch norms also
    forget their running statistics), else a normal draw at the trained weights' scale."""
    device = next((p.device for n in names for p in modules[n].parameters()), torch.device("cpu"))
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        for name in names:
            torch.manual_seed(SEED + zlib.crc32(name.encode()))
            module = modules[name]
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
                continue
            for p in module._parameters.values():
                if p is not None and p.is_floating_point():
                    scale = float(p.float().std()) if p.numel() > 1 else 0.0
                    p.normal_(0.0, scale if scale > 0 else 0.02)


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman's rank correlation (ties get their average rank); NaN when either map is constant."""
    ra, rb = _average_ranks(a.flatten()), _average_ranks(b.flatten())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float((ra.square().sum() * rb.square().sum()).sqrt())
    return float((ra * rb).sum()) / denominator if denominator > 0 else float("nan")


def _average_ranks(values: Tensor) -> Tensor:
    values = values.detach().double().cpu()
    order = torch.argsort(values, stable=True)
    _, inverse, counts = torch.unique_consecutive(values[order], return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    ranks = torch.empty_like(values)
    ranks[order] = (ends - (counts - 1) / 2)[inverse]
    return ranks
