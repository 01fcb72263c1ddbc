"""The CLI's exact text per model, as torchinfo tests its summaries: each command's output is
stored under ``tests/golden/MODEL/COMMAND.txt`` and compared whole, so a change to any
column, rounding or alignment shows up as a diff anyone can read in review.

``pytest tests/test_cli_golden.py --regen-golden`` rewrites the files from the current
output (then read the diff before committing it). Beside the text, the columns' totals
are checked against the exact figures of the same model: every parameter counted once,
every MAC in exactly one leaf, the shares adding up to the whole.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from layerscope.cli.main import main

GOLDEN = Path(__file__).parent / "golden"
MODELS = {  # the spec, and a layer for api: one torchvision model (random weights), one of our own
    "resnet18": ("resnet18", "layer4[-1]"),
    "tinynet": ("cam_models:TinyNet", "conv"),
}
COMMANDS = {
    "tree": ["tree", "{spec}"],
    "tree_cost": ["tree", "{spec}", "--cost"],
    "stats": ["stats", "{spec}"],
    "stats_cost": ["stats", "{spec}", "--cost"],
    "api": ["api", "{spec}", "--layer", "{layer}"],
}


def run_cli(capsys, monkeypatch, argv: list[str]) -> str:
    """The command's stdout at a fixed width (Rich reads COLUMNS), trailing blanks dropped."""
    monkeypatch.setenv("COLUMNS", "100")
    assert main([*argv, "--weights", "none"]) == 0
    out = capsys.readouterr().out
    return "\n".join(line.rstrip() for line in out.splitlines()) + "\n"


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("model", sorted(MODELS))
def test_cli_text_matches_the_golden_file(model, command, capsys, monkeypatch, request):
    spec, layer = MODELS[model]
    text = run_cli(capsys, monkeypatch, [a.format(spec=spec, layer=layer) for a in COMMANDS[command]])
    path = GOLDEN / model / f"{command}.txt"
    if request.config.getoption("--regen-golden"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{path} differs (pytest --regen-golden rewrites it)"


def _nodes(node: dict) -> list[dict]:
    return [node, *(n for child in node["children"] for n in _nodes(child))]


def _exact(pattern: str, text: str) -> int:
    found = re.search(pattern, text, re.MULTILINE)
    assert found, pattern
    return int(found[1].replace(",", ""))


@pytest.mark.parametrize("model", sorted(MODELS))
def test_the_golden_columns_add_up(model, capsys, monkeypatch):
    spec, _ = MODELS[model]
    root = json.loads(run_cli(capsys, monkeypatch, ["tree", spec, "--cost", "--no-fold", "--json"]))
    nodes = _nodes(root)
    params = sum(n["own_params"] for n in nodes if n["same_module_as"] is None)
    for node in nodes:
        if node["children"]:  # these models compute only in their leaves: a container's MACs are its children's
            assert node["macs"] == sum(c["macs"] for c in node["children"]), node["name"]
            assert node["total_params"] == node["own_params"] + sum(c["total_params"] for c in node["children"])
    leaves = [n for n in nodes if not n["children"]]
    assert root["macs"] == sum(n["macs"] for n in leaves) > 0
    assert sum(n["share"] for n in leaves) == pytest.approx(1.0)
    golden = {name: (GOLDEN / model / f"{name}.txt").read_text(encoding="utf-8") for name in COMMANDS}
    assert root["total_params"] == params
    assert _exact(r"^([\d,]+) parameters", golden["tree"]) == params
    assert _exact(r"^([\d,]+) parameters", golden["tree_cost"]) == params
    assert _exact(r"^total params\s+([\d,]+)$", golden["stats"]) == params
    assert _exact(r"^macs\s+.*\(([\d,]+)\)$", golden["stats_cost"]) == root["macs"]
    assert _exact(r"^total params\s+([\d,]+)$", golden["stats_cost"]) == params
