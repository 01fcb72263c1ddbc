"""Small random-weight vision transformers, importable as ``attention_models:NAME`` factory specs:
shared by the attention view's engine tests and the app's (picker, view, snapshots).

Seeded, a few blocks, patch 32 on the app's 224×224 crop (a 7×7 grid): a forward costs
milliseconds, and every map is the same on every machine.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

HEADS = 6
DEPTH = 3


def tiny_vit() -> nn.Module:
    """timm's ``VisionTransformer``: one class token, ``DEPTH`` blocks of ``HEADS`` heads."""
    torch.manual_seed(0)
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=224, patch_size=32, embed_dim=48, depth=DEPTH, num_heads=HEADS, num_classes=10
    )
    return model.eval()


def tiny_swin() -> nn.Module:
    """timm's Swin: windowed attention, no global attention (the picker offers no attention methods)."""
    torch.manual_seed(0)
    return timm.models.swin_transformer.SwinTransformer(
        img_size=224, patch_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2), window_size=7, num_classes=10
    ).eval()
