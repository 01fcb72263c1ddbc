"""The app's diff (``d``, ``--diff``): the tree's change column shows the engine's own marks for
the same pair, the Stats tab lists the node's tensors, ``x`` cycles to the column, escape
stops a running diff, and every bad input is one notification that leaves the app as it was."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from diff_models import edited_pair
from layerscope.diff import DiffCancelled, diff_checkpoints
from layerscope.models import load_model
from layerscope.models.loaded import FILE_SUFFIXES
from layerscope.tree import build_tree
from layerscope.tui import jobs
from layerscope.tui.app import LayerscopeApp
from layerscope.tui.launch import make_app
from layerscope.tui.screens.image_path import CHECKPOINT_SUFFIXES
from layerscope.tui.widgets.module_tree import ModuleTreeView
from tui_helpers import notifications, paste, screen_text, settle, tree_lines

SIZE = (110, 34)
MODEL = "diff_models:tiny_resnet"


@pytest.fixture(autouse=True)
def log_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "app.log"
    monkeypatch.setenv("LAYERSCOPE_LOG", str(path))
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    """A (what the model loads) and B: layer4 and fc fine-tuned, one edit of every other kind."""
    folder = tmp_path_factory.mktemp("pair")
    a, b = edited_pair()
    torch.save(a, folder / "a.pt")
    torch.save(b, folder / "b.pt")
    return folder / "a.pt", folder / "b.pt"


@pytest.fixture
def loaded(pair):
    return load_model(MODEL, weights=str(pair[0]))


def labels(tree: ModuleTreeView) -> dict[tuple[str, tuple[int, ...]], str]:
    """Every module line (kind, members) → its label text, after opening every node."""
    for index in range(len(tree.model_tree.nodes)):
        tree.reveal(index)
    found = {}
    for line in tree_lines(tree):
        row = line.data
        if row is not None and row.kind in ("module", "run"):
            members = (row.index,) if row.kind == "module" else tuple(v for _, v in row.rows)
            found[(row.kind, members)] = str(line.label)
    return found


async def diff_by_keys(pilot, path: Path) -> None:
    await pilot.press("d")
    await settle(pilot)
    field = pilot.app.screen.query_one("#diff-path")
    field.value = ""
    await paste(pilot, str(path))
    await pilot.press("enter")
    await settle(pilot)


async def test_d_shows_the_engine_s_marks_node_for_node(loaded, pair):
    app = LayerscopeApp(loaded, spec=MODEL)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await diff_by_keys(pilot, pair[1])
        tree = app.main.query_one(ModuleTreeView)
        assert tree.column.key == "change"
        expected = diff_checkpoints(str(pair[0]), str(pair[1]), tree=build_tree(loaded.model))
        assert app.main.session.diff.nodes == expected.nodes
        lines = labels(tree)
        module_lines = {members[0]: label for (kind, members), label in lines.items() if kind == "module"}
        assert len(module_lines) >= 40  # most modules stand alone: their blocks moved differently
        for index, label in module_lines.items():
            assert label.endswith(f"  {expected.nodes[index].mark}"), (index, label)
        runs = {members: label for (kind, members), label in lines.items() if kind == "run"}
        for members, label in runs.items():
            assert label.endswith(f"  {expected.run_mark([expected.nodes[i] for i in members])}")
        root = module_lines[0]
        assert root.endswith("  2.2%") and module_lines[expected.node("conv1").index].endswith("  =")
        assert module_lines[expected.node("fc").index].endswith("  2.37%")
        assert (
            "Diff against b.pt: 105 tensors: 77 same, 24 changed, 1 added, 1 removed, 1 reshaped, 1 retyped"
            in "\n".join(notifications(app))
        )


async def test_the_stats_tab_lists_the_node_s_tensors_with_status_and_change(loaded, pair):
    app = LayerscopeApp(loaded, spec=MODEL, diff=str(pair[1]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.main.jump(app.main.session.tree.get("bn1").index)
        await settle(pilot)
        text = screen_text(app)
        assert "21.2%  1 of 5 tensors differ" in text
        rows = [line for line in text.splitlines() if "running_mean" in line]
        assert rows and "45.6%  changed" in rows[0]  # the one that differs comes first
        app.main.jump(app.main.session.tree.get("layer2.1.conv2").index)
        await settle(pilot)
        row = next(line for line in screen_text(app).splitlines() if "weight" in line)
        assert "reshaped" in row and "4×4×3×3 → 4×4×1×1" in row


async def test_diff_flag_starts_in_diff_mode(pair):
    app = make_app([MODEL, "--weights", str(pair[0]), "--diff", str(pair[1])])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=5)
        tree = app.main.query_one(ModuleTreeView)
        assert tree.column.key == "change"
        assert str(tree.root.label).endswith("  2.2%")


async def test_x_cycles_parameters_macs_and_change_only_once_a_diff_exists(loaded, pair):
    app = LayerscopeApp(loaded, spec=MODEL)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.main.query_one(ModuleTreeView)
        seen = []
        for _ in range(3):
            await pilot.press("x")
            seen.append(tree.column.key)
        assert seen == ["macs", "params", "macs"]
        await diff_by_keys(pilot, pair[1])
        seen = [tree.column.key]
        for _ in range(3):
            await pilot.press("x")
            seen.append(tree.column.key)
        assert seen == ["change", "params", "macs", "change"]
        await pilot.press("x")
        assert str(tree.root.label).endswith("  2.6K")


def marker_pickle(path: Path, marker: Path) -> None:
    """A checkpoint that runs code when unpickled: it would create ``marker``."""

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"x": Payload()}, path)


async def test_bad_inputs_are_one_line_and_keep_the_diff_on_screen(loaded, pair, tmp_path):
    marker = tmp_path / "ran"
    marker_pickle(tmp_path / "code.pt", marker)
    torch.save({"other.weight": torch.ones(2)}, tmp_path / "unrelated.pt")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    app = LayerscopeApp(loaded, spec=MODEL, diff=str(pair[1]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.main.query_one(ModuleTreeView)
        shown = str(tree.root.label)
        assert shown.endswith("  2.2%")
        cases = {
            tmp_path / "missing.pt": "no such checkpoint",
            tmp_path / "unrelated.pt": "share no tensor name",
            tmp_path / "notes.pt": "notes.pt",
            tmp_path / "code.pt": "--trust",
        }
        for path, words in cases.items():
            before = len(notifications(app))
            await diff_by_keys(pilot, path)
            said = notifications(app)[before:]
            assert len(said) == 1 and said[0].startswith("Diff failed: ") and words in said[0], said
            assert "\n" not in said[0]
            assert str(tree.root.label) == shown and app.main.session.diff.b == str(pair[1])
        assert not marker.exists()


async def test_a_model_without_a_weights_file_says_what_d_needs():
    torch.manual_seed(0)
    app = LayerscopeApp(load_model(MODEL), spec=MODEL)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert len(app.screen_stack) == 1  # no prompt
        said = notifications(app)[-1]
        assert said.startswith("Nothing to compare: d compares the checkpoint the weights were read from")
        assert "--weights FILE" in said


async def test_escape_stops_a_running_diff_and_its_thread(loaded, pair, monkeypatch):
    """The engine is slowed (a pause per tensor) so escape lands mid-way; it must stop the thread."""
    ended: list[BaseException | None] = []
    started = threading.Event()
    real = jobs.diff_checkpoints

    def slow(a, b, *, progress, cancel, **options):
        def paced(done, total):
            started.set()
            time.sleep(0.02)
            progress(done, total)

        try:
            result = real(a, b, progress=paced, cancel=cancel, **options)
        except DiffCancelled as exc:
            ended.append(exc)
            raise
        ended.append(None)
        return result

    monkeypatch.setattr(jobs, "diff_checkpoints", slow)
    app = LayerscopeApp(loaded, spec=MODEL)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        app.screen.query_one("#diff-path").value = str(pair[1])
        await pilot.press("enter")
        while not started.is_set():
            await pilot.pause(0.01)
        await pilot.pause(0.1)
        line = next(line for line in screen_text(app).splitlines() if "diff against b.pt:" in line)
        assert "of 105 tensors" in line and "escape stops" in line
        await pilot.press("escape")
        for _ in range(100):
            if ended:
                break
            await pilot.pause(0.02)
        assert ended and isinstance(ended[0], DiffCancelled)
        await settle(pilot)
        assert app.main.session.diff is None and app.main.query_one(ModuleTreeView).column.key == "params"
        assert any(n.startswith("Diff stopped") for n in notifications(app))
        assert "escape stops" not in screen_text(app)


def test_the_prompt_completes_what_the_diff_reads():
    assert CHECKPOINT_SUFFIXES == set(FILE_SUFFIXES)


def test_the_weights_file_of_cached_published_weights_is_the_hub_checkpoint():
    loaded = load_model("mobilenet_v2", weights="IMAGENET1K_V1")
    path = Path(loaded.weights_file())
    assert path.name.startswith("mobilenet_v2-") and path.is_file()
