"""Nothing loads code from a file without ``trust``: pickles, TorchScript and torch.export
programs, at every entry point (MODEL, ``--arch``, ``--weights``, any suffix)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from evil_files import (
    TIB,
    bytearray_bomb,
    clean_export_program,
    export_program,
    hidden_bytearray_bomb,
    pickle_file,
    poisoned_hub_cache,
    torchscript_archive,
    zip_bytearray_bomb,
)
from layerscope.cli.main import main
from layerscope.errors import LayerscopeError
from layerscope.models import load_model
from layerscope.models.checkpoints import extract_state_dict, read_model_file
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
    for argv in (
        ["stats", str(evil)],
        ["tree", "resnet18", "--weights", str(evil)],
        ["cam", str(state), "--arch", str(evil), "--out", str(tmp_path / "x.png")],
    ):
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


# --- issue 21: the weights caches, memory bombs, shard indexes, outputs onto model files ------------

SAMPLES = Path(__file__).parent.parent / "app" / "layerscope" / "samples"
CHELSEA = str(SAMPLES / "chelsea.png")
REAL_HUB_CHECKPOINTS = Path(torch.hub.get_dir()) / "checkpoints"  # read at import, before any test's TORCH_HOME
RESNET18_FILE = "resnet18-f37072fd.pth"  # ResNet18_Weights.IMAGENET1K_V1's name in torch hub's cache
BYTEARRAY = r"calls builtins.bytearray\(\) while unpickling, which can claim any amount of memory"


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """A torch hub cache of the test's own (never the real one)."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.mark.parametrize(
    "argv",
    [
        ["tree", "resnet18"],  # --weights auto finds the planted file
        ["tree", "resnet18", "--weights", "DEFAULT"],
        ["stats", "resnet18", "--weights", "IMAGENET1K_V1"],
        ["cam", "resnet18", "--weights", "DEFAULT", "--image", CHELSEA],
    ],
)
def test_a_poisoned_torch_hub_cache_runs_nothing(tmp_path, torch_home, capsys, argv):
    """torchvision reads cached weights with ``torch.hub.load_state_dict_from_url``, which
    unpickles fully; layerscope reads them with its own reader instead."""
    marker = tmp_path / "pwned"
    planted = poisoned_hub_cache(torch_home, RESNET18_FILE, marker)
    err = _one_line_error(capsys, argv)
    assert f"{planted} needs full unpickling, which can run arbitrary code; pass --trust only if" in err
    assert not marker.exists()


def test_the_poisoned_cache_file_is_the_one_read(tmp_path, torch_home):
    """The positive control: with ``--trust`` the planted pickle runs (and is no checkpoint)."""
    marker = tmp_path / "pwned"
    planted = poisoned_hub_cache(torch_home, RESNET18_FILE, marker)
    with pytest.raises(LayerscopeError, match=f"cannot unpickle {planted}: Invalid magic number"):
        load_model("resnet18", weights="DEFAULT", trust=True)
    assert marker.exists()


def test_a_memory_bomb_in_the_hub_cache_is_refused(torch_home, capsys):
    (torch_home / "hub" / "checkpoints").mkdir(parents=True)
    planted = bytearray_bomb(torch_home / "hub" / "checkpoints" / RESNET18_FILE, TIB)
    assert BYTEARRAY.replace("\\", "") in _one_line_error(capsys, ["tree", "resnet18"])
    assert planted.read_bytes().startswith(b"\x80\x02cbuiltins\nbytearray")  # left as it was


@pytest.mark.parametrize("content", [b"PK\x03\x04truncated", bytes(range(256)) * 4, b""])
def test_a_corrupt_hub_cache_file_is_one_line(torch_home, capsys, content):
    """A truncated or random file where torch hub keeps the weights: one line naming it, exit 2,
    and the file left as it was (issue 21, point 9)."""
    (torch_home / "hub" / "checkpoints").mkdir(parents=True)
    planted = torch_home / "hub" / "checkpoints" / RESNET18_FILE
    planted.write_bytes(content)
    err = _one_line_error(capsys, ["tree", "resnet18", "--weights", "DEFAULT"])
    assert RESNET18_FILE in err
    assert planted.read_bytes() == content


