"""``layerscope.summary(model)``: the CLI's ``tree --cost --shapes`` for a model held in Python."""

from __future__ import annotations

import io

import pytest
import torch
import torchvision
from rich.console import Console
from torch import nn

import layerscope
from layerscope.cli.main import main
from layerscope.errors import LayerscopeError
from sample_models import siamese, tied_lm


def cli_lines(capsys, monkeypatch, *argv: str) -> list[str]:
    monkeypatch.delenv("COLUMNS", raising=False)  # a pipe: every line whole, as str(summary) is
    assert main(["tree", *argv, "--cost", "--shapes"]) == 0
    return capsys.readouterr().out.splitlines()


def same_table(cli: list[str], ours: str) -> None:
    """Everything but the first line's spec, weights and device (the CLI loaded a spec, the
    summary got an object): counts, cost, memory and every module line."""
    lines = ours.splitlines()
    assert cli[0].split("  ")[1] == lines[0].split("  ")[1]  # the model's class
    assert lines[1:] == cli[1:]


def test_torchvision_equals_the_cli(capsys, monkeypatch):
    cli = cli_lines(capsys, monkeypatch, "resnet18", "--weights", "none")
    same_table(cli, str(layerscope.summary(torchvision.models.resnet18(), input_size=(1, 3, 224, 224))))


def test_timm_equals_the_cli(capsys, monkeypatch):
    timm = pytest.importorskip("timm")
    cli = cli_lines(capsys, monkeypatch, "timm:vit_tiny_patch16_224", "--weights", "none")
    same_table(cli, str(layerscope.summary(timm.create_model("vit_tiny_patch16_224", pretrained=False))))


def test_multi_input_example_equals_the_cli(capsys, monkeypatch):
    cli = cli_lines(
        capsys, monkeypatch, "sample_models:siamese", "--input", "3x8x8", "--input", "3x8x8", "--batch", "2"
    )
    x = torch.rand(2, 3, 8, 8)
    ours = str(layerscope.summary(siamese(), example=(x, x.clone())))
    same_table(cli, ours)
    assert "per batch of 2 at 3x8x8, 3x8x8" in ours


def test_keyword_example_and_shared_weights_equal_the_cli(capsys, monkeypatch):
    cli = cli_lines(capsys, monkeypatch, "sample_models:tied_lm", "--input", "ids=12:long")
    ours = layerscope.summary(tied_lm(), example={"ids": torch.zeros(1, 12, dtype=torch.long)})
    same_table(cli, str(ours))
    assert ours.tree.root.total_params == 100 * 16 + 16 * 16 + 16 + 2 * 16  # the tied head counted once
    assert ours.to_dict()["total_params"] == ours.tree.root.total_params


def test_input_size_with_several_inputs(capsys, monkeypatch):
    cli = cli_lines(capsys, monkeypatch, "sample_models:siamese", "--input", "3x8x8", "--input", "3x8x8")
    same_table(cli, str(layerscope.summary(siamese(), input_size=[(1, 3, 8, 8), (1, 3, 8, 8)])))


def test_model_left_as_found_and_nodes_for_code():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(5))
    model.train()
    model[1].eval()
    model[0].weight.requires_grad_(False)
    s = layerscope.summary(model, input_size=(2, 3, 6, 6))
    assert [m.training for m in model.modules()] == [True, True, False, True, True]
    assert isinstance(model[3].weight, nn.parameter.UninitializedParameter)  # counted on a copy
    assert not model[0].weight.requires_grad
    assert not model._forward_hooks and not model[0]._forward_hooks
    assert "+ uninitialized" in str(s).splitlines()[-1]
    assert [n.name for n in s.nodes] == ["", "0", "1", "2", "3"]
    assert s.cost is not None and s.cost.get("3").macs == 2 * 64 * 5


def test_rich_draws_it_to_the_console_width():
    buffer = io.StringIO()
    Console(file=buffer, width=50, color_system=None).print(layerscope.summary(torchvision.models.resnet18()))
    lines = buffer.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 50
    assert any(line.startswith("├── layer1") for line in lines)


def test_cost_off_and_depth():
    s = layerscope.summary(torchvision.models.resnet18(), cost=False, depth=1)
    assert s.cost is None and "MACs" not in str(s)
    assert not any(line.startswith("│") for line in str(s).splitlines())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: layerscope.summary("resnet18"), "summary expects a torch.nn.Module, got str"),
        (lambda: layerscope.summary(nn.Linear(2, 2), input_size=(2,)), "input_size (2,): give (batch, *shape)"),
        (lambda: layerscope.summary(nn.Linear(2, 2), input_size=(1, 3)), "shape probe failed with input 3"),
        (lambda: layerscope.summary(nn.Linear(2, 2), (1, 2), torch.zeros(1, 2)), "input_size or example, not both"),
    ],
)
def test_bad_input_one_line(call, message):
    with pytest.raises(LayerscopeError) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)
