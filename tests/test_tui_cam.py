"""Pilot tests of the Grad-CAM keys on the real default model and photo."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from PIL import Image

from layerscope.models import load_model
from layerscope.tui.app import LayerscopeApp
from layerscope.tui.widgets.gradcam import CamPanel
from tui_helpers import enter_line, notifications, paste, screen_text, settle

# The real ImageNet mobilenet_v2 throughout: each map is a real forward and backward plus the
# scoring passes, about a CPU-second a key; left out of ``make test-fast`` like other real models.
pytestmark = pytest.mark.slow

SIZE = (100, 30)
SAMPLES = __import__("pathlib").Path(__file__).parent.parent / "app" / "layerscope" / "samples"


@pytest.fixture(scope="module")
def mobilenet():
    return load_model("mobilenet_v2", weights="IMAGENET1K_V1")


@pytest.fixture
def app(mobilenet, tmp_path) -> LayerscopeApp:
    return LayerscopeApp(mobilenet, spec="mobilenet_v2", save_dir=tmp_path)


def target_name(app) -> str:
    return app.main.session.node(app.main.session.target).name


async def test_a_jumps_to_and_selects_the_suggested_target(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert target_name(app) == "features.18"
        assert app.main.session.node(app.main.current).name == "features.18"
        rows = [row.split("▎")[0].rstrip() for row in screen_text(app).splitlines()]
        assert any(r.startswith("│  └─ ▶ ▦ ◎ 18 Conv") and r.endswith("  412.2K") for r in rows)


async def test_t_on_a_hooked_layer_redraws_from_cache_without_a_forward_pass(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        explainer = app.query_one(CamPanel).explainer
        hooked = explainer.hooked
        forwards = []  # batch sizes: a map's pass sees the one photo; scoring it runs batches of copies
        handle = app.main.session.loaded.model.register_forward_hook(lambda _m, x, _o: forwards.append(len(x[0])))
        await pilot.press("up", "t")  # features.17 is the target's sibling, hooked in the same pass
        await settle(pilot)
        handle.remove()
        panel = app.query_one(CamPanel)
        assert panel.explainer is explainer and explainer.hooked == hooked and panel.view.reused
        assert 1 not in forwards and sum(forwards) == 2 + 39  # the photo and the blank, 2 × 19 steps, the product
        assert panel.view.result.layer == target_name(app) != "features.18"
        assert "map gradcam for 285 Egyptian cat" in screen_text(app)  # the layer is on the line above
        assert "(cached)" in screen_text(app)  # the long form, "(redrawn from cache)", needs a wider tab


async def test_t_on_an_ineligible_layer_warns_and_g_reports_the_error(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await enter_line(pilot, "slash", "classifier.1")
        await pilot.press("t")
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
        assert app.main.session.method == "eigencam"
        await pilot.press("g")
        await settle(pilot)
        assert "layer model.features[-1]  method eigencam" in screen_text(app)
        assert "map eigencam at features.18 for no class (class-blind)" in screen_text(app)


async def test_m_redraws_the_shown_map_from_the_kept_pass_and_c_for_the_new_class(app):
    """After m or c the map follows at once (as o does): the lines and the picture agree."""
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        panel = app.query_one(CamPanel)
        forwards = []
        handle = app.main.session.loaded.model.register_forward_hook(lambda _m, x, _o: forwards.append(len(x[0])))
        await pilot.press("m", "down", "enter")  # gradcam++
        await settle(pilot)
        assert app.main.session.method == "gradcam++"
        assert panel.view.result.method == "gradcam++" and panel.view.reused
        assert 1 not in forwards  # no pass over the photo: only the new map's scoring batches
        shown = screen_text(app)
        assert "method gradcam++" in shown and "map gradcam++ for 285 Egyptian cat p=0.717 (cached)" in shown
        await pilot.press("c", "2", "9", "2", "enter")  # tiger
        await settle(pilot)
        handle.remove()
        shown = screen_text(app)
        assert panel.view.result.target == 292 and panel.view.class_index == 292
        assert "class 292 tiger" in shown
        assert any(row.rstrip().endswith("map gradcam++ at features.18 for 292 tiger") for row in shown.splitlines())
        assert "(cached)" not in shown  # a new class: a new pass
        assert shown.count("▀") > 500 and not panel.has_class("stale")


async def test_a_map_that_no_longer_answers_the_choices_is_hidden(app, held_photo):
    """m while a map computes: the map that arrives is for the old method, so the new one
    follows it; the picture is never shown under lines that name another method."""
    entered, release = held_photo
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await wait_until(entered.is_set)
        await pilot.press("m", "down", "enter")
        await pilot.pause()
        release.set()
        await settle(pilot)
        panel = app.query_one(CamPanel)
        assert panel.view.result.method == "gradcam++" and "map gradcam++ for 285 Egyptian cat" in screen_text(app)
        await enter_line(pilot, "slash", "features.0.0")
        await pilot.press("t")  # not hooked: no map for it yet
        await settle(pilot)
        assert panel.has_class("stale") and "press g to compute the map" in screen_text(app)
        assert screen_text(app).count("▀") < 50


async def test_c_accepts_a_class_index_and_filters_classes_by_name_and_picks_one(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c", "2", "8", "2", "enter")
        await pilot.pause()
        assert app.main.session.class_index == 282
        await pilot.press("c", *"tabby")
        await pilot.pause()
        assert "281 tabby" in screen_text(app)
        await pilot.press("enter")
        await pilot.pause()
        assert app.main.session.class_index == 281
        await pilot.press("g")
        await settle(pilot)
        assert "for 281 tabby" in screen_text(app)


async def test_g_draws_the_heatmap_with_class_score_layer_and_top5_and_s_saves_png_and_npy(app, tmp_path):
    """One session, one map: s before g has nothing to save; g draws; s saves it, twice."""
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await pilot.pause()
        assert any("nothing to save yet" in n for n in notifications(app))
        app.clear_notifications()  # its toast would cover the top-5 read below
        await pilot.press("g")
        await settle(pilot)
        shown = screen_text(app)
        assert "gradcam at features.18 for 285 Egyptian cat" in shown
        assert "p=0.7" in shown
        assert shown.count("▀") > 500  # the half-block picture
        assert "282 tiger cat" in shown and "281 tabby" in shown
        view = app.query_one(CamPanel).view
        assert view.heat.shape == (300, 451) and not view.result.all_zero
        await pilot.press("s")
        await pilot.pause()
        png = tmp_path / "mobilenet_v2-features.18-gradcam-chelsea-285_Egyptian_cat.png"
        assert png.exists() and png.stat().st_size > 10_000
        heat = np.load(png.with_suffix(".npy"))
        assert heat.shape == (300, 451) and 0 <= heat.min() and heat.max() <= 1
        assert any(str(png) in n for n in notifications(app))
        first = png.read_bytes()
        await pilot.press("s")  # the same map again: a counter, the first save untouched
        await pilot.pause()
        again = tmp_path / "mobilenet_v2-features.18-gradcam-chelsea-285_Egyptian_cat-2.png"
        assert again.read_bytes() == first and again.with_suffix(".npy").exists()
        assert png.read_bytes() == first


async def test_o_with_a_bad_path_notifies_and_keeps_the_photo(app, tmp_path, monkeypatch):
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    monkeypatch.chdir(tmp_path)  # a short name to type: Pilot spends ~50 ms a key
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = app.main.session.image
        await enter_line(pilot, "o", bad.name)
        await settle(pilot)
        assert any("Image not opened" in n and "not an image" in n for n in notifications(app))
        assert app.main.session.image == before and app.is_running


async def test_o_completes_paths_and_opens_another_photo(app):
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("o", "ctrl+u")
        await paste(pilot, f"{SAMPLES}/")  # the folder pasted, the name typed and completed
        await pilot.press(*"cof", "tab", "enter")
        await settle(pilot)
        assert app.main.session.image == SAMPLES / "coffee.png"
        assert "coffee.png" in screen_text(app)


async def test_escape_cancels_a_running_score_cam(mobilenet, tmp_path):
    torch.manual_seed(0)
    app = LayerscopeApp(mobilenet, spec="mobilenet_v2", save_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.main.session.method = "scorecam"
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


async def wait_until(condition, seconds: float = 20) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out waiting")


@pytest.fixture
def stalled_cam(monkeypatch) -> list:
    """``camlink.compute`` replaced by one that waits for escape; each run adds its cancel event."""
    from layerscope.cam import CamCancelled
    from layerscope.tui import camlink

    runs = []

    def slow_compute(*args, cancel=None, **kwargs):
        runs.append(cancel)
        if not cancel.wait(20):
            raise AssertionError("escape never reached this run")
        raise CamCancelled("stopped")

    monkeypatch.setattr(camlink, "compute", slow_compute)
    return runs


async def test_g_while_a_map_computes_is_refused_and_escape_still_cancels_it(app, stalled_cam):
    from layerscope.tui.messages import ImageChecked

    runs = stalled_cam
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await wait_until(lambda: runs)
        await pilot.press("g", "g")  # a second and third g: refused, no second run
        await pilot.press("o")  # a new photo would start a run too: refused, no path prompt
        await pilot.pause()
        assert len(runs) == 1 and len(app.screen_stack) == 1
        assert sum("already computing — esc cancels" in n for n in notifications(app)) == 3
        assert sum(w.group == "cam" and w.is_running for w in app.workers) == 1
        before = app.main.session.image
        app.query_one(CamPanel).post_message(ImageChecked(SAMPLES / "coffee.png"))  # an `o` from before g
        await pilot.pause()
        assert app.main.session.image == before and len(runs) == 1
        assert sum("already computing — esc cancels" in n for n in notifications(app)) == 4
        await pilot.press("escape")  # reaches the one running map
        await settle(pilot)
        assert runs[0].is_set()
        assert any("Grad-CAM cancelled" in n for n in notifications(app))
        panel = app.query_one(CamPanel)
        assert not panel.running
        await pilot.press("g")  # once it has stopped, g starts a new one
        await wait_until(lambda: len(runs) == 2)
        await pilot.press("escape")
        await settle(pilot)
        assert not panel.running and app.is_running


@pytest.fixture
def held_photo(monkeypatch):
    """The CAM worker stops while reading the photo, until the test sets ``release``; ``entered``
    says it got there (it has taken its request by then)."""
    import threading

    from layerscope.io import imaging

    entered, release = threading.Event(), threading.Event()
    real_load = imaging.load_image

    def slow_load(path):
        entered.set()
        release.wait(20)
        return real_load(path)

    monkeypatch.setattr(imaging, "load_image", slow_load)
    yield entered, release
    release.set()


async def test_t_during_a_run_leaves_the_running_map_on_its_own_layer(app, held_photo):
    entered, release = held_photo
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await wait_until(entered.is_set)
        assert target_name(app) == "features.18"
        await enter_line(pilot, "slash", "classifier.1")
        await pilot.pause(0.2)
        await pilot.press("t")  # the worker has read its layer already; the candidates must agree
        await pilot.pause()
        assert target_name(app) == "classifier.1"
        release.set()
        await settle(pilot)
        panel = app.query_one(CamPanel)
        assert not any("Grad-CAM failed" in n for n in notifications(app))
        assert panel.view.result.layer == "features.18"
        assert "features.18" in panel.explainer.hooked and "classifier.1" not in panel.explainer.hooked


class _Block(torch.nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x).relu()


class _NotInTheTable(torch.nn.Module):
    """A CNN the engine's table does not know: the suggestion comes from the probe."""

    def __init__(self) -> None:
        super().__init__()
        stem = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=4, padding=1), torch.nn.ReLU())
        self.features = torch.nn.Sequential(stem, torch.nn.Sequential(_Block(8), _Block(8)))
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def _loaded(model):
    from layerscope.models import LoadedModel

    return LoadedModel(
        model=model.eval(), spec="test", source="factory", weights="none", pretrained=False, device=torch.device("cpu")
    )


