"""``compute_cam`` and ``compute_sweep``: maps from a prepared input tensor, one ``CamPass`` each.

Kept beside ``core`` (the pass itself) so the pass stays a module of its own size; the
notebook API over a photo is ``PhotoExplainer`` (``cam.photo``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from layerscope.cam.attention import RolloutOptions
from layerscope.cam.core import CamPass, CamResult
from layerscope.cam.layers import LayerRef
from layerscope.cam.methods import Method, get_method
from layerscope.cam.perturb import Cancel, Progress
from layerscope.cam.precision import check_precision
from layerscope.cam.reshape import Reshape
from layerscope.cam.scoring import TargetSpec
from layerscope.errors import LayerscopeError


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
    batch_size: int | None = None,
    precision: str = "auto",
    rollout: RolloutOptions = RolloutOptions(),
    **options: Any,
) -> CamResult:
    """The class-activation map of ``method`` at ``layer`` for ``target`` (top-1 when None).

    Grad-CAM (Selvaraju et al., 2017) weighs each channel ``k`` of the layer's activations
    ``A`` by its mean gradient, ``L = ReLU(Σ_k mean_ij(∂y_c/∂A_k) · A_k)``, and upsamples
    ``L`` to the input; the other methods (``METHODS``) change the weights. The model is left
    as found (training flags, hooks, ``requires_grad``).

    Args:
        model: any ``torch.nn.Module`` (a detector takes a ``BoxTarget``).
        input_tensor: the prepared ``N×C×H×W`` input on the model's device.
        layer: a qualified name (``"layer4.1"``), an access expression (``"model.layer4[-1]"``)
            or the module itself.
        method: ``"gradcam"``, ``"gradcam++"``, ``"xgradcam"``, ``"layercam"``, ``"eigencam"``,
            ``"scorecam"``, ``"ablationcam"``, ``"rollout"`` … (``get_method`` lists them).
        target: a class index, a class name (with ``categories``), a ``BoxTarget``, or None (top-1).
        categories: class names, index by index, to name targets and predictions.
        reshape: turns a transformer's tokens into a grid (``TokenGrid``); None: found per layer.
        progress: ``progress(done, total)`` over Score-CAM's and Ablation-CAM's perturbed forwards.
        cancel: asked between batches; true stops them (``CamCancelled``).
        batch_size: perturbed copies per forward (None: chosen from free memory).
        precision: ``"auto"``, ``"float32"`` or ``"bfloat16"``: what Score-CAM's masked forwards
            run in (``"auto"``: bfloat16 only for a heavy model on a CPU with AMX); the result says which ran.
        rollout: attention rollout's head fusion and discard ratio (``cam.attention.RolloutOptions``).
        **options: none are accepted; a misspelt keyword is refused in one line.

    Returns:
        A ``CamResult``: ``heatmap`` (``H×W`` in 0..1 at the input's size), the target and its score.

    Raises:
        LayerscopeError: an unknown layer, method, target or option; a layer with no map (one line).

    Examples:
        >>> import torch, torchvision
        >>> from layerscope.cam import compute_cam
        >>> model = torchvision.models.resnet18().eval()
        >>> result = compute_cam(model, torch.rand(1, 3, 224, 224), "layer4", target=281)
        >>> tuple(result.heatmap.shape), result.target
        ((224, 224), 281)
    """
    if options:
        raise LayerscopeError(f"unknown CAM option(s): {', '.join(sorted(options))}")
    spec = get_method(method)
    check_precision(precision)
    cam_pass = _pass_for(spec, model, input_tensor, [layer], target, categories, reshape, rollout)
    return cam_pass.result(
        cam_pass.layers[0], spec.name, progress=progress, cancel=cancel, batch_size=batch_size, precision=precision
    )


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
    batch_size: int | None = None,
    precision: str = "auto",
    rollout: RolloutOptions = RolloutOptions(),
) -> list[CamResult]:
    """Maps at many layers from ONE forward and ONE ``torch.autograd.grad`` call.

    The sweep shows how a map sharpens from early to late layers at the cost of one map.

    Args:
        model: any ``torch.nn.Module``.
        input_tensor: the prepared ``N×C×H×W`` input on the model's device.
        layers: the layers, each as ``compute_cam``'s ``layer``.
        method: as for ``compute_cam``.
        target: as for ``compute_cam``: one target for every layer.
        categories: as for ``compute_cam``.
        reshape: as for ``compute_cam``.
        progress: as for ``compute_cam``, over all layers together.
        cancel: as for ``compute_cam``.
        batch_size: as for ``compute_cam``.
        precision: as for ``compute_cam``.
        rollout: as for ``compute_cam``.

    Returns:
        One ``CamResult`` per layer, in the order given.

    Raises:
        LayerscopeError: as for ``compute_cam``.

    Examples:
        >>> import torch, torchvision
        >>> from layerscope.cam import compute_sweep
        >>> model = torchvision.models.resnet18().eval()
        >>> maps = compute_sweep(model, torch.rand(1, 3, 224, 224), ["layer2", "layer3", "layer4"])
        >>> [m.layer for m in maps]
        ['layer2', 'layer3', 'layer4']
    """
    spec = get_method(method)
    check_precision(precision)
    cam_pass = _pass_for(spec, model, input_tensor, layers, target, categories, reshape, rollout)
    return cam_pass.results(spec.name, progress=progress, cancel=cancel, batch_size=batch_size, precision=precision)


def _pass_for(
    spec: Method,
    model: nn.Module,
    input_tensor: Tensor,
    layers: Sequence[LayerRef],
    target: TargetSpec,
    categories: Sequence[str] | None,
    reshape: Reshape,
    rollout: RolloutOptions = RolloutOptions(),
) -> CamPass:
    """A pass computing exactly what ``spec`` needs: gradients only for gradient methods."""
    return CamPass(
        model,
        input_tensor,
        layers,
        target,
        categories=categories,
        reshape=reshape,
        gradients=spec.needs_grad,
        need_target=spec.needs_grad or spec.perturbs,
        attention=spec.attends,
        rollout=rollout,
    )
