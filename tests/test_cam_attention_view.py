"""``cam.attention_view``: per block, per head, the class token's attention over the patch grid,
checked against the model's own eager attention (timm with ``fused_attn=False`` on a copy,
the probabilities read after the softmax at ``attn_drop``)."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision

from attention_models import DEPTH, HEADS, tiny_vit
from layerscope.cam.attention_view import all_head_maps, head_maps
from layerscope.errors import LayerscopeError


def eager_probabilities(model, x) -> list[torch.Tensor]:
    """Every block's ``N×H×T×T`` from an eager copy: not the code under test."""
    eager = copy.deepcopy(model)
    found = []
    for block in eager.blocks:
        block.attn.fused_attn = False
        block.attn.attn_drop.register_forward_hook(lambda _m, _i, out: found.append(out.detach()))
    with torch.no_grad():
        eager(x)
    return found


def test_head_maps_are_the_class_tokens_rows_over_the_patches_per_head():
    model, x = tiny_vit(), torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    fused = [block.attn.fused_attn for block in model.blocks]
    expected = eager_probabilities(model, x)
    found = all_head_maps(model, x)
    assert found.blocks == tuple(f"blocks.{i}" for i in range(DEPTH)) and found.query == "class token"
    for block, probs in zip(found.blocks, expected):
        want = probs[:, :, 0, 1:].reshape(2, HEADS, 7, 7)
        torch.testing.assert_close(head_maps(model, x, block), want, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(
        head_maps(model, x, "blocks.1.attn.qkv"), expected[1][:, :, 0, 1:].reshape(2, HEADS, 7, 7), rtol=1e-4, atol=1e-6
    )
    assert [block.attn.fused_attn for block in model.blocks] == fused  # the model as found
    assert not any(block._forward_hooks or block._forward_pre_hooks for block in model.modules())


def test_torchvision_vit_per_head_and_the_last_block_for_a_container():
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
    ).eval()
    x = torch.randn(1, 3, 32, 32)
    maps = head_maps(model, x, "encoder.layers")
    assert maps.shape == (1, 2, 4, 4)
    assert torch.all(maps > 0) and torch.all(maps.sum(dim=(2, 3)) < 1)  # the class token's own share is cut off


@pytest.mark.parametrize("layer", ["heads", "conv_proj"])
def test_a_layer_that_runs_no_attention_is_one_line(layer):
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32
    ).eval()
    with pytest.raises(LayerscopeError, match="runs no attention") as caught:
        head_maps(model, torch.randn(1, 3, 32, 32), layer)
    assert "\n" not in str(caught.value)


def test_a_convnet_is_one_line():
    with pytest.raises(LayerscopeError, match="no attention ran") as caught:
        all_head_maps(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), torch.randn(1, 3, 16, 16))
    assert "\n" not in str(caught.value)
