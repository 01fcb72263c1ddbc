"""The app's part of the bad-input corpus (issue 7): every mistake ends in a notification that
names it, and the model, the Grad-CAM target and the photo on screen stay as they were."""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from pathlib import Path

import pytest
import torch

from layerscope.models import load_model
from layerscope.tui.app import LayerscopeApp
from layerscope.tui.launch import loader_for_line, make_app
from layerscope.tui.widgets.gradcam import CamPanel
from tui_helpers import enter_line, notifications, screen_text, settle

SIZE = (100, 30)
SAMPLES = Path(__file__).parent.parent / "app" / "layerscope" / "samples"
COFFEE = SAMPLES / "coffee.png"


@pytest.fixture(autouse=True)
def log_file(tmp_path, monkeypatch) -> Path:
    """Tracebacks of unexpected errors go here, not into the user's ~/.local/state."""
    path = tmp_path / "app.log"
    monkeypatch.setenv("LAYERSCOPE_LOG", str(path))
    return path


@pytest.fixture
def app(resnet18_loaded) -> LayerscopeApp:
    return LayerscopeApp(resnet18_loaded, spec="resnet18", image=COFFEE, read_line=loader_for_line)


def state(app: LayerscopeApp) -> tuple:
    """What a mistake must leave alone: the model (the very object), its target, the photo."""
    session = app.main.session
    return session.loaded.spec, id(session.loaded.model), session.target, session.image


async def opened(pilot) -> tuple:
    """The app settled on resnet18 with the suggested target (layer4[-1]) chosen."""
    await settle(pilot)
    await pilot.press("a")
    await settle(pilot)
    assert pilot.app.main.session.node(pilot.app.main.session.target).name == "layer4.1"
    return state(pilot.app)


def last_notification(app) -> str:
    return notifications(app)[-1]


# --- l: another model, typed as on the command line ------------------------------------

BAD_MODEL_LINES = [
    ("resnet1888", ["unknown model 'resnet1888'; did you mean resnet18"]),
    ("resnet18 --bogus", ["unrecognized arguments: --bogus"]),
    ('resnet18 --arg "depth=3', ["No closing quotation"]),
    ("resnet18 --arg nope=1", ["resnet18 does not accept those arguments", "'nope'"]),
    ("resnet18 --arg x", ["--arg expects key=value, got 'x'"]),
    ("resnet18 --device xpu", ["device type 'xpu' is not supported"]),
    ("resnet18 --weights /nonexistent/w.pt", ["no such weights file: /nonexistent/w.pt"]),
    ("broken_models:raises_keyerror", ["broken_models:raises_keyerror raised KeyError: 'blocks'"]),
    ("broken_models:imports_missing", ["No module named 'layerscope_no_such_dependency'"]),
    ("/dev/zero", ["/dev/zero is a character device, not a model file"]),
    ("~nosuchuser/x.pt", ["no such user's home folder"]),
    (":foo", ["a factory is package.module:callable"]),
]


async def test_l_with_a_model_that_cannot_load_keeps_the_model_on_screen(app, log_file):
    """Every mistake in turn in one session: each is one notification, and after all of them the
    model, its target and the photo are still the ones from before the first. The lines are pasted
    (``enter_line``); the last is also typed key by key and must say the same."""
    async with app.run_test(size=SIZE) as pilot:
        before = await opened(pilot)
        for line, words in BAD_MODEL_LINES:
            await enter_line(pilot, "l", line)
            await settle(pilot)
            told = last_notification(app)
            assert told.startswith("Model not loaded: "), line
            for word in words:
                assert word in told, line
            assert state(app) == before and not log_file.exists(), line  # the user's mistake: no traceback
            header = screen_text(app).splitlines()[0]
            assert "resnet18" in header and "11,689,512 params" in header and "loading" not in header
        line, _ = BAD_MODEL_LINES[-1]  # typed key by key, the last line says the same as pasted
        await pilot.press("l", "ctrl+u", *line, "enter")
        await settle(pilot)
        assert last_notification(app) == told and state(app) == before


