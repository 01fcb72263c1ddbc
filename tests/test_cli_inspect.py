"""``layerscope tree / stats / api``: real figures out, one line and status 2 for mistakes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from layerscope.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_stats_json_has_the_documented_keys(capsys):
    code, out, _ = run(capsys, "stats", "resnet18", "--layer", "model.layer4[-1]", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["qualified_name"] == "layer4.1"
    assert data["access_expression"] == "model.layer4[1]"
    assert data["access_expression_negative"] == "model.layer4[-1]"
    assert data["class"] == "BasicBlock"
    assert data["total_params"] == data["trainable_params"] == 4_720_640
    assert data["frozen_params"] == 0
    assert data["buffers"] == 6
    assert data["state_dict_entries"] == 12
    assert data["state_dict_bytes"] == 4_720_640 * 4 + 4 * 512 * 4 + 2 * 8


def test_stats_table_for_people(capsys):
    code, out, _ = run(capsys, "stats", "resnet18")
    assert code == 0
    assert "11,689,512" in out and "122" in out


def test_stats_with_shapes_on_meta(capsys):
    code, out, _ = run(capsys, "stats", "resnet50", "--device", "meta", "--layer", "layer4", "--shapes", "--json")
    data = json.loads(out)
    assert data["output_shape"] == "1×2048×7×7"
    assert data["devices"] == ["meta"]


def test_tree_folds_repeats_and_shows_shapes(capsys):
    code, out, _ = run(capsys, "tree", "resnet50", "--device", "meta", "--depth", "2", "--shapes")
    assert code == 0
    assert "25,557,032 parameters" in out
    assert "0…2  Bottleneck ×3  15.0M  → 1×2048×7×7" in out
    assert "layer1  Sequential" in out and "layer4  Sequential" in out


def test_tree_json_depth_and_repeats(capsys):
    code, out, _ = run(capsys, "tree", "resnet18", "--json", "--depth", "1")
    data = json.loads(out)
    assert data["total_params"] == 11_689_512
    assert [c["name"] for c in data["children"]][-2:] == ["avgpool", "fc"]
    layer4 = next(c for c in data["children"] if c["name"] == "layer4")
    assert layer4["total_params"] == 8_393_728
    assert layer4["repeats"] == [{"class": "BasicBlock", "count": 2, "members": ["layer4.0", "layer4.1"]}]
    assert "children" not in layer4


def test_tree_of_a_language_model_probe_with_token_input(capsys):
    code, out, _ = run(capsys, "tree", "sample_models:tied_lm", "--input", "12:long", "--json")
    data = json.loads(out)
    assert data["output_shape"] == "1×12×100"


def test_api_counts(capsys):
    code, out, _ = run(capsys, "api", "resnet18", "--layer", "layer4", "--json")
    rows = {r["method"]: r for r in json.loads(out)["methods"]}
    assert rows["modules()"]["count"] == 16
    assert rows["children()"]["count"] == 2
    assert rows["parameters()"]["count"] == 15
    assert rows["state_dict()"]["count"] == 30
    assert rows["named_children()"]["first"] == ["0: BasicBlock", "1: BasicBlock"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["stats", "resnet5"], "unknown model 'resnet5'; did you mean resnet50"),
        (["stats", "nowhere/model.pt"], "no such model file: nowhere/model.pt"),
        (["stats", "resnet18", "--layer", "layer9"], "no layer 'layer9' in ResNet; closest: layer"),
        (["tree", "resnet18", "--weights", "IMAGENET9K"], "unknown weights 'IMAGENET9K'"),
        (["tree", "regnet_y_400mf", "--device", "meta"], "cannot be built on the meta device"),
        (["tree", "resnet18", "--input", "3by224"], "--input expects sizes like 3x224x224"),
        (["api", "resnet18", "--arg", "oops"], "--arg expects key=value"),
        (["stats", "resnet18", "--arg", "num_classes=-3"], "resnet18 failed to build with num_classes=-3"),
        (["stats", "timm:no_such_net_at_all"], "unknown model 'no_such_net_at_all' (see timm.list_models())"),
    ],
)
def test_user_errors_end_with_one_line_and_status_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("layerscope: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_corrupt_file_and_misfit_state_dict(capsys, tmp_path, resnet18):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00garbage")
    code, _, err = run(capsys, "stats", str(junk))
    assert code == 2 and "not a PyTorch checkpoint" in err
    small = tmp_path / "small.pth"
    torch.save({"fc.weight": torch.zeros(10, 512)}, small)
    code, _, err = run(capsys, "stats", str(small), "--arch", "resnet18")
    assert code == 2 and "does not fit resnet18: 121 missing" in err and "1 mis-shaped (fc.weight" in err


def test_debug_shows_the_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "layerscope", "stats", "resnet5", "--debug"], capture_output=True, text=True
    )
    assert result.returncode != 0 and "Traceback" in result.stderr and "LayerscopeError" in result.stderr


def test_console_script_runs_as_a_user_would():
    result = subprocess.run(
        [sys.executable, "-m", "layerscope", "stats", "mobilenet_v3_large", "--json"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total_params"] == 5_483_032


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["api", "resnet18", "--first", "-1"], "layerscope api: error: argument --first: expected a number of at least 1"),
        (["stats"], "layerscope stats: error: the following arguments are required: MODEL"),
        (["tree", "resnet18", "--depth", "two"], "argument --depth: invalid int value: 'two'"),
    ],
)
def test_usage_mistakes_are_one_line_with_status_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    _, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert message in err and err.count("\n") == 1 and "usage:" not in err


def test_version(capsys):
    from layerscope import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"layerscope {__version__}\n"


def test_json_into_a_closed_pipe_ends_quietly():
    """``layerscope tree resnet18 --json | head -1``: the reader leaves before the output is written."""
    proc = subprocess.Popen([sys.executable, "-m", "layerscope", "tree", "resnet18", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before torch has even loaded
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""
