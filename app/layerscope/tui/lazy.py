"""The app's two torch-side modules, imported when first used rather than when the app starts.

``camlink`` (the Grad-CAM engine's doorway) and ``jobs`` (open, probe, count, read a tab)
import torch, which takes seconds; the first frame must not wait for it. The screens
import the names below at the top as usual; each name imports its module on the
first attribute read (by then a worker is loading the model, or has loaded it), and
every read goes to the module itself, so a test that patches ``camlink.compute`` is
seen. Type checkers see the real modules.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING


class LazyModule:
    """Stands for the module ``name``; the first attribute read imports it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attribute: str) -> object:
        module: ModuleType = importlib.import_module(self.name)  # after the first time: a dict lookup
        return getattr(module, attribute)


if TYPE_CHECKING:
    from layerscope.tui import camlink, jobs
else:
    camlink = LazyModule("layerscope.tui.camlink")
    jobs = LazyModule("layerscope.tui.jobs")
