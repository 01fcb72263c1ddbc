"""SVG snapshots of the main views at fixed sizes (``pytest --snapshot-update`` accepts changes).

Content is deterministic: parameter figures do not depend on the random init, and the
Grad-CAM view uses the real ImageNet weights and the bundled photo.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from layerscope.models import load_model
from layerscope.tui.app import LayerscopeApp
from tui_helpers import enter_line, settle


@pytest.fixture(scope="module")
def mobilenet():
    return load_model("mobilenet_v2", weights="IMAGENET1K_V1")


def keys(*pressed: str, search: str = ""):
    """Settle, then ``/`` SEARCH enter (pasted) when given, then ``pressed``, then settle again."""

    async def run_before(pilot) -> None:
        await settle(pilot)
        if search:
            await enter_line(pilot, "slash", search)
        if pressed:
            await pilot.press(*pressed)
            await settle(pilot)
        pilot.app.clear_notifications()  # a toast still showing or gone depends on the machine's speed
        await pilot.pause()

    return run_before


def test_tree_and_stats_at_80x24(snap_compare, resnet18_loaded):
    app = LayerscopeApp(resnet18_loaded, spec="resnet18")
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys("enter", search="layer4"))


def test_state_dict_tab(snap_compare, resnet18_loaded):
    app = LayerscopeApp(resnet18_loaded, spec="resnet18")
    assert snap_compare(app, terminal_size=(100, 30), run_before=keys("2", search="layer4"))


def test_api_tab(snap_compare, resnet18_loaded):
    app = LayerscopeApp(resnet18_loaded, spec="resnet18")
    assert snap_compare(app, terminal_size=(100, 30), run_before=keys("3", search="layer4"))


def test_gradcam_tab_on_the_default_model_and_photo(snap_compare, mobilenet):
    app = LayerscopeApp(mobilenet, spec="mobilenet_v2")
    assert snap_compare(app, terminal_size=(100, 30), run_before=_map_without_toasts)


def test_light_theme_and_help(snap_compare, resnet18_loaded):
    app = LayerscopeApp(resnet18_loaded, spec="resnet18")
    app.theme = "textual-light"
    app.log_path = Path.home() / ".local" / "state" / "layerscope" / "app.log"  # shown as ~/…: any machine
    assert snap_compare(app, terminal_size=(100, 30), run_before=keys("question_mark"))


async def _map_without_toasts(pilot) -> None:
    """``g``, then no toast: whether "Grad-CAM target" (3 s) is still up depends on the machine's speed."""
    await keys("g")(pilot)
    pilot.app.clear_notifications()
    await settle(pilot)


def test_gradcam_tab_at_80x24(snap_compare, mobilenet):
    """The map as large as 80×24 allows, the top-5 on two rows under it (no toast over them)."""
    app = LayerscopeApp(mobilenet, spec="mobilenet_v2")
    assert snap_compare(app, terminal_size=(80, 24), run_before=_map_without_toasts)


def test_gradcam_curves_at_80x24(snap_compare, mobilenet):
    """``p``: the map's deletion and insertion curves in its place, the scores above them (a
    64×64 crop of the photo keeps the scoring short)."""
    import dataclasses

    from layerscope.models import Preprocess

    small = dataclasses.replace(mobilenet, preprocess=Preprocess(resize=64, crop=(64, 64)))
    app = LayerscopeApp(small, spec="mobilenet_v2")

    async def curves(pilot) -> None:
        await _map_without_toasts(pilot)
        await keys("p")(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=curves)


def test_diff_view(snap_compare, tmp_path_factory):
    """``--diff``: the change column coloured from frozen to most-changed, layer4 open, its
    tensors in the Stats tab (the checkpoints of tests/diff_models.py, seeded)."""
    import torch

    from diff_models import edited_pair

    folder = tmp_path_factory.mktemp("snapshot-diff")
    a, b = edited_pair()
    torch.save(a, folder / "a.pt")
    torch.save(b, folder / "b.pt")
    loaded = load_model("diff_models:tiny_resnet", weights=str(folder / "a.pt"))
    app = LayerscopeApp(loaded, spec="tiny_resnet", diff=str(folder / "b.pt"))
    assert snap_compare(app, terminal_size=(100, 30), run_before=keys("enter", search="layer4"))


def test_activity_column_and_histogram(snap_compare):
    """``A`` on the tiny model with a dead channel and a NaN node (tests/activation_models.py,
    seeded) over the bundled photo: the activity column, relu's figures and histogram."""
    app = LayerscopeApp(load_model("activation_models:DeadAndNaN"), spec="activation_models:DeadAndNaN")
    assert snap_compare(app, terminal_size=(100, 30), run_before=keys("A", "down", "down"))
