"""Target layers: the well-known table, the probe's fallback, per-layer eligibility,
and token grids for transformers (prefix tokens, channels-last Swin, overrides)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from layerscope.cam import TokenGrid, compute_cam, layer_eligibility, suggest_target_layer
from layerscope.cam.reshape import ModelHints, infer_layout
from layerscope.models import load_model
from layerscope.running.probe import ShapeInfo

# (spec, builder kwargs, input size, expected suggestion, expected raw map shape)
SEED_TABLE = [
    ("resnet18", {}, 64, "layer4.1", (2, 2)),
    ("resnet50", {}, 64, "layer4.2", (2, 2)),
    ("vgg16", {}, 64, "features.30", (2, 2)),
    ("densenet161", {}, 64, "features.norm5", (2, 2)),
    ("mobilenet_v2", {}, 64, "features.18", (2, 2)),
    ("mobilenet_v3_large", {}, 64, "features.16", (2, 2)),
    ("mobilenet_v3_small", {}, 64, "features.12", (2, 2)),
    ("mnasnet1_0", {}, 64, "layers.16", (2, 2)),
    ("timm:vit_tiny_patch16_224", {}, 224, "blocks.11.norm1", (14, 14)),
    ("timm:swin_tiny_patch4_window7_224", {}, 224, "layers.3.blocks.1.norm1", (7, 7)),
    ("vit_b_16", {}, 224, "encoder.layers.encoder_layer_11.ln_1", (14, 14)),
    ("swin_t", {}, 224, "features.7.1.norm1", (7, 7)),
    ("fasterrcnn_resnet50_fpn", {"min_size": 128, "max_size": 128}, 128, "backbone", (8, 8)),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "kwargs", "size", "layer", "raw_shape"), [pytest.param(*row, id=row[0]) for row in SEED_TABLE]
)
def test_seed_table_suggests_the_known_layer_and_maps_it(spec, kwargs, size, layer, raw_shape):
    torch.manual_seed(0)
    loaded = load_model(spec, weights="none", kwargs=kwargs)
    suggested = suggest_target_layer(loaded.model, input_shape=(3, size, size))
    assert suggested == layer
    x = torch.rand(1, 3, size, size)
    method = "eigencam" if spec.startswith("fasterrcnn") else "gradcam"
    result = compute_cam(loaded.model, x, suggested, method)
    assert result.layer == layer
    assert result.heatmap.shape == (size, size) and torch.isfinite(result.heatmap).all()
    assert 0 <= float(result.heatmap.min()) and float(result.heatmap.max()) <= 1
    assert tuple(result.raw.shape) == raw_shape and torch.isfinite(result.raw).all()


def test_unknown_model_gets_the_last_spatial_layer_before_pooling():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )
    assert suggest_target_layer(model, input_shape=(3, 32, 32)) == "3"


@pytest.mark.parametrize(
    ("shape", "kind", "reason"),
    [
        (ShapeInfo("tensor", (1, 512, 7, 7)), "spatial", "512×7×7"),
        (ShapeInfo("tensor", (1, 197, 768)), "tokens", "tokens → 14×14 grid, 768 channels, 1 prefix token(s)"),
        (ShapeInfo("tensor", (1, 7, 7, 768)), "tokens", "channels-last 7×7 grid, 768 channels"),
        (ShapeInfo("tensor", (1, 2048, 1, 1)), "none", "is 1×1 (after pooling)"),
        (ShapeInfo("tensor", (1, 1000)), "none", "1×1000 has no spatial grid (logits or pooled features)"),
        (ShapeInfo("other", type_name="str"), "none", "not a tensor"),
        (
            ShapeInfo(
                "mapping",
                items=(
                    ("0", ShapeInfo("tensor", (1, 256, 56, 56))),
                    ("1", ShapeInfo("tensor", (1, 256, 28, 28))),
                    ("pool", ShapeInfo("tensor", (1, 256, 14, 14))),
                ),
            ),
            "spatial",
            "feature levels combined at 28×28, 768 channels",
        ),
    ],
)
def test_layer_eligibility(shape, kind, reason):
    found = layer_eligibility(shape, (224, 224))
    assert found.kind == kind and reason in found.reason


def test_token_grid_follows_the_input_aspect_ratio_and_prefix_hint():
    layout = infer_layout([(1, 2 + 8 * 16, 64)], (128, 256), ModelHints(prefix_tokens=2))
    assert layout.grid == (8, 16) and layout.prefix == 2
    tokens = torch.arange(2 * 130 * 3, dtype=torch.float32).reshape(2, 130, 3)
    grid = layout.apply([tokens])
    assert grid.shape == (2, 3, 8, 16)
    assert torch.equal(grid[1, 2, 0, 1], tokens[1, 2 + 1, 2])  # row 0, column 1 = third patch token


def test_override_grid_and_prefix_tokens():
    layout = infer_layout([(1, 1 + 4 * 6, 8)], (224, 224), override=TokenGrid(grid=(4, 6), prefix_tokens=1))
    assert layout.grid == (4, 6) and layout.prefix == 1
    assert "do not fill a 5×5 grid" in infer_layout([(1, 25, 8)], (224, 224), override=TokenGrid((5, 5), 1))


class _Tokens(nn.Module):
    """A toy ViT: patches → tokens (with one class token) → mean of the class token's features."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 4, stride=4)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 3)
        self.cls = nn.Parameter(torch.randn(1, 1, 8))

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = self.norm(torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1))
        return self.head(tokens.mean(1))


def test_token_layer_map_equals_the_same_map_on_the_patch_grid():
    torch.manual_seed(0)
    model, x = _Tokens(), torch.randn(1, 3, 16, 32)
    result = compute_cam(model, x, "norm", "hirescam", 1)
    assert result.raw.shape == (4, 8) and "1 prefix token" in result.layout
    custom = compute_cam(
        model, x, "norm", "hirescam", 1, reshape=lambda t: t[:, 1:].transpose(1, 2).reshape(1, 8, 4, 8)
    )
    assert torch.allclose(result.raw, custom.raw)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("efficientnet_b0", "features.8"),  # features[-1], not the container nor its SiLU
        ("convnext_tiny", "features.7.2"),  # features[-1][-1]: the last CNBlock
        ("shufflenet_v2_x1_0", "conv5"),  # conv5's last child is a leaf ReLU: stay on the block
        ("squeezenet1_0", "features.12"),  # table: not the classifier's per-class conv
    ],
)
def test_suggestions_off_the_table_step_into_plain_containers(name, expected):
    loaded = load_model(name)
    assert suggest_target_layer(loaded.model, input_shape=loaded.input_shape) == expected
