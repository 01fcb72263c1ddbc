"""``layerscope tree / stats / api``: real figures out, one line and status 2 for mistakes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from layerscope.cli.main import main
from layerscope.models import load_model


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
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in out.splitlines() if "  " in line.strip())
    assert rows["total params"] == "11,689,512" and rows["trainable params"] == "11,689,512"
    assert rows["state dict entries"] == "122" and rows["param tensors"] == "62" and rows["buffers"] == "60"


def test_stats_with_shapes_on_meta(capsys):
    code, out, _ = run(capsys, "stats", "resnet50", "--device", "meta", "--layer", "layer4", "--shapes", "--json")
    data = json.loads(out)
    assert data["output_shape"] == "1×2048×7×7"
    assert data["devices"] == ["meta"]


def test_tree_folds_repeats_and_shows_shapes(capsys):
    code, out, _ = run(capsys, "tree", "resnet50", "--device", "meta", "--depth", "2", "--shapes")
    assert code == 0
    assert "25,557,032 parameters" in out
    assert "│   ├── 0  Bottleneck  6.0M  → 1×2048×7×7" in out  # the downsampling block: figures of its own
    assert "│   └── 1…2  Bottleneck ×2  8.9M  → 1×2048×7×7" in out
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
        (["tree", "sample_models:reads_its_weights", "--device", "meta"], "cannot be built on the meta device"),
        (["tree", "resnet18", "--input", "3by224"], "--input expects SHAPE[:dtype] or NAME=SHAPE[:dtype]"),
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


@pytest.mark.slow  # a fresh interpreter importing torch: seconds each
def test_debug_shows_the_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "layerscope", "stats", "resnet5", "--debug"], capture_output=True, text=True
    )
    assert (
        result.returncode != 0 and "Traceback" in result.stderr and "layerscope.errors.NotFoundError" in result.stderr
    )


@pytest.mark.slow  # a fresh interpreter importing torch: seconds each
def test_console_script_runs_as_a_user_would():
    result = subprocess.run(
        [sys.executable, "-m", "layerscope", "stats", "mobilenet_v3_large", "--json"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total_params"] == 5_483_032


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["api", "resnet18", "--first", "-1"],
            "layerscope api: error: argument --first: expected a number of at least 1",
        ),
        (["stats", "resnet18", "--batch", "0"], "layerscope stats: error: argument --batch"),
        (["tree", "resnet18", "--depth", "two"], "argument --depth: expected a whole number, got 'two'"),
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


@pytest.mark.slow  # a fresh interpreter importing torch: seconds each
def test_json_into_a_closed_pipe_ends_quietly():
    """``layerscope tree resnet18 --json | head -1``: the reader leaves before the output is written."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "layerscope", "tree", "resnet18", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before torch has even loaded
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


