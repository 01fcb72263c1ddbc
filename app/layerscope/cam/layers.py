"""Naming the layer to explain: a dotted name, an access expression, or the module itself."""

from __future__ import annotations

from torch import nn

from layerscope.errors import LayerscopeError
from layerscope.tree import ModuleTree, build_tree

LayerRef = str | nn.Module


def resolve_layer(model: nn.Module, layer: LayerRef, tree: ModuleTree | None = None) -> tuple[str, nn.Module]:
    """A qualified name and module for a dotted name, an access expression or the module itself,
    read by ``ModuleTree.resolve``: the CLI, the app and ``compute_cam`` agree on every name."""
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name, module
        raise LayerscopeError(f"the {type(layer).__name__} passed as layer is not part of this model")
    tree = tree or build_tree(model)
    node = tree.resolve(layer)  # raises with the closest names
    return node.name, tree.module_of(model, node)
