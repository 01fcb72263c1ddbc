"""Small vision transformers for the transformer-native methods' CLI tests, built as factory
specs (``attention_models:tiny_vit``): random weights, a non-zero head, 224×224 input in 7×7
patches, so a photo's default preprocessing fits and a pass takes milliseconds."""

from __future__ import annotations

import timm
import torch
from torch import nn


def tiny_vit() -> nn.Module:
    torch.manual_seed(0)
    return timm.models.vision_transformer.VisionTransformer(
        img_size=224, patch_size=32, embed_dim=32, depth=3, num_heads=4, num_classes=10).eval()
