"""``layerscope weights``: the pretrained files on this machine, named as ``--weights`` takes them;
``--weights`` mistakes name the cached ones first; the app's ``l`` prompt completes from them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from layerscope.cli.main import main
from layerscope.errors import LayerscopeError
from layerscope.models import load_model
from layerscope.models.cached import CachedWeights, cached_weights
from layerscope.options import complete_model_line
from tui_helpers import paste, settle

MOBILENET_FILE = "mobilenet_v2-b0353104.pth"
MOBILENET_BYTES = 14_212_972


def _hf_repo(cache: Path, repo: str, files: dict[str, bytes]) -> Path:
    """A Hugging Face hub cache entry as ``huggingface_hub`` lays it out: blobs, a snapshot of links, a ref."""
    storage = cache / f"models--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (storage / "blobs").mkdir()
    for name, data in files.items():
        blob = storage / "blobs" / f"blob-{name}"
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text("0123abc")
    return storage


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """A torch hub cache holding the real mobilenet_v2 file (linked), and a Hugging Face cache with
    one timm repo and one transformers repo."""
    from huggingface_hub import constants

    real = Path(torch.hub.get_dir()) / "checkpoints" / MOBILENET_FILE
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    (home / "hub" / "checkpoints" / MOBILENET_FILE).symlink_to(real)
    (home / "hub" / "checkpoints" / "notes.txt").write_text("not a weights file")  # matched by no enum
    monkeypatch.setenv("TORCH_HOME", str(home))
    hf = tmp_path / "hf"
    timm_repo = _hf_repo(hf, "timm/resnet18.a1_in1k", {"model.safetensors": b"x" * 1000, "config.json": b"{}"})
    vit_repo = _hf_repo(hf, "acme/tiny-vit", {"model.safetensors": b"y" * 300, "config.json": b"{}"})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf))
    return home, timm_repo, vit_repo


def test_weights_lists_each_cached_file_per_model_and_weights_name_with_its_size(caches, capsys):
    home, timm_repo, vit_repo = caches
    assert main(["weights", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {
            "model": "mobilenet_v2",
            "weights": "IMAGENET1K_V1",
            "bytes": MOBILENET_BYTES,
            "path": str(home / "hub" / "checkpoints" / MOBILENET_FILE),
        },
        {"model": "hf:acme/tiny-vit", "weights": "", "bytes": 302, "path": str(vit_repo)},
        {"model": "timm:resnet18.a1_in1k", "weights": "DEFAULT", "bytes": 1002, "path": str(timm_repo)},
    ]
    assert main(["weights"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "--weights", "size", "file"]
    assert lines[1].split()[:4] == ["mobilenet_v2", "IMAGENET1K_V1", "13.6", "MiB"]
    assert lines[2].split()[:4] == ["hf:acme/tiny-vit", "—", "302", "B"]


def test_a_listed_torchvision_entry_loads_offline_as_listed(caches):
    listed = cached_weights()[0]
    loaded = load_model(listed.model, weights=listed.weights)
    assert loaded.pretrained and loaded.weights == "MobileNet_V2_Weights.IMAGENET1K_V1"


def test_empty_caches_say_what_loads_instead(tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "none"))
    monkeypatch.delenv("COLUMNS", raising=False)  # captured output is a pipe's: whole lines
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "none-either"))
    assert main(["weights"]) == 0
    assert capsys.readouterr().out == (
        "no pretrained weights in the torch hub or Hugging Face caches: "
        "models load with --weights none (random) or --weights PATH\n"
    )


def test_an_unknown_weights_name_names_the_cached_ones_first(caches):
    with pytest.raises(
        LayerscopeError,
        match=r"^unknown weights 'V9' for mobilenet_v2; cached here: IMAGENET1K_V1; "
        r"or download: DEFAULT, IMAGENET1K_V2, none$",
    ):
        load_model("mobilenet_v2", weights="V9")


CACHED = [
    CachedWeights("mobilenet_v2", "IMAGENET1K_V1", 1, Path("a")),
    CachedWeights("timm:resnet18.a1_in1k", "DEFAULT", 1, Path("b")),
    CachedWeights("hf:acme/tiny-vit", "", 1, Path("c")),
]


@pytest.mark.parametrize(
    ("typed", "completed"),
    [
        ("mobile", "mobilenet_v2 --weights IMAGENET1K_V1"),
        ("mobilenet_v2 --weights I", "mobilenet_v2 --weights IMAGENET1K_V1"),
        ("torchvision:mobilenet_v2 --weights ", "torchvision:mobilenet_v2 --weights IMAGENET1K_V1"),
        ("timm:res", "timm:resnet18.a1_in1k --weights DEFAULT"),
        ("hf:ac", "hf:acme/tiny-vit"),
        ("mobilenet_v2 --weights IMAGENET1K_V1", None),  # already whole
        ("resnet18 --weights ", None),  # nothing cached for it: nothing offered
        ("mobilenet_v2 --device cpu", None),
        ("", None),
    ],
)
def test_the_l_line_completes_models_and_weights_names_from_the_cache(typed, completed):
    assert complete_model_line(typed, CACHED) == completed


async def test_tab_in_the_l_prompt_completes_the_cached_weights(caches):
    from textual.widgets import Input

    from layerscope.tui.app import LayerscopeApp
    from layerscope.tui.screens.model_spec import ModelSpecScreen

    app = LayerscopeApp(load_model("resnet18", weights="none", device="meta"), spec="resnet18")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("l", "ctrl+u")
        await paste(pilot, "mobilenet_v2 --weights ")  # the model pasted, its weights completed
        field = app.screen.query_one(Input)
        for _ in range(50):  # the suggester reads the caches once, in a thread
            await pilot.pause(0.1)
            await pilot.press("tab")
            if field.value != "mobilenet_v2 --weights ":
                break
        assert isinstance(app.screen, ModelSpecScreen)
        assert field.value == "mobilenet_v2 --weights IMAGENET1K_V1"
