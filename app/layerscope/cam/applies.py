"""Which CAM methods apply to a model: the transformer-native ones only where attention is global.

``rollout``, ``gradrollout`` and ``legrad`` need every block to attend over all of an
image's tokens; on a convnet or a Swin (windowed attention) they can only fail. A picker
that offers them there offers an error, so the app asks here, once per model, from the
model's structure alone: no forward pass, nothing downloaded, nothing changed. The check
is deliberately cheap and may say yes to an unusual model whose attention turns out to be
local; the method then fails with its own one-line error (``cam.attention.check_global``).
"""

from __future__ import annotations

from torch import nn

from layerscope.cam.methods import METHODS
from layerscope.cam.reshape import model_hints

PROJECTIONS = ("qkv", "query", "q_proj", "q")  # timm / Hugging Face ViT / CLIP's query projections
WINDOWED = ("Window", "Swin")  # class names of local attention: Swin (torchvision, timm, Hugging Face)


def has_global_attention(model: nn.Module) -> bool:
    """True when a block of the model (a child of a ``ModuleList`` or ``Sequential``) holds an
    attention module over all its tokens: ``nn.MultiheadAttention`` (torchvision's ViT), or a
    class named ``*Attention`` with a query projection (timm's ``Attention``, Hugging Face's
    ``ViTSelfAttention``, ``CLIPAttention``…). Swin's windowed attention does not count."""
    if model_hints(model).channels_last:  # Swin's channels-last grids
        return False
    blocks = {name for name, module in _containers(model)}
    found = False
    for name, module in model.named_modules():
        if any(word in type(module).__name__ for word in WINDOWED):
            return False
        if not found and _attends(module) and _inside(name, blocks):
            found = True
    return found


def methods_for(model: nn.Module) -> list[str]:
    """The methods that apply to ``model``, in ``METHODS``' order: the CAM methods always,
    the attention methods when it has global attention."""
    attends = has_global_attention(model)
    return [name for name, method in METHODS.items() if attends or not method.attends]


def _attends(module: nn.Module) -> bool:
    if isinstance(module, nn.MultiheadAttention):
        return True
    name = type(module).__name__
    return name.endswith("Attention") and any(isinstance(getattr(module, p, None), nn.Module) for p in PROJECTIONS)


def _containers(model: nn.Module):
    """Each child of a ``ModuleList`` or ``Sequential``, by qualified name: the blocks, as
    ``cam.attention`` finds them."""
    for name, module in model.named_modules():
        if isinstance(module, (nn.ModuleList, nn.Sequential)):
            for child_name, child in module.named_children():
                yield (f"{name}.{child_name}" if name else child_name), child


def _inside(name: str, blocks: set[str]) -> bool:
    parts = name.split(".")
    return any(".".join(parts[:i]) in blocks for i in range(1, len(parts) + 1))
