"""``package.module:callable`` specs: the user's own code builds the model.

That code may fail in any way; it is the user's to fix, so any failure becomes one
line naming the factory and the exception (``--debug`` keeps the traceback).
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from layerscope.errors import LayerscopeError, first_line
from layerscope.models.build import build_on_device
from layerscope.models.loaded import LoadedModel
from layerscope.models.source import LoadRequest

MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class FactorySource:
    """Any spec with a ``:`` that no earlier source claimed (``timm:`` and ``hf:`` come first)."""

    name = "factory"
    reads_own_weights = False

    def claims(self, spec: str) -> bool:
        return ":" in spec and not spec.startswith("torchvision:")

    def auto_weights(self, spec: str) -> str:
        return "none"  # factories bring their own weights

    def load(self, request: LoadRequest) -> LoadedModel:
        spec, kwargs = request.spec, dict(request.kwargs)
        module, factory = find_factory(spec)
        try:  # not sized: a meta trial run would run the user's code twice
            model = build_on_device(
                request.device, lambda: factory(**kwargs), spec, kwargs, sized=False, bounded=False
            )  # the user's own code: its size is theirs
        except LayerscopeError:
            raise
        except TypeError as exc:
            raise LayerscopeError(f"{spec} does not accept those arguments: {first_line(exc)}") from exc
        except Exception as exc:
            raise LayerscopeError(f"{spec} raised {type(exc).__name__}: {first_line(exc)}") from exc
        if not isinstance(model, nn.Module):
            raise LayerscopeError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
        return LoadedModel(
            model=model,
            spec=spec,
            source=self.name,
            weights="none",
            pretrained=False,
            device=request.device,
            files=source_files(module, factory),
        )


def find_factory(spec: str) -> tuple[ModuleType, Any]:
    """The module and the callable ``package.module:callable`` names (importing runs the module's code)."""
    module_name, _, attr = spec.partition(":")
    if not MODULE_NAME.fullmatch(module_name) or not attr.isidentifier():
        raise LayerscopeError(f"cannot read model spec {spec!r}: a factory is package.module:callable")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LayerscopeError(f"cannot import {module_name!r} for {spec!r}: {first_line(exc)}") from exc
    except Exception as exc:
        raise LayerscopeError(f"importing {module_name!r} raised {type(exc).__name__}: {first_line(exc)}") from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise LayerscopeError(f"{module_name!r} has no callable named {attr!r}")
    return module, factory


def source_files(module: ModuleType, factory: Any) -> tuple[Path, ...]:
    """The factory's module and the file its function was written in (often the same)."""
    found = [getattr(module, "__file__", None)]
    try:
        found.append(inspect.getsourcefile(factory))
    except TypeError:  # a builtin or a C extension's callable
        pass
    return tuple(dict.fromkeys(Path(f) for f in found if f))
