"""Which layer to explain: the well-known choice per architecture, else a probe's guess.

The table mirrors what the CAM literature and pytorch-grad-cam's README recommend;
for anything else, one probe forward pass finds the last module whose output is
still a spatial map or a token grid, i.e. the last one before global pooling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from layerscope.cam.reshape import Layout, ModelHints, infer_layout, model_hints
from layerscope.errors import LayerscopeError
from layerscope.models import adapters
from layerscope.running.probe import ShapeInfo, probe_shapes
from layerscope.tree import ModuleTree, build_tree

# (class name, module that tells two families with that class name apart, layer)
_TABLE: tuple[tuple[str, str | None, str], ...] = (
    ("FasterRCNN", None, "backbone"),
    ("MaskRCNN", None, "backbone"),
    ("KeypointRCNN", None, "backbone"),
    ("ResNet", "layer4", "layer4[-1]"),
    ("VGG", None, "features[-1]"),
    ("DenseNet", None, "features[-1]"),
    ("MobileNetV2", None, "features[-1]"),
    ("MobileNetV3", None, "features[-1]"),
    ("MNASNet", None, "layers[-1]"),
    ("SqueezeNet", None, "features[-1]"),  # its classifier conv already holds one map per class
    ("VisionTransformer", "blocks", "blocks[-1].norm1"),  # timm
    ("VisionTransformer", "encoder", "encoder.layers[-1].ln_1"),  # torchvision
    ("SwinTransformer", "layers", "layers[-1].blocks[-1].norm1"),  # timm
    ("SwinTransformer", "features", "features[-1][-1].norm1"),  # torchvision
)


@dataclass(frozen=True)
class Eligibility:
    """Whether a layer's output can carry a map: ``spatial``, ``tokens`` or ``none``, and why."""

    kind: str
    reason: str

    @property
    def eligible(self) -> bool:
        return self.kind != "none"


def suggest_target_layer(
    model: nn.Module, tree: ModuleTree | None = None, input_shape: tuple[int, ...] = (3, 224, 224)
) -> str:
    """The qualified name of the layer to explain by default (may run one probe pass)."""
    problem = adapters.text_model_problem(model)
    if problem:
        raise LayerscopeError(problem)
    tree = tree or build_tree(model)
    known = table_target(model, tree)
    if known is not None:
        return known
    return suggest_from_shapes(model, tree, probe_shapes(model, input_shape), input_shape[-2:])


def table_target(model: nn.Module, tree: ModuleTree) -> str | None:
    """The well-known layer for this architecture, if it is one of the table's; no forward pass."""
    cls = type(model).__name__
    for name, marker, expression in _TABLE:
        if cls == name and (marker is None or hasattr(model, marker)):
            try:
                return tree.resolve(expression).name
            except LayerscopeError:
                return None  # a customised copy of a known class: the shapes decide
    return adapters.suggested_layer(model)


def suggest_from_shapes(
    model: nn.Module, tree: ModuleTree, shapes: dict[str, ShapeInfo], input_hw: tuple[int, int] = (224, 224)
) -> str:
    """The last module whose output is still spatial or a token grid, from probed ``shapes``.

    Hooks fire child first, so the last such output often belongs to a plain container
    (``features``); step into its last child while that gives the same output, which
    yields ``features[-1]`` as people write it, not the container or an activation inside.
    """
    hints = model_hints(model)
    eligible = [
        n
        for n, info in shapes.items()
        if n and layer_eligibility(info, tuple(input_hw), hints).eligible and not _does_nothing(tree, n)
    ]
    if not eligible:
        raise LayerscopeError(
            f"no layer of {type(model).__name__} has a spatial or token-grid output for input "
            f"{'x'.join(map(str, input_hw))}"
        )
    node = tree.get(eligible[-1])
    while node is not None and node.class_name in ("Sequential", "ModuleList") and node.children:
        last = tree.nodes[node.children[-1]]
        if not last.children or shapes.get(last.name) != shapes.get(node.name):
            break  # a leaf (the ReLU closing a conv block) is no better than its block
        node = last
    return node.name if node is not None else eligible[-1]


