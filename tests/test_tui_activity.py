"""The app's activations (``A``): the tree's activity column and the Stats tab's figures and
histogram, equal to ``layerscope activations --json`` and to the test's own forward."""

from __future__ import annotations

import json
import re

import pytest
import torch

from layerscope.activations import ActivationsCancelled
from layerscope.cli.main import main
from layerscope.io import imaging
from layerscope.models import load_model
from layerscope.tui import jobs
from layerscope.tui.app import LayerscopeApp
from layerscope.tui.launch import make_app
from layerscope.tui.messages import ImageChecked
from layerscope.tui.session import SAMPLE_IMAGE
from layerscope.tui.widgets.module_tree import ModuleTreeView
from tui_helpers import notifications, screen_text, settle, tree_lines

SIZE = (110, 40)
SPEC = "activation_models:DeadAndNaN"


def by_hand(loaded) -> dict[str, torch.Tensor]:
    """Every node's output on the bundled photo, from the test's own forward (float32 as the model runs)."""
    photo = imaging.preprocess(imaging.load_image(SAMPLE_IMAGE), loaded.preprocess)[0]
    with torch.no_grad():
        raw = loaded.model.conv(photo)
        relu = torch.relu(raw)
        clip = torch.clamp(relu * 10, 0, 6)
        return {"conv": raw, "relu": relu, "log": torch.log(raw), "clip": clip, "squash": torch.sigmoid(clip)}


def dead(output: torch.Tensor) -> list[int]:
    return [c for c in range(output.shape[1]) if not output[:, c].any()]


def cli_nodes(capsys) -> dict[str, dict]:
    """``layerscope activations --json`` on the same model and photo."""
    assert main(["activations", SPEC, "--image", str(SAMPLE_IMAGE), "--json"]) == 0
    return {node["name"]: node for node in json.loads(capsys.readouterr().out)["nodes"]}


def label(tree: ModuleTreeView, start: str):
    """The label (Rich ``Text``) of the tree line whose name and class are ``name``, after its mark."""
    return next(line.label for line in tree_lines(tree) if str(line.label).startswith(f"▦ {start}  "))


def assert_row(shown: str, label: str, value: str) -> None:
    assert re.search(rf"▎ {label}\s+{re.escape(value)}(\s|$)", shown, re.M), f"{label} {value} not in:\n{shown}"


async def test_a_fills_the_activity_column_and_the_stats_tab_as_the_cli_prints(capsys):
    loaded = load_model(SPEC)
    outputs = by_hand(loaded)
    cli = cli_nodes(capsys)
    app = LayerscopeApp(loaded, spec=SPEC)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.main.query_one(ModuleTreeView)
        app.query_one("#stats-panel").scroll_end(animate=False)
        await pilot.pause()
        assert "A collects every node's activations over the photo" in screen_text(app)
        await pilot.press("x", "x")  # no activity column before A: parameters, MACs, parameters
        assert tree.column.key == "params"
        assert notifications(app)[-1].endswith("A adds an activity column (dead channels, NaN)")

        await pilot.press("A")
        await settle(pilot)
        assert notifications(app)[-1] == (
            "Activations over chelsea.png (1 example): 6 nodes; 3 with dead channels\n"
            "NaN/Inf in 1: log\nthe tree shows each node's activity (x cycles); "
            "Stats, its histogram"
        )
        assert tree.column.key == "activity"
        assert dead(outputs["conv"]) == [2] and dead(outputs["relu"]) == [0, 2]  # 2 by construction, 0 here
        for name in ("conv", "relu", "clip", "squash"):
            assert cli[name]["dead_channels"] == dead(outputs[name])
            assert str(label(tree, f"{name} {type(getattr(loaded.model, name)).__name__}")).endswith(
                f"  {len(dead(outputs[name])) / 4:.1%} dead"
            )
        assert str(label(tree, "relu ReLU")) == "▦ relu ReLU  50.0% dead"
        assert str(label(tree, "squash Sigmoid")) == "▦ squash Sigmoid  0.0% dead"
        nan = label(tree, "log Log")
        assert str(nan) == "▦ log Log  NaN!"
        assert [s.style for s in nan.spans if nan.plain[s.start : s.end] == "NaN!"] == ["bold red"]

        app.query_one("#stats-panel").scroll_home(animate=False)
        await pilot.press("down", "down")  # relu
        await settle(pilot)
        shown = screen_text(app)
        relu = cli["relu"]
        assert_row(shown, "activations", "over chelsea.png (1 example)")
        for key in ("mean", "std", "min", "max"):
            assert_row(shown, key, f"{relu[key]:.6g}")
        assert relu["min"] == 0 and relu["max"] == pytest.approx(float(outputs["relu"].max()))
        assert_row(shown, "zeros", f"{relu['zero_fraction']:.2%} of 200,704 elements")
        assert relu["zero_fraction"] == float((outputs["relu"] == 0).double().mean())
        assert_row(shown, "dead channels", "2 of 4 (50.0%): 0, 2")
        assert_row(shown, "NaN/Inf", "0")
        assert app.query_one("#activity-plot").display

        await pilot.press("down")  # log: NaN where the convolution is negative, -inf where it is 0
        await settle(pilot)
        shown = screen_text(app)
        nonfinite = int((~torch.isfinite(outputs["log"])).sum())
        assert cli["log"]["nonfinite"] == nonfinite > 0
        assert_row(shown, "NaN/Inf", f"{nonfinite:,}")
        assert_row(shown, "mean", f"{cli['log']['mean']:.6g}")
        await pilot.press("down")  # clip: ReLU6, saturated at either bound
        await settle(pilot)
        clip = outputs["clip"]
        saturated = float(((clip <= 0) | (clip >= 6)).double().mean())
        assert cli["clip"]["saturated_fraction"] == pytest.approx(saturated, rel=1e-12)
        assert_row(screen_text(app), "saturated", f"{saturated:.2%} at 0 or 6")

        seen = []
        for _ in range(3):
            await pilot.press("x")
            seen.append(tree.column.key)
        assert seen == ["params", "macs", "activity"]

        app.main.post_message(ImageChecked(SAMPLE_IMAGE.parent / "coffee.png"))  # what o posts once the photo reads
        await settle(pilot)  # another photo: statistics over the last one go, A collects them again
        assert app.main.session.activity is None and tree.column.key == "params"
        assert str(label(tree, "relu ReLU")) == "▦ relu ReLU  0" and "NaN!" not in screen_text(app)


