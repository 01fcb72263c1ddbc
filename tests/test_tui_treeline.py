"""Tree lines at 120 and 80 columns: names give way (middle ellipsis), figures and rank marks never."""

from __future__ import annotations

import pytest
from rich.text import Text

from layerscope.tree.nodestats import human_count, human_macs
from layerscope.tui.app import LayerscopeApp
from layerscope.tui.treeline import TreeLine, middle_ellipsis
from layerscope.tui.widgets.module_tree import ModuleTreeView
from tui_helpers import enter_line, screen_text, settle


def test_a_long_name_loses_its_middle_and_the_figures_stay_whole():
    line = TreeLine(Text("▦ #1 +0.15 "), Text("18 Conv2dNormActivation"), Text("  412.2K"), Text("▦ #1 "))
    assert line.fitted(80).plain == "▦ #1 +0.15 18 Conv2dNormActivation  412.2K"
    assert line.fitted(30).plain == "▦ #1 +0.15 18 Co…ation  412.2K"
    assert line.fitted(21).plain == "▦ #1 18 C…ion  412.2K"  # the score goes before the name
    assert line.fitted(17).plain == "▦ #1 18 Con…ation"  # then the figures, not the name (issue 32)
    assert line.fitted(14).plain == "▦ #1 18 C…tion"
    assert middle_ellipsis(Text("layer4.1 BasicBlock"), 9).plain == "laye…lock"


def tree_rows(app) -> list[str]:
    """The tree's rows as drawn (the part left of the tabs' border)."""
    return [row.split("▎")[0].rstrip() for row in screen_text(app).splitlines()[1:-2]]


@pytest.mark.parametrize("size", [(120, 36), (80, 24)])
async def test_ranked_and_macs_lines_keep_their_figures_at_both_widths(resnet18_loaded, size):
    app = LayerscopeApp(resnet18_loaded, spec="resnet18")
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await enter_line(pilot, "slash", "layer4.1.conv2")
        await settle(pilot)
        view = app.query_one(ModuleTreeView)
        tree = app.main.session.tree
        view.ranks = {"layer4.1": (1, 0.15), "layer4.0": (2, -0.05)}  # as ``r`` leaves them
        view.relabel()
        await pilot.pause()
        rows = tree_rows(app)
        expected = {
            "#1": human_count(tree.get("layer4.1").total_params),
            "#2": human_count(tree.get("layer4.0").total_params),
        }
        # issue 32: at 80 columns a ranked line keeps its name and the right column gives way
        assert any("#1" in r and " 1 Ba" in r for r in rows), "\n".join(rows)  # MIN_NAME cells at least
        assert any("#2" in r and " 0 Ba" in r for r in rows), rows
        if size[0] >= 120:
            for mark, figure in expected.items():
                assert any(mark in r and r.endswith(f"  {figure}") for r in rows), (mark, figure, rows)
            run = human_count(tree.run_params((tree.get("layer4.0").index, tree.get("layer4.1").index)))
            assert any("#1" in r and r.endswith(f"  {run}") for r in rows)  # the folded run's line
            convs = [r for r in rows if r.endswith(f"  {human_count(tree.get('layer4.1.conv2').total_params)}")]
            assert len(convs) == 2 and all("conv" in r or "…" in r for r in convs)
        await pilot.press("x")
        await settle(pilot)
        rows = tree_rows(app)
        cost = app.main.session.cost
        for name in ("layer4", "layer4.1", "layer4.1.conv2", "layer4.1.bn2") if size[0] >= 120 else ("layer4",):
            figure = human_macs(cost.run_macs([name]))
            assert any(r.endswith(f"  {figure}") for r in rows), "\n".join(rows)
        assert any("conv2 Conv2d" in r for r in rows)  # named whole at both widths
        assert all(len(r) <= size[0] for r in rows)