@pytest.mark.slow  # a fresh interpreter importing torch: seconds each
@pytest.mark.parametrize(
    "argv",
    [["tree", "resnet18"], ["stats", "resnet18", "--json"]],
    ids=["tree text", "stats json (shorter than one buffer)"],
)
def test_a_reader_that_leaves_early_ends_every_output_with_141(argv):
    """``layerscope tree resnet18 | head -1``: text and --json alike, status 141 and nothing on
    stderr. stdout is block-buffered as in a user's shell (PYTHONUNBUFFERED unset): what is
    still buffered when the reader has gone needs ``reader_went_away``'s dup2 onto devnull,
    else the interpreter's last flush fails (status 120, "Exception ignored")."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "layerscope", *argv, "--weights", "none"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert (proc.wait(timeout=120), err) == (141, "")


def test_stats_and_the_stats_tab_print_bytes_alike(capsys):
    from layerscope.tui.widgets.stats import stats_table as tab_table

    code, out, _ = run(capsys, "stats", "sample_models:tied_lm")
    assert code == 0
    assert "state dict bytes         14,016 B (13.7 KiB)" in out  # the head's tied matrix listed twice
    assert "state dict unique bytes  7,616 B (7.4 KiB)" in out  # what torch.save writes: once
    from rich.console import Console

    from layerscope.tree import build_tree
    from layerscope.tree.nodestats import node_stats
    from sample_models import TiedLM

    tree = build_tree(TiedLM())
    console = Console(width=100, record=True)
    console.print(tab_table(node_stats(tree, tree.root), None))
    tab = console.export_text()
    assert "state_dict bytes    14,016 B (13.7 KiB)" in tab and "saved (unique)      7,616 B (7.4 KiB)" in tab


def test_a_saved_file_costs_the_unique_bytes(tmp_path):
    from layerscope.tree import build_tree
    from sample_models import TiedLM

    model = TiedLM()
    path = tmp_path / "tied.pt"
    torch.save(model.state_dict(), path)
    unique = build_tree(model).root.state_dict_unique_bytes
    assert unique == (100 * 16 + 16 * 16 + 16 + 2 * 16) * 4
    assert unique < path.stat().st_size < unique + 4096  # the zip archive's own few kilobytes


def test_tree_never_drops_a_line_at_80_columns(capsys, monkeypatch):
    from rich.cells import cell_len

    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "tree", "sample_models:deep_chain", "--no-fold")
    lines = out.splitlines()
    nodes = lines[next(i for i, line in enumerate(lines) if line.startswith("model  Sequential")) :]
    assert code == 0 and len(nodes) == 241 == 1 + 2 * 120  # every module, none dropped
    assert max(cell_len(line) for line in lines) <= 80
    deepest = next(line for line in nodes if "Linear" in line)
    assert deepest.startswith("…") and deepest.endswith("├── 0  Linear  6")  # deep guides cut, the label kept


def test_tree_cuts_a_long_line_with_an_ellipsis():
    from layerscope.cli.inspect_cmd import tree_lines
    from layerscope.tree import build_tree

    tree = build_tree(load_model("timm:vit_small_patch16_224", device="meta").model)
    lines = [line.plain for line in tree_lines(tree, None, None, fold=True, width=30)]
    assert len(lines) == len(list(tree_lines(tree, None, None, fold=True, width=200)))
    assert max(len(line) for line in lines) == 30 and any(line.endswith("…") for line in lines)


def test_a_folded_run_shows_its_shape_change(capsys):
    code, out, _ = run(capsys, "tree", "sample_models:strided", "--input", "4x32x32")
    assert code == 0
    assert "└── 0…2  Conv2d ×3  444  → 1×4×16×16 ⋯ 1×4×4×4" in out
    assert "model  Sequential  444  → 1×4×4×4" in out


def test_tree_json_marks_a_module_registered_twice(capsys):
    code, out, _ = run(capsys, "tree", "sample_models:relu_twice", "--json")
    features = json.loads(out)["children"][0]
    last = features["children"][-1]
    assert code == 0 and last["name"] == "features.3" and last["same_module_as"] == "features.1"
    assert (last["access_expression"], last["access_expression_negative"]) == (
        "model.features[3]",
        "model.features[-1]",
    )


def test_stats_cost_json_on_meta_by_default(capsys):
    code, out, _ = run(capsys, "stats", "resnet50", "--cost", "--json")
    data = json.loads(out)
    assert code == 0 and data["devices"] == ["meta"]  # cost alone needs no weights and no arithmetic
    assert data["macs"] == 4_089_184_256 and data["flops"] == 2 * 4_089_184_256
    assert data["param_bytes"] == 25_557_032 * 4
    memory = data["memory"]
    assert memory["inference_bytes"] == 25_557_032 * 4 + data["buffer_bytes"] + data["activation_peak_bytes"]
    indices = 64 * 56 * 56 * 8  # the max-pool's int64 indices keep their size in bfloat16 training
    activations_bf16 = (data["activation_bytes"] - indices) // 2 + indices
    assert memory["training_bytes"] == 25_557_032 * 16 + data["buffer_bytes"] + activations_bf16
    assert set(memory["formula"]) == {"inference", "training"}


def test_stats_cost_batch_and_dtype_change_the_figures(capsys):
    _, out, _ = run(
        capsys, "stats", "resnet50", "--cost", "--json", "--layer", "layer4", "--batch", "4", "--dtype", "float16"
    )
    data = json.loads(out)
    assert data["macs"] == 4 * 809_238_528
    assert data["memory"]["dtype"] == data["memory"]["training_dtype"] == "float16"
    assert data["memory"]["inference_bytes"] == 14_964_736 * 2 + data["buffer_bytes"] + data["activation_peak_bytes"]


def test_tree_cost_column_in_human_units_with_share(capsys):
    code, out, _ = run(capsys, "tree", "resnet50", "--cost", "--depth", "2")
    assert code == 0
    assert "4.1 GMACs (8.2 GFLOPs) per batch of 1 at 3x224x224\nmemory: inference 108.2 MiB (float32)" in out
    assert "model  ResNet  25.6M  4.1 GMACs 100.0%" in out
    assert "conv1  Conv2d  9.4K  118.0 MMACs 2.9%" in out
    assert "├── layer4  Sequential  15.0M  809.2 MMACs 19.8%" in out
    assert (
        "│   ├── 0  Bottleneck  6.0M  372.5 MMACs 9.1%" in out and "1…2  Bottleneck ×2  8.9M  436.7 MMACs 10.7%" in out
    )


def test_tree_cost_json_sums_a_module_list(capsys):
    _, out, _ = run(capsys, "tree", "sample_models:tied_lm", "--input", "12:long", "--cost", "--json")
    data = json.loads(out)
    head = next(c for c in data["children"] if c["name"] == "head")
    assert head["macs"] == 12 * 16 * 100 and data["macs"] == 12 * 16 * 100 + 12 * 16 * 16
    assert head["share"] == pytest.approx(100 / 116)


def test_bad_dtype_is_a_usage_error(capsys):
    code, _, err = run_exit(capsys, "stats", "resnet18", "--cost", "--dtype", "fp7")
    assert code == 2 and err.count("\n") == 1 and "--dtype" in err


def run_exit(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    out, err = capsys.readouterr()
    return stop.value.code, out, err


def test_cost_of_a_model_meta_cannot_run_says_what_to_do(capsys):
    code, _, err = run(capsys, "stats", "fasterrcnn_resnet50_fpn", "--cost")
    assert code == 2 and err.count("\n") == 1
    assert "shape probe failed" in err and "--device cpu counts it with real arithmetic" in err


def _piped(argv: list[str], columns: int) -> str:
    """``argv``'s stdout through a pipe, started from a terminal ``columns`` wide (stdin is one, as
    in a user's shell, and Rich reads the width from it); no COLUMNS in the environment."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "layerscope", *argv, "--weights", "none"],
            stdin=follower,
            capture_output=True,
            env=env,
            text=True,
            timeout=120,
        )
    finally:
        os.close(leader)
        os.close(follower)
    assert (done.returncode, done.stderr) == (0, "")
    return done.stdout


