"""``layerscope diff`` as a user runs it: sharded Hugging Face folders, the text tree, ``--json``,
``--threshold`` and ``--depth``, and one line with exit status 2 for every bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diff_models import edited_pair, trained_state
from evil_files import pickle_file
from layerscope.cli.main import main
from layerscope.diff import diff_checkpoints

ARCH = "diff_models:tiny_resnet"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli-diff")
    a, b = edited_pair()
    torch.save(a, folder / "a.pt")
    save_file(b, folder / "b.safetensors")
    return folder / "a.pt", folder / "b.safetensors"


@pytest.fixture(scope="module")
def bert_folders(tmp_path_factory) -> tuple[Path, Path]:
    """Two sharded folders as ``save_pretrained`` writes them; in B only ``encoder.layer.1`` moved."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
    )
    model = transformers.BertModel(config)
    root = tmp_path_factory.mktemp("bert")
    model.save_pretrained(root / "a", max_shard_size="8KB")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith("encoder.layer.1."):
                param.add_(0.01)
    model.save_pretrained(root / "b", max_shard_size="8KB")
    assert len(list((root / "a").glob("model-*.safetensors"))) == 3
    return root / "a", root / "b"


def test_two_sharded_folders_diff_per_node_on_their_own_architecture(bert_folders, capsys):
    a, b = bert_folders
    code, out, err = run(capsys, "diff", str(a), str(b), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["architecture"] == "BertModel"
    changed = {t["key"] for t in data["tensors"] if t["status"] == "changed"}
    assert changed and all(k.startswith("encoder.layer.1.") for k in changed)
    assert {t["status"] for t in data["tensors"] if not t["key"].startswith("encoder.layer.1.")} == {"same"}
    nodes = {n["name"]: n for n in data["nodes"]}
    assert nodes["encoder.layer.0"]["status"] == "same" and nodes["encoder.layer.1"]["status"] == "changed"
    assert nodes["encoder.layer.1"]["access_expression"] == "model.encoder.layer[1]"
    assert nodes["encoder.layer.1"]["changed"] == nodes["encoder.layer.1"]["total"] == 16


def test_a_shard_index_pointing_outside_the_folder_is_refused(bert_folders, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(bert_folders[0], bad)
    index = json.loads((bad / "model.safetensors.index.json").read_text())
    first = next(iter(index["weight_map"]))
    refusals = {  # the folder check every loader shares, then the diff's own: a shard is a weights file
        "../a/model-00001-of-00003.safetensors": "shards must be plain file names inside the model folder",
        "/dev/zero": "shards must be plain file names inside the model folder",
        "config.json": "names 'config.json', which is not a .safetensors file in the folder",
    }
    for target, message in refusals.items():
        index["weight_map"][first] = target
        (bad / "model.safetensors.index.json").write_text(json.dumps(index))
        code, out, err = run(capsys, "diff", str(bad), str(bert_folders[1]))
        assert code == 2 and out == "" and len(err.splitlines()) == 1
        assert message in err, err


def test_a_stale_shard_index_is_refused(bert_folders, tmp_path, capsys):
    bad = tmp_path / "stale"
    shutil.copytree(bert_folders[0], bad)
    index = json.loads((bad / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    key = next(k for k, v in index["weight_map"].items() if v == shards[0])
    index["weight_map"][key] = shards[1]
    (bad / "model.safetensors.index.json").write_text(json.dumps(index))
    code, _, err = run(capsys, "diff", str(bad), str(bert_folders[1]))
    assert code == 2 and f"the index puts {key!r} in {shards[1]}, which does not hold it" in err


def test_text_tree_with_change_column_and_summary(pair_files, capsys):
    code, out, err = run(capsys, "diff", *map(str, pair_files), "--arch", ARCH)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:3] == [f"A: {pair_files[0]}", f"B: {pair_files[1]}", "nodes: the tree of TinyResNet"]
    result = diff_checkpoints(*map(str, pair_files), arch=ARCH)
    fc = result.node("fc").relative_change
    assert f"└── fc  Linear  {fc * 100:.3g}%" in lines
    assert not any("conv1  Conv2d  =" in line for line in lines)  # unchanged subtrees hidden by default
    hidden = sum(1 for n in result.frozen() if n.name)
    assert f"{hidden} unchanged subtree(s) not shown (--all shows them)" in lines
    code, out, _ = run(capsys, "diff", *map(str, pair_files), "--arch", ARCH, "--all")
    assert code == 0 and "├── conv1  Conv2d  =" in out.splitlines()
    block = f"{result.node('layer4.0').relative_change * 100:.3g}%"
    assert f"│   ├── 0  Block  {block}  (11 of 12 changed)" in lines  # a step counter moved: apart
    assert "│       └── conv1  Conv2d  −" in lines  # layer1.0.conv1 was removed; its ReLU sibling hidden
    assert not any("ReLU" in line or "AdaptiveAvgPool2d" in line for line in lines)  # no tensors: nothing changed
    assert "105 tensors: 77 same, 24 changed, 1 added, 1 removed, 1 reshaped, 1 retyped" in lines
    params = lines[lines.index("largest changes in parameters:") + 1 :][:5]
    assert not any("running_" in line or "num_batches_tracked" in line for line in params)
    buffers = lines[lines.index("largest changes in buffers:") + 1 :]
    drift = result.tensor("bn1.running_mean").relative_change
    assert buffers[0] == f"  bn1.running_mean  {drift * 100:.3g}%"  # the drifted BN statistic: apart
    assert not any("num_batches_tracked" in line for line in buffers)  # counters are not weights


def test_blocks_fold_only_when_they_moved_alike(tmp_path, capsys):
    a = trained_state()
    b = {k: v + 0.01 if k.startswith("layer4.") and v.is_floating_point() else v.clone() for k, v in a.items()}
    b["layer2.0.bn1.running_mean"] = a["layer2.0.bn1.running_mean"] + 0.1
    torch.save(a, tmp_path / "a.pt")
    torch.save(b, tmp_path / "b.pt")
    code, out, _ = run(
        capsys, "diff", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--arch", ARCH, "--depth", "2", "--all"
    )
    result = diff_checkpoints(str(tmp_path / "a.pt"), str(tmp_path / "b.pt"))
    model, layer2, block, layer4 = (
        f"{result.node(name).relative_change * 100:.3g}%" for name in ("", "layer2", "layer2.0", "layer4")
    )
    assert code == 0 and out.splitlines()[3:18] == [
        f"model  TinyResNet  {model}  (21 of 104 changed)",
        "├── conv1  Conv2d  =",
        "├── bn1  BatchNorm2d  =",
        "├── relu  ReLU",
        "├── layer1  Sequential  =",
        "│   └── 0…1  Block ×2  =",
        f"├── layer2  Sequential  {layer2}  (1 of 24 changed)",
        f"│   ├── 0  Block  {block}  (1 of 12 changed)",
        "│   └── 1  Block  =",
        "├── layer3  Sequential  =",
        "│   └── 0…1  Block ×2  =",
        f"├── layer4  Sequential  {layer4}  (20 of 24 changed)",
        f"│   └── 0…1  Block ×2  {layer4}  (20 of 24 changed)",  # the run's figure: its members' sums
        "├── pool  AdaptiveAvgPool2d",
        "└── fc  Linear  =",
    ]


def test_threshold_hides_what_moved_less(pair_files, capsys):
    code, out, _ = run(capsys, "diff", *map(str, pair_files), "--arch", ARCH, "--threshold", "1%")
    assert code == 0
    shown = [line.split("  ")[0].lstrip("│├└─ ") for line in out.splitlines()[3 : out.splitlines().index("")]]
    assert shown[0] == "model" and "fc" in shown and "layer4" in shown
    assert "conv1" not in shown[:2] and "layer3" in shown  # layer3 stays: a tensor in it changed dtype
    code, out, _ = run(capsys, "diff", *map(str, pair_files), "--arch", ARCH, "--threshold", "0.01", "--json")
    data = json.loads(out)
    assert all(t["status"] != "same" for t in data["tensors"])
    assert {t["status"] for t in data["tensors"]} >= {"added", "removed", "reshaped", "retyped"}
    assert all(
        t["relative_change"] is None or t["relative_change"] >= 0.01 or t["status"] == "retyped"
        for t in data["tensors"]
    )


def test_json_shape_and_depth(pair_files, capsys):
    code, out, _ = run(capsys, "diff", *map(str, pair_files), "--arch", ARCH, "--json", "--depth", "1")
    data = json.loads(out)
    assert code == 0
    assert set(data) == {"a", "b", "architecture", "summary", "tensors", "nodes", "lora", "notes"}
    assert set(data["tensors"][0]) == {
        "key",
        "node",
        "status",
        "shape_a",
        "shape_b",
        "dtype_a",
        "dtype_b",
        "relative_change",
        "max_abs_diff",
        "cosine",
    }
    assert set(data["nodes"][0]) == {
        "name",
        "access_expression",
        "class",
        "depth",
        "status",
        "relative_change",
        "changed",
        "total",
        "counts",
    }
    assert {n["depth"] for n in data["nodes"]} == {0, 1} and len(data["tensors"]) == 105
    assert data["summary"]["counts"]["same"] == 77 and data["lora"] is None
    removed = next(t for t in data["tensors"] if t["status"] == "removed")
    assert removed == {
        "key": "layer1.0.conv1.weight",
        "node": "layer1.0.conv1",
        "status": "removed",
        "shape_a": [4, 4, 3, 3],
        "shape_b": None,
        "dtype_a": "float32",
        "dtype_b": None,
        "relative_change": None,
        "max_abs_diff": None,
        "cosine": None,
    }


@pytest.fixture
def bad_inputs(tmp_path, pair_files) -> dict[str, list[str]]:
    a = str(pair_files[0])
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    save_file({"other.weight": torch.zeros(2)}, tmp_path / "other.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 0}))
    pickle_file(tmp_path / "evil.pt", tmp_path / "pwned")
    return {
        "no such checkpoint": [a, str(tmp_path / "missing.pt")],
        "not a PyTorch checkpoint": [a, str(tmp_path / "notes.txt")],
        "share no tensor name: they are not two versions of one model": [a, str(tmp_path / "other.safetensors")],
        "not a safetensors file": [a, str(tmp_path / "broken.safetensors")],
        "does not fit --arch torch.nn:Linear": [
            a,
            a,
            "--arch",
            "torch.nn:Linear",
            "--arg",
            "in_features=2",
            "--arg",
            "out_features=2",
        ],
        "is a LoRA adapter folder: give its base model first": [str(tmp_path / "adapter"), a],
        "r must be a positive whole number": [a, str(tmp_path / "adapter")],
        "needs full unpickling, which can run arbitrary code; pass --trust": [a, str(tmp_path / "evil.pt")],
        "is a folder without config.json, not a Hugging Face model": [a, str(tmp_path)],
        "expected a relative change such as 0.01 or 1%": [a, a, "--threshold", "lots"],
    }


def test_bad_and_mismatched_files_are_one_line_with_status_2(bad_inputs, tmp_path, capsys):
    for message, argv in bad_inputs.items():
        code, out, err = run(capsys, "diff", *argv)
        assert (code, out) == (2, ""), message
        assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "pwned").exists()
