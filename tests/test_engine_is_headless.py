"""The engine stands without the app: importing it must not import textual."""

import pkgutil
import subprocess
import sys

import layerscope


def engine_modules() -> list[str]:
    """Every layerscope module outside the Textual layer (``layerscope.tui``)."""
    names = [m.name for m in pkgutil.walk_packages(layerscope.__path__, "layerscope.")]
    return sorted(n for n in names if not n.startswith("layerscope.tui") and n != "layerscope.__main__")


def test_engine_modules_do_not_import_textual():
    # pixels.py imports textual-image's renderables inside its functions: they must stay textual-free too
    modules = [*engine_modules(), "textual_image.renderable", "textual_image.renderable.sixel"]
    assert "layerscope.tree" in modules and "layerscope.presentation.pixels" in modules
    code = (
        "import sys, importlib\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL
    )  # no terminal to query: textual-image's import asks one
    assert out.stdout.strip() == ""


ENGINE_PACKAGES = ("models", "tree", "cam", "cost", "diff", "activations", "folder_report", "attention")


def test_engine_packages_do_not_import_rich():
    """Presentation lives in ``layerscope.presentation`` (and the fronts): the packages that
    compute figures import neither Rich nor Textual, so a library user pays for neither."""
    modules = [m for m in engine_modules() if m.split(".")[1] in ENGINE_PACKAGES]
    assert "layerscope.diff.engine" in modules and "layerscope.cam.core" in modules
    code = (
        "import sys, importlib\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'textual'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL
    )
    assert out.stdout.strip() == ""