def test_real_cached_weights_still_load_through_the_safe_reader():
    loaded = load_model("mobilenet_v2", weights="IMAGENET1K_V1")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / "mobilenet_v2-b0353104.pth"
    assert loaded.files == (cached,)
    from layerscope.io import imaging

    x, _ = imaging.preprocess(imaging.load_image(SAMPLES / "chelsea.png"), loaded.preprocess)
    with torch.no_grad():
        assert loaded.categories[int(loaded.model(x).argmax())] == "Egyptian cat"


def _timm_hub_cache(cache: Path, file_name: str, write) -> Path:
    """timm's resnet18 weights (repo ``timm/resnet18.a1_in1k``) in a Hugging Face cache of the test's own."""
    snapshot = cache / "models--timm--resnet18.a1_in1k" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0123abc")
    write(snapshot / file_name)
    return snapshot / file_name


def test_timm_weights_from_the_hugging_face_cache_go_through_the_safe_reader(tmp_path, monkeypatch, capsys):
    timm = pytest.importorskip("timm")
    from huggingface_hub import constants
    from safetensors.torch import save_file

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    torch.manual_seed(3)
    reference = timm.create_model("resnet18").state_dict()
    cached = _timm_hub_cache(tmp_path / "hf", "model.safetensors", lambda p: save_file(reference, str(p)))
    loaded = load_model("timm:resnet18", weights="auto")
    assert loaded.pretrained and loaded.files == (cached,)
    assert torch.equal(loaded.model.fc.weight, reference["fc.weight"])
    assert "state_dict" not in loaded.model.pretrained_cfg  # no second copy of the weights kept
    cached.unlink()
    marker = tmp_path / "pwned"
    pickle_file(cached.with_name("pytorch_model.bin"), marker)
    err = _one_line_error(capsys, ["tree", "timm:resnet18", "--weights", "DEFAULT"])
    assert "pytorch_model.bin needs full unpickling" in err and not marker.exists()


BOMBS = [bytearray_bomb, hidden_bytearray_bomb, zip_bytearray_bomb]


@pytest.mark.parametrize("make", BOMBS)
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_memory_bombs_are_refused_before_unpickling(tmp_path, state_dict_file, entry, make):
    """Each asks for a tebibyte: were it unpickled, the allocation would fail at once (no test
    ever fills memory); refused, the message names the call."""
    bomb = make(tmp_path / "b.pt")
    call = _entry_points(bomb, state_dict_file)[entry]
    for trust in (False, True):
        with pytest.raises(LayerscopeError, match=BYTEARRAY):
            load_model(call["spec"], trust=trust, **{k: v for k, v in call.items() if k != "spec"})


@pytest.mark.parametrize("argv", [["tree", "{b}"], ["tree", *LINEAR.split(), "--weights", "{b}"]])
def test_cli_refuses_a_memory_bomb_in_one_line(tmp_path, capsys, argv):
    bomb = bytearray_bomb(tmp_path / "b.pt")
    args = [a.replace("{b}", str(bomb)) for a in argv]
    if "--weights" in args:
        args[2:2] = ["--arg", "in_features=3", "--arg", "out_features=3"]
    assert "b.pt calls builtins.bytearray() while unpickling" in _one_line_error(capsys, args)


def test_checkpoints_torch_writes_pass_the_pickle_check(tmp_path):
    """Legacy and zip formats, tensors of every kind layerscope reads, and a whole module (trusted)."""
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.int64), "n": torch.tensor(True)}
    torch.save({"state_dict": state, "epoch": 10**12}, tmp_path / "zip.pt")
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(torch.nn.Linear(3, 2), tmp_path / "module.pt")
    for name in ("zip.pt", "legacy.pt"):
        read = extract_state_dict(read_model_file(tmp_path / name, trust=False), name)
        assert read.keys() == state.keys() and all(torch.equal(read[k], state[k]) for k in state)
    assert read_model_file(tmp_path / "module.pt", trust=True).weight.shape == (2, 3)


