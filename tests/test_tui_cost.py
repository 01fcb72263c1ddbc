"""The app's cost: MACs and memory in the Stats tab, ``x`` switches the tree between parameters and MACs."""

from __future__ import annotations

from layerscope.models import load_model
from layerscope.tui.app import KEYS, LayerscopeApp
from tui_helpers import enter_line, notifications, screen_text, settle

SIZE = (110, 40)


async def test_stats_tab_shows_the_cost_of_the_node(resnet18_loaded):
    app = LayerscopeApp(resnet18_loaded, spec="resnet18")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await enter_line(pilot, "slash", "layer4")
        await settle(pilot)
        app.query_one("#stats-panel").scroll_end(animate=False)  # the cost rows come last
        await settle(pilot)
        shown = screen_text(app)
        assert "411.0 MMACs (411,041,792)" in shown
        assert "822.1 MFLOPs (822,083,584)" in shown
        assert "22.7%" in shown  # layer4's share of resnet18's 1.8 GMACs
        assert "inference 32.5 MiB" in shown and "training 128.6 MiB" in shown


async def test_x_toggles_the_tree_between_parameters_and_macs(resnet18_loaded):
    app = LayerscopeApp(resnet18_loaded, spec="resnet18")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "layer4 Sequential  8.4M" in screen_text(app)
        await pilot.press("x")
        await settle(pilot)
        shown = screen_text(app)
        assert "ResNet  1.8 GMACs" in shown and "layer4 Sequential  411.0 MMACs" in shown
        assert "fc Linear  512.0 KMACs" in shown
        await pilot.press("x")
        await settle(pilot)
        assert "layer4 Sequential  8.4M" in screen_text(app)


async def test_x_without_a_probe_says_why():
    """A language model probed with the default image input fails its forward: no MACs, a notice."""
    app = LayerscopeApp(load_model("sample_models:tied_lm"), spec="sample_models:tied_lm")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        assert any(n.startswith("No MACs to show: shape probe failed") for n in notifications(app))
        assert app.is_running


async def test_the_key_is_in_help_and_palette(resnet18_loaded):
    assert ("x", "toggle_column") in [(k, a) for k, a, *_ in KEYS]
    app = LayerscopeApp(resnet18_loaded, spec="resnet18")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert "Cycle the tree's column: params, MACs, activity, change" in screen_text(app)
        await pilot.press("escape", "ctrl+p", *"column")
        await pilot.pause(0.3)
        assert "Column (x)" in screen_text(app)
