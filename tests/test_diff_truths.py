"""Issue 29's smaller truths and issue 32's diff: the LoRA line names its patterns, a sharded
folder without config.json diffs, trained parameters lead the ranking apart from buffers,
unchanged subtrees are hidden unless asked."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from diff_models import tiny_resnet
from layerscope.cli.main import main
from layerscope.diff import diff_checkpoints
from layerscope.presentation.diff_text import diff_lines
from test_diff_lora import write_adapter


def _text(result, **options) -> str:
    return "\n".join(line.plain for line in diff_lines(result, **options))


def test_the_lora_line_shows_rank_and_alpha_patterns(tmp_path, capsys):
    write_adapter(
        tmp_path,
        dict(
            r=2,
            lora_alpha=4,
            target_modules=["blocks.0", "blocks.2"],
            rank_pattern={"blocks.2": 3},
            alpha_pattern={"blocks.2": 12},
        ),
        seed=3,
    )
    result = diff_checkpoints(str(tmp_path / "base.safetensors"), str(tmp_path / "adapter"))
    assert result.lora is not None and result.lora.rank_pattern == {"blocks.2": 3}
    assert result.lora.alpha_pattern == {"blocks.2": 12.0}
    text = _text(result)
    assert "LoRA: r=2, lora_alpha=4," in text
    assert "  rank_pattern (overrides for matching modules): blocks.2 → 3" in text
    assert "  alpha_pattern (overrides for matching modules): blocks.2 → 12" in text
    assert main(["diff", str(tmp_path / "base.safetensors"), str(tmp_path / "adapter"), "--json"]) == 0
    lora = json.loads(capsys.readouterr().out)["lora"]
    assert (lora["rank_pattern"], lora["alpha_pattern"]) == ({"blocks.2": 3}, {"blocks.2": 12.0})


def _sharded(folder: Path, state: dict[str, torch.Tensor]) -> Path:
    """Two safetensors shards and their index, no config.json: what a sharded save_file leaves."""
    folder.mkdir()
    keys = list(state)
    halves = {
        "model-00001-of-00002.safetensors": keys[: len(keys) // 2],
        "model-00002-of-00002.safetensors": keys[len(keys) // 2 :],
    }
    for name, part in halves.items():
        save_file({k: state[k].contiguous() for k in part}, folder / name)
    index = {"weight_map": {k: name for name, part in halves.items() for k in part}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def test_a_sharded_folder_without_config_diffs_with_arch(tmp_path, capsys):
    torch.manual_seed(0)
    a = tiny_resnet().state_dict()
    b = {k: v.clone() for k, v in a.items()}
    b["fc.weight"] += 0.5
    folder = _sharded(tmp_path / "shards", b)
    save_file(a, tmp_path / "a.safetensors")
    result = diff_checkpoints(str(tmp_path / "a.safetensors"), str(folder), arch="diff_models:tiny_resnet")
    expected = float((b["fc.weight"] - a["fc.weight"]).norm() / a["fc.weight"].norm())
    assert result.architecture is not None
    assert abs(result.tensor("fc.weight").relative_change - expected) < 1e-6
    assert [t.key for t in result.tensors if t.status != "same"] == ["fc.weight"]
    # as A too, and without --arch: the keys' prefixes, and a note saying how to name the tree
    keyed = diff_checkpoints(str(folder), str(tmp_path / "a.safetensors"))
    assert keyed.architecture is None and keyed.node("fc") is not None
    assert any("has no config.json; --arch names the architecture" in note for note in keyed.notes)
    assert main(["diff", str(tmp_path / "a.safetensors"), str(folder), "--arch", "diff_models:tiny_resnet"]) == 0
    assert "fc  Linear" in capsys.readouterr().out


def _fine_tune(tmp_path: Path) -> tuple[str, str, dict, dict]:
    """A full fine-tune's shape: weights moved a few percent, batch-norm statistics far more."""
    torch.manual_seed(1)
    a = tiny_resnet().state_dict()
    for key, value in a.items():
        if key.endswith(("running_var", "running_mean")):
            value.uniform_(0.5, 1.5)
    b = {k: v.clone() for k, v in a.items()}
    b["fc.weight"] *= 1.05
    b["layer4.1.conv2.weight"] *= 1.02
    for key in b:
        if key.endswith("running_mean"):
            b[key] += 1.0
        if key.endswith("num_batches_tracked"):
            b[key] += 20
    torch.save(a, tmp_path / "a.pt")
    torch.save(b, tmp_path / "b.pt")
    return str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), a, b


def test_trained_parameters_lead_and_buffers_rank_apart(tmp_path, capsys):
    a_path, b_path, a, b = _fine_tune(tmp_path)
    result = diff_checkpoints(a_path, b_path, arch="diff_models:tiny_resnet")
    assert "layer4.1.bn2.running_var" in result.buffer_keys and "fc.weight" not in result.buffer_keys
    assert [t.key for t in result.largest()] == ["fc.weight", "layer4.1.conv2.weight"]
    assert all(t.key.endswith("running_mean") for t in result.largest(buffers=True))
    # the tensors as the app's Stats list shows them: parameters first, counters gone, unchanged last
    ranked = result.ranked(result.tensors)
    assert [t.key for t in ranked[:2]] == ["fc.weight", "layer4.1.conv2.weight"]
    assert not any(t.key.endswith("num_batches_tracked") for t in ranked)
    assert ranked[2].key.endswith("running_mean") and ranked[-1].status == "same"
    assert any(t.key.endswith("num_batches_tracked") for t in result.ranked(result.tensors, counters=True))
    assert abs(ranked[0].relative_change - 0.05) < 1e-6  # ‖0.05·W‖ / ‖W‖
    assert main(["diff", a_path, b_path, "--arch", "diff_models:tiny_resnet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert [x["key"] for x in summary["largest"]] == ["fc.weight", "layer4.1.conv2.weight"]
    assert len(summary["largest_buffers"]) == 5


def test_params_only_leaves_buffers_out_of_every_figure(tmp_path, capsys):
    a_path, b_path, a, b = _fine_tune(tmp_path)
    result = diff_checkpoints(a_path, b_path, arch="diff_models:tiny_resnet", params_only=True)
    params = [k for k in a if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert sorted(t.key for t in result.tensors) == sorted(params)
    delta = sum(float((b[k] - a[k]).double().norm() ** 2) for k in params)
    norm = sum(float(a[k].double().norm() ** 2) for k in params)
    assert abs(result.root.relative_change - (delta / norm) ** 0.5) < 1e-9
    assert result.node("bn1").status == "same"  # only its statistics moved
    assert main(["diff", a_path, b_path, "--arch", "diff_models:tiny_resnet", "--params-only"]) == 0
    out = capsys.readouterr().out
    assert "largest changes in buffers" not in out and "bn1  BatchNorm2d" not in out
    assert f"└── fc  Linear  {result.node('fc').mark}" in out
