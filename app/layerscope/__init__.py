"""layerscope: see how a PyTorch model is built, count it exactly, and look at its Grad-CAM maps.

The engine (loading, tree, probe, cam, imaging, render) stands alone and imports no
textual; the Textual app in ``layerscope.tui`` and the CLI in ``layerscope.cli`` are
thin layers over it, so both show the same numbers.
"""

__version__ = "0.1.0"
