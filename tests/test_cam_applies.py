"""Which methods apply to which model (``cam.applies``): decided from the structure, no forward pass."""

from __future__ import annotations

import pytest
import torchvision
from torch import nn

from attention_models import tiny_swin, tiny_vit
from layerscope.cam import METHODS
from layerscope.cam.applies import has_global_attention, methods_for

ATTENDING = [name for name, method in METHODS.items() if method.attends]


def _no_forward(model: nn.Module) -> nn.Module:
    def refuse(*_args) -> None:
        raise AssertionError("has_global_attention ran the model")

    model.register_forward_pre_hook(refuse)
    return model


@pytest.mark.parametrize(
    "build",
    [
        tiny_vit,
        lambda: torchvision.models.VisionTransformer(
            image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
        ),
    ],
)
def test_a_vit_gets_every_method_the_attention_ones_last(build):
    model = _no_forward(build())
    assert has_global_attention(model)
    assert methods_for(model) == list(METHODS) and methods_for(model)[-3:] == ATTENDING


@pytest.mark.parametrize(
    "build", [tiny_swin, lambda: torchvision.models.resnet18(), lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())]
)
def test_convnets_and_windowed_attention_get_the_cam_methods_only(build):
    model = _no_forward(build())
    assert not has_global_attention(model)
    assert methods_for(model) == [name for name in METHODS if name not in ATTENDING]


def test_hugging_face_vit_attends_and_its_swin_does_not():
    transformers = pytest.importorskip("transformers")
    vit = transformers.ViTForImageClassification(
        transformers.ViTConfig(
            num_hidden_layers=1,
            hidden_size=16,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=32,
            patch_size=8,
        )
    )
    swin = transformers.SwinForImageClassification(
        transformers.SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[1], num_heads=[1], window_size=4)
    )
    assert has_global_attention(vit) and not has_global_attention(swin)
