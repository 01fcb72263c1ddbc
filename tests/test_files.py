"""Reading only regular files, and writing outputs atomically without touching inputs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from PIL import Image

from layerscope.cli.main import main
from layerscope.errors import LayerscopeError
from layerscope.io import imaging
from layerscope.io.files import atomic_write, output_path, regular_file
from layerscope.models import load_model


def test_regular_file_names_what_else_it_is(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(LayerscopeError, match=r"pipe is a FIFO \(named pipe\), not an image; layerscope reads regular"):
        regular_file(tmp_path / "pipe", "image")
    with pytest.raises(LayerscopeError, match=r"^/dev/null is a character device, not a weights file"):
        regular_file(Path("/dev/null"), "weights file")


def test_unreadable_file_says_permission_denied_not_missing(tmp_path, monkeypatch):
    """safetensors used to say "No such file" for a file it may not read. Root reads any
    file whatever its mode, so the refusal is simulated where the file is opened."""
    from safetensors.torch import save_file

    from layerscope.io import files

    path = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))

    def denied(name, flags):
        raise PermissionError(13, "Permission denied", name)

    monkeypatch.setattr(files, "_nonblocking", denied)
    with pytest.raises(LayerscopeError, match=r"cannot read .*w.safetensors: Permission denied$"):
        load_model(str(path), arch="torch.nn:Linear")


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "cam.png"
    target.write_bytes(b"old picture")

    def half_then_fail(handle):
        handle.write(b"half a pic")
        raise OSError(28, "No space left on device")

    with pytest.raises(LayerscopeError, match="cannot write .*cam.png: No space left on device"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old picture"
    assert [p.name for p in tmp_path.iterdir()] == ["cam.png"]


def test_written_files_get_the_usual_permissions(tmp_path):
    path = imaging.save_png(Image.new("RGB", (3, 2), "red"), tmp_path / "red.png")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert Image.open(path).size == (3, 2)
    npy = imaging.save_npy(torch.ones(2, 2), tmp_path / "map")
    assert npy.name == "map.npy" and sorted(p.name for p in tmp_path.iterdir()) == ["map.npy", "red.png"]


def test_save_never_replaces_a_device():
    before = os.stat("/dev/null")
    with pytest.raises(LayerscopeError, match="cannot write /dev/null: not a regular file"):
        imaging.save_png(Image.new("RGB", (2, 2)), "/dev/null")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def test_output_that_is_an_input_by_link_is_refused(tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"x")
    os.link(photo, tmp_path / "hard.png")
    (tmp_path / "soft.png").symlink_to(photo)
    for name in ("hard.png", "soft.png", "./photo.png"):
        with pytest.raises(
            LayerscopeError, match=r"--out .* is also an input \(.*photo.png\); it would be overwritten"
        ):
            output_path(str(tmp_path / name), [photo], "--out")


def test_factory_error_with_debug_shows_the_traceback(tmp_path, monkeypatch):
    (tmp_path / "raising.py").write_text("def make():\n    raise KeyError('vocab_size')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(LayerscopeError) as info:
        main(["stats", "raising:make", "--debug"])
    assert isinstance(info.value.__cause__, KeyError)
