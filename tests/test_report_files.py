"""The report folder's own files under stress (issue 31): one writer at a time, and a resume
over files that were tampered with, replaced by FIFOs or links, or name what this run has
not. A tiny factory model keeps each run to a fraction of a second; every hazard must end
in a recompute or one line (status 2), never a traceback or a hang."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from layerscope.cli.main import main
from layerscope.folder_report import pictures
from report_helpers import APP, SAMPLES, read_jsonl, subprocess_env

TINY_ARGV = [
    "report",
    "cam_models:TinyNet",
    "--layers",
    "conv",
    "--steps",
    "2",
    "--workers",
    "0",
    "--sanity-images",
    "0",
    "--batch-size",
    "2",
]
TESTS = Path(__file__).parent
HOLD_LOCK = (
    "import sys; from pathlib import Path; from layerscope.folder_report.lock import FolderLock; "
    "lock = FolderLock(Path(sys.argv[1])); print('held', flush=True); sys.stdin.read()"
)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three photos, one in a subfolder: a flat folder (no labels)."""
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(SAMPLES / "chelsea.png", folder / "cat.png")
    shutil.copy(SAMPLES / "coffee.png", folder / "cup.png")
    (folder / "more").mkdir()
    shutil.copy(SAMPLES / "chelsea.png", folder / "more" / "cat2.png")
    return folder


@pytest.fixture(scope="module")
def finished(photos, tmp_path_factory):
    """One finished report of ``photos`` (each test works on its own copy)."""
    out = tmp_path_factory.mktemp("finished") / "out"
    assert main([*TINY_ARGV, "--images", str(photos), "--out", str(out)]) == 0
    return out


def report(capsys, photos, out) -> tuple[int, str, str]:
    code = main([*TINY_ARGV, "--images", str(photos), "--out", str(out)])
    stdout, err = capsys.readouterr()
    return code, stdout, err


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_is_taken_over(
    photos, finished, tmp_path, capsys
):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    before = (out / "records.jsonl").read_bytes()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        assert holder.stdout.readline() == "held\n"
        code, stdout, err = report(capsys, photos, out)
        assert code == 2 and err.count("\n") == 1, err
        assert f"is being written by another report (pid {holder.pid} on {socket.gethostname()}, started " in err
        assert (out / "records.jsonl").read_bytes() == before
    finally:
        holder.send_signal(signal.SIGKILL)  # the lock file stays behind, naming a process that is gone
        holder.wait(timeout=60)
    assert str(holder.pid) in (out / ".layerscope.lock").read_text()
    code, stdout, err = report(capsys, photos, out)
    assert code == 0, err
    assert "resume  3 of 3 files already done" in stdout
    assert (out / "records.jsonl").read_bytes() == before


@pytest.mark.slow  # two fresh interpreters importing torch
def test_two_reports_at_once_never_write_a_record_twice(photos, tmp_path):
    """Two real processes started together into one new folder: whichever loses the lock says
    so in one line (or, started after the other ended, finds nothing to do)."""
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "layerscope", *TINY_ARGV, "--images", str(photos), "--out", str(out)]
    env = {**subprocess_env(), "PYTHONPATH": os.pathsep.join([str(APP), str(TESTS)])}  # TinyNet's module too
    runs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    done = [(run.pid, run.wait(timeout=300), run.stderr.read()) for run in runs]
    for run in runs:
        run.stdout.close()
        run.stderr.close()
    codes = sorted(code for _, code, _ in done)
    assert codes in ([0, 0], [0, 2]), done
    for _pid, code, err in done:
        if code == 2:
            winner = next(p for p, c, _ in done if c == 0)
            assert err.count("\n") == 1 and f"(pid {winner} on " in err, err
    records = read_jsonl(out / "records.jsonl")
    assert sorted(r["image"] for r in records) == ["cat.png", "cup.png", "more/cat2.png"]
    assert json.loads((out / "summary.json").read_text())["records"] == 3


def _record_line(out: Path, **changes) -> str:
    """The folder's first record with ``changes`` (a field set to ``...`` is left out)."""
    row = {**json.loads((out / "records.jsonl").read_text().splitlines()[0]), **changes}
    return json.dumps({k: v for k, v in row.items() if v is not ...}) + "\n"