@pytest.mark.slow  # two fresh interpreters importing torch: seconds each
@pytest.mark.parametrize("argv", [["tree", "resnet18", "--depth", "1"], ["stats", "resnet18"]])
def test_piped_text_is_neither_wrapped_nor_padded_at_any_terminal_width(argv):
    """``layerscope tree … | head``: the same whole lines from a 40- or a 200-column terminal."""
    narrow, wide = _piped(argv, 40), _piped(argv, 200)
    assert narrow == wide
    lines = narrow.splitlines()
    assert all(line == line.rstrip() for line in lines)
    if argv[0] == "tree":
        assert lines[:2] == [
            "resnet18  ResNet  weights: random weights (untrained)  device: cpu",
            "11,689,512 parameters (11,689,512 trainable), 68 modules, 122 state_dict entries (44.6 MiB)",
        ]
    else:
        assert "total params             11,689,512" in lines


@pytest.mark.parametrize("command", ["tree", "stats", "api"])
def test_model_is_optional_in_every_command_as_in_cam_and_report(command, capsys):
    """Issue 32: ``api`` (and tree, stats) alone required MODEL; without it, the default model."""
    from layerscope.options import DEFAULT_MODEL

    assert main([command, "--json", "--weights", "none", "--device", "meta"]) == 0
    default = capsys.readouterr().out
    assert main([command, DEFAULT_MODEL, "--json", "--weights", "none", "--device", "meta"]) == 0
    assert capsys.readouterr().out == default


class Stages(torch.nn.Module):
    """Four stages of one class: two alike, then two of other sizes (ConvNeXt's 238K to 15.5M)."""

    def __init__(self) -> None:
        super().__init__()
        widths = (4, 4, 8, 16)
        self.stages = torch.nn.Sequential(
            *(
                torch.nn.Sequential(torch.nn.Conv2d(3 if i == 0 else widths[i - 1], w, 3, padding=1))
                for i, w in enumerate(widths)
            )
        )
        self.same = torch.nn.Sequential(*(torch.nn.Linear(4, 4) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)


def test_tree_folds_only_repeats_whose_figures_are_the_same(capsys):
    """Issue 32: ``0…3 ConvNeXtStage ×4`` hid that one stage held half the MACs."""
    assert main(["tree", "test_cli_inspect:Stages", "--depth", "2", "--weights", "none"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "│   ├── 0  Sequential  112" in lines  # 3·4·9 + 4
    assert "│   ├── 2  Sequential  296" in lines and "│   └── 3  Sequential  1.2K" in lines
    assert "    └── 0…2  Linear ×3  60" in lines  # identical: still one line


def test_tree_cost_keeps_apart_blocks_of_equal_parameters_and_other_macs(capsys):
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 3, 3, padding=1),
        torch.nn.Conv2d(3, 3, 3, padding=1, stride=2),
        torch.nn.Conv2d(3, 3, 3, padding=1),
        torch.nn.Conv2d(3, 3, 3, padding=1),
    )
    from layerscope.cli.inspect_cmd import _identical
    from layerscope.cost import probe_cost
    from layerscope.tree import build_tree

    tree = build_tree(model)
    (run,) = tree.repeat_runs(tree.root)
    _, cost = probe_cost(model, (3, 8, 8))
    assert [r.members for r in _identical(tree, run, None)] == [(1, 2, 3, 4)]  # same parameters
    assert [r.members for r in _identical(tree, run, cost)] == [(2, 3, 4)]  # the first on 8×8: apart
    assert cost.get("0").macs == 8 * 8 * 3 * 27 and cost.get("1").macs == cost.get("3").macs == 4 * 4 * 3 * 27
