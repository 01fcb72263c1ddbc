"""scripts/install_weights.py finds torch's hub folder without importing torch: by torch's rule."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parent.parent / "scripts" / "install_weights.py"


def load_script():
    spec = importlib.util.spec_from_file_location("install_weights", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "env",
    [{}, {"TORCH_HOME": "/tmp/th"}, {"XDG_CACHE_HOME": "/tmp/xc"}, {"TORCH_HOME": "~/th", "XDG_CACHE_HOME": "/tmp/xc"}],
)
def test_the_hub_folder_is_torchs(monkeypatch, env):
    for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_script().hub_dir() == Path(torch.hub.get_dir())
