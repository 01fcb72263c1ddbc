"""The report folder's own files under stress (issue 31): one writer at a time, and a resume
over files that were tampered with, replaced by FIFOs or links, or name what this run has
not. A tiny factory model keeps each run to a fraction of a second; every hazard must end
in a recompute or one line (status 2), never a traceback or a hang."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from report_helpers import APP, SAMPLES, read_jsonl, subprocess_env

from layerscope.cli.main import main

TINY_ARGV = ["report", "cam_models:TinyNet", "--layers", "conv", "--steps", "2", "--workers", "0",
             "--sanity-images", "0", "--batch-size", "2"]
TESTS = Path(__file__).parent
HOLD_LOCK = ("import sys; from pathlib import Path; from layerscope.folder_report.lock import FolderLock; "
             "lock = FolderLock(Path(sys.argv[1])); print('held', flush=True); sys.stdin.read()")


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


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_is_taken_over(photos, finished, tmp_path,
                                                                                         capsys):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    before = (out / "records.jsonl").read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=subprocess_env())
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
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    done = [(run.pid, run.wait(timeout=300), run.stderr.read()) for run in runs]
    for run in runs:
        run.stdout.close()
        run.stderr.close()
    codes = sorted(code for _, code, _ in done)
    assert codes in ([0, 0], [0, 2]), done
    for pid, code, err in done:
        if code == 2:
            winner = next(p for p, c, _ in done if c == 0)
            assert err.count("\n") == 1 and f"(pid {winner} on " in err, err
    records = read_jsonl(out / "records.jsonl")
    assert sorted(r["image"] for r in records) == ["cat.png", "cup.png", "more/cat2.png"]
    assert json.loads((out / "summary.json").read_text())["records"] == 3
