"""``layerscope activations``: streamed statistics equal the ones computed by hand, in constant memory."""

from __future__ import annotations

import gc
import json
import math
import weakref
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from activation_models import DeadAndNaN
from layerscope.activations import (
    ActivationsCancelled,
    ImageBatches,
    collect_activations,
    image_activations,
    image_files,
)
from layerscope.activations.histogram import GrowingHistogram
from layerscope.cli.main import main
from layerscope.errors import LayerscopeError
from layerscope.models import Preprocess, load_model

SAMPLES = Path("/work/shared/samples") if Path("/work/shared/samples").is_dir() else None


def _batches(count: int = 3, size: int = 2) -> list[torch.Tensor]:
    torch.manual_seed(1)
    return [torch.randn(size, 3, 5, 5) for _ in range(count)]


def test_a_dead_channel_and_a_nan_node_are_found():
    model = DeadAndNaN().eval()
    batches = _batches()
    report = collect_activations(model, batches)
    raw = torch.cat([model.conv(b) for b in batches]).detach()
    assert report.get("relu").dead_channels == (2,) and report.get("relu").channels == 4
    assert report.get("conv").dead_channels == (2,)  # exactly 0 on every element of every batch
    log = report.get("log")
    assert log.nonfinite == int((raw < 0).sum()) + int((raw == 0).sum()) > 0  # NaN below 0, -inf at 0
    assert log.dead_channels == ()  # -inf is not zero
    finite = torch.log(raw[raw > 0]).double()
    assert log.mean == pytest.approx(float(finite.mean()), rel=1e-12)
    assert log.std == pytest.approx(float(finite.std(correction=0)), rel=1e-12)
    assert report.get("").nonfinite == 0 and report.examples == 6


def test_statistics_streamed_over_batches_equal_one_pass_in_float64():
    model = DeadAndNaN().eval()
    batches = _batches(count=4, size=3)
    report = collect_activations(model, batches)
    relu = torch.cat([torch.relu(model.conv(b)) for b in batches]).detach().double()
    node = report.get("relu")
    assert node.elements == relu.numel() and node.calls == 4 and node.shape == (1, 4, 5, 5)
    assert node.mean == pytest.approx(float(relu.mean()), rel=1e-12)
    assert node.std == pytest.approx(float(relu.std(correction=0)), rel=1e-12)
    assert (node.min, node.max) == (0.0, float(relu.max()))
    assert node.zero_fraction == float((relu == 0).sum()) / relu.numel()
    assert sum(node.histogram.counts) == relu.numel() and len(node.histogram.edges) == len(node.histogram.counts) + 1
    assert node.histogram.edges[0] <= 0.0 and node.histogram.edges[-1] > node.max


def test_saturation_of_bounded_activations():
    model = DeadAndNaN().eval()
    batches = _batches()
    report = collect_activations(model, batches)
    scaled = torch.cat([torch.relu(model.conv(b)) * 10 for b in batches]).detach()
    clipped = scaled.clamp(max=6)
    clip = report.get("clip")
    assert (clip.saturation.low, clip.saturation.high) == (0.0, 6.0)
    assert clip.saturated_fraction == float(((clipped == 0) | (clipped == 6)).sum()) / clipped.numel()
    squash = report.get("squash")
    sigmoid = torch.sigmoid(clipped)
    assert squash.saturated_fraction == float(((sigmoid <= 0.01) | (sigmoid >= 0.99)).sum()) / sigmoid.numel()
    assert report.get("relu").saturated_fraction is None  # ReLU has one bound: zero_fraction tells it


def test_the_histogram_grows_its_range_and_keeps_every_count():
    histogram = GrowingHistogram(bins=4)
    first = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    histogram.add(first, 0.0, 3.0)
    later = torch.tensor([-5.0, 20.0], dtype=torch.float64)
    histogram.add(later, -5.0, 20.0)
    result = histogram.result()
    assert sum(result.counts) == 6
    assert result.edges[0] <= -5.0 and result.edges[-1] > 20.0
    all_values = torch.cat([first, later])
    assert (
        list(result.counts)
        == torch.histogram(all_values, torch.tensor(result.edges, dtype=torch.float64))[0].long().tolist()
    )


def test_hooks_are_removed_and_flags_restored_even_when_the_forward_fails():
    model = DeadAndNaN().train()
    with pytest.raises(LayerscopeError, match=r"forward failed on 2x7x5x5: .*expected input.*to have 3 channels"):
        collect_activations(model, [torch.randn(2, 7, 5, 5)])
    assert all(not m._forward_hooks for m in model.modules())
    assert all(m.training for m in model.modules())