async def test_a_never_runs_a_forward_on_the_ui_thread_and_waits_for_the_probe(monkeypatch):
    import threading

    from layerscope.cam import targets
    from layerscope.running import probe

    on_ui, release = [], threading.Event()
    real_probe = probe.probe_shapes

    def watched_probe(model, *args, **kwargs):
        if threading.current_thread() is threading.main_thread():
            on_ui.append(type(model).__name__)
        else:
            release.wait(20)  # the probe worker is still busy when a and g are pressed
        return real_probe(model, *args, **kwargs)

    monkeypatch.setattr(probe, "probe_shapes", watched_probe)
    monkeypatch.setattr(targets, "probe_shapes", watched_probe)
    app = LayerscopeApp(_loaded(_NotInTheTable()), spec="test")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.main.session is not None)
        await pilot.pause()
        await pilot.press("a", "g")
        await pilot.pause()
        assert app.main.session.target is None and not app.query_one(CamPanel).running
        assert sum("probing shapes… try again in a moment" in n for n in notifications(app)) == 2
        release.set()
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        # the last eligible output before pooling, as deep as the same output goes: the block,
        # not the containers `features` or `features[1]` that merely hand it on
        assert target_name(app) == "features.1.1"
        assert app.main.session.node(app.main.current).name == "features.1.1"
    assert on_ui == []


