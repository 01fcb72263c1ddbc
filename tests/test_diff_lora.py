"""LoRA adapters written by the real ``peft`` against their base: ΔW equals what peft's own
``merge_and_unload`` adds, untouched modules are ``same``, unmatched targets are named, and
reading an adapter runs no code."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from evil_files import pickle_file
from layerscope.cli.main import main
from layerscope.diff import diff_checkpoints
from layerscope.diff.lora import read_adapter
from layerscope.errors import LayerscopeError


class Small(nn.Module):
    """One module of each kind PEFT adapts differently: embedding, convolution, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(30, 8)
        self.conv = nn.Conv2d(3, 6, 3)
        self.blocks = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
        self.head = nn.Linear(8, 4)


def write_adapter(folder: Path, lora: dict, seed: int) -> dict[str, torch.Tensor]:
    """Save base and adapter as PEFT does (``lora``: its ``LoraConfig``'s options); return the
    weights peft itself merges. peft is imported here, not at collection: it pulls in
    transformers, seconds of start-up for every test process."""
    from peft import LoraConfig, PeftModel, get_peft_model

    config = LoraConfig(**lora)
    torch.manual_seed(seed)
    base = Small()
    save_file(base.state_dict(), folder / "base.safetensors")
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name or "lora_embedding" in name or "modules_to_save" in name:
                param.normal_(0, 0.2)  # PEFT starts one factor at zero: train them a little
    model.save_pretrained(folder / "adapter")
    reloaded = Small()
    reloaded.load_state_dict(base_weights(folder))
    return PeftModel.from_pretrained(reloaded, folder / "adapter").merge_and_unload().state_dict()


def base_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "base.safetensors")


CONFIGS = {
    "plain": dict(r=4, lora_alpha=8, target_modules=["embed", "conv", "0", "2"]),
    "rslora with a missing target and modules_to_save": dict(
        r=2,
        lora_alpha=16,
        use_rslora=True,
        target_modules=["embed", "conv", "0", "2", "q_proj"],
        modules_to_save=["head"],
    ),
    "alpha_pattern and lora_bias": dict(
        r=3, lora_alpha=6, target_modules=["0", "2"], alpha_pattern={"2": 12}, lora_bias=True
    ),
    "regular expressions, matched in a child process": dict(  # issue 31: PEFT's own answers, bounded in time
        r=2, lora_alpha=4, target_modules=r"(blocks\.[02]|embed)", alpha_pattern={r"blocks\.[2-9]": 10, "e.b+ed": 6}
    ),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_delta_w_equals_peft_merged_weights(tmp_path, name):
    merged = write_adapter(tmp_path, CONFIGS[name], seed=3)
    base = base_weights(tmp_path)
    adapter = read_adapter(tmp_path / "adapter", "adapter", {k: k for k in base}, trust=False)
    assert adapter.updates
    for key, update in adapter.updates.items():
        delta = torch.cat(list(update.slices())).reshape(base[key].shape)
        assert torch.allclose(delta, merged[key].double() - base[key].double(), rtol=0, atol=1e-6), key
    result = diff_checkpoints(str(tmp_path / "base.safetensors"), str(tmp_path / "adapter"))
    for t in result.tensors:
        moved = not torch.equal(merged[t.key], base[t.key])
        assert t.status == ("changed" if moved else "same"), t.key
        expected = float((merged[t.key].double() - base[t.key].double()).norm() / base[t.key].double().norm())
        assert t.relative_change == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_what_the_adapter_touched_and_what_matched_nothing(tmp_path):
    write_adapter(tmp_path, CONFIGS["rslora with a missing target and modules_to_save"], seed=4)
    result = diff_checkpoints(str(tmp_path / "base.safetensors"), str(tmp_path / "adapter"))
    lora = result.lora
    assert (lora.rank, lora.alpha, lora.use_rslora) == (2, 16.0, True)
    assert sorted(lora.adapted) == ["blocks.0", "blocks.2", "conv", "embed"]
    assert sorted(lora.replaced) == ["head.bias", "head.weight"]
    assert lora.unmatched_targets == ("q_proj",)
    statuses = {t.key: t.status for t in result.tensors}
    assert statuses == {
        "embed.weight": "changed",
        "conv.weight": "changed",
        "conv.bias": "same",
        "blocks.0.weight": "changed",
        "blocks.0.bias": "same",
        "blocks.2.weight": "changed",
        "blocks.2.bias": "same",
        "head.weight": "changed",
        "head.bias": "changed",
    }
    assert result.node("blocks").counts == {"changed": 2, "same": 2}


def test_the_scale_is_alpha_over_r_or_over_its_root_with_rslora(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "r").mkdir()
    write_adapter(tmp_path / "p", dict(r=4, lora_alpha=8, target_modules=["0"]), seed=5)
    write_adapter(tmp_path / "r", dict(r=4, lora_alpha=8, target_modules=["0"], use_rslora=True), seed=5)
    keys = {k: k for k in base_weights(tmp_path / "p")}
    plain = read_adapter(tmp_path / "p" / "adapter", "p", keys, trust=False).updates["blocks.0.weight"]
    rs = read_adapter(tmp_path / "r" / "adapter", "r", keys, trust=False).updates["blocks.0.weight"]
    assert (plain.scale, rs.scale) == (2.0, 4.0)
    assert torch.equal(plain.left, rs.left) and torch.equal(plain.right, rs.right)


def test_an_adapter_pickle_runs_nothing_without_trust(tmp_path):
    write_adapter(tmp_path, CONFIGS["plain"], seed=6)
    (tmp_path / "adapter" / "adapter_model.safetensors").unlink()
    marker = tmp_path / "pwned"
    pickle_file(tmp_path / "adapter" / "adapter_model.bin", marker)
    with pytest.raises(LayerscopeError, match="needs full unpickling, which can run arbitrary code; pass --trust"):
        diff_checkpoints(str(tmp_path / "base.safetensors"), str(tmp_path / "adapter"))
    assert not marker.exists()


def test_a_plain_adapter_bin_is_read_with_weights_only(tmp_path):
    write_adapter(tmp_path, CONFIGS["plain"], seed=7)
    from safetensors.torch import load_file

    folder = tmp_path / "adapter"
    torch.save(load_file(folder / "adapter_model.safetensors"), folder / "adapter_model.bin")
    reference = diff_checkpoints(str(tmp_path / "base.safetensors"), str(folder))
    (folder / "adapter_model.safetensors").unlink()
    assert diff_checkpoints(str(tmp_path / "base.safetensors"), str(folder)).tensors == reference.tensors


def test_an_adapter_for_another_model_does_not_fit(tmp_path):
    write_adapter(tmp_path, CONFIGS["plain"], seed=8)
    save_file({"other.weight": torch.zeros(8, 8)}, tmp_path / "other.safetensors")
    message = r"adapter does not fit the base model: it holds '[\w.]+', which the base has no tensor for"
    with pytest.raises(LayerscopeError, match=message):
        diff_checkpoints(str(tmp_path / "other.safetensors"), str(tmp_path / "adapter"))


def test_an_adapter_on_a_hugging_face_folder_reaches_the_renamed_weights(tmp_path):
    import transformers
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=16,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
    )
    model = transformers.ViTForImageClassification(config)
    model.save_pretrained(tmp_path / "vit")  # transformers 5 saves 4.x names (…attention.attention.query)
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    peft_model.save_pretrained(tmp_path / "lora")  # …and PEFT the live names (…attention.q_proj)
    result = diff_checkpoints(str(tmp_path / "vit"), str(tmp_path / "lora"))
    changed = sorted(t.key for t in result.tensors if t.status == "changed")
    assert result.architecture == "ViTForImageClassification"
    legacy = [f"vit.encoder.layer.{i}.attention.attention.{w}.weight" for i in (0, 1) for w in ("query", "value")]
    assert changed == legacy
    owners = {result.owner(k).name for k in changed}
    assert owners == {f"vit.layers.{i}.attention.{p}_proj" for i in (0, 1) for p in "qv"}
    assert result.node("vit.layers.0.attention.q_proj").access == "model.vit.layers[0].attention.q_proj"