def _append(name: str, text: str | Callable[[Path], str]) -> Callable[[Path], None]:
    def tamper(out: Path) -> None:
        line = text(out) if callable(text) else text
        with (out / name).open("a", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(line)

    return tamper


def _swap(name: str | Callable[[Path], Path], make: Callable[[Path], object]) -> Callable[[Path], None]:
    """Replace the file ``name`` (or ``name(out)``) by what ``make(path)`` puts there."""

    def tamper(out: Path) -> None:
        path = name(out) if callable(name) else out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        make(path)

    return tamper


def _maps(out: Path) -> Path:
    return out / pictures.maps_path("cup.png")


def _lying_header(path: Path) -> None:
    np.save(path, np.zeros((1, 56, 56), np.float16))
    path.write_bytes(path.read_bytes().replace(b"(1, 56, 56)", b"(99999999, 56, 56)", 1))


DEEP = "[" * 60_000 + "]" * 60_000
# (id, what is done to a copy of the finished folder): each must end in a recompute to the same records
RECOMPUTED = [
    ("record a list", _append("records.jsonl", "[4, 5, 6]\n")),
    ("record a number", _append("records.jsonl", "42\n")),
    ("record false", _append("records.jsonl", "false\n")),
    ("record without image", _append("records.jsonl", lambda out: _record_line(out, image=...))),
    ("record's image a list", _append("records.jsonl", lambda out: _record_line(out, image=["cat.png"]))),
    ("record's score infinite", _append("records.jsonl", lambda out: _record_line(out, deletion_auc=float("inf")))),
    (
        "record's score 3000 digits",
        _append("records.jsonl", lambda out: _record_line(out, average_drop=int("7" * 3000))),
    ),
    ("record's maps outside", _append("records.jsonl", lambda out: _record_line(out, maps="../../../etc/hostname"))),
    ("record nested 60000 deep", _append("records.jsonl", DEEP + "\n")),
    ("record not UTF-8", _append("records.jsonl", "\udcff\udcfe{\n")),
    ("skip without reason", _append("skipped.jsonl", '{"path": "cup.png", "detail": "x"}\n')),
    ("skip an empty list", _append("skipped.jsonl", "[]\n")),
    ("maps deleted", _swap(_maps, lambda path: None)),
    ("maps corrupt", _swap(_maps, lambda path: path.write_bytes(b"\x93NUMPY\x01\x00garbage"))),
    ("maps header lies", _swap(_maps, _lying_header)),
    ("maps an object array", _swap(_maps, lambda path: np.save(path, np.array([{}, None], object), allow_pickle=True))),
    ("maps a link to /dev/zero", _swap(_maps, lambda path: path.symlink_to("/dev/zero"))),
    ("maps a FIFO", _swap(_maps, os.mkfifo)),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tamper", [pytest.param(t, id=i) for i, t in RECOMPUTED])
def test_a_tampered_report_file_is_computed_again_to_the_same_records(photos, finished, tmp_path, capsys, tamper):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    tamper(out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, stdout, err = report(capsys, photos, out)
    assert code == 0 and "Traceback" not in err and "error" not in err, err
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 300_000  # KiB: nothing read without end
    notes = [line for line in stdout.splitlines() if line.startswith("note ")]
    assert len(notes) == 1 and "computed again" in notes[0], stdout
    assert sorted(_lines(out / "records.jsonl")) == sorted(_lines(finished / "records.jsonl"))
    assert _lines(out / "skipped.jsonl") == _lines(finished / "skipped.jsonl")
    assert np.load(_maps(out)).shape == (1, 56, 56)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("layer", "image"), [("relu", "cat.png"), ("conv", "ghost.png"), ("fc", "more/ghost.png")])
def test_records_of_another_layer_or_image_are_dropped_and_said_once(photos, finished, tmp_path, capsys, layer, image):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    row = json.loads(_lines(out / "records.jsonl")[0])
    foreign = {
        **row,
        "layer": layer,
        "image": image,
        "maps": pictures.maps_path(image),
        "thumbnail": pictures.thumbnail_path(image),
        "overlay": pictures.overlay_path(image, layer),
    }
    _append("records.jsonl", (json.dumps(foreign) + "\n") * 3)(out)
    code, stdout, err = report(capsys, photos, out)
    assert code == 0, err
    notes = [line for line in stdout.splitlines() if line.startswith("note ")]
    assert notes == [
        "note    dropped 3 lines that are no record of this run (edited, or another run's image or "
        "layer); computed again"
    ]
    assert _lines(out / "records.jsonl") == _lines(finished / "records.jsonl")  # nothing else was redone
    assert json.loads((out / "summary.json").read_text())["records"] == 3


# (id, what is done, the words of the one line): hazards that stop the run with status 2
REFUSED = [
    ("run.json a string", _swap("run.json", lambda p: p.write_text('"report"')), "is not the JSON object"),
    ("run.json nested deep", _swap("run.json", lambda p: p.write_text(DEEP)), "is not the JSON object"),
    ("run.json empty", _swap("run.json", lambda p: p.write_bytes(b"")), "is not the JSON object"),
    ("run.json a FIFO", _swap("run.json", os.mkfifo), "run.json is a FIFO (named pipe)"),
    ("run.json a link to /dev/zero", _swap("run.json", lambda p: p.symlink_to("/dev/zero")), "a symbolic link"),
    ("run.json 80 MB", _swap("run.json", lambda p: os.truncate(p.open("w").name, 80 << 20)), "over the 67,108,864"),
    ("records a folder", _swap("records.jsonl", Path.mkdir), "records.jsonl is a folder"),
    ("records a FIFO", _swap("records.jsonl", os.mkfifo), "records.jsonl is a FIFO (named pipe)"),
    ("records a link to /dev/zero", _swap("records.jsonl", lambda p: p.symlink_to("/dev/zero")), "a symbolic link"),
    (
        "skipped a socket",
        _swap("skipped.jsonl", lambda p: socket.socket(socket.AF_UNIX).bind(str(p))),
        "skipped.jsonl is a socket",
    ),
    ("maps a folder", _swap(_maps, Path.mkdir), "cup.png-1f184c60.npy: not a regular file"),
    ("lock a FIFO", _swap(".layerscope.lock", os.mkfifo), "not a regular file; remove it"),
    ("lock a link", _swap(".layerscope.lock", lambda p: p.symlink_to(p.parent / "run.json")), "cannot lock"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("tamper", "words"), [pytest.param(t, w, id=i) for i, t, w in REFUSED])
def test_a_report_file_that_is_no_file_is_one_line(photos, finished, tmp_path, capsys, tamper, words):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    tamper(out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, stdout, err = report(capsys, photos, out)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 300_000
    assert code == 2 and err.count("\n") == 1 and words in err and "Traceback" not in err, err


def test_an_oversized_photo_is_skipped_and_the_report_finishes(tmp_path, capsys):
    """A 24000×20 PNG of a few hundred bytes would be 307,200×256 pixels once resized: too large,
    as a decompression bomb is, so it is skipped, and a second run has nothing left to do."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(SAMPLES / "coffee.png", folder / "cup.png")
    Image.new("L", (24_000, 20), 90).save(folder / "ribbon.png")
    out = tmp_path / "out"
    code, stdout, err = report(capsys, folder, out)
    assert code == 0 and "Traceback" not in err, err
    assert "images  1 explained, 1 skipped, 1 too large" in stdout
    [skip] = read_jsonl(out / "skipped.jsonl")
    assert (skip["path"], skip["reason"]) == ("ribbon.png", "too large")
    assert "307,200×256 = 78,643,200 pixels, over the 16,777,216-pixel limit" in skip["detail"]
    code, stdout, err = report(capsys, folder, out)
    assert code == 0 and "resume  2 of 2 files already done" in stdout, err


def test_a_file_name_that_is_not_utf8_is_explained_and_resumed(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    name = os.fsdecode(b"gar\xe7on \xff.png")  # Latin-1 bytes: surrogates once decoded
    shutil.copy(SAMPLES / "chelsea.png", folder / name)
    shutil.copy(SAMPLES / "coffee.png", folder / "cup.png")
    out = tmp_path / "out"
    code, stdout, err = report(capsys, folder, out)
    assert code == 0 and "Traceback" not in err, err
    records = read_jsonl(out / "records.jsonl")
    assert [r["image"] for r in records] == ["cup.png", name]  # sorted by str, as the folder is listed
    assert (out / records[1]["thumbnail"]).is_file() and records[1]["thumbnail"].isascii()
    assert "gar_on" in records[1]["thumbnail"]
    code, stdout, err = report(capsys, folder, out)
    assert code == 0 and "resume  2 of 2 files already done" in stdout, err
    assert read_jsonl(out / "records.jsonl") == records
