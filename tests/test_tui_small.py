"""Every tab usable at 80×24: each column header and figure on screen (names give way, never
figures), the map as large as the room allows, and the curves behind the map's scores plotted
from the engine's own numbers."""

from __future__ import annotations

import dataclasses

import pytest
from rich.text import Text

from layerscope.cam.metrics import faithfulness
from layerscope.cam.scoring import Prediction
from layerscope.models import Preprocess, load_model
from layerscope.tui.app import LayerscopeApp
from layerscope.tui.camlayout import choose_top5, map_cells, top5_rows
from layerscope.tui.fit import Name, fitted
from layerscope.tui.tables import STATE_HEADERS, state_table
from layerscope.tui.tabs import StateRow
from layerscope.tui.widgets.curves import CurvesPlot
from layerscope.tui.widgets.gradcam import CamPanel
from tui_helpers import enter_line, settle, widget_text


@pytest.fixture(scope="module")
def small_mobilenet():
    """The real weights on a 64×64 crop of the photo: its 16-layer family ranks in about a second."""
    loaded = load_model("mobilenet_v2", weights="IMAGENET1K_V1")
    return dataclasses.replace(loaded, preprocess=Preprocess(resize=64, crop=(64, 64)))


@pytest.mark.slow  # a real ranking of 16 layers (64×64 keeps it to a few seconds)
async def test_every_tab_keeps_its_columns_and_figures_at_80x24(small_mobilenet, tmp_path):
    app = LayerscopeApp(small_mobilenet, spec="mobilenet_v2", save_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await enter_line(pilot, "slash", "features.18")
        await pilot.press("2")
        await settle(pilot)
        state = [row.rstrip() for row in widget_text(app.query_one("#state-panel"))]
        assert state[:7] == [
            "6 entries under features.18. (relative keys)",  # the note shortens to keep to one row
            " key",
            "   kind    shape         dtype    elements",
            " 0.weight",
            "   param   1280×320×1×1  float32   409,600",  # dtype and elements on screen: 46 cells
            " 1.weight",
            "   param   1280          float32     1,280",
        ]
        assert state[13:15] == [" 1.num_batches_tracked", "   buffer  scalar        int64           1"]

        await pilot.press("3")
        await settle(pilot)
        api = [row.rstrip() for row in widget_text(app.query_one("#api-body"))]
        assert api[:8] == [
            "on model.features[18]",
            "method             count first entries",
            "what it yields",
            "modules()              4 Conv2dNormActivation",  # the first entries beside their method
            "every sub-module         Conv2d",
            "depth-first, this        BatchNorm2d",
            "one first (shared        ReLU6",
            "modules once)",
        ]

        await pilot.press("r")  # features.18's family, ranked; then its best layer's map
        await settle(pilot)
        await pilot.press("b", "g")
        await settle(pilot)
        panel = app.query_one(CamPanel)
        shown = [row.rstrip() for row in widget_text(panel)]
        scores = panel.scores
        ranking = app.main.session.ranking
        place = [s.layer for s in ranking.layers].index(ranking.leading.layer) + 1  # b: the first eligible layer
        assert (
            f"del↓{scores.deletion_auc:.3f} ins↑{scores.insertion_auc:.3f} drop {scores.average_drop:.3f}"
            f"  rank #{place} of 16"
        ) in shown  # the tightest labels keep the place on the scores' row
        top5 = widget_text(app.query_one("#cam-top5"))
        assert len(top5) == 2  # the top-5 on two rows, every probability whole
        for p in panel.view.top5:
            assert f"{p.index} " in "".join(top5) and f" {p.probability:.3f}" in "".join(top5)
        assert top5[0].startswith(f"{panel.view.top5[0].index} {panel.view.top5[0].name} ")  # the best: in full
        # the map fills the room the five info and top-5 rows leave (19 − 4 − 2 = 13 rows), at the
        # photo's 451×300: 13 rows are 26 pixel rows, 39 columns wide; the top-5 beside it would leave less
        assert app.query_one("#cam-preview").size == (46, 13) and panel.placed.cells == (39, 13)
        map_rows = [row for row in shown if "▀" in row]
        assert len(map_rows) == 13 and {row.count("▀") for row in map_rows} == {39}

        await pilot.press("p")
        await settle(pilot)
        plot = app.query_one(CurvesPlot)
        assert plot.display and not app.query_one("#cam-preview").display and plot.size == (46, 13)
        explainer, result = panel.explainer, panel.view.result
        [expected] = faithfulness(small_mobilenet.model, explainer.input, [result.heatmap], result.target)
        assert plot.plt.monitor.y == [list(expected.deletion_curve), list(expected.insertion_curve)]
        assert plot.plt.monitor.x == [[k / 20 for k in range(21)]] * 2
        assert plot.plt.monitor.label == [
            f"deletion {expected.deletion_auc:.3f} ↓",
            f"insertion {expected.insertion_auc:.3f} ↑",
        ]
        await pilot.press("p")
        await settle(pilot)
        assert not plot.display and app.query_one("#cam-preview").display


TOP5 = [
    Prediction(285, "Egyptian cat", 0.717, 0.0),
    Prediction(282, "tiger cat", 0.147, 0.0),
    Prediction(281, "tabby", 0.130, 0.0),
    Prediction(287, "lynx", 0.005, 0.0),
    Prediction(728, "plastic bag", 0.001, 0.0),
]


def test_the_top5_keeps_to_two_rows_and_shortens_the_last_names_first():
    text, rows = top5_rows(TOP5, 285, 46)  # 80×24's tab
    assert rows == 2 and text.plain.split("\n") == [
        "285 Egyptian cat 0.717  282 tiger cat 0.147",
        "281 ta…y 0.130  287 lynx 0.005  728 pl…g 0.001",
    ]
    text, rows = top5_rows(TOP5, 285, 110)
    assert rows == 1 and text.plain == (
        "top-5 285 Egyptian cat 0.717 · 282 tiger cat 0.147 · 281 tabby 0.130 · 287 lynx 0.005 · 728 plastic bag 0.001"
    )
    text, rows = top5_rows(TOP5, 285, 20)  # too narrow for two rows: one entry a row, names cut
    assert rows == 5 and text.plain.split("\n")[0] == "285 Egypt… cat 0.717"


def test_the_map_gets_the_layout_that_draws_it_largest():
    landscape = choose_top5(TOP5, 285, (300, 451), 46, 15)  # 80×24, below four info lines
    assert (landscape.where, landscape.rows, landscape.cells) == ("rows", 2, (39, 13))
    tall = choose_top5(TOP5, 285, (300, 451), 69, 31)  # 120×40: the map is as wide as the tab anyway
    assert (tall.where, tall.rows, tall.cells) == ("below", 5, (69, 23))
    portrait = choose_top5(TOP5, 285, (451, 300), 46, 15)  # room beside a tall photo: the top-5 goes there
    assert (portrait.where, portrait.columns, portrait.cells) == ("side", 22, (19, 14))
    assert map_cells(46, 13, (300, 451)) == (39, 13) and map_cells(3, 13, (300, 451)) == (0, 0)


def test_names_give_way_and_figures_stay_whole():
    line = fitted([Text("layer "), Name(Text("model.blocks[11].attn.proj")), Text("  method gradcam++")], 40)
    assert line.plain == "layer model.bl…tn.proj  method gradcam++"  # 40 cells, the method whole
    rows = [
        StateRow("0.downsample.1.num_batches_tracked", "scalar", "int64", 1, "buffer"),
        StateRow("0.conv1.weight", "512×256×3×3", "float32", 1_179_648, "parameter"),
    ]
    wide = state_table(rows, 76)
    assert wide.height == 1 and [c.label.plain for c in wide.columns] == list(STATE_HEADERS)
    assert [c.plain for c in wide.rows[0]] == ["0.downsample.1.n…_batches_tracked", "buffer", "scalar", "int64", "1"]
    narrow = state_table(rows, 60)  # 60 cells: the key would keep 17, so each entry takes two rows
    assert narrow.height == 2 and narrow.columns[0].label.plain == "key\n  kind    shape        dtype     elements"
    assert narrow.rows[1][0].plain == "0.conv1.weight\n  param   512×256×3×3  float32  1,179,648"
