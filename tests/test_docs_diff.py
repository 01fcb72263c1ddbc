"""docs/diff.md: its Python example runs as printed and its comments state what it prints;
its CLI outputs come from `scripts/diff_example.py` and keep the shape the CLI prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).parent.parent / "docs" / "diff.md"


def test_the_python_example_prints_what_its_comments_say():
    text = PAGE.read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(PAGE), "exec"), {})
    claims = [line.split("# ")[-1] for line in code.splitlines() if line.startswith("print(")]
    assert printed.getvalue().splitlines() == claims == ["changed 0.5", "same =", "1 4"]


def test_the_shown_runs_have_the_cli_s_shape():
    text = PAGE.read_text(encoding="utf-8")
    runs = re.findall(r"```\n\$ (layerscope diff .*?)\n(.*?)```", text, re.S)
    assert len(runs) == 3
    for command, output in runs:
        lines = output.splitlines()
        assert lines[2] == "nodes: the tree of MobileNetV2" and lines[3].startswith("model  MobileNetV2  ")
        assert any(re.fullmatch(r"\d+ tensors: \d+ same, \d+ changed", line) for line in lines), command
    assert "target_modules that matched nothing: q_proj" in runs[2][1]