def test_cancel_stops_at_the_next_module_and_removes_the_hooks():
    model = DeadAndNaN().train()
    seen: list[int] = []

    def cancel() -> bool:  # asked before each batch, then after each module: stop after the convolution
        seen.append(len(seen))
        return len(seen) > 2

    with pytest.raises(ActivationsCancelled):
        collect_activations(model, _batches(), cancel=cancel)
    assert len(seen) == 3  # batch 1, conv, then stop at the next module (log): no more forward ran
    assert all(not m._forward_hooks for m in model.modules())
    assert all(m.training for m in model.modules())


def test_meta_models_are_refused_in_one_line():
    with torch.device("meta"):
        model = nn.Linear(2, 2)
    with pytest.raises(LayerscopeError, match="activations need real weights and arithmetic"):
        collect_activations(model, [torch.zeros(1, 2, device="meta")])


def test_batches_are_dropped_as_soon_as_they_ran():
    """Streaming: a batch's tensor dies when the next is read, and the report holds nothing per example."""
    alive: list[weakref.ref] = []

    def batches():
        for _ in range(5):
            batch = torch.randn(2, 3, 5, 5)
            gc.collect()
            assert all(ref() is None for ref in alive)  # every earlier batch is gone
            alive.append(weakref.ref(batch))
            yield batch

    model = DeadAndNaN().eval()
    short = collect_activations(model, _batches(count=1))
    report = collect_activations(model, batches())
    assert report.examples == 10
    for name, node in report.nodes.items():  # fixed-size state: the same whatever the number of batches
        assert len(node.histogram.counts) <= 64 and node.channels == short.get(name).channels