async def test_repeated_input_feeds_the_probe_the_macs_and_the_activations():
    app = make_app(["sample_models:Siamese", "--input", "3x8x8", "--input", "3x8x8", "--input", "scale=1"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        session = app.main.session
        assert session.shapes["head"].describe() == "1×1"
        assert session.cost.total.macs == 2 * 192 * 16 + 16  # the tower twice, the head once
        await pilot.press("A")
        await settle(pilot)
        report = session.activity
        assert report.inputs == "3x8x8, 3x8x8, scale=1" and report.get("tower").calls == 2
        assert report.get("tower.1").shape == (1, 16) and report.get("tower.1").elements == 32
        assert notifications(app)[-1].startswith("Activations over 3x8x8, 3x8x8, scale=1 (1 example): 5 nodes")


async def test_escape_stops_collecting_at_the_next_module(monkeypatch):
    ended: list[BaseException | None] = []
    real = jobs.model_activations

    def watched(*args, **kwargs):
        try:
            result = real(*args, **kwargs)
        except ActivationsCancelled as exc:
            ended.append(exc)
            raise
        ended.append(None)
        return result

    monkeypatch.setattr(jobs, "model_activations", watched)
    loaded = load_model("activation_models:Gated")
    model = loaded.model
    app = LayerscopeApp(loaded, spec="gated")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        model.armed.set()
        await pilot.press("A")
        while not model.waiting.is_set():
            await pilot.pause(0.01)
        await pilot.press("escape")
        model.release.set()
        for _ in range(100):
            if ended:
                break
            await pilot.pause(0.02)
        assert ended and isinstance(ended[0], ActivationsCancelled)
        await settle(pilot)
        assert app.main.session.activity is None and app.main.query_one(ModuleTreeView).column.key == "params"
        assert any(n.startswith("Activations stopped") for n in notifications(app))
        assert all(not m._forward_hooks for m in model.modules())
        model.armed.clear()
        await pilot.press("A")  # and again, to the end
        await settle(pilot)
        assert app.main.session.activity.get("relu").channels == 2


async def test_a_model_the_photo_does_not_fit_says_so_and_keeps_running():
    app = LayerscopeApp(load_model("sample_models:tied_lm"), spec="sample_models:tied_lm")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("A")
        await settle(pilot)
        said = notifications(app)[-1]
        assert said.startswith("Activations not collected: forward failed on 1x3x224x224")
        assert app.is_running and app.main.session.activity is None
