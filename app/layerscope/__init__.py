"""layerscope: see how a PyTorch model is built, count it exactly, and look at its Grad-CAM maps.

The engine (loading, tree, probe, cam, imaging, render) stands alone and imports no
textual; the Textual app in ``layerscope.tui`` and the CLI in ``layerscope.cli`` are
thin layers over it, so both show the same numbers.
"""

__version__ = "0.1.0"

from typing import Any

__all__ = ["explore", "summary"]


def __getattr__(name: str) -> Any:
    """``summary`` and ``explore`` are imported when first asked for: ``import layerscope`` (and
    the app's first frame, which imports this package) must not wait for torch."""
    if name == "summary":
        from layerscope.cli.summary import summary

        return summary
    if name == "explore":
        from layerscope.tui.explore import explore

        return explore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
