"""torchvision builder names (``resnet18``, ``torchvision:vit_b_16``): the fallback source.

Weights are picked from the builder's weights enum (``DEFAULT``, ``IMAGENET1K_V2``, …),
their class names and preprocessing read from the enum's metadata, so that a CAM
of a torchvision model uses exactly the resize, crop and normalisation it was
trained with.
"""

from __future__ import annotations

import inspect
from typing import Any

from layerscope.errors import NotFoundError
from layerscope.models.build import (
    Download,
    build_on_device,
    call_builder,
    refuse_pretrained_on_meta,
    unknown_model_message,
)
from layerscope.models.loaded import IMAGENET_MEAN, IMAGENET_STD, LoadedModel, Preprocess, is_path_weights
from layerscope.models.source import LoadRequest
from layerscope.models.weights_cache import SafeWeights, cached_hint, cached_torchvision_weights, hub_checkpoint

PREFIX = "torchvision:"


class TorchvisionSource:
    """Anything no other source claimed is a torchvision name (unknown ones get the closest)."""

    name = "torchvision"
    reads_own_weights = False

    def claims(self, spec: str) -> bool:
        return True

    def auto_weights(self, spec: str) -> str:
        cached = cached_torchvision_weights(spec.removeprefix(PREFIX))
        return cached[0] if cached else "none"

    def load(self, request: LoadRequest) -> LoadedModel:
        import torchvision.models as tvm

        name, dev, kwargs = request.spec.removeprefix(PREFIX), request.device, dict(request.kwargs)
        known = tvm.list_models()
        if name not in known:
            raise NotFoundError(unknown_model_message(name, known, "torchvision.models.list_models()"))
        builder = tvm.get_model_builder(name)
        enum = weights_enum(name)
        chosen = pick_weights(enum, request.weights, name) if not is_path_weights(request.weights) else None
        if chosen is not None:
            refuse_pretrained_on_meta(dev)
        reference = chosen or (enum.DEFAULT if enum is not None else None)
        if chosen is None and "weights_backbone" in inspect.signature(builder).parameters:
            kwargs.setdefault("weights_backbone", None)  # detectors would otherwise download a backbone
        if chosen is None and reference is not None:
            kwargs = {**size_from_weights(name, reference), **kwargs}
        download = (
            None
            if chosen is None
            else Download(
                weights_name(chosen),
                f"use --weights none for random weights, or --weights PATH for a local file{cached_hint(name)}",
            )
        )
        safe = SafeWeights(chosen, trust=request.trust) if chosen is not None else None
        model = build_on_device(  # a cached weights file is read by layerscope's reader, not torch hub's
            dev,
            lambda: call_builder(lambda: builder(weights=safe, **kwargs), what=name, kwargs=kwargs, download=download),
            name,
            kwargs,
            sized=chosen is None,
        )
        return LoadedModel(
            model=model,
            spec=request.spec,
            source=self.name,
            weights=weights_name(chosen) if chosen else "none",
            pretrained=chosen is not None,
            device=dev,
            categories=list(reference.meta.get("categories") or []) or None if reference else None,
            preprocess=preprocess_from_weights(reference),
            files=(hub_checkpoint(chosen.url),) if chosen else (),
        )


# Builders whose weights set the input size the model is built for (torchvision's own
# ``_ovewrite_named_param``): without weights they would build 224 pixels whatever the
# weights' preprocessing (vit_h_14's DEFAULT crops 518), and the probe would not fit.
SIZE_KEYWORDS = {"vit_": "image_size"}


def size_from_weights(name: str, weights: Any) -> dict[str, Any]:
    """The size keyword the reference weights imply, so the model is built as they describe."""
    size = weights.meta.get("min_size")
    key = next((k for prefix, k in SIZE_KEYWORDS.items() if name.startswith(prefix)), None)
    return {key: size[0]} if key and size else {}


def weights_enum(name: str) -> Any:
    """The builder's weights enum, or None for builders without published weights."""
    import torchvision.models as tvm

    try:
        return tvm.get_model_weights(name)
    except (ValueError, KeyError):
        return None


def pick_weights(enum: Any, weights: str, name: str) -> Any:
    """The enum member ``--weights`` names (``DEFAULT``, ``IMAGENET1K_V2``, ``Enum.MEMBER``); None for none."""
    if weights.lower() == "none":
        return None
    if enum is None:
        raise NotFoundError(f"torchvision has no pretrained weights for {name}; use --weights none")
    if weights.upper() == "DEFAULT":
        return enum.DEFAULT
    short = weights.split(".")[-1]
    if short in enum.__members__:
        return enum[short]
    raise NotFoundError(f"unknown weights {weights!r} for {name}; {weights_choices(enum, name)}")


def weights_choices(enum: Any, name: str) -> str:
    """The names ``--weights`` takes for ``name``, those already cached (no download) first."""
    cached = cached_torchvision_weights(name)
    others = [key for key, member in enum.__members__.items() if member.name == key and key not in cached]
    listed = ", ".join(["DEFAULT", *others, "none"])
    return f"cached here: {', '.join(cached)}; or download: {listed}" if cached else f"choose one of: {listed}"


def weights_name(weights: Any) -> str:
    """``ResNet18_Weights.IMAGENET1K_V1``: how the header and ``--json`` name a weights set."""
    return f"{type(weights).__name__}.{weights.name}"


def preprocess_from_weights(weights: Any) -> Preprocess:
    """The weights' own resize, crop and normalisation; detection weights normalise inside the model."""
    if weights is None:
        return Preprocess()
    try:
        tf = weights.transforms()
    except Exception:  # some weights need arguments (e.g. video); fall back to defaults
        return Preprocess()
    crop = getattr(tf, "crop_size", None)
    resize = getattr(tf, "resize_size", None)
    mean = getattr(tf, "mean", IMAGENET_MEAN)
    std = getattr(tf, "std", IMAGENET_STD)
    if not crop:  # detection weights: the model resizes and normalises inside its own transform
        return Preprocess(resize=None, crop=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    side = int(crop[0])
    return Preprocess(
        resize=int(resize[0]) if resize else None,
        crop=(side, side),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
    )