async def test_a_on_a_table_model_needs_no_probe_at_all(mobilenet, monkeypatch):
    import threading

    from layerscope.running import probe

    release = threading.Event()
    real_probe = probe.probe_shapes

    def blocked_probe(model, *args, **kwargs):
        release.wait(20)
        return real_probe(model, *args, **kwargs)

    monkeypatch.setattr(probe, "probe_shapes", blocked_probe)
    app = LayerscopeApp(mobilenet, spec="mobilenet_v2")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.main.session is not None)
        await pilot.press("a")
        await pilot.pause()
        assert app.main.session.shapes is None and target_name(app) == "features.18"  # the engine's table
        release.set()
        await settle(pilot)


async def test_a_after_a_failed_probe_says_why():
    app = LayerscopeApp(_loaded(_NotInTheTable()), spec="test", probe_input="7x32x32")  # wrong channels
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await pilot.pause()
        assert app.main.session.target is None
        assert any("No suggested target" in n and "shape probe failed" in n for n in notifications(app))


class _Tokens(torch.nn.Module):
    def forward(self, x):
        return x.flatten(2).transpose(1, 2)


class _TokenNet(torch.nn.Module):
    """Patches of 11 pixels: a 33×99 photo gives a 3×9 token grid (27 tokens, no class token)."""

    num_prefix_tokens = 0  # what timm declares; model_hints reads it

    def __init__(self) -> None:
        super().__init__()
        self.patch = torch.nn.Conv2d(3, 8, 11, stride=11)
        self.tokens = _Tokens()
        self.norm = torch.nn.LayerNorm(8)
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.norm(self.tokens(self.patch(x))).mean(1))


