"""Names for layers: dotted ``named_modules()`` names and the Python people write.

Users copy target layers from papers and READMEs as ``model.layer4[-1]`` or
``model.blocks[-1].norm1``; tools print ``layer4.2``. Both spellings are accepted
everywhere a layer is named, and a wrong one gets the closest real names back.
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING

from torch import nn

from layerscope.errors import LayerscopeError
from layerscope.parsing import as_int

if TYPE_CHECKING:
    from layerscope.tree import ModuleTree, Node

_TOKEN = re.compile(r"""\.?([A-Za-z_]\w*|-?\d+)|\[\s*(-?\d+)\s*\]|\[\s*(['"])(.*?)\3\s*\]""")


def child_access(
    parent: str, parent_negative: str | None, parent_module: nn.Module, key: str, is_last: bool, siblings: int
) -> tuple[str, str | None]:
    """The Python expression reaching a child, plus its ``[-1]`` form when one exists."""
    indexable = isinstance(parent_module, (nn.Sequential, nn.ModuleList))
    if indexable and key.isascii() and key.isdigit():
        segment = f"[{key}]"
        negative_segment = "[-1]" if is_last and siblings > 1 else segment
    elif indexable and key.isidentifier():  # Sequential(OrderedDict(...)) still indexes by position
        segment = f".{key}"
        negative_segment = "[-1]" if is_last and siblings > 1 else segment
    elif isinstance(parent_module, nn.ModuleDict):
        segment = negative_segment = f"[{key!r}]"
    elif key.isidentifier():
        segment = negative_segment = f".{key}"
    else:
        segment = negative_segment = f".get_submodule({key!r})"
    access = parent + segment
    negative = (parent_negative or parent) + negative_segment
    return access, (negative if negative != access else None)


def parse(expression: str) -> list[str | int]:
    """Split ``model.layer4[-1].conv2`` or ``layer4.2.conv2`` into keys (str) and indices (int)."""
    text = expression.strip()
    if text in ("", "model", "self"):
        return []
    for prefix in ("model.", "model[", "self."):
        if text.startswith(prefix):  # what remains may itself be a child called "model"
            text = text[len(prefix) - (1 if prefix.endswith("[") else 0):]
            break
    steps: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise LayerscopeError(f"cannot read layer name {expression!r} near {text[pos:]!r}")
        plain, index, _, quoted = match.groups()
        if index is not None:
            steps.append(int(index))
        elif quoted is not None:
            steps.append(quoted)
        else:
            steps.append(plain)
        pos = match.end()
    return steps


def resolve(tree: "ModuleTree", expression: str) -> "Node":
    """Walk the tree along ``expression``; a step that fails names the closest real layers."""
    exact = tree.get(expression.strip().removeprefix("model."))
    if exact is not None:  # dotted names may hold keys no expression can spell (``box-reg``)
        return exact
    node = tree.root
    for step in parse(expression):
        nxt = _step(tree, node, step)
        if nxt is None:
            raise LayerscopeError(_not_found(tree, expression))
        node = nxt
    return node


def _step(tree: "ModuleTree", node: "Node", step: str | int) -> "Node | None":
    if isinstance(step, str):
        found = tree.child_by_key(node, step)
        if found is not None or as_int(step) is None:
            return found
        step = as_int(step)
    if node.is_sequence and -len(node.children) <= step < len(node.children):  # [i] is only valid Python there
        return tree.nodes[node.children[step]]
    return None


def closest_names(tree: "ModuleTree", expression: str, n: int = 3) -> list[str]:
    """Real layer names that look like ``expression`` (compared as dotted names)."""
    wanted = _as_dotted(expression)
    depth = wanted.count(".") + 1
    pool = [node.name for node in tree.nodes if node.name]
    if len(pool) > 20000:  # keep the error path quick on huge models
        pool = [name for name in pool if name.count(".") + 1 == depth][:20000]
    return difflib.get_close_matches(wanted, pool, n=n, cutoff=0.5)


def _not_found(tree: "ModuleTree", expression: str) -> str:
    close = closest_names(tree, expression)
    hint = f"; closest: {', '.join(close)}" if close else ""
    return f"no layer {expression!r} in {tree.model_class}{hint}"


def _as_dotted(expression: str) -> str:
    try:
        return ".".join(str(s) for s in parse(expression))
    except LayerscopeError:
        return expression