def _photo_folder(tmp_path: Path, count: int) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    torch.manual_seed(2)
    for i in range(count):
        pixels = torch.randint(0, 256, (30, 40 + i, 3), dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    (folder / "notes.png").write_text("not an image")
    (folder / "readme.txt").write_text("ignored: not an image extension")
    return folder


def test_a_folder_is_read_one_batch_at_a_time(tmp_path):
    folder = _photo_folder(tmp_path, 5)
    files = image_files(folder)
    assert [f.name for f in files] == ["000.png", "001.png", "002.png", "003.png", "004.png", "notes.png"]
    batches = ImageBatches(files, Preprocess(resize=32, crop=(32, 32)), torch.device("cpu"), batch_size=2)
    previous = None
    sizes = []
    for batch in batches:
        if previous is not None:
            gc.collect()
            assert previous() is None
        sizes.append(batch.shape[0])
        previous = weakref.ref(batch)
        del batch
    assert sizes == [2, 2, 1] and [Path(p).name for p, _ in batches.skipped] == ["notes.png"]


def test_the_cli_over_a_folder_as_json(tmp_path, capsys):
    folder = _photo_folder(tmp_path, 3)
    code = main(["activations", "activation_models:DeadAndNaN", "--images", str(folder), "--batch-size", "2", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["examples"] == 3 and data["inputs"] == f"4 files in {folder}"
    assert [Path(s["file"]).name for s in data["skipped"]] == ["notes.png"]
    assert set(data) == {"model", "weights", "inputs", "examples", "skipped", "nodes"}
    relu = next(n for n in data["nodes"] if n["name"] == "relu")
    assert set(relu) == {
        "name",
        "access_expression",
        "shape",
        "calls",
        "elements",
        "mean",
        "std",
        "min",
        "max",
        "zero_fraction",
        "channel_dim",
        "channels",
        "dead_channels",
        "saturated_fraction",
        "saturation_bounds",
        "nonfinite",
        "histogram",
    }
    assert relu["access_expression"] == "model.relu" and relu["shape"] == [1, 4, 224, 224]
    assert relu["dead_channels"] == [2] and set(relu["histogram"]) == {"edges", "counts"}


def test_the_cli_with_example_inputs_and_a_layer(capsys):
    code = main(["activations", "activation_models:DeadAndNaN", "--input", "3x8x8", "--layer", "log"])
    out = capsys.readouterr().out
    assert code == 0 and "inputs  3x8x8 (1 example)" in out
    row = next(line for line in out.splitlines() if line.startswith("log "))
    assert row.split()[-1] != "0"  # the NaN count, in red on a terminal


def test_cli_mistakes_are_one_line(capsys, tmp_path):
    assert main(["activations", "resnet18", "--images", str(tmp_path)]) == 2
    assert "no image files in" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["activations", "resnet18", "--image", "a.png", "--input", "3x8x8"])
    assert stop.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert main(["activations", "resnet18", "--device", "meta", "--input", "3x8x8"]) == 2
    assert "not meta" in capsys.readouterr().err


def _hooked_by_hand(model: nn.Module, batches: list[torch.Tensor]) -> dict[str, dict]:
    """The test's own forward hooks: float64 sums of x and x², min, max, zeros, non-zero per channel."""
    seen: dict[str, dict] = {}

    def hook(name):
        def record(_module, _inputs, output):
            if not isinstance(output, torch.Tensor):
                return
            x = output.detach().double()
            s = seen.setdefault(
                name,
                {"n": 0, "sum": 0.0, "squares": 0.0, "min": math.inf, "max": -math.inf, "zeros": 0, "nonzero": None},
            )
            s["n"] += x.numel()
            s["sum"] += float(x.sum())
            s["squares"] += float((x * x).sum())
            s["min"], s["max"] = min(s["min"], float(x.min())), max(s["max"], float(x.max()))
            s["zeros"] += int((x == 0).sum())
            if x.dim() == 4 or x.dim() == 2:
                per_channel = (x != 0).transpose(0, 1).reshape(x.shape[1], -1).sum(1)
                s["nonzero"] = per_channel if s["nonzero"] is None else s["nonzero"] + per_channel

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()]
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.slow
@pytest.mark.skipif(SAMPLES is None, reason="the shared sample photos are not on this machine")
def test_mobilenet_v2_on_the_sample_photos_equals_hand_made_hooks():
    """The real ImageNet weights over the sample photos, preprocessed by torchvision's own transforms
    (layerscope's preprocessing equals them to the bit)."""
    loaded = load_model("mobilenet_v2", weights="IMAGENET1K_V1")
    files = image_files(SAMPLES)
    report = image_activations(loaded.model, loaded.preprocess, files, batch_size=1)
    import torchvision.models as tvm

    transform = tvm.MobileNet_V2_Weights.IMAGENET1K_V1.transforms()
    photos = [transform(Image.open(f).convert("RGB"))[None] for f in files]
    by_hand = _hooked_by_hand(loaded.model, photos)
    assert report.examples == len(files) == 2
    assert set(report.nodes) == set(by_hand)
    for name, mine in report.nodes.items():
        hand = by_hand[name]
        mean = hand["sum"] / hand["n"]
        std = math.sqrt(max(hand["squares"] / hand["n"] - mean * mean, 0.0))
        assert mine.elements == hand["n"], name
        assert mine.mean == pytest.approx(mean, rel=1e-9, abs=1e-12), name  # Welford vs plain float64 sums
        assert mine.std == pytest.approx(std, rel=1e-9), name
        assert (mine.min, mine.max) == (hand["min"], hand["max"]), name
        assert mine.zero_fraction == hand["zeros"] / hand["n"], name
        if hand["nonzero"] is not None:
            dead = tuple(torch.nonzero(hand["nonzero"] == 0).flatten().tolist())
            assert mine.dead_channels == dead, name
    assert report.get("features.18.2").dead_channels  # the pretrained network has dead ReLU6 channels
    assert report.get("features.18.2").saturated_fraction > 0


def test_images_reads_class_folders_as_report_does(tmp_path, capsys):
    """Issue 32: ``--images`` refused the class-folder layout that ``report`` reads; both now
    read the files ``folder_report.dataset.discover`` finds, in its order."""
    from layerscope.folder_report.dataset import discover

    root = tmp_path / "classes"
    root.mkdir()
    for label, count in (("cat", 2), ("dog", 1)):
        (tmp_path / label).mkdir()
        _photo_folder(tmp_path / label, count).rename(root / label)  # made as <label>/photos, moved to classes/<label>
    (root / ".hidden").mkdir()
    Image.new("RGB", (8, 8)).save(root / ".hidden" / "x.png")
    files = image_files(root)
    report_order = [root / f.name for f in discover(root, None).files if f.path.suffix == ".png"]
    assert files == report_order
    assert [f"{p.parent.name}/{p.name}" for p in files] == [
        "cat/000.png",
        "cat/001.png",
        "cat/notes.png",
        "dog/000.png",
        "dog/notes.png",
    ]
    assert main(["activations", "activation_models:DeadAndNaN", "--images", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["examples"] == 3 and [Path(s["file"]).parent.name for s in data["skipped"]] == ["cat", "dog"]
    assert data["inputs"] == f"5 files in {root}"  # the folder given, not its first class folder
