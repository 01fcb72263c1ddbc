"""A corpus of bad inputs, as an attacker or a careless user would type them.

Every CLI case must end with exit status 2 and exactly one line on stderr holding the
expected words, no traceback, no warning, and nothing written to or deleted from the
folder it ran in. Most run in-process through ``main()`` (fast); a handful run as real
subprocesses, which also proves nothing hangs (a FIFO, ``/dev/zero``) and that torch's
warnings stay silent.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from evil_files import (
    bytearray_bomb,
    export_program,
    pickle_file,
    png_claiming,
    torchscript_archive,
    zip_bytearray_bomb,
)
from layerscope.cli.main import main
from layerscope.errors import LayerscopeError
from layerscope.io import imaging
from layerscope.models import load_model, parse_kwargs
from layerscope.running.example_inputs import parse_inputs

TESTS = Path(__file__).parent
APP = TESTS.parent / "app"
LINEAR = ["torch.nn:Linear", "--arg", "in_features=3", "--arg", "out_features=3"]
LINEAR_ARGS = ["--arch", "torch.nn:Linear", "--arg", "in_features=3", "--arg", "out_features=3"]
TINY = ["cam", "cam_models:TinyNet", "--layer", "conv"]
LONG_NAME = "a" * 300
DIGITS = "9" * 5000  # past Python's 4,300-digit limit for int()
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto 8 8 lineto stroke\nshowpage\n"


def _damaged_zip(path: Path) -> None:
    """A real torch.save zip whose central directory signatures are broken."""
    torch.save({"w": torch.zeros(2)}, path)
    path.write_bytes(path.read_bytes().replace(b"PK\x01\x02", b"PK\x00\x00"))


def _zip_bomb(path: Path) -> None:
    """A deflated torch.save zip whose data member declares 4 GiB once unzipped."""
    torch.save({"w": torch.zeros(1000)}, path.with_suffix(".plain"))
    with zipfile.ZipFile(path.with_suffix(".plain")) as plain, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in plain.infolist():
            out.writestr(info.filename, plain.read(info.filename))
    path.with_suffix(".plain").unlink()
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")  # the first central directory entry: its uncompressed size
    data[at + 24 : at + 28] = struct.pack("<I", 0xFFFF_FFF0)
    path.write_bytes(bytes(data))


def _make_corpus(folder: Path) -> None:
    (folder / "folder").mkdir()
    os.mkfifo(folder / "fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "sock"))
    (folder / "bomb.png").write_bytes(png_claiming(100_000, 100_000))
    (folder / "warnbomb.png").write_bytes(png_claiming(10_000, 10_000))
    (folder / "truncated.png").write_bytes((APP / "layerscope/samples/coffee.png").read_bytes()[:2000])
    (folder / "photo.png").write_bytes((APP / "layerscope/samples/chelsea.png").read_bytes())
    (folder / "text.txt").write_text("hello world\n")
    (folder / "empty.pth").write_bytes(b"")
    (folder / "bad.safetensors").write_bytes(b"\xff" * 64)
    torch.save(3, folder / "int.pth")
    torch.save(nn.Linear(3, 3).state_dict(), folder / "linear.pth")
    torch.save({"weight": torch.zeros(3, 3).to_sparse(), "bias": torch.zeros(3)}, folder / "sparse.pth")
    torch.save({"weight": torch.empty(3, 3, device="meta"), "bias": torch.zeros(3)}, folder / "meta.pth")
    quantized = torch.quantize_per_tensor(torch.zeros(3, 3), 0.1, 0, torch.qint8)
    torch.save({"weight": quantized, "bias": torch.zeros(3)}, folder / "quantized.pth")
    _damaged_zip(folder / "badzip.pth")
    _zip_bomb(folder / "zipbomb.pth")
    torchscript_archive(folder / "script.pt", folder / "pwned")
    torchscript_archive(folder / "script.safetensors", folder / "pwned")
    pickle_file(folder / "evil.pkl", folder / "pwned")
    export_program(folder / "program.pt2", folder / "pwned")
    torch.jit.script(nn.Linear(3, 3)).save(str(folder / "clean_script.pt"))
    (folder / "broken_import.py").write_text("raise RuntimeError('boom at import')\n")
    (folder / "raising.py").write_text("def make():\n    raise KeyError('vocab_size')\n")
    (folder / "corpus_factory.py").write_text("import torch\n\ndef build():\n    return torch.nn.Conv2d(3, 2, 3)\n")
    (folder / "corpus_pkg" / "nets").mkdir(parents=True)  # a factory inside a package: the package is no output's place
    (folder / "corpus_pkg" / "__init__.py").write_text("")
    (folder / "corpus_pkg" / "nets" / "__init__.py").write_text("")
    (folder / "corpus_pkg" / "nets" / "conv.py").write_text((folder / "corpus_factory.py").read_text())
    (folder / "package_link").symlink_to(APP / "layerscope" / "cli", target_is_directory=True)
    Image.new("L", (20000, 1)).save(folder / "strip.png")  # ~100 bytes; resized for a model: 1.3 gigapixels
    Image.new("L", (1, 1_000_000)).save(folder / "column.png")
    (folder / "photo.eps").write_bytes(EPS)
    bytearray_bomb(folder / "bytearray.pt")  # 2**40 bytes asked for: unfixed, fails at once, never fills memory
    zip_bytearray_bomb(folder / "bytearray_zip.pt")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    _make_corpus(folder)
    return folder


def _snapshot(folder: Path) -> dict[str, tuple[int, int] | str]:
    """Every file's size and time, Python's own bytecode caches aside: importing a factory
    module the user named writes one, as ``python -c "import module"`` would (which also
    changes its folder's time: folders are listed by name only)."""
    return {
        str(p.relative_to(folder)): "folder" if p.is_dir() else (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in folder.rglob("*")
        if "__pycache__" not in p.parts
    }


# (id, argv with {d} for the corpus folder, words the one stderr line must hold)
CLI_CASES = [
    # model specs
    ("empty spec", ["stats", ""], "empty model spec"),
    ("colon spec", ["stats", ":foo"], "cannot read model spec ':foo'"),
    ("relative module", ["stats", ".foo:bar"], "cannot read model spec '.foo:bar'"),
    ("missing module", ["stats", "no_such_pkg.mod:make"], "cannot import 'no_such_pkg.mod'"),
    ("missing callable", ["stats", "sample_models:nothing"], "has no callable named 'nothing'"),
    ("factory returns str", ["stats", "sample_models:not_a_module"], "returned str, not a torch.nn.Module"),
    ("factory raises", ["stats", "raising:make"], "raising:make raised KeyError: 'vocab_size'"),
    (
        "module raises on import",
        ["stats", "broken_import:make"],
        "importing 'broken_import' raised RuntimeError: boom at import",
    ),
    ("unknown torchvision", ["stats", "resnet5"], "unknown model 'resnet5'; did you mean resnet50"),
    ("unknown timm", ["stats", "timm:resnet5000"], "unknown model 'resnet5000'"),
    (
        "unknown weights",
        ["stats", "resnet18", "--weights", "IMAGENET9K"],
        "choose one of: DEFAULT, IMAGENET1K_V1, none",
    ),
    (
        "weights on meta",
        ["stats", "resnet18", "--device", "meta", "--weights", "DEFAULT"],
        "--device meta builds the structure only",
    ),
    ("--arg without =", ["stats", "resnet18", "--arg", "vocab"], "--arg expects key=value, got 'vocab'"),
    ("--arg unknown", ["stats", "resnet18", "--arg", "nonsense=1"], "resnet18 does not accept those arguments"),
    ("timm --arg unknown", ["stats", "timm:resnet18", "--arg", "foo=1"], "timm:resnet18 does not accept those"),
    (
        "absurd num_classes",
        ["stats", "resnet18", "--arg", "num_classes=10000000000"],
        "resnet18 with num_classes=10000000000 needs 19,110.8 GiB of weights; cpu has",
    ),
    (
        "absurd timm num_classes",
        ["stats", "timm:resnet18", "--arg", "num_classes=10000000000"],
        "timm:resnet18 with num_classes=10000000000 needs 19,110.8 GiB of weights",
    ),
    # devices
    ("device xpu", ["stats", "resnet18", "--device", "xpu"], "device type 'xpu' is not supported"),
    ("device hpu", ["stats", "resnet18", "--device", "hpu"], "device type 'hpu' is not supported"),
    ("device nonsense", ["stats", "resnet18", "--device", "gpu0"], "unknown device 'gpu0'"),
    ("device bad index", ["stats", "resnet18", "--device", "cpu:x"], "unknown device 'cpu:x'"),
    # files that are not model files
    ("missing file", ["stats", "{d}/missing.pt"], "no such model file"),
    ("folder", ["stats", "{d}/folder"], "is a folder, not a model file"),
    ("fifo model", ["stats", "{d}/fifo"], "is a FIFO (named pipe), not a model file"),
    ("socket model", ["stats", "{d}/sock"], "is a socket, not a model file"),
    ("/dev/zero model", ["stats", "/dev/zero"], "/dev/zero is a character device, not a model file"),
    ("unknown user", ["stats", "~nosuchuser_ls/model.pt"], "no such user's home folder"),
    ("name too long", ["stats", f"{{d}}/{LONG_NAME}.pt"], "File name too long"),
    ("text file", ["stats", "{d}/text.txt"], "text.txt: not a PyTorch checkpoint\n"),  # no "(101)"
    ("empty file", ["stats", "{d}/empty.pth"], "empty.pth is empty (0 bytes), not a model file"),
    ("proc pseudo-file", ["stats", "/proc/self/status"], "/proc/self/status is empty (0 bytes)"),
    ("int checkpoint", ["stats", "{d}/int.pth"], "holds an int, neither a model nor a state_dict"),
    ("damaged zip", ["stats", "{d}/badzip.pth"], "a damaged zip archive"),
    ("zip bomb", ["stats", "{d}/zipbomb.pth"], "bytes when unzipped (a zip bomb?)"),
    ("bad safetensors", ["stats", "{d}/bad.safetensors"], "not a safetensors file"),
    ("state_dict without arch", ["stats", "{d}/linear.pth"], "holds a state_dict (2 tensors)"),
    ("state_dict misfit", ["stats", "{d}/linear.pth", "--arch", "resnet18"], "does not fit resnet18"),
    ("sparse tensors", ["stats", "{d}/sparse.pth", *LINEAR_ARGS], "'weight' is a sparse_coo tensor"),
    ("meta tensors", ["stats", "{d}/meta.pth", *LINEAR_ARGS], "'weight' is a meta tensor"),
    ("quantized tensors", ["stats", "{d}/quantized.pth", *LINEAR_ARGS], "'weight' is a quantized tensor"),
    ("weights fifo", ["stats", "resnet18", "--weights", "{d}/fifo"], "is a FIFO (named pipe), not a weights file"),
    ("arch fifo", ["stats", "{d}/linear.pth", "--arch", "{d}/fifo"], "is a FIFO (named pipe), not a model file"),
    # code in files
    ("torchscript model", ["stats", "{d}/script.pt"], "is a TorchScript archive: loading it runs"),
    ("torchscript renamed", ["stats", "{d}/script.safetensors"], "is a TorchScript archive: loading it runs"),
    ("torchscript as arch", ["stats", "{d}/linear.pth", "--arch", "{d}/script.pt"], "is a TorchScript archive"),
    ("torchscript as weights", ["stats", *LINEAR, "--weights", "{d}/script.pt"], "is a TorchScript archive"),
    ("pickle model", ["stats", "{d}/evil.pkl"], "needs full unpickling, which can run arbitrary code"),
    ("pickle as weights", ["stats", *LINEAR, "--weights", "{d}/evil.pkl"], "needs full unpickling"),
    ("export program", ["stats", "{d}/program.pt2"], "is a torch.export program (.pt2)"),
    # memory bombs: pickles that call bytearray(2**40), which torch's safe loader allows (issue 21)
    ("bytearray bomb", ["tree", "{d}/bytearray.pt"], "bytearray.pt calls builtins.bytearray() while unpickling"),
    ("bytearray bomb in data.pkl", ["tree", "{d}/bytearray_zip.pt"], "calls builtins.bytearray()"),
    ("bytearray bomb as arch", ["tree", "{d}/linear.pth", "--arch", "{d}/bytearray.pt"], "calls builtins.bytearray()"),
    ("bytearray bomb as weights", ["tree", *LINEAR, "--weights", "{d}/bytearray_zip.pt"], "calls builtins.bytearray()"),
    # layers, depths, inputs
    ("missing layer", ["stats", "resnet18", "--layer", "layer4.1.conv9"], "no layer 'layer4.1.conv9' in ResNet"),
    ("superscript index", ["stats", "resnet18", "--layer", "layer4[²]"], "cannot read layer name 'layer4[²]'"),
    ("superscript key", ["stats", "resnet18", "--layer", "layer4.²"], "no layer 'layer4.²' in ResNet; closest: "),
    ("depth -1", ["tree", "resnet18", "--depth", "-1"], "argument --depth: expected a number of at least 0"),
    ("huge input", ["tree", "resnet18", "--input", "3x100000x100000"], "at most 67,108,864 elements"),
    ("zero input", ["tree", "resnet18", "--input", "3x0x4"], "sizes of at least 1"),
    ("bad input", ["tree", "resnet18", "--input", "three"], "--input expects SHAPE[:dtype] or NAME=SHAPE[:dtype]"),
    ("bad input dtype", ["tree", "resnet18", "--input", "3x8x8:complex"], "unknown input dtype 'complex'"),
    ("first 0", ["api", "resnet18", "--first", "0"], "argument --first: expected a number of at least 1"),
    ("unknown option", ["stats", "resnet18", "--bogus"], "unrecognized arguments: --bogus"),
    # cam and sweep
    ("class superscript", [*TINY, "--class", "²"], "class name '²' given, but these weights have no class names"),
    ("class --5", [*TINY, "--class=--5"], "class name '--5' given"),
    ("class out of range", [*TINY, "--class", "7"], "class index 7 is out of range: the model has 3 classes"),
    ("image fifo", ["cam", "--image", "{d}/fifo"], "is a FIFO (named pipe), not an image"),
    ("image socket", ["cam", "--image", "{d}/sock"], "is a socket, not an image"),
    ("image /dev/zero", ["cam", "--image", "/dev/zero"], "is a character device, not an image"),
    ("decompression bomb", ["cam", "--image", "{d}/bomb.png"], "claims 10,000,000,000 pixels"),
    ("bomb over the warning limit", ["cam", "--image", "{d}/warnbomb.png"], "(a decompression bomb?)"),
    ("sweep bomb", ["sweep", "--image", "{d}/bomb.png", "--out", "{d}/grid.png"], "a decompression bomb?"),
    ("text as image", ["cam", "--image", "{d}/text.txt"], "not an image file Pillow understands in a raster format"),
    ("truncated image", ["cam", "--image", "{d}/truncated.png"], "cannot read"),
    ("missing image", ["cam", "--image", "{d}/missing.png"], "no such image"),
    ("folder as image", ["cam", "--image", "{d}/folder"], "is a folder, not an image"),
    ("empty image", ["cam", "--image", ""], "empty image name"),
    ("image name too long", ["cam", "--image", f"{{d}}/{LONG_NAME}.png"], "File name too long"),
    ("out is the image", ["cam", "--image", "{d}/photo.png", "--out", "{d}/photo.png"], "is also an input"),
    (
        "out is the image by another name",
        ["cam", "--image", "{d}/photo.png", "--out", "{d}/folder/../photo.png"],
        "is also an input",
    ),
    ("out is the bundled photo", ["cam", "--out", str(APP / "layerscope/samples/chelsea.png")], "is also an input"),
    ("npy is the image", ["cam", "--image", "{d}/photo.png", "--npy", "{d}/photo.png"], "is also an input"),
    ("out is the model", ["cam", "{d}/linear.pth", "--out", "{d}/linear.pth"], "is also an input"),
    (
        "out is the factory's source",
        ["cam", "corpus_factory:build", "--out", "{d}/corpus_factory.py"],
        "corpus_factory.py is also an input",
    ),
    # issue 31: no output inside layerscope's own package or the package a model's code came from
    (
        "out over a package module",
        ["cam", "--out", str(APP / "layerscope/naming.py")],
        "inside layerscope's own package",
    ),
    (
        "npy beside a bundled photo",
        ["cam", "--npy", str(APP / "layerscope/samples/cat_map")],
        "inside layerscope's own package",
    ),
    (
        "out into the package by ..",
        ["cam", "--out", str(APP / "layerscope/tui/../cli/__init__.py")],
        "inside layerscope's own package",
    ),
    (
        "out into the package by a symlink",
        ["sweep", "cam_models:TinyNet", "--layers", "conv", "--out", "{d}/package_link/grid.png"],
        "inside layerscope's own package",
    ),
    (
        "rank grid into the package",
        ["rank", "cam_models:TinyNet", "--out", str(APP / "layerscope/samples/r.png")],
        "inside layerscope's own package",
    ),
    (
        "out into the factory's package",
        ["cam", "corpus_pkg.nets.conv:build", "--out", "{d}/corpus_pkg/overlay.png"],
        "inside the package the model's code was read from",
    ),
    ("out equals npy", ["cam", "--out", "{d}/m.npy", "--npy", "{d}/m"], "--out and --npy both name"),
    ("out empty", ["cam", "--out", ""], "--out needs a file name"),
    ("out name too long", ["cam", "--out", f"{{d}}/{LONG_NAME}.png"], "File name too long"),
    (
        "weights of an unknown user",
        ["stats", "resnet18", "--weights", "~nosuchuser_ls/w.pth"],
        "cannot expand '~nosuchuser_ls/w.pth': no such user's home folder",
    ),
    ("npy /dev/null", ["cam", "--npy", "/dev/null"], "--npy /dev/null is not a regular file"),
    ("out a folder", ["cam", "--out", "{d}/folder"], "is a folder; give a file name"),
    ("out in a missing folder", [*TINY, "--out", "{d}/nowhere/x.png"], "cannot write"),
    ("width 100000", ["cam", "--width", "100000"], "argument --width: expected at most 1000 cells"),
    ("batch size huge", ["cam", "--batch-size", "100000"], "argument --batch-size: expected at most 1024"),
    ("alpha 7", ["cam", "--alpha", "7"], "argument --alpha: expected a number between 0 and 1"),
    ("unknown method", ["cam", "--method", "nosuchcam"], "unknown CAM method 'nosuchcam'; choose one of: gradcam"),
    ("unknown colormap", ["cam", "--colormap", "rainbow"], "argument --colormap: invalid choice"),
    ("bad grid", [*TINY, "--grid", "14by14"], "--grid expects HxW such as 14x14"),
    ("huge grid", [*TINY, "--grid", "100000x100000"], "--grid sides must be between 1 and 4096 tokens"),
    ("empty grid", [*TINY, "--grid", "0x0"], "--grid sides must be between 1 and 4096 tokens"),
    ("negative prefix tokens", [*TINY, "--prefix-tokens", "-1"], "--prefix-tokens must be 0 or more"),
    ("cam on meta", ["cam", "cam_models:TinyNet", "--device", "meta"], "CAMs need real weights"),
    ("cam missing layer", [*TINY[:2], "--layer", "nosuch"], "no layer 'nosuch'"),
    ("sweep missing layer", ["sweep", "cam_models:TinyNet", "--layers", "conv,nosuch"], "no layer 'nosuch'"),
    ("cam torchscript", ["cam", "{d}/script.pt"], "is a TorchScript archive"),
    # issue 21: work an input asks for is bounded before it is done
    (
        "20000x1 photo",
        [*TINY, "--image", "{d}/strip.png"],
        "resizing it for this model makes 5,120,000×256 = 1,310,720,000 pixels, over the 16,777,216-pixel limit",
    ),
    ("1x1000000 photo", [*TINY, "--image", "{d}/column.png"], "over the 16,777,216-pixel limit (4096×4096)"),
    ("eps photo", [*TINY, "--image", "{d}/photo.eps"], "in a raster format layerscope opens (PNG, JPEG, BMP"),
    (
        "cost batch 2000",
        ["tree", "resnet18", "--cost", "--batch", "2000", "--device", "cpu"],
        "argument --batch: expected at most 64",
    ),
    (
        "5000-digit layer index",
        ["stats", "resnet18", "--layer", f"layer4[{DIGITS}]"],
        "layer index 999999999999… has 5,000 digits; at most 18 are read",
    ),
    ("5000-digit input", ["tree", "resnet18", "--input", f"3x{DIGITS}x4"], "--input size 999999999999… has 5,000"),
    ("5000-digit class", [*TINY, "--class", DIGITS], "--class 999999999999… has 5,000 digits"),
    (
        "100,000 minus signs",
        ["stats", "resnet18", "--arg", "num_classes=" + "-" * 9000 + "1"],
        "--arg num_classes= is nested too deeply",
    ),
    (
        "--arg past its length",
        ["stats", "resnet18", "--arg", "num_classes=" + "-" * 100_000 + "1"],
        "--arg num_classes= is 100,001 characters long; at most 10,000 are read",
    ),
    ("1+1j+...", ["stats", "resnet18", "--arg", "num_classes=" + "+".join(["1j"] * 3000)], "nested too deeply"),
    (
        "round_nearest=0",
        ["stats", "mobilenet_v2", "--arg", "round_nearest=0"],
        "mobilenet_v2 failed to build with round_nearest=0: integer division or modulo by zero",
    ),
    ("sweep --layers ''", ["sweep", "cam_models:TinyNet", "--layers", ""], "--layers '' names no layer"),
    ("sweep --layers ',,,'", ["sweep", "cam_models:TinyNet", "--layers", ",,,"], "--layers ',,,' names no layer"),
    ("hf: name over 255 characters", ["tree", f"hf:{LONG_NAME}"], "is not in the local Hugging Face cache"),
]


@pytest.mark.parametrize(("argv", "words"), [pytest.param(a, w, id=i) for i, a, w in CLI_CASES])
def test_cli_bad_input_is_one_line_and_status_2(corpus, monkeypatch, capsys, argv, words):
    monkeypatch.chdir(corpus)
    monkeypatch.syspath_prepend(str(corpus))
    before, package = _snapshot(corpus), _snapshot(APP / "layerscope")
    try:
        code = main([arg.replace("{d}", str(corpus)) for arg in argv])
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 2, out
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert words in err
    assert "Traceback" not in err and "Warning" not in err
    assert _snapshot(corpus) == before and _snapshot(APP / "layerscope") == package
    assert not (corpus / "pwned").exists()


def test_an_output_hard_linked_into_the_package_is_refused(tmp_path):
    """A hard link is a second name for a file of the package: the output is refused by inode."""
    link = tmp_path / "my_overlay.png"
    try:
        os.link(APP / "layerscope/samples/coffee.png", link)
    except OSError as exc:  # another file system: no hard link can reach the package from here
        pytest.skip(f"cannot hard-link into the checkout: {exc}")
    before = link.read_bytes()
    with pytest.raises(LayerscopeError, match="is inside layerscope's own package"):
        imaging.save_png(Image.new("RGB", (2, 2)), link)
    assert link.read_bytes() == before and os.path.samefile(link, APP / "layerscope/samples/coffee.png")


def test_weights_choices_list_default_once(corpus, capsys):
    assert main(["stats", "resnet18", "--weights", "IMAGENET9K"]) == 2
    assert capsys.readouterr().err.count("DEFAULT") == 1


# Real processes: nothing hangs on a FIFO or /dev/zero, and torch's warnings stay silent.
SUBPROCESS_CASES = [
    ("fifo model", ["stats", "{d}/fifo"], "is a FIFO"),
    ("fifo image", ["cam", "--image", "{d}/fifo"], "is a FIFO"),
    ("/dev/zero weights", ["tree", *LINEAR, "--weights", "/dev/zero"], "is a character device"),
    ("torchscript", ["stats", "{d}/script.safetensors"], "is a TorchScript archive"),
    (
        "trusted script, warnings silent",
        ["stats", "{d}/clean_script.pt", "--trust", "--layer", "nosuch"],
        "no layer 'nosuch'",
    ),
]


@pytest.mark.slow  # a fresh interpreter importing torch: seconds each
@pytest.mark.parametrize(("argv", "words"), [pytest.param(a, w, id=i) for i, a, w in SUBPROCESS_CASES])
def test_cli_bad_input_in_a_real_process(corpus, argv, words):
    before = _snapshot(corpus)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(APP), str(TESTS)])}
    done = subprocess.run(
        [sys.executable, "-m", "layerscope", *[a.replace("{d}", str(corpus)) for a in argv]],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=corpus,
        env=env,
    )
    assert done.returncode == 2, done.stdout
    assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    assert _snapshot(corpus) == before