def evil_lines(folder: Path, marker: Path) -> dict[str, tuple[str, str]]:
    """Files that run code when opened without care (``evil_files``), as typed after ``l``."""
    from evil_files import pickle_file, torchscript_archive

    script = torchscript_archive(folder / "model.safetensors", marker)  # TorchScript under any suffix
    pickled = pickle_file(folder / "weights.pt", marker)
    return {
        "torchscript as MODEL": (str(script), "is a TorchScript archive: loading it runs the TorchScript code"),
        "pickle as MODEL": (str(pickled), "needs full unpickling, which can run arbitrary code"),
        "pickle as --weights": (f"resnet18 --weights {pickled}", "needs full unpickling"),
    }


async def test_l_never_runs_code_from_a_file_without_trust(app, tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.chdir(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        before = await opened(pilot)
        for kind, (line, words) in evil_lines(tmp_path, marker).items():
            line = line.replace(f"{tmp_path}/", "")  # short names to type
            await enter_line(pilot, "l", line)
            await settle(pilot)
            assert words in last_notification(app) and "--trust" in last_notification(app), kind
            assert not marker.exists() and state(app) == before, kind


async def test_l_refuses_a_poisoned_hub_cache_and_memory_bombs(app, tmp_path, monkeypatch):
    """Issue 21: the torch hub cache is read like any file, and a pickle calling ``bytearray(2**40)``
    is refused before it is unpickled (unfixed, the allocation would fail at once, not fill memory)."""
    from evil_files import bytearray_bomb, poisoned_hub_cache

    marker = tmp_path / "marker"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    poisoned_hub_cache(tmp_path / "torch_home", "resnet18-f37072fd.pth", marker)
    bytearray_bomb(tmp_path / "b.pt")
    monkeypatch.chdir(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        before = await opened(pilot)
        for line in ["resnet18 --weights DEFAULT", "b.pt", "resnet18 --weights b.pt"]:
            await enter_line(pilot, "l", line)
            await settle(pilot)
            told = last_notification(app)
            words = "calls builtins.bytearray() while unpickling" if "b.pt" in line else "needs full unpickling"
            assert told.startswith("Model not loaded: ") and words in told, line
            assert not marker.exists() and state(app) == before, line


async def test_a_torchscript_model_on_the_command_line_runs_nothing_without_trust(tmp_path):
    marker = tmp_path / "marker"
    line, words = evil_lines(tmp_path, marker)["torchscript as MODEL"]
    app = make_app([line])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert words in last_notification(app) and app.main.session is None
        assert not marker.exists()


async def test_l_opens_another_model_and_forgets_the_last_ones_target(app):
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot)
        await enter_line(pilot, "l", "sample_models:with_state")
        await settle(pilot)
        assert app.main.session.loaded.spec == "sample_models:with_state"
        assert app.main.session.target is None and app.main.session.image == COFFEE  # the photo carries over
        assert app.main.session.tree.root.total_params == 51
        assert "51 params (31 trainable, 20 frozen)" in screen_text(app)
        assert app.query_one(CamPanel).view is None


async def test_a_model_that_fails_at_start_says_so_on_screen_and_l_recovers(log_file):
    app = make_app(["broken_models:raises_keyerror"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shown = screen_text(app)
        assert "could not load broken_models:raises_keyerror" in shown.splitlines()[0]  # not "loading…"
        assert "l opens another model" in shown and "KeyError" in shown
        assert any(n.startswith("Model not loaded: ") and "blocks" in n for n in notifications(app))
        assert app.main.session is None
        await pilot.press("g", "t", "y", "s", "c", "m", "o")  # nothing to act on: no crash, no modal
        assert len(app.screen_stack) == 1
        assert last_notification(app) == ": no model is open: l opens one"
        await enter_line(pilot, "l", "resnet18")
        await settle(pilot)
        assert app.main.session.loaded.spec == "resnet18"
        assert "11,689,512 params" in screen_text(app).splitlines()[0]


async def test_a_bug_in_the_loader_is_logged_with_its_traceback(log_file):
    def buggy_loader():
        return {"layers": 2}["blocks"]

    app = LayerscopeApp(buggy_loader, spec="buggy")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert last_notification(app) == f"Model not loaded: KeyError: 'blocks' (traceback in {log_file})"
        logged = log_file.read_text()
        assert "error while loading the model" in logged
        assert 'return {"layers": 2}["blocks"]' in logged and logged.rstrip().endswith("KeyError: 'blocks'")
        await pilot.press("question_mark")
        await pilot.pause()
        assert str(app.screen.query_one("#help-log").render()) == f"errors that are bugs: traceback in {log_file}"


async def test_device_xpu_on_the_command_line_leaves_the_app_usable():
    app = make_app(["resnet18", "--device", "xpu"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "xpu" in last_notification(app).lower()
        assert "could not load resnet18" in screen_text(app).splitlines()[0]
        await pilot.press("q")
        await pilot.pause()
        assert app.return_code == 0


# --- o: another photo --------------------------------------------------------------------


def bomb_png(path: Path, side: int = 20_000) -> Path:
    """A 60-byte PNG that declares 20,000×20,000 pixels: Pillow's decompression-bomb check."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\0" * (side + 1))  # one row: the size alone trips the check
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def bad_photos(folder: Path) -> dict[str, tuple[Path, list[str]]]:
    text = folder / "notes.png"
    text.write_text("not a picture")
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    return {
        "missing": (folder / "nope.png", ["no such image", "nope.png"]),
        "folder": (folder, ["is a folder, not an image"]),
        "text file": (text, ["notes.png: not an image file Pillow understands"]),
        "empty file": (empty, ["empty.jpg is empty (0 bytes), not an image"]),
        "decompression bomb": (bomb_png(folder / "bomb.png"), ["claims 400,000,000 pixels", "decompression bomb"]),
    }


async def test_o_on_a_bad_photo_notifies_and_keeps_the_photo(app, tmp_path, log_file, monkeypatch):
    monkeypatch.chdir(tmp_path)  # short names to type
    async with app.run_test(size=SIZE) as pilot:
        before = await opened(pilot)
        for kind, (path, words) in bad_photos(tmp_path).items():
            await enter_line(pilot, "o", os.path.relpath(path, tmp_path))
            await settle(pilot)
            told = last_notification(app)
            assert told.startswith("Image not opened: "), kind
            for word in words:
                assert word in told, kind
            assert state(app) == before and not log_file.exists(), kind


@pytest.fixture
def fifo(tmp_path):
    """A named pipe nobody writes to: opening it for reading blocks until someone does."""
    path = tmp_path / "photo.png"
    os.mkfifo(path)
    yield path
    try:  # let a reader still blocked in open() go: it sees end of file at once
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


async def wait_for(condition, seconds: float) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {seconds} s")


async def test_o_on_a_fifo_is_refused_at_once(app, fifo, monkeypatch):
    monkeypatch.chdir(fifo.parent)
    async with app.run_test(size=SIZE) as pilot:
        before = await opened(pilot)
        await enter_line(pilot, "o", fifo.name)
        await wait_for(lambda: any(n.startswith("Image not opened") for n in notifications(app)), 1.0)
        told = last_notification(app)
        assert "photo.png is a FIFO (named pipe), not an image" in told and state(app) == before


async def test_the_app_answers_keys_while_a_photo_read_is_stuck(app, fifo, monkeypatch):
    """Whatever the engine does with a FIFO, a read stuck in I/O never freezes the screen."""
    from layerscope.tui import camlink

    monkeypatch.setattr(camlink, "check_image", lambda path: open(path, "rb").read())  # blocks: no writer
    monkeypatch.chdir(fifo.parent)
    async with app.run_test(size=SIZE) as pilot:
        before = await opened(pilot)
        await enter_line(pilot, "o", fifo.name)
        await pilot.pause(0.1)
        await pilot.press("slash", *"layer3", "enter")
        await pilot.pause(0.3)
        assert app.main.session.node(app.main.current).name == "layer3"
        assert state(app) == before
        await pilot.press("q")
        await pilot.pause()
        assert app.return_code == 0


# --- keys on models they do not fit ------------------------------------------------------


async def test_class_picker_without_class_names_ignores_superscript_digits():
    loaded = load_model("sample_models:with_state")
    assert not loaded.categories
    app = LayerscopeApp(loaded, spec="with_state")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c", "²")
        await pilot.pause()
        assert "class index" not in screen_text(app)  # "²" is no index: no option, no crash
        await pilot.press("backspace", "3", "enter")
        await pilot.pause()
        assert app.main.session.class_index == 3 and app.is_running


def scripted_file(folder: Path) -> Path:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
    )
    path = folder / "scripted.pt"
    torch.jit.script(model).save(str(path))
    return path


async def test_a_torchscript_model_browses_every_tab(tmp_path):
    loaded = load_model(str(scripted_file(tmp_path)), trust=True)
    app = LayerscopeApp(loaded, spec="scripted.pt")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "enter", "down", "down")  # onto 1.1, inside the nested Sequential
        await settle(pilot)
        assert app.main.session.node(app.main.current).name == "1.1"
        await pilot.press("2")
        await settle(pilot)
        shown = screen_text(app)
        assert "2 entries under 1.1." in shown and "2×4×1×1" in shown
        await pilot.press("3")
        await settle(pilot)
        assert "on model._modules['1']._modules['1']" in screen_text(app)  # ScriptModules have no get_submodule
        assert notifications(app) == []  # TorchScript submodules take no hooks: the probe watches the model's call
        assert app.main.session.shapes[""].describe() == "1×2×222×222" and "1.1" not in app.main.session.shapes
        await pilot.press("t", "g")
        await settle(pilot)
        assert last_notification(app).startswith("Grad-CAM failed: ")
        assert "TorchScript modules do not support" in last_notification(app)  # a user error, not a logged bug
        assert app.main.session.node(app.main.session.target).name == "1.1" and app.is_running


# --- workers: failures, cancellation, quitting -------------------------------------------


async def test_a_bug_in_the_map_is_logged_and_the_next_g_still_runs(app, log_file, monkeypatch):
    from layerscope.tui import camlink

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero in a hook")

    monkeypatch.setattr(camlink, "compute", broken)
    async with app.run_test(size=SIZE) as pilot:
        before = await opened(pilot)
        for _ in range(2):  # the panel is not left "running": the second g runs too
            await pilot.press("g")
            await settle(pilot)
        told = [n for n in notifications(app) if n.startswith("Grad-CAM failed")]
        assert told == [f"Grad-CAM failed: ZeroDivisionError: division by zero in a hook (traceback in {log_file})"] * 2
        assert log_file.read_text().count("error while computing the map") == 2
        assert not app.query_one(CamPanel).running and state(app) == before


@pytest.fixture
def stuck_map(monkeypatch):
    """``camlink.compute`` stuck where no cancel reaches it (I/O); released after the test."""
    from layerscope.tui import camlink

    entered, release = threading.Event(), threading.Event()

    def stuck(*args, **kwargs):
        entered.set()
        release.wait(60)
        raise AssertionError("released only at teardown")

    monkeypatch.setattr(camlink, "compute", stuck)
    yield entered
    release.set()


# The second these promise is measured by benchmarks/bench_app.py (a quiet machine); a test on
# a busy one asserts the behaviour, the quit taking effect while the work is stuck, with a
# bound generous enough for load 14 and still far below the stuck work's 60 s.
QUIT_BOUND_S = 10.0


async def test_q_during_a_stuck_map_quits_without_waiting_for_it(app, stuck_map):
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot)
        await pilot.press("g")
        await wait_for(stuck_map.is_set, 5)
        started = time.monotonic()
        await pilot.press("q")
        await pilot.pause()
    assert time.monotonic() - started < QUIT_BOUND_S
    assert app.return_code == 0


QUIT_SCRIPT = textwrap.dedent("""
    import sys, time
    from layerscope.tui.app import LayerscopeApp
    from layerscope.tui.launch import run

    fifo, stamp = sys.argv[1], sys.argv[2]

    def load_from_a_pipe():
        with open(fifo, "rb") as pipe:  # blocks: nobody ever writes
            return pipe.read()

    async def press_q(pilot):
        await pilot.pause(0.5)
        with open(stamp, "w") as out:
            out.write(repr(time.monotonic()))
        await pilot.press("q")

    sys.exit(run(LayerscopeApp(load_from_a_pipe, spec="pipe"), headless=True, auto_pilot=press_q))
""")


def test_q_ends_the_process_while_loading_blocks_in_io(fifo, tmp_path):
    stamp = tmp_path / "pressed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", QUIT_SCRIPT, str(fifo), str(stamp)], env=env, capture_output=True, text=True, timeout=60
    )
    ended = time.monotonic()
    assert done.returncode == 0, done.stderr
    assert ended - float(stamp.read_text()) < QUIT_BOUND_S  # the load never returns: only the quit ends it


# --- y: "Copied" only when something confirmed it ----------------------------------------


def fake_clipboard(folder: Path, status: int) -> Path:
    """An ``xclip`` on PATH that keeps what it was given and exits with ``status``."""
    script = folder / "xclip"
    script.write_text(f'#!/bin/sh\n/bin/cat > "$0.got"\nexit {status}\n')
    script.chmod(0o755)
    return folder / "xclip.got"


@pytest.mark.parametrize("status", [0, 1])
async def test_y_says_copied_only_when_the_clipboard_command_confirms(app, tmp_path, monkeypatch, status):
    got = fake_clipboard(tmp_path, status)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    async with app.run_test(size=SIZE) as pilot:
        before = await opened(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert got.read_text() == "model.layer4[-1]"
        if status == 0:
            assert last_notification(app) == "Copied: model.layer4[-1]"
        else:
            assert last_notification(app).startswith("Copy by hand: model.layer4[-1]\nsent to the terminal (OSC 52)")
        assert app.clipboard == "model.layer4[-1]" and state(app) == before


async def test_y_without_any_clipboard_command_shows_the_expression_to_copy(app, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no pbcopy, wl-copy, xclip, xsel, clip.exe
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert last_notification(app).startswith("Copy by hand: model.layer4[-1]\n")
        assert "model.layer4[-1]" in screen_text(app)


def test_a_bug_whose_log_cannot_be_written_still_says_what_happened(tmp_path):
    from layerscope.errors import LayerscopeError
    from layerscope.tui import failures

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    try:
        {}["blocks"]
    except KeyError as exc:
        failure = failures.describe(exc, "loading the model", blocker / "app.log")
    assert failure.text.startswith("KeyError: 'blocks' (traceback not logged: ") and failure.bug
    mistake = failures.describe(LayerscopeError("no such image: x.png\nsecond line"), "reading", blocker / "app.log")
    assert mistake == failures.Failure(text="no such image: x.png", severity="error")


# --- the three crashers of issue 21 (point 8): each input once ended the app with a traceback ----


async def test_s_after_g_on_a_photo_with_a_240_character_name_saves_under_a_shortened_name(
    resnet18_loaded, tmp_path, log_file
):
    photo = tmp_path / f"{'p' * 240}.png"
    photo.write_bytes(COFFEE.read_bytes())
    app = LayerscopeApp(resnet18_loaded, spec="resnet18", image=photo, save_dir=tmp_path, read_line=loader_for_line)
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot)
        await pilot.press("g")
        await settle(pilot)
        await pilot.press("s")
        await pilot.pause()
        saved = sorted(p for p in tmp_path.iterdir() if p.suffix in (".png", ".npy") and p != photo)
        assert [p.suffix for p in saved] == [".npy", ".png"]
        assert all(len(p.name.encode()) <= 204 and "~" in p.name for p in saved)  # cut in the middle
        assert saved[1].name.startswith("resnet18-layer4.1-gradcam-ppp") and app.is_running
        assert notifications(app)[-1].startswith("Saved") and not log_file.exists()


async def test_o_with_an_unknown_users_home_notifies_and_keeps_the_photo(app, log_file):
    async with app.run_test(size=SIZE) as pilot:
        before = await opened(pilot)
        await enter_line(pilot, "o", "~nosuchuser/x.png")
        await settle(pilot)
        told = last_notification(app)
        assert told.startswith("Image not opened: ") and "no such user's home folder" in told
        assert state(app) == before and app.is_running and not log_file.exists()


async def test_class_picker_without_class_names_survives_4400_typed_digits(log_file):
    loaded = load_model("sample_models:with_state")
    app = LayerscopeApp(loaded, spec="with_state")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await pilot.pause()
        app.screen.query_one("#class-filter").value = "7" * 4400  # as typed, without 4,400 key presses
        await pilot.pause()
        assert "class index" not in screen_text(app)  # no index that long: no option, no crash
        await pilot.press("ctrl+u", "3", "enter")
        await pilot.pause()
        assert app.main.session.class_index == 3 and app.is_running and not log_file.exists()


async def test_o_then_g_on_a_20000_by_1_photo_is_refused_before_resizing(app, tmp_path, log_file, monkeypatch):
    """A ~100-byte PNG whose shorter side, resized to 256, would make 1.3 gigapixels (issue 21)."""
    from PIL import Image

    Image.new("L", (20000, 1)).save(tmp_path / "strip.png")
    monkeypatch.chdir(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot)
        await enter_line(pilot, "o", "strip.png")
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        told = " ".join(notifications(app))
        assert "5,120,000×256 = 1,310,720,000 pixels, over the 16,777,216-pixel limit" in told, told
        assert app.is_running and not log_file.exists()
        await enter_line(pilot, "o", str(COFFEE))  # and the app still explains a photo
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        assert app.query_one(CamPanel).view is not None


@pytest.mark.slow  # 100,000 key events through Textual's dispatch: ~20 s on the 2-core machine
async def test_100_kb_typed_into_the_o_prompt_key_by_key_leaves_the_app_responsive(app, log_file):
    """What a terminal without bracketed paste sends (issue 31): every key arrives as its own
    event. The prompt stops at its maximum length, so each key costs a constant time; before,
    each re-rendered and re-completed the whole line (10 KB: 19 s; 100 KB: minutes, 2.3 GB)."""
    from textual import events

    from layerscope.tui.screens.image_path import MAX_PROMPT

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        photo = app.main.session.image
        await pilot.press("o", "ctrl+u")
        start = time.monotonic()
        for char in ("xy/" * 34_000)[:100_000]:
            event = events.Key(char, char)
            event.set_sender(app)
            app.post_message(event)
        await settle(pilot)
        assert time.monotonic() - start < 90
        field = app.screen.query_one("#image-path")
        assert len(field.value) == MAX_PROMPT and field.value.startswith("xy/xy/")
        start = time.monotonic()
        await pilot.press("escape")
        await pilot.pause()
        assert time.monotonic() - start < 3 and app.is_running and not log_file.exists()
        assert app.main.session.image == photo


async def test_the_o_prompt_selects_its_path_so_typing_replaces_it(app):
    """Issue 32: the prompt opened with the current photo's path and typing appended to it."""
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        photo = str(app.main.session.image)
        await pilot.press("o")
        await pilot.pause()
        field = app.screen.query_one("#image-path")
        assert field.value == photo and field.selected_text == photo  # shown, and all selected
        await pilot.press("/", "t", "m", "p")
        assert field.value == "/tmp"
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running and str(app.main.session.image) == photo