async def test_eligibility_marks_use_the_probe_input_and_the_model_hints_as_the_engine_does():
    from layerscope.cam import layer_eligibility
    from layerscope.cam.reshape import model_hints

    model = _TokenNet()
    app = LayerscopeApp(_loaded(model), spec="test", probe_input="3x33x99")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        session = app.main.session
        verdict = session.eligibility["norm"]  # the engine's own Eligibility
        kind, reason = verdict.kind, verdict.reason
        engine = layer_eligibility(session.shapes["norm"], (33, 99), model_hints(model))
        assert (kind, reason) == (engine.kind, engine.reason)
        assert "3×9 grid" in reason  # the default 224×224 guess would read 5×5 + 2 prefix tokens
        await enter_line(pilot, "slash", "norm")
        await pilot.press("t")
        await settle(pilot)
        assert "tokens → 3×9 grid" in screen_text(app)  # the Stats tab says what g will use
        assert "▤" in next(line for line in screen_text(app).splitlines() if "norm LayerNorm" in line)


async def test_escape_during_a_one_pass_map_discards_it_when_it_arrives(app, held_photo):
    entered, release = held_photo
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await wait_until(entered.is_set)
        await pilot.pause()
        assert "computing the map… esc cancels" in screen_text(app)
        await pilot.press("escape")  # plain Grad-CAM cannot stop inside its one forward and backward
        release.set()
        await settle(pilot)
        panel = app.query_one(CamPanel)
        assert panel.view is None and not panel.running
        assert any("Grad-CAM cancelled" in n for n in notifications(app))
        assert "press g to compute the map" in screen_text(app) and screen_text(app).count("▀") < 50
        await pilot.press("g")  # the pass it finished is kept: this one redraws from it
        await settle(pilot)
        assert panel.view is not None and panel.view.reused