LONG = "q" * 48  # a module name that makes a nested quantifier backtrack for longer than a lifetime


def hostile_adapter(folder: Path, config: dict) -> tuple[str, str]:
    """A base with one ``qqq…q`` linear and a LoRA pair for it, the config as given (written
    by hand: PEFT itself would hang on these patterns or refuse them)."""
    folder.mkdir(exist_ok=True)
    save_file({f"{LONG}.weight": torch.ones(3, 3)}, folder / "base.safetensors")
    adapter = folder / "adapter"
    adapter.mkdir(exist_ok=True)
    pair = {"lora_A.weight": torch.ones(1, 3), "lora_B.weight": torch.ones(3, 1)}
    save_file({f"base_model.model.{LONG}.{k}": v for k, v in pair.items()}, adapter / "adapter_model.safetensors")
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 1, "lora_alpha": 2, **config}))
    return str(folder / "base.safetensors"), str(adapter)


@pytest.mark.parametrize(
    ("config", "words"),
    [
        (dict(target_modules="(q|qq)+z"), "target_modules: matching '(q|qq)+z' against the module names took over 5 s"),
        (dict(target_modules=[LONG], alpha_pattern={"(q+)+$z": 3}), "alpha_pattern: matching '(q+)+$z'"),
        (dict(target_modules="q{2,}[)"), "target_modules: 'q{2,}[)' is not a regular expression Python reads"),
        (dict(target_modules=[LONG], alpha_pattern={"q)": 3}), "alpha_pattern key: 'q)' is not a regular expression"),
        (dict(target_modules=[LONG], rank_pattern={"[[": 2}), "rank_pattern key: '[[' is not a regular expression"),
        (dict(target_modules=[LONG], alpha_pattern={LONG: "eight"}), "alpha_pattern's values must be numbers"),
        (dict(target_modules="q" * 2000), "a pattern of 2,000 characters; at most 1,000 are read"),
    ],
    ids=[
        "catastrophic target_modules",
        "catastrophic alpha_pattern key",
        "unreadable target_modules",
        "unreadable alpha_pattern key",
        "unreadable rank_pattern key",
        "alpha not a number",
        "pattern too long",
    ],
)
def test_an_adapters_regular_expressions_end_in_seconds_or_one_line(tmp_path, capsys, config, words):
    base, adapter = hostile_adapter(tmp_path, config)
    start = time.monotonic()
    code = main(["diff", base, adapter])
    out, err = capsys.readouterr()
    assert time.monotonic() - start < 15
    assert code == 2 and err.count("\n") == 1 and words in err and "Traceback" not in err, err


def test_a_list_of_targets_holds_names_never_regular_expressions(tmp_path):
    """PEFT matches a list entry as a name's ending: a hostile entry is a name that matched nothing."""
    base, adapter = hostile_adapter(
        tmp_path, dict(target_modules=[LONG, "(q+)+z"], alpha_pattern={f"q{{{len(LONG)}}}": 5})
    )
    start = time.monotonic()
    result = diff_checkpoints(base, adapter)
    assert time.monotonic() - start < 15
    assert result.lora.unmatched_targets == ("(q+)+z",)
    delta = float(result.tensors[0].relative_change)  # ΔW = 5 (the pattern's alpha, r = 1) · ones(3,1)·ones(1,3)
    assert delta == pytest.approx(5.0)
