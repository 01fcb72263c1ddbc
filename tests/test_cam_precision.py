"""Score-CAM's masked forwards in float32 or bfloat16: float32 unchanged, bfloat16 close to it on a
real model, "auto" following its rule with one precision per map, and the choice on show."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from cam_models import TinyNet, tiny_input
from layerscope.cam import CamResult, compute_cam, perturb, precision
from layerscope.cam.precision import (
    MIN_FLOPS,
    MIN_MASKS,
    check_precision,
    choose_precision,
    considered,
    fast_bfloat16,
    flops_per_copy,
)
from layerscope.cli.main import main
from layerscope.errors import LayerscopeError
from layerscope.io import imaging
from layerscope.models import load_model
from layerscope.tui.camlink import CamView
from layerscope.tui.camtext import map_line

TARGET = 1


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    u, v = (m.flatten().double() for m in (a, b))
    u, v = u - u.mean(), v - v.mean()
    return float((u @ v) / (u.norm() * v.norm()))


def test_float32_is_the_plain_path_and_auto_runs_it_for_a_small_run():
    model, x = TinyNet(channels=40, inplace=False), tiny_input()
    rows: list[int] = []
    model.register_forward_pre_hook(lambda _m, args: rows.append(args[0].shape[0]))
    plain = compute_cam(model, x, "conv", "scorecam", TARGET, batch_size=8, precision="float32")
    auto = compute_cam(model, x, "conv", "scorecam", TARGET, batch_size=8)
    assert (plain.precision, auto.precision) == ("float32", "float32")  # 40 masks < MIN_MASKS: nothing measured
    assert torch.equal(plain.raw, auto.raw) and rows == [1, 8, 8, 8, 8, 8] * 2
    ablation = compute_cam(model, x, "conv", "ablationcam", TARGET, precision="bfloat16")
    assert ablation.precision == "float32"  # only Score-CAM's scores change precision


@pytest.mark.slow
def test_bfloat16_scores_keep_a_real_models_map():
    loaded = load_model("mobilenet_v2", weights="IMAGENET1K_V1")
    x, _ = imaging.preprocess(imaging.load_image(imaging.SAMPLES / "chelsea.png"), loaded.preprocess)
    x = torch.nn.functional.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False)
    maps = {
        p: compute_cam(loaded.model, x, "features.4", "scorecam", 285, batch_size=8, precision=p)
        for p in ("float32", "bfloat16")
    }
    assert maps["bfloat16"].precision == "bfloat16" and maps["float32"].precision == "float32"
    assert not torch.equal(maps["float32"].raw, maps["bfloat16"].raw)  # bfloat16 did run
    assert pearson(maps["float32"].heatmap, maps["bfloat16"].heatmap) >= 0.99  # 0.9970 measured (32 channels)


def test_auto_counts_a_copys_arithmetic_and_scores_every_mask_in_the_one_it_chose(monkeypatch):
    model, x = TinyNet(channels=MIN_MASKS, inplace=False), tiny_input(size=4)
    assert flops_per_copy(model, x) == 2 * 3 * MIN_MASKS * 9 * 16 + 2 * MIN_MASKS * 3  # conv 3×3 at 4×4, then fc
    plain, bf16 = (
        compute_cam(model, x, "conv", "scorecam", TARGET, batch_size=64, precision=p) for p in ("float32", "bfloat16")
    )
    monkeypatch.setattr(perturb, "considered", lambda device, masks: masks >= MIN_MASKS)  # any CPU
    for least, expected in ((MIN_FLOPS, plain), (0, bf16)):  # a tiny copy; then any copy counts as heavy
        monkeypatch.setattr(precision, "MIN_FLOPS", least)
        got = compute_cam(model, x, "conv", "scorecam", TARGET, batch_size=64)
        assert got.precision == expected.precision and torch.equal(got.raw, expected.raw)


def test_the_rule_auto_follows():
    assert choose_precision(8.18e9) == "bfloat16"  # resnet50 at 224×224: 2.7× cheaper per copy on AMX
    assert choose_precision(0.60e9) == "float32"  # mobilenet_v2: 1.2–1.6×, not worth a different map
    assert choose_precision(MIN_FLOPS) == "bfloat16" and choose_precision(MIN_FLOPS - 1) == "float32"
    assert not considered(torch.device("cpu"), MIN_MASKS - 1)
    assert considered(torch.device("cpu"), MIN_MASKS) == fast_bfloat16(torch.device("cpu"))
    assert not considered(torch.device("meta"), 10_000) and not fast_bfloat16(torch.device("cuda"))


def test_a_bad_precision_is_one_line():
    with pytest.raises(LayerscopeError, match=r"^unknown precision 'fp16'; use one of: auto, float32, bfloat16$"):
        check_precision("fp16")
    with pytest.raises(LayerscopeError, match="unknown precision 'float16'"):
        compute_cam(TinyNet(), tiny_input(), "conv", "gradcam", TARGET, precision="float16")


def test_the_map_line_says_bfloat16_scores_and_float32_says_nothing():
    result = CamResult(
        heatmap=torch.zeros(4, 4),
        raw=torch.zeros(2, 2),
        target=285,
        target_name="Egyptian cat",
        scores=None,
        layer="features.18",
        method="scorecam",
        precision="bfloat16",
    )
    view = CamView(
        result=result,
        image=Image.new("RGB", (4, 4)),
        photo=Path("chelsea.png"),
        heat=torch.zeros(4, 4),
        mask=torch.ones(4, 4),
        top5=(),
        reused=False,
        class_blind=False,
    )
    assert map_line(view).plain == "map scorecam at features.18 for 285 Egyptian cat · bfloat16 scores"
    narrow = map_line(view, width=46).plain
    assert narrow.endswith(" · bfloat16 scores") and len(narrow) <= 46  # the class name shortens first
    assert (
        map_line(replace(view, result=replace(result, precision="float32"))).plain
        == "map scorecam at features.18 for 285 Egyptian cat"
    )


def test_the_cli_says_which_precision_scored_the_map(capsys):
    argv = ["cam_models:TinyNet", "--method", "scorecam", "--ascii", "--width", "16"]
    assert main(["cam", *argv, "--layer", "conv", "--precision", "bfloat16"]) == 0
    assert "method  scorecam (bfloat16 scores)\n" in capsys.readouterr().out
    assert main(["sweep", *argv, "--layers", "conv,relu", "--precision", "bfloat16"]) == 0
    assert "scores  bfloat16 (the masked forwards; --precision float32 for float32)\n" in capsys.readouterr().out
    assert main(["cam", *argv, "--layer", "conv"]) == 0
    out = capsys.readouterr().out
    assert "method  scorecam\n" in out and "bfloat16" not in out  # auto: 4 masks, float32


@pytest.mark.parametrize("asked", ["float32", "bfloat16"])
def test_the_sanity_check_scores_in_the_precision_the_maps_ran(monkeypatch, asked):
    """rank's randomised copy runs Score-CAM in the precision of the maps it is compared with
    (not ``auto`` again), so rho measures the randomisation, not a change of arithmetic."""
    from layerscope.cam.ranking import rank_maps

    model, x = TinyNet(channels=12, inplace=False), tiny_input()
    [result] = [compute_cam(model, x, "conv", "scorecam", TARGET, precision=asked)]
    assert result.precision == asked
    ran: list[str] = []
    chosen = perturb.ModelPerturber._chosen_precision

    def recorded(self, *args):
        ran.append(chosen(self, *args))
        return ran[-1]

    monkeypatch.setattr(perturb.ModelPerturber, "_chosen_precision", recorded)
    ranking = rank_maps(model, x, [result], target=TARGET, steps=4, sanity=True)
    assert ran == [asked] and ranking.layers[0].rho is not None
