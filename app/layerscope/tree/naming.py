"""The grammar of layer names: reading (``parse``) and writing (``spell_*``) them, nothing else.

Users copy target layers from papers and READMEs as ``model.layer4[-1]`` or
``model.blocks[-1].norm1``; tools print ``layer4.2``. This module only knows the
text: which spelling of one step is valid Python, and how a written name splits
into steps. Which spelling reaches which module is decided by the tree builder
(``layerscope.tree``), which looks at the real containers; looking names up in a
tree lives there too.

A step is a ``str`` (a registration key, as ``named_modules()`` and ``state_dict()``
spell it) or an ``int`` (a position, as ``Sequential[i]`` / ``ModuleList[i]`` read it).
"""

from __future__ import annotations

import keyword
import re

from layerscope.errors import BadArgumentError, LayerscopeError
from layerscope.parsing import whole

Step = str | int

_TOKEN = re.compile(
    r"""\.get_submodule\(\s*(['"])(?P<sub>.*?)\1\s*\)"""  # .get_submodule('block1-0')
    r"""|\._modules\[\s*(['"])(?P<raw>.*?)\3\s*\]"""  # ._modules['head'] (a key hidden by an attribute)
    r"""|\.?(?P<plain>[A-Za-z_]\w*|-?\d+)"""  # .layer4  or a dotted name's 2 / -1
    r"""|\[\s*(?P<index>-?\d+)\s*\]"""  # [2] / [-1]: a position
    r"""|\[\s*(['"])(?P<item>.*?)\7\s*\]"""  # ['cls']: a ModuleDict key
)
ROOTS = ("model", "self")


def spell_attribute(key: str) -> str:
    """``.key`` where that is valid Python; ``.get_submodule('key')`` for ``block1-0``, ``lambda``…"""
    if key.isidentifier() and not keyword.iskeyword(key):
        return f".{key}"
    return f".get_submodule({key!r})"


def spell_position(position: int) -> str:
    return f"[{position}]"


def spell_item(key: str) -> str:
    return f"[{key!r}]"


def spell_private(key: str) -> str:
    """The last resort: a class attribute of the same name hides the child from ``getattr``."""
    return f"._modules[{key!r}]"


def is_attribute(key: str) -> bool:
    """Whether ``.key`` is valid Python (not a keyword such as ``lambda`` or ``class``)."""
    return key.isidentifier() and not keyword.iskeyword(key)


def parse(expression: str) -> list[Step]:
    """Split ``model.layer4[-1].conv2`` or ``layer4.2.conv2`` into keys (str) and positions (int).

    A leading ``model`` or ``self`` is the root: ``model.model.layers[-1]`` is the child
    called ``model``, then ``layers``, then its last position.
    """
    text = expression.strip()
    if text in ROOTS:
        return []
    for root in ROOTS:
        if text.startswith((root + ".", root + "[")):
            text = text[len(root) :]
            break
    steps: list[Step] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos or (pos and match["plain"] and text[pos] != "."):
            raise BadArgumentError(f"cannot read layer name {expression!r} near {text[pos:]!r}")
        steps.extend(_steps_of(match))
        pos = match.end()
    return steps


def _steps_of(match: re.Match[str]) -> list[Step]:
    if match["sub"] is not None:
        return list(match["sub"].split("."))
    if match["index"] is not None:
        return [whole(match["index"], "layer index")]
    for group in ("raw", "item", "plain"):
        if match[group] is not None:
            return [match[group]]
    return []


def as_dotted(expression: str) -> str:
    """The steps joined with dots, for comparing a wrong name with the real ones."""
    try:
        return ".".join(str(s) for s in parse(expression))
    except LayerscopeError:
        return expression
