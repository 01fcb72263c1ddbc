"""How an image becomes a model's input (``Preprocess``), and transforms read into one.

Kept as numbers, not a transform object, so that a heatmap can be mapped back onto the
photo's geometry (``layerscope.io.imaging``). A caller's own transform (a torchvision
``Compose``, ``weights.transforms()``, timm's ``create_transform``) is read step by step;
a step whose effect on the geometry these numbers cannot say is refused in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from layerscope.errors import BadArgumentError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the model's input; kept as numbers, not a transform object,
    so that a heatmap can be mapped back onto the original photo's geometry."""

    resize: int | tuple[int, int] | None = 256  # shorter side, or an exact H×W (Hugging Face ViT)
    crop: tuple[int, int] | None = (224, 224)  # None: keep the image's own size (detectors)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"  # of the resize: "bilinear", "bicubic" (timm's usual) or "nearest"


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
    raise BadArgumentError(
        f"preprocess: cannot read a {type(transform).__name__}; give a Preprocess, a torchvision "
        "Compose (Resize, CenterCrop, ToTensor, Normalize) or weights.transforms()"
    )


def _default_for(model: nn.Module | None) -> Preprocess:
    if model is not None and isinstance(getattr(model, "pretrained_cfg", None), dict):
        return timm_preprocess(model)
    return Preprocess()


def timm_preprocess(model: nn.Module) -> Preprocess:
    """timm's own eval transform for ``model`` (``resolve_data_config`` + ``create_transform``),
    read as numbers: the pixels the model gets are the ones timm's transform gives (bicubic,
    ``floor(224 / 0.9) = 248``). A transform these numbers cannot say (``crop_mode="squash"``)
    falls back to the config read directly."""
    from timm.data import create_transform, resolve_data_config

    config = resolve_data_config({}, model=model)
    try:
        return as_preprocess(create_transform(**config))
    except BadArgumentError:
        side = int(config["input_size"][-1])
        return Preprocess(
            resize=int(side / (config.get("crop_pct") or 0.875)),
            crop=(int(config["input_size"][-2]), side),
            mean=_triple(config["mean"]),
            std=_triple(config["std"]),
            interpolation=_known(config.get("interpolation")),
        )


def _known(mode: Any) -> str:
    return mode if mode in INTERPOLATIONS else "bilinear"


def _from_classification(transform: Any) -> Preprocess:
    resize = list(transform.resize_size)
    crop = list(transform.crop_size)
    return Preprocess(
        resize=resize[0] if len(resize) == 1 else (resize[0], resize[1]),
        crop=(crop[0], crop[-1]),
        mean=_triple(transform.mean),
        std=_triple(transform.std),
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
            raise BadArgumentError(
                f"preprocess: a {kind} step cannot be mapped back onto the photo; layerscope "
                "reads Resize, CenterCrop, ToTensor and Normalize"
            )
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