# Modules that hand their input on at inference (timm's ``norm_pre`` is an ``Identity``): their
# map is their input's, so one is never the suggestion; the layer that computed it is.
PASS_THROUGH = frozenset(
    {
        "Identity",
        "Dropout",
        "Dropout1d",
        "Dropout2d",
        "Dropout3d",
        "AlphaDropout",
        "FeatureAlphaDropout",
        "DropPath",
        "DropBlock2d",
    }
)


def _does_nothing(tree: ModuleTree, name: str) -> bool:
    node = tree.get(name)
    return node is not None and node.class_name in PASS_THROUGH


def layer_eligibility(
    shape: ShapeInfo | None, input_hw: tuple[int, int] = (224, 224), hints: ModelHints = ModelHints()
) -> Eligibility:
    """Classify one probed output (``probe_shapes``) for the tree view and for error messages."""
    if shape is None:
        return Eligibility("none", "not run by the forward pass")
    layout = infer_layout(_tensor_shapes(shape), input_hw, hints)
    if isinstance(layout, Layout):
        return Eligibility(layout.eligibility_kind, layout.describe())
    return Eligibility("none", layout)


def eligible_layers(model: nn.Module, input_shape: tuple[int, ...] = (3, 224, 224)) -> list[tuple[str, Eligibility]]:
    """Every module that can carry a map, in the order their outputs were produced: the
    last one is the last spatial (or token-grid) output before pooling."""
    shapes = probe_shapes(model, input_shape)
    hints = model_hints(model)
    hw = (input_shape[-2], input_shape[-1])
    found = [(name, layer_eligibility(info, hw, hints)) for name, info in shapes.items() if name]
    return [(name, e) for name, e in found if e.eligible]


def _tensor_shapes(shape: ShapeInfo) -> list[tuple[int, ...]]:
    if shape.kind == "tensor":
        return [shape.shape or ()]
    if shape.kind in ("mapping", "sequence"):
        return [s for _, item in shape.items for s in _tensor_shapes(item)] if shape.items else []
    return []


def family_names(tree: ModuleTree, name: str) -> list[str]:
    """Every layer in the tree with ``name``'s role, in tree order, ``name`` included.

    Numbers in the path to the layer vary (``layer4.2`` → every ``layerN.M``,
    ``encoder_layer_11.ln_1`` → every ``encoder_layer_N.ln_1``); the layer's own name
    keeps its digits unless it is a bare index, so ``blocks.11.norm1`` gives every
    block's ``norm1`` and never a ``norm2``, whose role differs.
    """
    pattern = family_pattern(name)
    found = list(dict.fromkeys(node.name for node in tree if node.name and pattern.fullmatch(node.name)))
    return found if name in found else [*found, name]


def family_pattern(name: str) -> re.Pattern[str]:
    """The regular expression ``family_names`` matches names against."""
    parts = name.split(".")
    spelled = []
    for i, part in enumerate(parts):
        if part.isdigit():
            spelled.append(r"\d+")
        elif i == len(parts) - 1:
            spelled.append(re.escape(part))
        else:
            spelled.append(re.sub(r"\d+", lambda _: r"\d+", re.escape(part)))
    return re.compile(r"\.".join(spelled))


def spread(names: list[str], keep: str, limit: int) -> list[str]:
    """At most ``limit`` of ``names``, evenly spread from first to last, ``keep`` always among them."""
    if len(names) <= limit:
        return list(names)
    others = [n for n in names if n != keep]
    step = (len(others) - 1) / max(1, limit - 2)
    chosen = {others[round(i * step)] for i in range(limit - 1)} | {keep}
    return [n for n in names if n in chosen]