def test_the_tab_says_loudly_when_weights_are_random(mobilenet, resnet18, resnet18_tree):
    from layerscope.tree import build_tree
    from layerscope.tui.camtext import info_text
    from layerscope.tui.session import Session

    warning = "⚠ random weights: this map shows nothing learned"
    assert warning in info_text(Session(loaded=resnet18, tree=resnet18_tree), None).plain
    assert warning not in info_text(Session(loaded=mobilenet, tree=build_tree(mobilenet.model)), None).plain


def test_a_first_map_hooks_the_targets_stage_but_not_the_stages_before_it(resnet18, resnet18_tree):
    """``layer1``–``layer3`` hooked beside ``layer4.1`` would carry the first map's backward pass
    through the whole network (resnet50: 2.8× a forward instead of 1.3×); mobilenet's
    ``features.17`` stays hooked beside ``features.18`` (a sibling, see the test above)."""
    from layerscope.tui import camlink, jobs
    from layerscope.tui.session import Session

    session = Session(loaded=resnet18, tree=resnet18_tree)
    _, verdicts, _ = jobs.probe_shapes(session, ["3x64x64"])
    assert verdicts["layer3.1"].eligible and verdicts["layer1.0"].eligible
    target = resnet18_tree.get("layer4.1").index
    assert camlink.candidates(session, target, verdicts) == ["layer4.1", "layer4", "layer4.0"]


async def test_o_returns_to_the_top_prediction_unless_the_class_is_pinned(app, monkeypatch):
    monkeypatch.chdir(SAMPLES)  # short names to type
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4", "c", "2", "8", "2", "enter")
        await settle(pilot)
        assert "class 282 tiger cat for this image  image chelsea.png" in screen_text(app)  # "(C pins)": no room
        await enter_line(pilot, "o", "coffee.png")
        await settle(pilot)
        assert app.main.session.class_index is None and "class top prediction" in screen_text(app)
        assert any("back to the top prediction" in n for n in notifications(app))
        await pilot.press("c", "9", "6", "7", "enter", "C")
        await settle(pilot)
        assert "class 967 espresso pinned (C unpins)  image coffee.png" in screen_text(app)
        await enter_line(pilot, "o", "chelsea.png")
        await settle(pilot)
        assert app.main.session.image.resolve() == SAMPLES / "chelsea.png" and app.main.session.class_index == 967


async def test_80x24_is_a_first_class_layout(app):
    """One header line, s/y/?/q in the footer, and the map as large as the rows allow."""
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        rows = screen_text(app).splitlines()
        assert rows[0].rstrip() == " mobilenet_v2 · IMAGENET1K_V1 · cpu · 3,504,872 params (all trainable)"
        assert rows[-1].split() == [
            "g",
            "Grad-CAM",
            "m",
            "Method",
            "c",
            "Class",
            "o",
            "Image",
            "s",
            "Save",
            "y",
            "Copy",
            "?",
            "Help",
            "q",
            "Quit",
        ]
        # the top-5 on two rows, each entry whole: the best-ranked keep their names, the last ones shorten
        assert rows[-4].endswith("▎ 285 Egyptian cat 0.717  282 tiger cat 0.147    ")
        assert rows[-3].endswith("▎ 281 ta…y 0.130  287 lynx 0.005  728 pl…g 0.001 ")
        map_rows = [row for row in rows if "▀▀▀▀" in row]
        assert "del 0.437↓ ins 0.549↑ drop 0.000" in screen_text(app)  # the scores keep to one row here
        room = app.query_one("#cam-preview").size
        assert len(map_rows) == room.height == 13  # every row the info lines leave (10 before)
        assert map_rows[0].count("▀") == 39 == int(room.height * 2 * 451 / 300)  # the photo's aspect


