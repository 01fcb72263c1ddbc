"""The engine stands without the app: importing it must not import textual."""

import subprocess
import sys

ENGINE_MODULES = [
    "layerscope.loading", "layerscope.tree", "layerscope.naming", "layerscope.probe",
    "layerscope.iteration", "layerscope.report", "layerscope.errors",
]


def test_engine_modules_do_not_import_textual():
    code = (
        "import sys, importlib\n"
        f"for name in {ENGINE_MODULES!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
