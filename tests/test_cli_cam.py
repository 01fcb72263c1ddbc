"""``layerscope cam`` / ``sweep`` end to end, and one clear line with exit status 2 for every bad input."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from layerscope.cli.main import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_default_cam_explains_the_cat(capsys, tmp_path):
    png, npy = tmp_path / "cam.png", tmp_path / "cam.npy"
    code, out, err = _run(capsys, "cam", "--out", str(png), "--npy", str(npy), "--ascii", "--width", "40")
    assert code == 0, err
    assert "Egyptian cat" in out and "0.717" in out
    assert "layer   features.18 (model.features[-1]): 1280×7×7" in out
    assert Image.open(png).size == (451, 300)
    heat = np.load(npy)
    assert heat.shape == (300, 451) and 0 <= heat.min() and heat.max() == pytest.approx(1.0, abs=1e-3)
    ramp_lines = [line for line in out.splitlines() if line.strip() and set(line) <= set(" .:-=+*#%@")]
    assert len(ramp_lines) >= 10 and any("@" in line for line in ramp_lines)


@pytest.mark.slow
def test_side_by_side_png_and_class_by_name(capsys, tmp_path):
    png = tmp_path / "sbs.png"
    image = str(tmp_path / "cup.png")
    Image.open("app/layerscope/samples/coffee.png").save(image)
    code, out, err = _run(
        capsys,
        "cam",
        "--image",
        image,
        "--class",
        "espresso",
        "--method",
        "layercam",
        "--side-by-side",
        "--out",
        str(png),
        "--colormap",
        "turbo",
    )
    assert code == 0, err
    assert "target  967 espresso" in out and "method  layercam" in out
    assert Image.open(png).size == (1800, 400)


def test_scorecam_on_a_factory_model_draws_its_map(capsys):
    code, out, err = _run(
        capsys,
        "cam",
        "cam_models:TinyNet",
        "--method",
        "scorecam",
        "--layer",
        "conv",
        "--class",
        "1",
        "--ascii",
        "--width",
        "30",
    )
    assert code == 0, err
    assert "method  scorecam" in out and "layer   conv (model.conv): 4×224×224" in out and "all zero" not in out
    ramp = [line for line in out.splitlines() if line.strip() and set(line) <= set(" .:-=+*#%@")]
    assert len(ramp) == 10 and any("*" in line for line in ramp)  # 30 cells wide: 10 rows for 451×300


def test_a_flat_map_says_so_and_draws_nothing(capsys):
    code, out, err = _run(capsys, "cam", "cam_models:DeadNet", "--layer", "conv", "--ascii", "--width", "30")
    assert code == 0, err
    assert (
        "the gradcam map at conv is all zero: nothing in this layer raises the target score (common with "
        "random weights); try another layer, method or --class"
    ) in " ".join(out.split())
    assert not [line for line in out.splitlines() if line.strip() and set(line) <= set(" .:-=+*#%@")]


@pytest.mark.slow
def test_sweep_writes_one_labelled_tile_per_block(capsys, tmp_path):
    png = tmp_path / "grid.png"
    code, out, err = _run(capsys, "sweep", "resnet18", "--out", str(png))
    assert code == 0, err
    swept = [line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("layer ")]
    assert swept == ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1"]
    assert Image.open(png).size == (3 * 256, 3 * (round(300 * 256 / 451) + 18))


def test_auto_sweep_on_a_vit_takes_every_block_s_norm1_and_nothing_else(capsys):
    code, out, err = _run(capsys, "sweep", "timm:vit_tiny_patch16_224", "--weights", "none", "--method", "eigencam")
    assert code == 0, err
    swept = [line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("layer ")]
    assert swept == [f"blocks.{i}.norm1" for i in range(12)]


def test_sweep_with_named_layers(capsys, tmp_path):
    code, out, err = _run(capsys, "sweep", "cam_models:TinyNet", "--layers", "conv,relu", "--method", "eigencam")
    assert code == 0, err
    assert "layer   conv: 4×224×224" in out and "layer   relu: 4×224×224" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--image", "README-missing.png"], "no such image: README-missing.png"),
        (["--image", "pyproject.toml"], "not an image file"),
        (["--layer", "convv"], "no layer 'convv' in TinyNet; closest: conv"),
        (["--layer", "fc"], "layer 'fc' has no spatial output"),
        (["--class", "7"], "class index 7 is out of range: the model has 3 classes (0–2)"),
        (["--class", "tabby"], "class name 'tabby' given, but these weights have no class names"),
        (["--method", "gradcam4"], "unknown CAM method 'gradcam4'"),
        (["--grid", "14by14"], "--grid expects HxW"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(capsys, argv, message):
    code, out, err = _run(capsys, "cam", "cam_models:TinyNet", "--layer", "conv", *argv)
    assert code == 2
    assert err.startswith("layerscope: error: ") and message in err and err.count("\n") == 1


def test_unknown_class_name_and_non_tensor_output(capsys):
    code, _, err = _run(capsys, "cam", "mobilenet_v2", "--class", "egyptian kat", "--layer", "features[-1]")
    assert code == 2 and "unknown class name 'egyptian kat'; closest: Egyptian cat" in err
    code, _, err = _run(capsys, "cam", "cam_models:DictNet", "--layer", "conv")
    assert code == 2 and "returns a dict, not a tensor of class scores" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--alpha", "7"], "argument --alpha: expected a number between 0 and 1, got 7.0"),
        (["--width", "0"], "argument --width: expected a number of at least 1, got 0"),
        (["--batch-size", "-2"], "argument --batch-size: expected a number of at least 1, got -2"),
        (
            ["--precision", "fp16"],
            "argument --precision: invalid choice: 'fp16' (choose from 'auto', 'float32', 'bfloat16')",
        ),
    ],
)
def test_bad_options_are_refused_before_any_work(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["cam", "cam_models:TinyNet", *argv])
    _, err = capsys.readouterr()
    assert exit_info.value.code == 2 and message in err and err.count("\n") == 1


def test_npy_gets_its_suffix_and_the_printed_name_is_the_real_one(capsys, tmp_path):
    folder = tmp_path / ("a-long-folder-name-so-the-line-passes-eighty-columns" * 2) / "[x]"
    folder.mkdir(parents=True)
    code, out, err = _run(capsys, "cam", "cam_models:TinyNet", "--layer", "conv", "--npy", str(folder / "heat"))
    assert code == 0, err
    assert (folder / "heat.npy").exists() and f"wrote   {folder / 'heat.npy'}\n" in out  # one line, as written


def test_class_on_a_detector_targets_the_best_box_of_that_class(capsys):
    argv = ["cam", "fasterrcnn_mobilenet_v3_large_320_fpn", "--image", "app/layerscope/samples/coffee.png"]
    code, out, err = _run(capsys, *argv, "--class", "cup", "--ascii", "--width", "20")
    assert code == 0, err
    assert "target  detected box #0 (label 47)" in out  # COCO's "cup"
    code, _, err = _run(capsys, *argv, "--class", "cupp")
    assert code == 2 and "unknown class name 'cupp'; closest: cup" in err
    code, _, err = _run(capsys, *argv, "--class", "500")
    assert code == 2 and "class index 500 is out of range: the model has 91 classes" in err


def test_random_weights_are_flagged_before_the_map(capsys):
    code, out, err = _run(capsys, "cam", "cam_models:TinyNet", "--layer", "conv", "--ascii")
    assert code == 0, err
    assert out.splitlines()[1].startswith("⚠ random weights: this map shows nothing learned")


def test_eigencam_claims_no_class(capsys):
    code, out, err = _run(
        capsys, "cam", "cam_models:TinyNet", "--method", "eigencam", "--layer", "conv", "--ascii", "--width", "20"
    )
    assert code == 0, err
    assert "target  none: eigencam uses no class (the map is the same for every class)" in out
    assert "top-5 predictions (by logit)" in out


def test_a_detectors_target_box_is_listed_with_the_scores_and_drawn(capsys, tmp_path):
    png = tmp_path / "boxed.png"
    code, out, err = _run(
        capsys,
        "cam",
        "fasterrcnn_mobilenet_v3_large_320_fpn",
        "--arg",
        "box_score_thresh=0.0",
        "--image",
        "app/layerscope/samples/coffee.png",
        "--out",
        str(png),
    )
    assert code == 0, err
    rows = [line.split("│")[1:-1] for line in out.splitlines() if line.startswith("│")]
    assert len(rows) >= 5 and all(0 <= float(r[2]) <= 1 for r in rows)
    [target] = [r for r in rows if "◎ target (boxed)" in r[4]]
    x1, y1, x2, y2 = (int(v) for v in target[3].split(","))
    picture = np.asarray(Image.open(png))
    assert picture.shape == (400, 600, 3)
    edge = picture[y1 + 1, x1 + 3 : x2 - 3]  # inside the 4-pixel outline's top side
    assert (edge == (255, 0, 255)).all()


def _escapes(text: str, start: str, end: str) -> list[str]:
    return re.findall(re.escape(start) + r"(.*?)" + re.escape(end), text, flags=re.S)


def test_preview_kitty_sends_the_overlay_as_a_png_of_the_photos_size(capsys):
    code, out, err = _run(capsys, "cam", "--preview", "kitty", "--width", "40")
    assert code == 0, err
    messages = _escapes(out, "\x1b_G", "\x1b\\")
    keys, payload = messages[0].split(";", 1)
    assert keys == "a=T,f=100,c=40,r=13,q=2,m=1" and all(m.startswith("m=") for m in messages[1:])
    assert messages[-1].startswith("m=0;") and all(len(m.split(";", 1)[1]) <= 4096 for m in messages)
    data = base64.b64decode(payload + "".join(m.split(";", 1)[1] for m in messages[1:]))
    picture = Image.open(io.BytesIO(data))
    assert picture.format == "PNG" and picture.size == (451, 300)  # the photo's own resolution
    assert "▀" not in out


def test_preview_sixel_draws_over_the_cells_it_reserves(capsys):
    code, out, err = _run(capsys, "cam", "--preview", "sixel", "--width", "40")
    assert code == 0, err
    [sixel] = _escapes(out, "\x1bP", "\x1b\\")
    # raster attributes: 1:1 pixels, 40 cells of 10 px by 13 rows of 20 px (textual-image's sizes
    # for a terminal that does not say, as here)
    assert sixel.startswith('0;0;0q"1;1;400;260')


def test_preview_auto_falls_back_to_cells_when_nothing_answers(capsys):
    from rich.console import Console

    from layerscope.presentation.pixels import preview_mode, terminal_graphics

    assert terminal_graphics() is None  # pytest's stdin is no terminal: nothing is even asked
    assert preview_mode("auto", Console(force_terminal=True, color_system="truecolor")) == "halfblock"
    assert preview_mode("auto", Console(force_terminal=True, color_system="standard")) == "ascii"
    code, out, err = _run(capsys, "cam", "--preview", "halfblock", "--width", "20")
    assert code == 0 and out.count("▀") == 20 * 7  # forced: half blocks even into a pipe
    code, out, err = _run(capsys, "cam", "--preview", "--width", "20")
    assert code == 0 and "▀" not in out and "%%%" in out  # auto into a pipe: the ASCII ramp


def test_rollout_conventions_from_the_command_line_are_the_engines(capsys, tmp_path):
    """``--head-fusion max --discard-ratio 0.5`` gives the map ``RolloutOptions(max, 0.5)`` gives."""
    import torch

    from attention_models import tiny_vit
    from layerscope.cam import PhotoExplainer
    from layerscope.cam.attention import RolloutOptions
    from layerscope.io.imaging import SAMPLES
    from layerscope.models import load_model

    npy = tmp_path / "rollout.npy"
    code, out, err = _run(
        capsys,
        "cam",
        "attention_models:tiny_vit",
        "--method",
        "rollout",
        "--layer",
        "blocks.2",
        "--head-fusion",
        "max",
        "--discard-ratio",
        "0.5",
        "--npy",
        str(npy),
    )
    assert code == 0, err
    assert "method  rollout (heads fused by max, 50% smallest discarded)\n" in out
    explainer = PhotoExplainer(load_model("attention_models:tiny_vit"), SAMPLES / "chelsea.png")
    [expected] = explainer.maps(["blocks.2"], "rollout", rollout=RolloutOptions("max", 0.5))
    [default] = explainer.maps(["blocks.2"], "rollout")
    assert np.allclose(np.load(npy), explainer.on_photo(expected).numpy(), atol=1e-6)
    assert not torch.allclose(expected.raw, default.raw)  # the options reach the map
    assert isinstance(tiny_vit(), torch.nn.Module)
    code, _, err = _run(capsys, "cam", "attention_models:tiny_vit", "--method", "rollout", "--discard-ratio", "1")
    assert code == 2 and err.strip().endswith("discard ratio must be in [0, 1), got 1.0")
