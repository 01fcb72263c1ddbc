"""``layerscope.explore(model)``: the app on a model object no spec can load, left as found."""

from __future__ import annotations

import asyncio

import pytest
import torch
from torch import nn

import layerscope
from layerscope.errors import LayerscopeError
from layerscope.tui import explore as explorer
from layerscope.tui import launch
from layerscope.tui.app import LayerscopeApp
from layerscope.tui.widgets.gradcam import CamPanel
from tui_helpers import notifications, screen_text, settle


def handmade() -> nn.Module:
    """Defined in a function: no ``module:callable`` spec reaches this class."""

    class Handmade(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU())
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.features(x))

    torch.manual_seed(0)
    model = Handmade()
    model.train()
    model.head.eval()  # a frozen part, on purpose
    model.features[0].weight.requires_grad_(False)
    return model


def fingerprint(model: nn.Module) -> tuple:
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [p.grad is None for p in model.parameters()],
        [p.device for p in model.parameters()],
        [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()],
        {k: v.clone() for k, v in model.state_dict().items()},
    )


def same(a: tuple, b: tuple) -> bool:
    return a[:-1] == b[:-1] and all(torch.equal(a[-1][k], b[-1][k]) for k in a[-1])


def test_explore_runs_the_app_on_the_object_and_leaves_it_as_found(monkeypatch, tmp_path):
    model = handmade()
    mine = model.features[2].register_forward_hook(lambda *_: None)  # the caller's own hook stays
    before = fingerprint(model)
    seen: dict[str, object] = {}

    async def drive(app: LayerscopeApp) -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            seen["tree"] = screen_text(app)
            await pilot.press("g")  # a Grad-CAM map of the bundled photo
            await settle(pilot, rounds=5)
            seen["cam"] = app.query_one(CamPanel).explainer
            seen["notes"] = notifications(app)
            seen["categories"] = app.main.session.loaded.categories
            await pilot.press("d")  # the weights in memory are A: the prompt asks for B
            await settle(pilot)
            seen["diff prompt"] = type(app.screen).__name__
            await pilot.press("escape", "q")

    monkeypatch.setattr(launch, "has_terminal", lambda: True)
    monkeypatch.setattr(launch, "terminal_pixels", lambda: None)
    monkeypatch.setattr(LayerscopeApp, "run", lambda self, **_: asyncio.run(drive(self)))
    monkeypatch.chdir(tmp_path)
    assert layerscope.explore(model, example=torch.rand(1, 3, 64, 64), categories=["a", "b", "c"]) is None
    assert "Handmade" in str(seen["tree"]) and "in-memory model" in str(seen["tree"])
    assert seen["cam"] is not None and seen["categories"] == ["a", "b", "c"]
    assert seen["diff prompt"] == "CheckpointPathScreen"
    assert seen["notes"] == ["Grad-CAM target: model.features"]  # the map drawn, no failure told
    assert same(fingerprint(model), before)
    assert model.features[2]._forward_hooks and mine.id in model.features[2]._forward_hooks


def test_the_apps_diff_compares_the_weights_in_memory(tmp_path):
    from layerscope.models import LoadedModel
    from layerscope.tree import build_tree
    from layerscope.tui import jobs
    from layerscope.tui.session import Session

    model = handmade()
    tuned = {k: v + 1 for k, v in model.state_dict().items()}
    torch.save(tuned, tmp_path / "tuned.pt")
    session = Session(loaded=LoadedModel.from_module(model), tree=build_tree(model), image=tmp_path / "x.png")
    result = jobs.diff_weights(
        session, str(tmp_path / "tuned.pt"), trust=False, progress=lambda *_: None, cancel=lambda: False
    )
    assert result.a == "Handmade.state_dict() (in memory)"
    assert {t.status for t in result.tensors} == {"changed"} and len(result.nodes) == len(session.tree)


def test_left_as_found_undoes_what_ran_inside():
    model = handmade()
    before = fingerprint(model)
    with explorer.left_as_found(model):
        model.eval()
        model.requires_grad_(True)
        model.features[0].register_forward_hook(lambda *_: None)
        model(torch.rand(1, 3, 32, 32)).sum().backward()
    assert same(fingerprint(model), before)


def test_without_a_terminal_it_says_what_to_do(monkeypatch, capsys):
    monkeypatch.setattr(launch, "has_terminal", lambda: False)
    model = handmade()
    assert layerscope.explore(model) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "print(layerscope.summary(model))" in err


def test_example_forms_become_the_apps_inputs():
    assert explorer.input_specs((torch.rand(2, 3, 8, 8), torch.ones(2, 8, dtype=torch.bool))) == ("3x8x8", "8:bool")
    assert explorer.input_specs({"ids": torch.zeros(1, 12, dtype=torch.long)}) == ("ids=12:long",)
    with pytest.raises(LayerscopeError, match="example: an argument is a str"):
        explorer.input_specs(("text",))
    with pytest.raises(LayerscopeError, match="expected a torch.nn.Module, got str"):
        layerscope.explore("resnet18")
