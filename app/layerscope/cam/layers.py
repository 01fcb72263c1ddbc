"""Naming the layer to explain: a dotted name, an access expression, or the module itself."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from layerscope.errors import LayerscopeError
from layerscope.tree import ModuleTree, build_tree

LayerRef = str | nn.Module


def resolve_layer(model: nn.Module, layer: LayerRef, tree: ModuleTree | None = None) -> tuple[str, nn.Module]:
    """A qualified name and module for a dotted name, an access expression or the module itself,
    read by ``ModuleTree.resolve``: the CLI, the app and ``compute_cam`` agree on every name.

    Without ``tree`` a name builds the model's tree (a module needs none): code resolving
    more than one layer passes one tree, or calls ``resolve_layers``."""
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name, module
        raise LayerscopeError(f"the {type(layer).__name__} passed as layer is not part of this model")
    if tree is None:
        tree = build_tree(model)
    node = tree.resolve(layer)  # raises with the closest names
    return node.name, tree.module_of(model, node)


def resolve_layers(
    model: nn.Module, layers: Sequence[LayerRef], tree: ModuleTree | None = None
) -> tuple[list[tuple[str, nn.Module]], ModuleTree | None]:
    """Every layer of one pass resolved against one tree, built here at most once (a 16-layer
    sweep must not walk a large model 16 times); the tree is returned for later lookups."""
    if tree is None and any(not isinstance(layer, nn.Module) for layer in layers):
        tree = build_tree(model)
    return [resolve_layer(model, layer, tree) for layer in layers], tree
