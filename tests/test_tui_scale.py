"""A model of 100,004 modules opens with a few tree lines and jumps anywhere."""

from __future__ import annotations

import pytest

from big_models import hundred_thousand
from layerscope.models import LoadedModel
from layerscope.tui.app import LayerscopeApp
from layerscope.tui.widgets.module_tree import PAGE, ModuleTreeView
from tui_helpers import enter_line, screen_text, settle, tree_lines


@pytest.fixture(scope="module")
def big() -> LoadedModel:
    import torch

    return LoadedModel(
        model=hundred_thousand().eval(),
        spec="big_models:hundred_thousand",
        source="factory",
        weights="none",
        pretrained=False,
        device=torch.device("cpu"),
    )


@pytest.mark.slow
async def test_hundred_thousand_modules_open_lazily_and_fold(big):
    app = LayerscopeApp(big, spec="big_models:hundred_thousand")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        tree = app.query_one(ModuleTreeView)
        assert len(app.main.session.tree) == 100_004
        assert len(tree_lines(tree)) == 4  # the root and its three children
        await pilot.press("down", "down", "enter")  # blocks
        await settle(pilot)
        assert "0…9999 Block ×10000" in screen_text(app)
        await pilot.press("down", "enter")  # open the fold: one page and a "more" line
        await settle(pilot)
        more = [line for line in tree_lines(tree) if line.data and line.data.kind == "more"]
        assert [str(line.label).split("  ")[0] for line in more] == [f"… {10_000 - PAGE:,} more"]
        assert len(tree_lines(tree)) == 4 + 1 + PAGE + 1
        await enter_line(pilot, "slash", "blocks.250.gate.1")
        await settle(pilot)
        assert app.main.session.node(app.main.current).name == "blocks.250.gate.1"
        assert "model.blocks[250].gate[1]" in screen_text(app)
        assert len(tree_lines(tree)) < 500
        await enter_line(pilot, "slash", "blocks.7777.norm")  # deep: one page, "more" lines around it
        await settle(pilot)
        assert app.main.session.node(app.main.current).name == "blocks.7777.norm"
        lines = [str(line.label).split("  ")[0] for line in tree_lines(tree) if line.data and line.data.kind == "more"]
        assert "… 7,400 more" in lines and "… 2,200 more" in lines  # 300…7699 before, 7800…9999 after
        assert len(tree_lines(tree)) < 800
        blocks_run = tree.cursor_node.parent.parent
        keys = [
            app.main.session.node(line.data.index).key
            for line in blocks_run.children
            if line.data and line.data.kind == "module"
        ]
        assert keys.index("7777") > keys.index("250")  # pages stay in order
