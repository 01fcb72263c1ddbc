"""The app's evidence for a layer: the map's deletion/insertion scores in the Grad-CAM tab, ``r``
ranking a family with marks on the tree, ``b`` to the best layer, and class-blind methods said so."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import torch

from layerscope.cam.metrics import faithfulness
from layerscope.models import Preprocess, load_model
from layerscope.tui.app import LayerscopeApp
from layerscope.tui.widgets.gradcam import CamPanel
from layerscope.tui.widgets.module_tree import ModuleTreeView
from tui_helpers import enter_line, notifications, screen_text, settle

SIZE = (110, 34)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mobilenet():
    return load_model("mobilenet_v2", weights="IMAGENET1K_V1")


@pytest.fixture(scope="module")
def small_mobilenet(mobilenet):
    """The real weights on a 96×96 crop of the photo: the same 16-layer family, ranked in seconds."""
    return dataclasses.replace(mobilenet, preprocess=Preprocess(resize=96, crop=(96, 96)))


async def wait_until(condition, seconds: float = 30) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out waiting")


async def test_g_shows_the_maps_deletion_and_insertion_scores(mobilenet, tmp_path):
    app = LayerscopeApp(mobilenet, spec="mobilenet_v2", save_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        panel = app.query_one(CamPanel)
        explainer, result = panel.explainer, panel.view.result
        [expected] = faithfulness(mobilenet.model, explainer.input, [result.heatmap], result.target)
        assert panel.scores == expected  # the same function, the same numbers as `layerscope rank`
        shown = " ".join(screen_text(app).split())
        assert (
            f"deletion {expected.deletion_auc:.3f} ↓ insertion {expected.insertion_auc:.3f} ↑ "
            f"avg drop {expected.average_drop:.3f}"
        ) in shown
        assert "class-blind" not in shown


async def test_escape_while_scoring_skips_the_scores_and_keeps_the_map(mobilenet, tmp_path, monkeypatch):
    from layerscope.cam import CamCancelled
    from layerscope.tui import camlink

    waiting = []

    def slow_score(view, cache, class_index=None, *, progress=None, cancel=None):
        waiting.append(cancel)
        if not cancel.wait(20):
            raise AssertionError("escape never reached the scoring")
        raise CamCancelled("stopped")

    monkeypatch.setattr(camlink, "score", slow_score)
    app = LayerscopeApp(mobilenet, spec="mobilenet_v2", save_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await wait_until(lambda: waiting)
        await pilot.pause()
        assert "scoring the map… esc skips" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot)
        assert waiting[0].is_set() and any("stopping scoring the map" in n for n in notifications(app))
        panel = app.query_one(CamPanel)
        assert panel.view is not None and not panel.scoring
        assert panel.scores is None and panel.scores_note == "scores: skipped"
        assert "scores: skipped" in screen_text(app) and screen_text(app).count("▀") > 500


async def test_r_ranks_the_family_marks_the_tree_and_b_jumps_to_the_best(small_mobilenet, tmp_path):
    app = LayerscopeApp(small_mobilenet, spec="mobilenet_v2", save_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a", "r")  # the suggested layer, features[-1], and its family
        await settle(pilot)
        ranking = app.main.session.ranking
        assert ranking is not None and len(ranking.layers) == 16 and ranking.method == "gradcam"
        assert "features.18" in [s.layer for s in ranking.layers] and not ranking.blind
        gaps = [s.scores.gap for s in ranking.layers]
        drawn = [s.scores.gap for s in ranking.layers if not s.all_zero]
        assert gaps[: len(drawn)] == drawn == sorted(drawn, reverse=True)  # all-zero maps claim nothing: last
        tree = app.query_one(ModuleTreeView)
        assert tree.ranks[ranking.best.layer] == (1, pytest.approx(gaps[0]))
        place18, gap18 = tree.ranks["features.18"]
        text = screen_text(app)
        rows = [row.split("▎")[0].rstrip() for row in text.splitlines()]
        assert any(
            r.startswith(f"│  └─ ▶ ▦ ◎ #{place18} {gap18:+.2f} 18 Conv") and r.endswith("  412.2K") for r in rows
        )  # the target mark, then the rank; the name gives way, not the figure
        best_key = ranking.best.layer.rsplit(".", 1)[-1]
        if ranking.best.layer not in ("features.0", "features.18"):  # inside the folded 1…17 run
            assert any(f"#1 {gaps[0]:+.2f} at {best_key} 1…" in r and r.endswith("  1.8M") for r in rows)
        assert ranking.leading is not None
        assert any(
            "Ranked 16 layers: leads on this photo: model.features[" in n
            and "b makes it the target" in n
            and "a folder report says whether it is best" in n
            and "sanity passed: gradcam's maps change" in n
            for n in notifications(app)
        )
        await pilot.press("b")
        await settle(pilot)
        assert app.main.session.node(app.main.session.target).name == ranking.leading.layer  # eligible, not just first
        await pilot.press("g")
        await settle(pilot)
        assert "rank #1 of" in screen_text(app)  # "… of 16", wrapped in the narrow tab


async def test_r_with_eigencam_says_it_is_class_blind(small_mobilenet, tmp_path):
    app = LayerscopeApp(small_mobilenet, spec="mobilenet_v2", save_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.main.session.method = "eigencam"
        await enter_line(pilot, "slash", "features.16")
        await pilot.press("r")
        await settle(pilot)
        ranking = app.main.session.ranking
        assert ranking.blind and all(s.rho == pytest.approx(1.0) for s in ranking.layers)
        assert any(
            n.startswith("Ranked 16 layers") and "sanity class-blind: eigencam's maps stay the same" in n
            for n in notifications(app)
        )
        await pilot.press("t", "g")
        await settle(pilot)
        assert "class-blind: eigencam draws the same map for every class" in screen_text(app)


async def test_r_on_random_weights_says_the_ranking_means_nothing(tmp_path):
    """The app's verdict is the engine's (``cam.ranking.verdict``): on an untrained model, no "passed"."""
    random = dataclasses.replace(
        load_model("mobilenet_v2", weights="none"), preprocess=Preprocess(resize=64, crop=(64, 64))
    )
    app = LayerscopeApp(random, spec="mobilenet_v2", save_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await enter_line(pilot, "slash", "features.18")
        await pilot.press("r")
        await settle(pilot)
        assert app.main.session.ranking is not None and app.main.session.ranking.random_weights
        said = [n for n in notifications(app) if n.startswith("Ranked")]
        assert said and "sanity meaningless: the weights are random (untrained)" in " ".join(said[-1].split())
        assert "passed" not in said[-1]


async def test_r_on_a_layer_without_a_map_warns_and_escape_stops_a_ranking(mobilenet, tmp_path):
    """At 224×224 the ranking runs for many seconds after its first batch: escape lands inside it."""
    app = LayerscopeApp(mobilenet, spec="mobilenet_v2", save_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await enter_line(pilot, "slash", "classifier.1")
        await pilot.press("r")
        await settle(pilot)
        assert any(
            "Nothing to rank here: model.classifier[-1]: its output 1×1000 has no spatial grid" in n
            for n in notifications(app)
        )
        assert app.main.session.ranking is None
        await pilot.press("a", "r")
        bar = app.query_one("#cam-progress")
        await wait_until(lambda: (bar.progress or 0) > 0)
        await pilot.press("escape")
        await settle(pilot)
        assert any("stopping the ranking of its family" in n for n in notifications(app))
        assert any("Grad-CAM cancelled" in n and "cancelled after" in n for n in notifications(app))
        assert app.main.session.ranking is None and not app.query_one(CamPanel).running
        assert torch.is_grad_enabled()
