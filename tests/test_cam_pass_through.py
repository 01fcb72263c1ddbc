"""Issue 32: the suggested layer is never a module that does nothing (timm ConvNeXt's
``norm_pre`` is an ``Identity``), and its family is one role in every block."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from layerscope.cam.targets import family_names, suggest_target_layer
from layerscope.tree import build_tree


class TrailingIdentity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 8, 3, padding=1))
        self.norm_pre = nn.Identity()
        self.drop = nn.Dropout2d()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.norm_pre(self.features(x))))


def test_an_identity_or_dropout_after_the_last_conv_is_never_suggested():
    model = TrailingIdentity().eval()
    assert suggest_target_layer(model, input_shape=(3, 16, 16)) == "features"  # what computed the map


def test_timm_convnext_suggests_its_last_stage_and_a_family_of_stages():
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        model = timm.create_model("convnext_tiny", pretrained=False).eval()
    tree = build_tree(model)
    suggested = suggest_target_layer(model, tree)
    assert suggested == "stages.3" and tree.get(suggested).class_name == "ConvNeXtStage"
    assert family_names(tree, suggested) == ["stages.0", "stages.1", "stages.2", "stages.3"]
    assert family_names(tree, "stages.3.blocks.2.mlp.fc2") == [
        f"stages.{s}.blocks.{b}.mlp.fc2" for s, n in enumerate((3, 3, 9, 3)) for b in range(n)
    ]