# The Python API: the same mistakes raise LayerscopeError, a ValueError.
API_CASES = [
    ("empty spec", lambda d: load_model(""), "empty model spec"),
    ("device xpu", lambda d: load_model("resnet18", device="xpu"), "'xpu' is not supported"),
    ("fifo model", lambda d: load_model(str(d / "fifo")), "is a FIFO"),
    ("torchscript", lambda d: load_model(str(d / "script.pt")), "is a TorchScript archive"),
    ("torchscript as arch", lambda d: load_model(str(d / "linear.pth"), arch=str(d / "script.pt")), "TorchScript"),
    ("export program", lambda d: load_model(str(d / "program.pt2")), "torch.export program"),
    ("damaged zip", lambda d: load_model(str(d / "badzip.pth")), "damaged zip"),
    ("bomb image", lambda d: imaging.load_image(d / "bomb.png"), "decompression bomb"),
    ("fifo image", lambda d: imaging.load_image(d / "fifo"), "is a FIFO"),
    ("unknown user image", lambda d: imaging.load_image("~nosuchuser_ls/x.png"), "no such user"),
    ("huge probe input", lambda d: parse_inputs(["3x100000x100000"]), "elements"),
    ("bad kwargs", lambda d: parse_kwargs(["vocab"]), "--arg expects key=value"),
    ("png onto /dev/null", lambda d: imaging.save_png(Image.new("RGB", (2, 2)), "/dev/null"), "not a regular file"),
    (
        "png into the package",
        lambda d: imaging.save_png(Image.new("RGB", (2, 2)), APP / "layerscope/samples/x.png"),
        "inside layerscope's own package",
    ),
    (
        "npy into the package",
        lambda d: imaging.save_npy(torch.zeros(2, 2), d / "package_link" / "m"),
        "inside layerscope's own package",
    ),
    ("npy into a missing folder", lambda d: imaging.save_npy(torch.zeros(2, 2), d / "nowhere" / "m"), "cannot write"),
]


