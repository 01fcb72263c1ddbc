"""Nothing loads code from a file without ``trust``: pickles, TorchScript and torch.export
programs, at every entry point (MODEL, ``--arch``, ``--weights``, any suffix)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evil_files import clean_export_program, export_program, pickle_file, torchscript_archive
from layerscope.cli.main import main
from layerscope.errors import LayerscopeError
from layerscope.models import load_model
from layerscope.tree import build_tree


@pytest.fixture
def state_dict_file(tmp_path: Path) -> Path:
    path = tmp_path / "linear.pth"
    torch.save(torch.nn.Linear(3, 3).state_dict(), path)
    return path


LINEAR = "torch.nn:Linear"
LINEAR_ARGS = {"in_features": 3, "out_features": 3}


def _entry_points(evil: Path, state_dict_file: Path) -> dict[str, dict]:
    """Every way a path reaches the loader, as ``load_model`` keyword arguments."""
    return {
        "MODEL": {"spec": str(evil)},
        "MODEL as a state_dict with --arch": {"spec": str(evil), "arch": LINEAR, "kwargs": LINEAR_ARGS},
        "--arch": {"spec": str(state_dict_file), "arch": str(evil)},
        "--weights": {"spec": LINEAR, "weights": str(evil), "kwargs": LINEAR_ARGS},
    }


ENTRY_POINTS = ["MODEL", "MODEL as a state_dict with --arch", "--arch", "--weights"]
TORCHSCRIPT = r"is a TorchScript archive: loading it runs the TorchScript code stored in the file; pass --trust"
EXPORT = r"is a torch.export program \(.pt2\): torch.export.load unpickles parts of it, which runs code from the file"
PICKLE = "needs full unpickling, which can run arbitrary code; pass --trust"
CODE_FILES = [
    *[(torchscript_archive, suffix, TORCHSCRIPT) for suffix in (".pt", ".safetensors", ".pth", ".bin", "")],
    *[(export_program, suffix, EXPORT) for suffix in (".pt2", ".pt", "")],
    *[(pickle_file, suffix, PICKLE) for suffix in (".pt", ".pth", ".bin", "")],
]


@pytest.mark.parametrize(("make", "suffix", "message"), CODE_FILES)
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_code_files_run_nothing_without_trust(tmp_path, state_dict_file, entry, make, suffix, message):
    marker = tmp_path / "pwned"
    evil = make(tmp_path / f"evil{suffix}", marker)
    call = _entry_points(evil, state_dict_file)[entry]
    with pytest.raises(LayerscopeError, match=message):
        load_model(call.pop("spec"), **call)
    assert not marker.exists()


def test_torchscript_with_trust_loads_and_its_code_runs(tmp_path):
    """The positive control: the archive above really does write its marker when trusted."""
    marker = tmp_path / "pwned"
    evil = torchscript_archive(tmp_path / "evil.safetensors", marker)
    loaded = load_model(str(evil), trust=True)
    assert loaded.source == "torchscript"
    assert marker.read_bytes() == b"PWN\n"
    assert build_tree(loaded.model).root.total_params == 3
    assert torch.equal(loaded.model(torch.full((3,), 2.0)), torch.full((3,), 2.0))


def test_torchscript_as_weights_with_trust_gives_its_state_dict(tmp_path):
    evil = torchscript_archive(tmp_path / "weights.bin", tmp_path / "pwned")
    loaded = load_model("evil_files:MarkerWriter", weights=str(evil), trust=True, kwargs={"marker": "unused"})
    assert loaded.pretrained and loaded.weights == str(evil)
    assert torch.equal(loaded.model.weight, torch.ones(3))


def test_pickle_named_safetensors_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle_file(tmp_path / "evil.safetensors", marker)
    for trust in (False, True):
        with pytest.raises(LayerscopeError, match="not a safetensors file"):
            load_model(str(evil), trust=trust)
    assert not marker.exists()


def test_torch_export_load_runs_code_from_the_file(tmp_path):
    """Why ``.pt2`` is not offered as the safe format: ``torch.export.load`` itself runs
    the crafted pickle inside the archive (torch 2.14 loads such weights with
    ``weights_only=False``)."""
    marker = tmp_path / "pwned"
    evil = export_program(tmp_path / "evil.pt2", marker)
    try:
        torch.export.load(str(evil))
    except Exception:
        pass  # the archive is broken after the payload; the code has run by then
    assert marker.exists()


def test_export_program_with_trust_loads(tmp_path):
    program = clean_export_program(tmp_path / "linear.pt2")
    loaded = load_model(str(program), trust=True)
    assert loaded.source == "export"
    assert build_tree(loaded.model).root.total_params == 2 * 3 + 3
    assert loaded.model(torch.zeros(1, 2)).shape == (1, 3)


@pytest.mark.parametrize("make", [torchscript_archive, pickle_file, export_program])
def test_cli_refuses_every_code_file_in_one_line(tmp_path, capsys, make):
    marker = tmp_path / "pwned"
    evil = make(tmp_path / "evil.bin", marker)
    state = tmp_path / "linear.pth"
    torch.save(torch.nn.Linear(3, 3).state_dict(), state)
    for argv in (["stats", str(evil)], ["tree", "resnet18", "--weights", str(evil)],
                 ["cam", str(state), "--arch", str(evil), "--out", str(tmp_path / "x.png")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--trust" in err and "Traceback" not in err
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.bin", "linear.pth"]


def test_trusted_torchscript_works_in_every_structure_command(tmp_path, capsys):
    import json

    path = tmp_path / "scripted.pt"
    torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())).save(str(path))
    assert main(["api", str(path), "--trust", "--layer", "0", "--json"]) == 0
    rows = {row["method"]: row["count"] for row in json.loads(capsys.readouterr().out)["methods"]}
    assert rows["parameters()"] == 2 and rows["modules()"] == 1
    assert main(["stats", str(path), "--trust", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_params"] == 8 * 27 + 8
