"""What the rest of layerscope asks of a model made by Hugging Face ``transformers``.

Answers from the model object alone (``main_input_name``, ``config.model_type``, the
conversion mapping transformers 5 keeps), so asking never imports transformers: a
model made by it has already imported it. ``layerscope.models.adapters`` is where the
engine asks; this module is one of the answerers.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

from torch import nn


def text_model_problem(model: nn.Module) -> str | None:
    """Why a model cannot take an image: a transformers model whose main input is token ids
    (or audio: ``input_values``, ``input_features``)."""
    main = getattr(model, "main_input_name", None)
    if main is None or main == "pixel_values":
        return None
    kind, probe = ("a text model", "--input 128:long") if main == "input_ids" else ("not an image model", "--input")
    return (
        f"{type(model).__name__} takes {main} ({kind}), not an image; Grad-CAM needs a layer with a "
        f"spatial or token-grid output over an image. Browse it with tree/stats/api and {probe}"
    )


_LAST_LAYER = {  # model_type → the module to take the last of (named_modules order)
    "vit": "layernorm_before",
    "deit": "layernorm_before",
    "beit": "layernorm_before",
    "swin": "layernorm_before",
    "swinv2": "layernorm_before",
    "convnext": "stages",
    "convnextv2": "stages",
    "resnet": "stages",
}


def suggested_layer(model: nn.Module) -> str | None:
    """The usual Grad-CAM target of a transformers vision model: ViT/DeiT's last layer's
    ``layernorm_before`` (timm's ``blocks[-1].norm1``), Swin's last stage's last block's,
    ConvNeXt's and ResNet's last stage."""
    config = getattr(model, "config", None)
    leaf = _LAST_LAYER.get(getattr(config, "model_type", None) or "")
    if leaf is None:
        return None
    found = None
    for name, module in model.named_modules():
        parts = name.split(".")
        if parts[-1] == leaf and leaf != "stages":
            found = name
        elif leaf == "stages" and parts[-1] == "stages" and isinstance(module, (nn.ModuleList, nn.Sequential)):
            found = f"{name}.{len(module) - 1}" if len(module) else None
    return found


def checkpoint_renamer(model: nn.Module) -> Callable[[str], str | None] | None:
    """How a layer name written against a checkpoint or older code maps onto this model.

    transformers 5 renamed modules (``vit.encoder.layer.2.attention`` is now
    ``vit.layers.2.attention``) and renames checkpoint keys as it loads them; names people
    copy from a checkpoint's keys, from 4.x code or from papers (``model.vit.encoder.layer[-1]
    .layernorm_before``) go through the same renames. ``None`` for any other model.
    """
    transformers = sys.modules.get("transformers")
    if transformers is None or not isinstance(model, transformers.PreTrainedModel):
        return None
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightRenaming, rename_source_key
    except ImportError:  # transformers 4 renames nothing
        return None
    renames = [r for r in get_model_conversion_mapping(model) if isinstance(r, WeightRenaming)]
    if not renames:
        return None

    def rename(text: str) -> str | None:
        dotted = re.sub(r"\[\s*(-?\d+)\s*\]", r".\1", text.strip())
        for candidate in (dotted, dotted.removeprefix("model.")):
            renamed, _ = rename_source_key(candidate, renames, [])
            if renamed != candidate:
                return re.sub(r"\.(-?\d+)(?=\.|$)", r"[\1]", renamed)
        return None

    return rename


class TransformersAdapter:
    """The ``ModelAdapter`` for transformers models: every answer is ``None`` for other models."""

    def text_model_problem(self, model: nn.Module) -> str | None:
        return text_model_problem(model)

    def suggested_layer(self, model: nn.Module) -> str | None:
        return suggested_layer(model)

    def checkpoint_renamer(self, model: nn.Module) -> Callable[[str], str | None] | None:
        return checkpoint_renamer(model)
