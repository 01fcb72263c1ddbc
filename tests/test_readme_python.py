"""The README's Python example runs as printed, and its comments state what it returns."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

README = Path(__file__).parent.parent / "README.md"


def python_example() -> str:
    section = README.read_text(encoding="utf-8").split("### Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_python_api_example_runs_and_its_comments_hold(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example saves espresso.png in the current folder
    code = python_example()
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)
    cup = scope["cup"]
    assert (cup.target, cup.target_name) == (967, "espresso")
    assert tuple(cup.heatmap.shape) == (224, 224) and tuple(cup.raw.shape) == (7, 7)
    assert tuple(cup.on_photo.shape) == (400, 600) and cup.all_zero is False
    assert Image.open(tmp_path / "espresso.png").size == (600, 400)
    family = scope["family"]
    assert len(family) == 16 and family[0] == "features.0" and family[-1] == "features.18"
    assert [m.layer for m in scope["maps"]] == family
    for claim in ("(967, 'espresso')", "torch.Size([224, 224])", "torch.Size([400, 600])", "600×400"):
        assert claim in code