@pytest.mark.parametrize(("call", "words"), [pytest.param(c, w, id=i) for i, c, w in API_CASES])
def test_api_bad_input_raises_layerscope_error(corpus, call, words):
    before = _snapshot(corpus)
    with pytest.raises(LayerscopeError, match=words.replace("?", r"\?")) as info:
        call(corpus)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    assert _snapshot(corpus) == before
    assert not (corpus / "pwned").exists()


# --- issue 21: Ghostscript never runs; builds and bombs stop at stated limits ---------------------


def test_an_eps_photo_never_reaches_ghostscript(corpus, tmp_path, monkeypatch, capsys):
    """Pillow reads EPS by running ``gs``; a stand-in ``gs`` first on PATH would write the marker."""
    marker = tmp_path / "gs-ran"
    fake = tmp_path / "bin" / "gs"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.syspath_prepend(str(corpus))
    assert main([*TINY, "--image", str(corpus / "photo.eps")]) == 2
    assert "raster format layerscope opens (PNG, JPEG, BMP, GIF, WEBP, TIFF, PPM)" in capsys.readouterr().err
    with pytest.raises(LayerscopeError, match="raster format"):
        imaging.load_image(corpus / "photo.eps")
    assert not marker.exists()


def test_a_build_past_the_module_limit_stops_with_a_line_saying_so(monkeypatch, capsys):
    """``--arg inverted_residual_setting=[[1,16,200000,1]]`` (1.6 million modules): stopped at the
    limit, lowered here so the test stays quick; on meta too, where the pre-check was the cost."""
    from layerscope.models import build

    monkeypatch.setattr(build, "MAX_MODULES", 2_000)
    for device in ("cpu", "meta"):
        code = main(
            ["tree", "mobilenet_v2", "--device", device, "--arg", "inverted_residual_setting=[[1,16,200000,1]]"]
        )
        err = capsys.readouterr().err
        assert (
            code == 2
            and err
            == "layerscope: error: mobilenet_v2 stopped while building: over 2,000 modules (layerscope's limit)\n"
        ), err