@pytest.fixture(scope="module")
def sharded_vit(tmp_path_factory) -> Path:
    """A tiny ViT classifier saved by transformers in several safetensors shards, with an image processor."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
    )
    folder = tmp_path_factory.mktemp("hf") / "vit"
    transformers.ViTForImageClassification(config).save_pretrained(folder, max_shard_size="20KB")
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    assert len(list(folder.glob("*.safetensors"))) > 1
    return folder


def _with_shard(sharded_vit: Path, place: Path, shard: object) -> Path:
    """A copy of the folder whose index names ``shard`` for its first tensor."""
    place.mkdir()
    for file in sharded_vit.iterdir():
        (place / file.name).write_bytes(file.read_bytes())
    index = place / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"][next(iter(data["weight_map"]))] = shard
    index.write_text(json.dumps(data))
    return place


SHARDS = [
    ("a character device", "/dev/null", "shards must be plain file names inside the model folder"),
    ("a path outside", "../outside.safetensors", "shards must be plain file names inside the model folder"),
    ("a sub-folder path", "sub/model.safetensors", "shards must be plain file names"),
    ("a number", 5, "names shard '5': shards must be plain file names"),
    ("nothing", "", "names shard '': shards must be plain file names"),
    ("a missing file", "nowhere.safetensors", "no such shard file"),
    ("a FIFO", "fifo.safetensors", "is a FIFO (named pipe), not a shard file"),
    ("a link out of the folder", "link.safetensors", "a link to"),
    ("a link to a device", "zero.safetensors", "is a character device, not a shard file"),
]


@pytest.mark.timeout(60)  # were the FIFO opened, the read would block: fail, never hang
@pytest.mark.parametrize(("shard", "words"), [pytest.param(s, w, id=i) for i, s, w in SHARDS])
def test_shard_index_names_only_regular_files_in_the_folder(sharded_vit, tmp_path, capsys, shard, words):
    (tmp_path / "outside.safetensors").write_bytes((next(sharded_vit.glob("*-of-*.safetensors"))).read_bytes())
    folder = _with_shard(sharded_vit, tmp_path / "vit", shard)
    os.mkfifo(folder / "fifo.safetensors")
    (folder / "link.safetensors").symlink_to(tmp_path / "outside.safetensors")
    (folder / "zero.safetensors").symlink_to("/dev/zero")
    err = _one_line_error(capsys, ["tree", str(folder)])
    assert words in err


def test_a_hub_cache_snapshot_of_links_into_its_blobs_still_loads(sharded_vit, tmp_path):
    """What ``hf download`` writes: snapshot files are links to ``../../blobs/``, outside the
    snapshot folder but inside its repo's storage."""
    storage = tmp_path / "models--acme--vit"
    snapshot, blobs = storage / "snapshots" / "0123abc", storage / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir()
    for n, file in enumerate(sorted(sharded_vit.iterdir())):
        (blobs / f"blob{n}").write_bytes(file.read_bytes())
        (snapshot / file.name).symlink_to(f"../../blobs/blob{n}")
    loaded = load_model(str(snapshot))
    reference = load_model(str(sharded_vit))
    assert torch.equal(loaded.model.classifier.weight, reference.model.classifier.weight)
    assert {f.name for f in loaded.files} == {f.name for f in sharded_vit.iterdir()}


# Every file a model was read from is an input: no output replaces it (cam, sweep, rank alike).


def _unchanged_after(capsys, argv: list[str], target: Path) -> str:
    before = target.read_bytes()
    err = _one_line_error(capsys, argv)
    assert "is also an input" in err and "it would be overwritten" in err
    assert target.read_bytes() == before
    return err


@pytest.mark.parametrize("name", ["model.safetensors.index.json", "config.json", "preprocessor_config.json", "shard"])
def test_out_never_replaces_a_file_of_a_hugging_face_folder(sharded_vit, capsys, name):
    target = next(sharded_vit.glob("*-of-*.safetensors")) if name == "shard" else sharded_vit / name
    _unchanged_after(capsys, ["cam", str(sharded_vit), "--image", CHELSEA, "--out", str(target)], target)
    _unchanged_after(capsys, ["cam", str(sharded_vit), "--image", CHELSEA, "--npy", str(target)], target)


