"""Naming the layer to explain: a dotted name, an access expression, or the module itself."""

from __future__ import annotations

from torch import nn

from layerscope import naming
from layerscope.errors import LayerscopeError
from layerscope.parsing import as_int
from layerscope.tree import ModuleTree, build_tree

LayerRef = str | nn.Module


def resolve_layer(model: nn.Module, layer: LayerRef, tree: ModuleTree | None = None) -> tuple[str, nn.Module]:
    """A qualified name and module for a dotted name, an access expression or the module itself."""
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name, module
        raise LayerscopeError(f"the {type(layer).__name__} passed as layer is not part of this model")
    found = _walk(model, layer)
    if found is not None:
        return found
    node = (tree or build_tree(model)).resolve(layer)  # raises with the closest names
    return node.name, model.get_submodule(node.name)


def _walk(model: nn.Module, expression: str) -> tuple[str, nn.Module] | None:
    """Follow ``layer4[-1]`` / ``layer4.2`` without building the whole tree (the common case),
    by the same rules as ``ModuleTree.resolve``: an exact dotted name first, then the parsed
    expression, positions only inside a Sequential or ModuleList."""
    dotted = expression.strip().removeprefix("model.")
    try:
        return dotted, model.get_submodule(dotted)
    except AttributeError:
        pass
    module, names = model, []
    for step in naming.parse(expression):
        children = list(module.named_children())
        keys = [key for key, _ in children]
        sequence = isinstance(module, (nn.Sequential, nn.ModuleList))
        if isinstance(step, str) and step in keys:
            index = keys.index(step)
        elif sequence and (isinstance(step, int) or as_int(step) is not None):
            index = step if isinstance(step, int) else as_int(step)
            if not -len(children) <= index < len(children):
                return None
        else:
            return None
        key, module = children[index]
        names.append(key)
    return ".".join(names), module