def test_a_config_only_llama_with_100000_layers_stops_at_the_module_limit(tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers")
    from hf_configs import LLAMA_2_70B
    from layerscope.models import build

    monkeypatch.setattr(build, "MAX_MODULES", 3_000)
    (tmp_path / "config.json").write_text(json.dumps({**LLAMA_2_70B, "num_hidden_layers": 100_000}))
    assert main(["tree", str(tmp_path)]) == 2
    assert capsys.readouterr().err.endswith("stopped while building: over 3,000 modules (layerscope's limit)\n")


def test_a_meta_build_past_the_time_limit_stops(monkeypatch):
    """The time limit, on a builder that registers few modules but initialises for ever."""
    from layerscope.models import build

    monkeypatch.setattr(build, "MAX_META_SECONDS", 0.0)
    with pytest.raises(build.BuildTooBig, match=r"over 0 s on the meta device"):
        build.build_on_device(torch.device("meta"), lambda: nn.Linear(4, 4), "slow", {})


MEMORY_CEILING = 3 * 2**30  # a bomb that got through would fail here, not fill the machine

BOMB_RUNS = [
    ("20000x1 photo", [*TINY, "--image", "{d}/strip.png"], "over the 16,777,216-pixel limit"),
    (
        "timm depth=100000",
        ["tree", "timm:vit_tiny_patch16_224", "--arg", "depth=100000"],
        "stopped while building: over 50,000 modules",
    ),
    ("cost batch 2000", ["tree", "resnet18", "--cost", "--batch", "2000", "--device", "cpu"], "at most 64"),
]


@pytest.mark.slow  # real processes at the real limits, under a memory ceiling
@pytest.mark.parametrize(("argv", "words"), [pytest.param(a, w, id=i) for i, a, w in BOMB_RUNS])
def test_bombs_end_in_one_line_under_a_memory_ceiling(corpus, argv, words):
    import resource

    def ceiling() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_CEILING, MEMORY_CEILING))  # AS: CUDA maps more

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(APP), str(TESTS), str(corpus)])}
    done = subprocess.run(
        [sys.executable, "-m", "layerscope", *[a.replace("{d}", str(corpus)) for a in argv]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=corpus,
        env=env,
        preexec_fn=ceiling,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and words in done.stderr, done.stderr[-500:]