def test_out_never_replaces_the_cached_weights(tmp_path, torch_home, capsys):
    cache = torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    link = cache / "mobilenet_v2-b0353104.pth"  # the real file, through a link: a regression replaces the link only
    link.symlink_to(REAL_HUB_CHECKPOINTS / link.name)
    _unchanged_after(capsys, ["cam", "mobilenet_v2", "--image", CHELSEA, "--out", str(link)], link)
    assert link.is_symlink()


@pytest.mark.parametrize(
    "command", [["cam"], ["sweep", "--layers", "0,2"], ["rank", "--layers", "0,2", "--steps", "2"]]
)
def test_out_never_replaces_the_factory_source(tmp_path, monkeypatch, capsys, command):
    source = tmp_path / "mymod.py"
    source.write_text(
        "import torch\n\ndef build():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), "
        "torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), "
        "torch.nn.Linear(4, 3))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mymod", raising=False)  # each test imports its own mymod.py
    monkeypatch.chdir(tmp_path)
    argv = [command[0], "mymod:build", *command[1:], "--image", CHELSEA, "--out", "mymod.py"]
    assert "--out mymod.py is also an input" in _unchanged_after(capsys, argv, source)


# The issue's own files in a real process, under a memory ceiling: were a bomb to go off, the
# allocation would fail (MemoryError, a wrong message) instead of filling the machine.
MEMORY_CEILING = 5 * 2**30  # address space: torch's libraries map ~3.5 GiB; the bombs ask for 5.6 GiB and more
WATCHED = [
    (
        "bytearray bomb as MODEL",
        lambda d, v: ["tree", str(bytearray_bomb(d / "b.pt", 6_000_000_000))],
        "b.pt calls builtins.bytearray() while unpickling",
    ),
    (
        "bytearray bomb in data.pkl as --weights",
        lambda d, v: [
            "tree",
            *LINEAR.split(),
            "--arg",
            "in_features=3",
            "--arg",
            "out_features=3",
            "--weights",
            str(zip_bytearray_bomb(d / "z.pt", 6_000_000_000)),
        ],
        "z.pt calls builtins.bytearray()",
    ),
    (
        "shard index naming /dev/zero",
        lambda d, v: ["tree", str(_with_shard(v, d / "vit", "/dev/zero"))],
        "names shard '/dev/zero': shards must be plain file names",
    ),
    (
        "shard index naming a link to /dev/zero",
        lambda d, v: ["tree", str(_linked(_with_shard(v, d / "vit", "zero.safetensors"), "/dev/zero"))],
        "is a character device, not a shard file",
    ),
]


def _linked(folder: Path, target: str) -> Path:
    (folder / "zero.safetensors").symlink_to(target)
    return folder


@pytest.mark.slow  # a fresh interpreter importing torch: seconds each
@pytest.mark.parametrize(("argv", "words"), [pytest.param(a, w, id=i) for i, a, w in WATCHED])
def test_bombs_in_a_real_process_stay_small(tmp_path, sharded_vit, argv, words):
    import resource
    import subprocess

    def ceiling() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CEILING, MEMORY_CEILING))

    app = Path(__file__).parent.parent / "app"
    env = {**os.environ, "PYTHONPATH": str(app), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    # A wrapper process runs the command and writes its child's peak: RUSAGE_CHILDREN of this test
    # worker would also count every earlier test's subprocesses.
    peak = tmp_path / "peak-kib"
    wrapper = (
        "import resource, subprocess, sys; code = subprocess.run(sys.argv[2:]).returncode; "
        "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
        "sys.exit(code)"
    )
    command = [sys.executable, "-m", "layerscope", *argv(tmp_path, sharded_vit)]
    done = subprocess.run(
        [sys.executable, "-c", wrapper, str(peak), *command],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        preexec_fn=ceiling,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    assert int(peak.read_text()) < 2 * 2**20  # KiB: under 2 GiB resident
