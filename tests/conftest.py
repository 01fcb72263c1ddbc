"""Shared fixtures: models are built once per session because building is the slow part."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from layerscope.loading import load_model
from layerscope.tree import ModuleTree, build_tree

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))  # makes ``sample_models:...`` factory specs importable

SAMPLES = TESTS.parent / "app" / "layerscope" / "samples"


@pytest.fixture(autouse=True)
def truecolor_terminal(monkeypatch):
    """The app draws maps for the terminal's colour depth (layerscope.render.color_depth); tests
    and snapshots see the same truecolor terminal whatever TERM the runner has."""
    monkeypatch.setenv("COLORTERM", "truecolor")


@pytest.fixture(scope="session")
def resnet18():
    torch.manual_seed(0)
    return load_model("resnet18")


@pytest.fixture(scope="session")
def resnet18_tree(resnet18) -> ModuleTree:
    return build_tree(resnet18.model)
