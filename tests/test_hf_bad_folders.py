"""The corpus of malformed Hugging Face folders (issue 21): one-line edits of a real
``save_pretrained`` folder's ``config.json`` or ``preprocessor_config.json``. Each ends in
exit status 2 and one line naming the file and the key; none reaches transformers' tracebacks,
a division by zero, a kernel fetched from the hub or gigabytes of memory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from layerscope.cli.main import main  # noqa: E402
from layerscope.errors import LayerscopeError  # noqa: E402

CONFIG, PROCESSOR = "config.json", "preprocessor_config.json"


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# (id, file, key, value, words after "FILE: "); the value replaces the key's in a working folder
CASES = [
    ("architectures 5", CONFIG, "architectures", 5, "architectures is 5; expected a list of class names"),
    (
        "llama on a vit config",
        CONFIG,
        "architectures",
        ["LlamaForCausalLM"],
        "architectures names 'LlamaForCausalLM', which takes a LlamaConfig, but model_type 'vit' makes a ViTConfig",
    ),
    (
        "PreTrainedModel",
        CONFIG,
        "architectures",
        ["PreTrainedModel"],
        "architectures names 'PreTrainedModel', which is no concrete model class",
    ),
    ("no attention heads", CONFIG, "num_attention_heads", 0, "num_attention_heads is 0; expected a whole number"),
    ("layers 'two'", CONFIG, "num_hidden_layers", "two", "num_hidden_layers is 'two'; expected a whole number"),
    ("layers 2.5", CONFIG, "num_hidden_layers", 2.5, "num_hidden_layers is 2.5"),
    ("layers null", CONFIG, "num_hidden_layers", None, "num_hidden_layers is None"),
    (
        "3 billion labels",
        CONFIG,
        "num_labels",
        3_000_000_000,  # issue 31: transformers names every one
        "num_labels is 3000000000; expected a whole number from 0 to 1,000,000",
    ),
    ("labels 2e9 as a float", CONFIG, "num_labels", 2e9, "num_labels is 2000000000.0; expected a whole number"),
    ("label2id a list", CONFIG, "label2id", ["cat"], "label2id is ['cat']; expected an object of at most"),
    ("id2label a list", CONFIG, "id2label", ["a", "b", "c"], "id2label is ['a', 'b', 'c']; expected an object"),
    ("dtype evil", CONFIG, "dtype", "evil", "dtype is 'evil'; expected one of auto, bfloat16"),
    ("dtype float8", CONFIG, "dtype", "float8_e4m3fn", "dtype is 'float8_e4m3fn'"),
    ("torch_dtype evil", CONFIG, "torch_dtype", "evil", "torch_dtype is 'evil'"),
    (
        "bitsandbytes",
        CONFIG,
        "quantization_config",
        {"quant_method": "bitsandbytes", "load_in_8bit": True},
        "quantization_config (bitsandbytes) is not supported",
    ),
    ("gptq", CONFIG, "quantization_config", {"quant_method": "gptq", "bits": 4}, "quantization_config (gptq)"),
    ("quantization a string", CONFIG, "quantization_config", "yes", "quantization_config (yes) is not supported"),
    (
        "hub kernel",
        CONFIG,
        "attn_implementation",
        "kernels-community/flash-attn",
        "attn_implementation is 'kernels-community/flash-attn'; expected eager or sdpa",
    ),
    (
        "unknown rope",
        CONFIG,
        "rope_scaling",
        {"rope_type": "nosuch", "factor": 2.0},
        "rope_scaling.rope_type is 'nosuch'; expected one of default",
    ),
    ("image_size 12000", CONFIG, "image_size", 12000, "image_size is 12000; expected a whole number from 1 to 4,096"),
    (
        "hidden_size 65536",
        CONFIG,
        "hidden_size",
        65536,
        "describes 65,741.3 MiB of tensors, but the weights files hold 0.0 MiB",
    ),
    ("100,000 nested arrays", CONFIG, "num_labels", _nested(100_000), "its JSON is nested too deeply"),
    ("size a string", PROCESSOR, "size", "32", "size is '32'; expected a whole number of pixels from 1 to 4096"),
    ("height a string", PROCESSOR, "size", {"height": "a", "width": 32}, "size.height is 'a'"),
    ("size 0", PROCESSOR, "size", {"height": 0, "width": 0}, "size.height is 0"),
    ("size negative", PROCESSOR, "size", {"height": -5, "width": 32}, "size.height is -5"),
    ("size Infinity", PROCESSOR, "size", {"height": float("inf"), "width": 32}, "size.height is inf"),
    ("size 1e308", PROCESSOR, "size", {"height": 1e308, "width": 32}, "size.height is 1e+308"),
    ("size 60000", PROCESSOR, "size", {"height": 60000, "width": 60000}, "size.height is 60000"),
    ("shortest_edge 50000", PROCESSOR, "size", {"shortest_edge": 50000}, "size.shortest_edge is 50000"),
    ("crop_size 60000", PROCESSOR, "crop_size", 60000, "crop_size is 60000"),
    ("rescale_factor 0", PROCESSOR, "rescale_factor", 0, "rescale_factor is 0; expected a number above 0"),
    ("image_std zeros", PROCESSOR, "image_std", [0, 0, 0], "image_std is [0, 0, 0]; expected numbers above 0"),
    ("crop_pct 1e-9", PROCESSOR, "crop_pct", 1e-9, "crop_pct is 1e-09; expected a fraction from 0.05 to 1"),
]


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hf") / "vit"
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=16,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        num_labels=3,
    )
    transformers.ViTForImageClassification(config).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def _edited(good: Path, target: Path, file: str, key: str, value: object) -> Path:
    shutil.copytree(good, target)
    data = json.loads((target / file).read_text())
    data[key] = value
    if key == "crop_size":
        data["do_center_crop"] = True
    text = json.dumps(data)
    if isinstance(value, str) and value.startswith("[["):  # raw JSON, not a string
        text = text.replace(json.dumps(value), value)
    (target / file).write_text(text)
    return target


def test_the_unedited_folder_loads(good_folder, capsys):
    assert main(["tree", str(good_folder), "--depth", "0"]) == 0
    assert "ViTForImageClassification" in capsys.readouterr().out


@pytest.mark.parametrize(("file", "key", "value", "words"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_a_malformed_folder_is_one_line_naming_the_file_and_key(good_folder, tmp_path, capsys, file, key, value, words):
    folder = _edited(good_folder, tmp_path / "vit", file, key, value)
    command = ["cam", str(folder), "--out", str(tmp_path / "map.png")] if file == PROCESSOR else ["tree", str(folder)]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{folder / file}: {words}" in err or (file == CONFIG and f"{folder / file} {words}" in err), err
    assert not (tmp_path / "map.png").exists()


@pytest.mark.parametrize("key", ["id2label", "label2id"])
def test_a_million_and_one_class_names_are_refused_before_transformers_reads_them(key):
    from layerscope.models.sources.hf_checks import check_config

    names = {str(i): f"c{i}" for i in range(1_000_001)}
    table = names if key == "id2label" else {v: int(k) for k, v in names.items()}
    with pytest.raises(LayerscopeError, match=f"config.json: {key} is '1,000,001 names'; expected .*at most 1,000,000"):
        check_config({key: table}, Path("config.json"))
