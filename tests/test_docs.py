"""The docs say what the code does: every Python example runs and its comments hold, every
output marked as checked is what the command prints today, and the site builds with --strict.

How the blocks are found and compared: ``tests/docs_blocks.py``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diff_models import edited_pair
from docs_blocks import ROOT, claims, holds, matches, output_blocks, page_id, pages, python_blocks, rewritten
from evil_files import export_program, pickle_file, png_claiming, torchscript_archive
from hf_configs import LLAMA_2_70B
from layerscope.cli.main import main

SAMPLES = ROOT / "app" / "layerscope" / "samples"
REGEN = os.environ.get("LAYERSCOPE_DOCS_REGEN") == "1"

PYTHON_PAGES = [page for page in pages() if python_blocks(page)]
OUTPUT_BLOCKS = [block for page in pages() for block in output_blocks(page)]


# --- Python examples -------------------------------------------------------------------


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=page_id)
def test_python_examples_run_and_their_comments_hold(page: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples save files into the current folder
    scope: dict = {}
    checked = 0
    for code in python_blocks(page):
        exec(compile(code, str(page), "exec"), scope)  # noqa: S102 (our own docs)
        for claim in claims(code):
            actual = eval(compile(_expression(claim.expression), str(page), "eval"), scope)  # noqa: S307
            assert holds(claim.value, actual, {**scope, "torch": torch}), (
                f"{page_id(page)}: `{_source(claim.expression)}` is {actual!r}, the comment says {claim.text}"
            )
            checked += 1
    assert checked, f"{page_id(page)}: its examples state no value to check (`expression  # value`)"


def test_every_claim_of_the_examples_is_found():
    """The parser sees the comments that state values, and leaves prose comments alone."""
    code = (
        "x = (0.4372, True)  # an assignment: prose\n"
        "x  # (0.437, True): no drop\n"
        "x[0]  # 0.44 (lower is better)\n"
        "[1, 2]  # [1, 2]\n"
    )
    found = claims(code)
    assert [(c.line, c.text) for c in found] == [(2, "(0.437, True)"), (3, "0.44"), (4, "[1, 2]")]
    scope: dict = {}
    exec(code, scope)  # noqa: S102
    assert [holds(c.value, eval(compile(_expression(c.expression), "", "eval"), scope), scope) for c in found] == [
        True,
        True,
        True,
    ]
    assert not holds(found[1].value, 0.43, {})  # 0.43 is not 0.44 at two decimals
    assert not holds(found[0].value, [0.4372, True], {})  # a list is not the tuple shown
    with pytest.raises(AssertionError, match="states no Python value"):
        claims("x  # 600×400, borders untouched\n")


def _expression(node: ast.expr) -> ast.Expression:
    return ast.Expression(node)


def _source(node: ast.expr) -> str:
    return ast.unparse(node)


# --- CLI output ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, counter_folder) -> Path:
    """The folder the shown commands run in: the repo's app/ for the sample paths, the photos,
    the files the safety and error examples name, Llama-2-70B's config.json alone, and the
    counting Llama of docs/cli/lens.md as ``counter``."""
    folder = tmp_path_factory.mktemp("docs-cli")
    (folder / "app").symlink_to(ROOT / "app")
    (folder / "counter").symlink_to(counter_folder)
    for photo in ("chelsea.png", "coffee.png"):
        shutil.copy(SAMPLES / photo, folder / photo)
    (folder / "bomb.png").write_bytes(png_claiming(100_000, 100_000))
    marker = folder / "pwned"  # written if any of these files' code ever runs
    pickle_file(folder / "evil.pt", marker)
    torchscript_archive(folder / "model.safetensors", marker)
    export_program(folder / "program.pt2", marker)
    base, tuned = edited_pair()  # docs/guide/diff.md: one edit of each kind
    torch.save(base, folder / "base.pt")
    save_file(tuned, folder / "tuned.safetensors")
    (folder / "llama-2-70b").mkdir()
    (folder / "llama-2-70b" / "config.json").write_text(json.dumps(LLAMA_2_70B))  # config only: built on meta
    return folder


def run_shown(argv: str, capsys) -> list[str]:
    """What ``layerscope …`` prints, stdout then stderr, as a reader sees it (at $COLUMNS columns)."""
    words = shlex.split(argv)
    assert words[0] == "layerscope"
    try:
        main(words[1:])
    except SystemExit:  # -h and --version end the parser
        pass
    out, err = capsys.readouterr()
    lines = [line.rstrip() for line in (out + err).splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _params():
    for block in OUTPUT_BLOCKS:
        marks = [pytest.mark.slow] if block.slow else []
        yield pytest.param(block, id=block.id, marks=marks)


@pytest.mark.parametrize("block", _params())
def test_shown_cli_output_is_what_the_command_prints(block, workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("COLUMNS", str(block.columns))
    monkeypatch.delenv("COLORTERM", raising=False)
    outputs = [run_shown(command.argv, capsys) for command in block.commands]
    assert not (workspace / "pwned").exists()
    if REGEN and not any(line.strip() == "…" for command in block.commands for line in command.shown):
        block.page.write_text(rewritten(block, outputs), encoding="utf-8")
        return
    for command, output in zip(block.commands, outputs):
        assert matches(command.shown, output), (
            f"{block.id}: `{command.argv}` prints\n"
            + "\n".join(output)
            + "\n(LAYERSCOPE_DOCS_REGEN=1 rewrites blocks without `…`)"
        )


def test_checked_outputs_cover_every_command():
    shown = {shlex.split(command.argv)[1] for block in OUTPUT_BLOCKS for command in block.commands}
    assert {"tree", "stats", "api", "cam", "rank", "diff", "activations", "lens", "-h"} <= shown


def test_the_ellipsis_stands_for_lines_left_out():
    assert matches(["a", "…", "d"], ["a", "b", "c", "d"])
    assert not matches(["a", "…", "d"], ["a", "d"])
    assert not matches(["a", "b"], ["a", "b", "c"])


# --- the site --------------------------------------------------------------------------


def test_the_site_builds_with_strict(tmp_path):
    """mkdocs --strict: every link and anchor resolves, every page is in the nav, every
    ``:::`` object of the API reference exists."""
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reference = (tmp_path / "site" / "api" / "cam.html").read_text(encoding="utf-8")
    assert "PhotoExplainer" in reference and "compute_sweep" in reference and "layer_family" in reference
    # opened from disk (no server), every link of the home page is a file that exists
    home = tmp_path / "site" / "index.html"
    links = re.findall(r'href="(?!https?:|#|mailto:)([^"#?]+)', home.read_text(encoding="utf-8"))
    pages = [link for link in links if link.endswith(".html")]
    assert pages and all((home.parent / link).is_file() for link in pages), [
        link for link in links if not (home.parent / link).is_file()
    ]
    assert not any(link.endswith("/") for link in links)  # a folder would open as a directory listing
