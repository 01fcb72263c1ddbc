"""Pilot tests: every key of the app, asserting what the screen shows."""

from __future__ import annotations

import re

import pytest
import torch

from layerscope.models import load_model
from layerscope.tui.app import LayerscopeApp
from layerscope.tui.widgets.module_tree import ModuleTreeView
from layerscope.tui.widgets.state_dict import StateDictPanel
from tui_helpers import enter_line, notifications, screen_text, settle

SIZE = (100, 30)


@pytest.fixture
def app(resnet18_loaded) -> LayerscopeApp:
    return LayerscopeApp(resnet18_loaded, spec="resnet18")


async def search(pilot, text: str, *, typed: bool = False) -> None:
    """``/`` TEXT enter: pasted, or typed key by key where the search itself is under test."""
    if typed:
        await pilot.press("slash", *text, "enter")
    else:
        await enter_line(pilot, "slash", text)
    await settle(pilot)


async def tab_on(pilot, name: str, tab_key: str) -> str:
    """Search ``name``, open a tab by its number key, return the screen."""
    await settle(pilot)
    await search(pilot, name)
    await pilot.press(tab_key)
    await settle(pilot)
    return screen_text(pilot.app)


async def test_opens_on_resnet18_with_exact_totals_and_a_random_weights_warning(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shown = screen_text(app)
        assert "resnet18" in shown and "random weights" in shown
        assert "11,689,512 params" in shown  # header
        assert "total params        11,689,512" in shown  # Stats tab of the root
        tree = app.query_one(ModuleTreeView)
        assert tree.root.is_expanded and "layer4" in shown
        assert not tree._lines[tree.model_tree.get("layer4").index].children  # lazy: not filled yet


async def test_search_then_enter_selects_layer4_with_its_exact_total(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await search(pilot, "layer4", typed=True)
        shown = screen_text(app)
        assert "8,393,728" in shown
        assert "model.layer4" in shown
        assert app.query_one(ModuleTreeView).current_index() == app.main.session.tree.get("layer4").index


async def test_n_and_shift_n_step_through_matches(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await search(pilot, "bn2", typed=True)
        names = lambda: app.main.session.node(app.main.current).name  # noqa: E731
        assert names() == "layer1.0.bn2"
        await pilot.press("n")
        await settle(pilot)
        assert names() == "layer1.1.bn2"
        assert "model.layer1[1].bn2" in screen_text(app)
        await pilot.press("N", "N")
        assert names() == "layer4.1.bn2"  # wraps around backwards


async def test_search_without_match_warns_and_keeps_the_cursor(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await search(pilot, "transformer", typed=True)
        assert app.main.current == 0
        assert any("no module matches" in n for n in notifications(app))


async def test_arrows_and_enter_expand_lazily(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*["down"] * 5)  # conv1 bn1 relu maxpool layer1
        await settle(pilot)
        assert app.main.session.node(app.main.current).name == "layer1"
        assert "147,968" in screen_text(app)
        await pilot.press("enter")
        await pilot.pause()
        assert "0…1 BasicBlock ×2" in screen_text(app)  # folded as the CLI folds: runs of 2+
        await pilot.press("right")  # onto the folded run: its first member
        assert app.main.session.node(app.main.current).name == "layer1.0"
        await pilot.press("left", "left")  # to the parent, then collapse it
        await pilot.pause()
        assert app.main.session.node(app.main.current).name == "layer1"
        assert "BasicBlock ×2" not in screen_text(app)


async def opened_line(pilot, name: str, marker: str) -> str:
    """Search ``name``, open it, and return the first screen line holding ``marker``."""
    await settle(pilot)
    await search(pilot, name)
    await pilot.press("enter")
    await pilot.pause()
    return next(line for line in screen_text(pilot.app).splitlines() if marker in line)


async def test_layer4_folds_its_two_blocks_as_the_cli_does(app):
    async with app.run_test(size=SIZE) as pilot:
        assert "0…1 BasicBlock ×2  8.4M" in await opened_line(pilot, "layer4", "BasicBlock")
        tree = app.main.session.tree
        assert [r.length for r in tree.repeat_runs(tree.get("layer4"))] == [2]  # the engine's default


async def test_a_folded_run_of_tied_blocks_counts_shared_weights_once():
    from collections import OrderedDict

    from torch import nn

    from layerscope.models import LoadedModel

    layers = [nn.Linear(100, 100) for _ in range(3)]
    for layer in layers[1:]:
        layer.weight = layers[0].weight  # one 100×100 matrix shared by all three
    model = nn.Sequential(OrderedDict(blocks=nn.Sequential(*layers), head=nn.Linear(100, 2)))
    loaded = LoadedModel(
        model=model, spec="tied", source="factory", weights="none", pretrained=False, device=torch.device("cpu")
    )
    app = LayerscopeApp(loaded, spec="tied")
    async with app.run_test(size=SIZE) as pilot:
        line = await opened_line(pilot, "blocks", "Linear ×3")
        assert app.main.session.tree.get("blocks").total_params == 10_300
        assert "0…2 Linear ×3  10.3K" in line  # not 30.3K: the tied matrix once, as the parent counts it


async def test_y_copies_the_access_expression(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await search(pilot, "layer4.1.conv2")
        await pilot.press("y")
        await pilot.pause()
        assert app.clipboard == "model.layer4[-1].conv2"  # the spelling of target-layer tables
        assert "model.layer4[-1].conv2" in screen_text(app)


async def test_state_dict_tab_lists_the_entries_under_the_node(app):
    async with app.run_test(size=SIZE) as pilot:
        shown = await tab_on(pilot, "layer4", "2")
        assert "30 entries under layer4." in shown
        assert "0.conv1.weight" in shown
        table = app.query_one(StateDictPanel).query_one("DataTable")
        assert table.row_count == 30
        first = " ".join(str(cell) for cell in table.get_row_at(0)).split()  # one row or two, the same cells
        assert first == ["0.conv1.weight", "param", "512×256×3×3", "float32", "1,179,648"]
        last = " ".join(str(cell) for cell in table.get_row_at(29)).split()
        assert last[:4] == ["1.bn2.num_batches_tracked", "buffer", "scalar", "int64"]


async def test_api_tab_counts_what_each_iteration_method_yields(app):
    async with app.run_test(size=SIZE) as pilot:
        shown = await tab_on(pilot, "layer4", "3")
        body = app.query_one("#api-body")  # the whole table, scrolled past the screen's rows too
        shown = "\n".join(strip.text for strip in body.render_lines(body.size.region))
        rows = dict(re.findall(r"(?<![.\w])(\w+\(\))\s+([\d,]+)", shown))
        assert "on model.layer4" in shown
        assert rows["modules()"] == "16" and rows["children()"] == "2"
        assert rows["parameters()"] == "15" and rows["buffers()"] == "15" and rows["state_dict()"] == "30"
        assert "only the direct ones" in shown


async def test_help_screen_lists_every_key(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        shown = screen_text(app)
        for text in ("Search modules by name or class", "Compute the Grad-CAM map", "Copy the access"):
            assert text in shown
        await pilot.press("escape")
        await pilot.pause()
        assert "layerscope keys" not in screen_text(app)


async def test_command_palette_offers_the_app_commands(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p", *"copy")
        await pilot.pause(0.3)
        assert "Copy (y)" in screen_text(app)
        await pilot.press("enter")
        await pilot.pause()
        assert app.clipboard == "model"


async def test_fold_key_unfolds_repeated_blocks():
    loaded = load_model("mobilenet_v2", weights="IMAGENET1K_V1")
    app = LayerscopeApp(loaded, spec="mobilenet_v2")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await search(pilot, "features")
        await pilot.press("enter")
        await pilot.pause()
        assert any(r.split("▎")[0].rstrip().endswith("×17  1.8M") for r in screen_text(app).splitlines())
        await pilot.press("f")
        await pilot.pause()
        shown = screen_text(app)
        assert "×17" not in shown and "17 InvertedResidual" in shown
        assert app.main.session.node(app.main.current).name == "features"


async def test_q_quits(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert app.return_code == 0


async def test_a_model_that_cannot_load_leaves_the_app_open_with_an_error():
    app = LayerscopeApp(lambda: load_model("resnet1888"), spec="resnet1888")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert any("unknown model 'resnet1888'" in n for n in notifications(app))
        assert "could not load resnet1888" in screen_text(app)
        await pilot.press("slash", "x", "enter", "y", "t", "g", "s")  # nothing to act on: no crash
        await settle(pilot)
        assert app.is_running


async def test_help_explains_the_tree_marks(app):
    async with app.run_test(size=(100, 60)) as pilot:  # tall enough for every key and the marks
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        shown = screen_text(app)
        for line in (
            "▦   spatial output (N×C×H×W): a Grad-CAM target as it is",
            "▤   token grid (a transformer's N×tokens×C)",
            "·   not eligible: no spatial or token-grid",
            "◎   the Grad-CAM target (t sets it",
            "×N  N repeated blocks folded",
            "→   output shape",
            "S        Show or hide each tree line's output shape",
        ):
            assert line in shown, line


async def test_shift_s_shows_output_shapes_on_tree_lines(app):
    async with app.run_test(size=(120, 30)) as pilot:
        assert "→" not in await opened_line(pilot, "layer4", "BasicBlock")
        await pilot.press("S")
        await pilot.pause()
        lines = screen_text(app).splitlines()
        assert "layer4 Sequential  8.4M  → 1×512×7×7" in next(line for line in lines if "layer4 Seq" in line)
        assert "0…1 BasicBlock ×2  8.4M  → 1×512×7×7" in next(line for line in lines if "BasicBlock" in line)
        assert "fc Linear  513.0K  → 1×1000" in screen_text(app)
        await pilot.press("S")
        await pilot.pause()
        assert "→" not in screen_text(app)


async def test_t_on_a_folded_run_targets_its_last_member_and_says_so(app):
    async with app.run_test(size=SIZE) as pilot:
        await opened_line(pilot, "layer4", "BasicBlock")
        await pilot.press("down", "t")  # from layer4 to its folded "0…1 BasicBlock ×2" row
        await settle(pilot)
        assert app.main.session.node(app.main.session.target).name == "layer4.1"
        assert any("model.layer4[-1]" in n and "the last of the folded 0…1 ×2" in n for n in notifications(app))


def test_a_module_registered_twice_says_so_in_the_tree():
    from layerscope.tree import build_tree
    from sample_models import relu_twice

    view = ModuleTreeView()
    view.model_tree = tree = build_tree(relu_twice())
    assert view.label_for(tree.resolve("model.features[-1]")).plain == "  3 ReLU  0  same module as features.1"
    assert view.label_for(tree.resolve("features.1")).plain == "  1 ReLU  0"


async def test_help_says_how_to_scroll_the_stats_pane_and_it_does(app):
    """Issue 32: scrolling a long Stats list needs tab then pgdn, and ``?`` did not say so."""
    from layerscope.tui.widgets.stats import StatsPanel

    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert "tab, then pgdn: scroll the pane" in screen_text(app)
        await pilot.press("escape", "home")  # the model: the longest Stats
        await settle(pilot)
        panel = app.screen.query_one(StatsPanel)
        assert panel.max_scroll_y > 0 and panel.scroll_y == 0
        await pilot.press("tab", "pagedown")
        await pilot.pause(0.3)
        assert panel.scroll_y > 0
