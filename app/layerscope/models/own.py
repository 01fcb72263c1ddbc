"""A model the caller already holds: a plain ``nn.Module`` made into a ``LoadedModel``.

Every engine entry point works on a ``LoadedModel``; a notebook or a training script holds an
``nn.Module`` and its transforms. ``from_module`` is the one constructor between them: it
takes the module as it is (never moved, copied or put in eval mode), the device its weights
are on, and a preprocessing given as layerscope's ``Preprocess``, a torchvision or timm
transform, or nothing (ImageNet's 256/224, or timm's own for a timm model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from layerscope.errors import BadArgumentError
from layerscope.models.loaded import LoadedModel, Preprocess

SOURCE = "python"  # LoadedModel.source of a module handed over in-process
WEIGHTS = "as held"
NAME = "in-memory model"  # the spec line of headers: no spec loaded it
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def from_module(
    model: nn.Module, *, preprocess: Any = None, categories: Sequence[str] | None = None, name: str | None = None,
) -> LoadedModel:
    """``model`` as a ``LoadedModel``, left exactly as it is.

    Args:
        model: any ``torch.nn.Module``, on any device, lazy modules included.
        preprocess: a ``Preprocess``, a torchvision ``Compose`` of ``Resize``/``CenterCrop``/
            ``ToTensor``/``Normalize`` (timm's ``create_transform`` gives one), a torchvision
            weights' ``transforms()``, or None (timm's config for a timm model, else ImageNet's).
        categories: the class names, index by index (None: shown as numbers).
        name: what headers call the model where they show a spec (default: "in-memory model").

    Returns:
        The ``LoadedModel`` every engine entry point takes.

    Raises:
        BadArgumentError: ``model`` is no module, or ``preprocess`` has a step layerscope cannot map back.
    """
    if not isinstance(model, nn.Module):
        raise BadArgumentError(f"expected a torch.nn.Module, got {type(model).__name__}")
    if categories is not None and (isinstance(categories, str) or not all(isinstance(c, str) for c in categories)):
        raise BadArgumentError("categories must be a list of class names (strings), index by index")
    return LoadedModel(
        model=model, spec=name or NAME, source=SOURCE, weights=WEIGHTS, pretrained=True,
        device=module_device(model), categories=list(categories) if categories is not None else None,
        preprocess=as_preprocess(preprocess, model),
    )


def module_device(model: nn.Module) -> torch.device:
    """Where the module's first parameter (else buffer) lives; cpu for a module with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def as_preprocess(transform: Any, model: nn.Module | None = None) -> Preprocess:
    """``transform`` read as numbers (resize, crop, interpolation, mean, std), so a heatmap maps
    back onto the photo; a step that moves pixels in a way these numbers cannot say is refused."""
    if transform is None:
        return _default_for(model)
    if isinstance(transform, Preprocess):
        return transform
    if hasattr(transform, "resize_size") and hasattr(transform, "crop_size"):  # torchvision weights.transforms()
        return _from_classification(transform)
    steps = getattr(transform, "transforms", None)
    if isinstance(steps, (list, tuple)):
        return _from_steps(steps)
    raise BadArgumentError(f"preprocess: cannot read a {type(transform).__name__}; give a Preprocess, a torchvision "
                          "Compose (Resize, CenterCrop, ToTensor, Normalize) or weights.transforms()")


def _default_for(model: nn.Module | None) -> Preprocess:
    if model is not None and isinstance(getattr(model, "pretrained_cfg", None), dict):
        from layerscope.models.sources.timm import preprocess_from_timm

        return preprocess_from_timm(model)
    return Preprocess()


def _from_classification(transform: Any) -> Preprocess:
    resize = list(transform.resize_size)
    crop = list(transform.crop_size)
    return Preprocess(
        resize=resize[0] if len(resize) == 1 else (resize[0], resize[1]),
        crop=(crop[0], crop[-1]), mean=_triple(transform.mean), std=_triple(transform.std),
        interpolation=_interpolation(transform.interpolation),
    )


def _from_steps(steps: Sequence[Any]) -> Preprocess:
    """A Compose walked step by step; what a step does not set keeps ``Preprocess``'s "none":
    no resize, no crop, mean 0 and std 1."""
    fields: dict[str, Any] = {"resize": None, "crop": None, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
    for step in steps:
        kind = type(step).__name__
        if kind == "Resize":
            size = step.size if isinstance(step.size, (list, tuple)) else [step.size]
            fields["resize"] = int(size[0]) if len(size) == 1 else (int(size[0]), int(size[1]))
            fields["interpolation"] = _interpolation(step.interpolation)
        elif kind == "CenterCrop":
            fields["crop"] = (int(step.size[0]), int(step.size[-1]))
        elif kind == "Normalize":
            fields["mean"], fields["std"] = _triple(step.mean), _triple(step.std)
        elif kind not in ("ToTensor", "PILToTensor", "ConvertImageDtype", "MaybeToTensor", "ToImage", "ToDtype"):
            raise BadArgumentError(f"preprocess: a {kind} step cannot be mapped back onto the photo; layerscope "
                                  "reads Resize, CenterCrop, ToTensor and Normalize")
    return Preprocess(**fields)


def _interpolation(mode: Any) -> str:
    name = str(getattr(mode, "value", mode)).lower()
    if name not in INTERPOLATIONS:
        raise BadArgumentError(f"preprocess: interpolation {name!r} is not one of {', '.join(INTERPOLATIONS)}")
    return name


def _triple(values: Any) -> tuple[float, float, float]:
    numbers = tuple(float(v) for v in (values.tolist() if isinstance(values, torch.Tensor) else values))
    if len(numbers) != 3:
        raise BadArgumentError(f"preprocess: mean and std need 3 values (RGB), got {len(numbers)}")
    return numbers[0], numbers[1], numbers[2]


__all__ = ["as_preprocess", "from_module", "module_device"]
