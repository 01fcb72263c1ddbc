"""Pilot tests of the Grad-CAM keys on the real default model and photo."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from tui_helpers import notifications, screen_text, settle

from layerscope.loading import load_model
from layerscope.tui.app import LayerscopeApp
from layerscope.tui.widgets.gradcam import CamPanel
from layerscope.tui.widgets.module_tree import ModuleTreeView

SIZE = (100, 30)
SAMPLES = __import__("pathlib").Path(__file__).parent.parent / "app" / "layerscope" / "samples"


@pytest.fixture(scope="module")
def mobilenet():
    return load_model("mobilenet_v2", weights="IMAGENET1K_V1")


@pytest.fixture
def app(mobilenet, tmp_path) -> LayerscopeApp:
    return LayerscopeApp(mobilenet, spec="mobilenet_v2", save_dir=tmp_path)


def target_name(app) -> str:
    return app.session.node(app.session.target).name


async def test_a_jumps_to_and_selects_the_suggested_target(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert target_name(app) == "features.18"
        assert app.session.node(app.current).name == "features.18"
        assert "◎ 18 Conv2dNormActivation" in screen_text(app)


async def test_g_draws_the_heatmap_with_class_score_layer_and_top5(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        shown = screen_text(app)
        assert "gradcam at features.18 for 285 Egyptian cat" in shown
        assert "p=0.7" in shown
        assert shown.count("▀") > 500  # the half-block picture
        assert "282 tiger cat" in shown and "281 tabby" in shown
        view = app.query_one(CamPanel).view
        assert view.heat.shape == (300, 451) and not view.result.all_zero


async def test_t_on_a_hooked_layer_redraws_from_cache_without_a_forward_pass(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        engine = app.query_one(CamPanel).cache.engine
        await pilot.press("up", "t")  # features.17 is the target's sibling, hooked in the same pass
        await settle(pilot)
        panel = app.query_one(CamPanel)
        assert panel.cache.engine is engine and panel.view.reused
        assert panel.view.result.layer == target_name(app) != "features.18"
        assert "(redrawn from cache)" in screen_text(app)


async def test_t_on_an_ineligible_layer_warns_and_g_reports_the_error(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"classifier.1", "enter", "t")
        await settle(pilot)
        assert any("Target not eligible" in n for n in notifications(app))
        await pilot.press("g")
        await settle(pilot)
        assert any("Grad-CAM failed" in n and "no spatial output" in n for n in notifications(app))
        assert app.is_running


async def test_m_picks_the_method_used_by_the_next_map(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await pilot.pause()
        assert "gradcam++" in screen_text(app)
        await pilot.press(*["down"] * 5, "enter")  # eigencam
        await pilot.pause()
        assert app.session.method == "eigencam"
        await pilot.press("g")
        await settle(pilot)
        assert "eigencam at features.18" in screen_text(app)


async def test_c_filters_classes_by_name_and_picks_one(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c", *"tabby")
        await pilot.pause()
        assert "281 tabby" in screen_text(app)
        await pilot.press("enter")
        await pilot.pause()
        assert app.session.class_index == 281
        await pilot.press("g")
        await settle(pilot)
        assert "for 281 tabby" in screen_text(app)


async def test_c_accepts_a_class_index(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c", "2", "8", "2", "enter")
        await pilot.pause()
        assert app.session.class_index == 282


async def test_s_saves_png_and_npy_and_shows_the_path(app, tmp_path):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await pilot.pause()
        assert any("nothing to save yet" in n for n in notifications(app))
        await pilot.press("g")
        await settle(pilot)
        await pilot.press("s")
        await pilot.pause()
        png = tmp_path / "layerscope-mobilenet_v2-features.18-gradcam.png"
        assert png.exists() and png.stat().st_size > 10_000
        heat = np.load(png.with_suffix(".npy"))
        assert heat.shape == (300, 451) and 0 <= heat.min() and heat.max() <= 1
        assert any(str(png) in n for n in notifications(app))


async def test_o_with_a_bad_path_notifies_and_keeps_the_photo(app, tmp_path):
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = app.session.image
        await pilot.press("o", "ctrl+u", *str(bad), "enter")
        await settle(pilot)
        assert any("Image not opened" in n and "not an image" in n for n in notifications(app))
        assert app.session.image == before and app.is_running


async def test_o_completes_paths_and_opens_another_photo(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("o", "ctrl+u", *f"{SAMPLES}/cof", "tab", "enter")
        await settle(pilot)
        assert app.session.image == SAMPLES / "coffee.png"
        assert "coffee.png" in screen_text(app)


async def test_escape_cancels_a_running_score_cam(mobilenet, tmp_path):
    torch.manual_seed(0)
    app = LayerscopeApp(mobilenet, spec="mobilenet_v2", save_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.session.method = "scorecam"
        await pilot.press("g")
        bar = app.query_one("#cam-progress")
        for _ in range(200):
            await asyncio.sleep(0.05)
            if (bar.progress or 0) > 0:
                break
        assert bar.display and bar.total == 1280
        await pilot.press("escape")
        await settle(pilot)
        assert any("Grad-CAM cancelled" in n for n in notifications(app))
        assert not bar.display and app.is_running