def test_a_narrow_footer_drops_the_least_needed_keys_first():
    from layerscope.tui.widgets.footer import key_width, keys_that_fit

    keys = [
        ("search", key_width("/", "Search")),
        ("compute", key_width("g", "Grad-CAM")),
        ("mine", key_width("r", "Rank")),
        ("quit", key_width("q", "Quit")),
        ("command_palette", key_width("^p", "palette")),
    ]
    assert [w for _, w in keys] == [10, 12, 8, 8, 12]
    keep = ("quit", "compute", "search")
    assert keys_that_fit(keys, 50, keep) == {"search", "compute", "mine", "quit", "command_palette"}
    assert keys_that_fit(keys, 49, keep) == {"search", "compute", "mine", "quit"}
    assert keys_that_fit(keys, 30, keep) == {"search", "compute", "quit"}
    assert keys_that_fit(keys, 20, keep) == {"compute", "quit"}


@pytest.mark.parametrize("term", ["xterm-256color", "xterm", None])
async def test_the_map_follows_the_terminals_colour_depth(mobilenet, monkeypatch, term):
    """Textual keeps colours as RGB inside; a 256-colour terminal must get dithered palette colours
    (sent exactly), a 16-colour one the ASCII ramp, a truecolor one (the fixture's) any RGB."""
    from layerscope.presentation.render import xterm_rgb

    if term is not None:
        monkeypatch.delenv("COLORTERM")
        monkeypatch.setenv("TERM", term)
    app = LayerscopeApp(mobilenet, spec="mobilenet_v2")  # reads the terminal when it starts
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        cells = [
            segment for strip in app.screen._compositor.render_strips() for segment in strip if segment.text == "▀"
        ]
        shown = screen_text(app)
    colours = {s.style.color.triplet for s in cells} | {s.style.bgcolor.triplet for s in cells}
    off_palette = colours - {xterm_rgb(i) for i in range(16, 256)}
    if term == "xterm-256color":
        assert len(colours) > 30 and not off_palette
    elif term == "xterm":
        assert not cells and "@@" in shown
    else:
        assert len(off_palette) > 100


async def test_a_detectors_tab_lists_the_boxes_and_outlines_the_explained_one(tmp_path):
    torch.manual_seed(0)
    loaded = load_model("fasterrcnn_mobilenet_v3_large_320_fpn", kwargs={"box_score_thresh": 0.0})
    app = LayerscopeApp(loaded, spec="frcnn", image=SAMPLES / "coffee.png", save_dir=tmp_path)
    async with app.run_test(size=(100, 34)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        view = app.query_one(CamPanel).view
        shown = screen_text(app)
        cells = [s for strip in app.screen._compositor.render_strips() for s in strip if s.text == "▀"]
        await pilot.press("s")
        await pilot.pause()
    assert len(view.detections) >= 5 and view.box is not None
    [boxed] = [d for d in view.detections if d.box == view.box]
    assert f"#{boxed.rank} {boxed.title} {boxed.score:.3f} ◎ boxed" in shown
    magenta = (255, 0, 255)
    assert sum(s.style.color.triplet == magenta or s.style.bgcolor.triplet == magenta for s in cells) >= 8
    [png] = tmp_path.glob("*.png")
    x1, y1, x2, y2 = (round(v) for v in view.box)
    assert (np.asarray(Image.open(png))[y1 + 1, x1 + 4 : x2 - 4] == magenta).all()


async def test_a_terminal_that_draws_pixels_gets_the_overlay_at_full_resolution(mobilenet):
    from textual_image.widget import SixelImage

    app = LayerscopeApp(mobilenet, spec="mobilenet_v2", pixels="sixel")  # as launch() found it
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        pixels = app.query_one("#cam-pixels")
        assert isinstance(pixels, SixelImage) and pixels.image.size == (451, 300)
        assert not app.query_one("#cam-preview").display
        assert "▀" not in screen_text(app)  # no half-block cells under the picture
    fallback = LayerscopeApp(mobilenet, spec="mobilenet_v2")  # the terminal did not answer
    async with fallback.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert not fallback.query("#cam-pixels") and fallback.query_one("#cam-preview").display
