"""A real folder for ``layerscope report`` (``tests/conftest.py`` makes it, and one finished
report of it, session fixtures shared by the report tests).

The folder: the two shared photos (a cat, an espresso) with crops and flips in ImageFolder
class folders named by index (``285/``) and by name (``espresso/``), one espresso filed
under the cat (a misclassification the model really makes), and five files that cannot be
used: a tiny image, a truncated PNG, an empty file, a text file and a text file named .jpg.
The model is the real ImageNet mobilenet_v2, so predictions are real.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from PIL import Image, ImageOps

from layerscope.folder_report import FolderReport, ModelArgs, ReportRequest
from layerscope.io import imaging

SAMPLES = imaging.SAMPLES  # the shared photos, as the package ships them (a fresh clone has them)
APP = Path(__file__).parent.parent / "app"

LAYERS = "features.16,features.18"
STEPS = 3
BATCH = 2
# the command every shared report is made with (the CLI's spelling); OUTDIR and DIR are filled in
ARGV = [
    "report",
    "mobilenet_v2",
    "--weights",
    "IMAGENET1K_V1",
    "--layers",
    LAYERS,
    "--steps",
    str(STEPS),
    "--batch-size",
    str(BATCH),
    "--workers",
    "0",
    "--sanity-images",
    "1",
]

IMAGES = {  # name: (label, what mobilenet_v2 predicts)
    "285/chelsea.png": (285, 285),
    "285/chelsea_crop.png": (285, 285),
    "285/chelsea_flip.png": (285, 285),
    "285/coffee_misfiled.png": (285, 967),
    "espresso/coffee.png": (967, 967),
    "espresso/coffee_crop.png": (967, 967),
    "espresso/coffee_flip.png": (967, 967),
}
SKIPPED = {
    "285/tiny.png": "too small",
    "285/truncated.png": "truncated",
    "espresso/empty.jpg": "empty",
    "espresso/fake.jpg": "not an image",
    "espresso/notes.txt": "not an image",
}


def make_folder(root: Path) -> Path:
    """The folder described above, under ``root/images``."""
    images = root / "images"
    (images / "285").mkdir(parents=True)
    (images / "espresso").mkdir()
    cat = Image.open(SAMPLES / "chelsea.png").convert("RGB")
    coffee = Image.open(SAMPLES / "coffee.png").convert("RGB")
    cat.save(images / "285/chelsea.png")
    cat.crop((60, 20, 420, 290)).save(images / "285/chelsea_crop.png")
    ImageOps.mirror(cat).save(images / "285/chelsea_flip.png")
    coffee.save(images / "285/coffee_misfiled.png")
    coffee.save(images / "espresso/coffee.png")
    coffee.crop((80, 40, 520, 400)).save(images / "espresso/coffee_crop.png")
    ImageOps.mirror(coffee).save(images / "espresso/coffee_flip.png")
    Image.new("RGB", (9, 7), "red").save(images / "285/tiny.png")
    whole = (images / "285/chelsea.png").read_bytes()
    (images / "285/truncated.png").write_bytes(whole[: len(whole) // 3])
    (images / "espresso/empty.jpg").write_bytes(b"")
    (images / "espresso/fake.jpg").write_text("this is not a JPEG\n")
    (images / "espresso/notes.txt").write_text("notes about the espressos\n")
    (images / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: not a candidate at all
    return images


def request(images: Path, out: Path, **changes) -> ReportRequest:
    """The Python spelling of ``ARGV``."""
    fields = dict(
        images=images,
        out=out,
        model=ModelArgs("mobilenet_v2", weights="IMAGENET1K_V1"),
        layers=LAYERS,
        steps=STEPS,
        batch_size=BATCH,
        workers=0,
        sanity_images=1,
    )
    return ReportRequest(**{**fields, **changes})


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def subprocess_env() -> dict[str, str]:
    """A child ``python -m layerscope`` that imports this checkout (torch on one thread: conftest)."""
    return {**os.environ, "PYTHONPATH": str(APP), "PYTHONUNBUFFERED": "1"}


def layerscope_command(*argv: str) -> list[str]:
    """``python -c`` running ``layerscope ARGV`` and then saying whether Ray was ever imported
    (the local engine must not import it), even after Ctrl-C: the command returns 130 then."""
    code = (
        "import sys; from layerscope.cli.main import main; status = main(sys.argv[1:]); "
        "print('ray imported' if any(m == 'ray' or m.startswith('ray.') for m in sys.modules) else 'no ray'); "
        "sys.exit(status)"
    )
    return [sys.executable, "-c", code, *argv]
