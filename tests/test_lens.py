"""The logit lens and per-head attention against transformers' own outputs.

References are computed independently of ``layerscope.lens``: ``output_hidden_states=True``
through the model's own final norm and head, and ``output_attentions=True`` from a copy
of the model loaded with eager attention (the code under test runs it on SDPA).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from layerscope.errors import LayerscopeError
from layerscope.lens import EMBEDDINGS, head_attention, language_model, logit_lens
from layerscope.models import load_model
from lm_models import save_gpt2

PROMPT = "3 5 7 9 11"


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory) -> Path:
    return save_gpt2(tmp_path_factory.mktemp("lm") / "gpt2")


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def folder(request, counter_folder, gpt2_folder) -> Path:
    return counter_folder if request.param == "llama" else gpt2_folder


def lm_of(folder: Path):
    return language_model(load_model(str(folder), weights="auto", device="cpu"))


def reference(folder: Path, attn: str = "sdpa"):
    """The model as transformers loads it, and its hidden states, logits and (eager) attentions."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, attn_implementation=attn).eval()
    ids = AutoTokenizer.from_pretrained(folder, local_files_only=True)(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model(ids, output_hidden_states=True, output_attentions=attn == "eager")
    return model, out


def final_norm(model):
    base = model.base_model
    return base.norm if hasattr(base, "norm") else base.ln_f


def top1(probs: torch.Tensor) -> list[tuple[int, float]]:
    values, indices = probs.max(dim=-1)
    return list(zip(indices.tolist(), values.tolist(), strict=True))


def test_every_layer_matches_hidden_states_through_norm_and_head(folder):
    lm = lm_of(folder)
    result = logit_lens(lm, PROMPT, top_k=3)
    model, out = reference(folder)
    norm, head = final_norm(model), model.get_output_embeddings()
    blocks = [
        name for name, _ in model.named_modules() if name.count(".") == 2 and name.split(".")[1] in ("layers", "h")
    ]
    assert [layer.layer for layer in result.layers] == [EMBEDDINGS, *blocks]
    # hidden_states[i] is block i-1's output, except the last, which transformers hands over normed
    with torch.no_grad():
        expected = [head(norm(h)).softmax(-1)[0] for h in out.hidden_states[:-1]]
    expected.append(out.logits.softmax(-1)[0])
    for layer, probs in zip(result.layers, expected, strict=True):
        got = [(top[0].id, top[0].p) for top in layer.positions]
        assert got == pytest.approx(top1(probs), rel=1e-5), layer.layer


def test_the_last_layer_is_the_models_own_distribution_exactly(folder):
    lm = lm_of(folder)
    result = logit_lens(lm, PROMPT, top_k=4)
    _, out = reference(folder)
    probs = out.logits.float().softmax(-1)[0]
    for position, top in enumerate(result.layers[-1].positions):
        values, indices = probs[position].topk(4)
        assert [g.id for g in top] == indices.tolist()
        assert [g.p for g in top] == values.tolist()  # exactly: the same norm and head on the same state


def test_the_embeddings_layer_is_the_embeddings_through_norm_and_head(counter_folder):
    lm = lm_of(counter_folder)
    result = logit_lens(lm, PROMPT, layers="embeddings", top_k=1)
    model = lm.model
    ids = torch.tensor([[3, 5, 7, 9, 11]])
    with torch.no_grad():
        probs = model.lm_head(model.model.norm(model.model.embed_tokens(ids))).softmax(-1)[0]
    assert [(t[0].id, t[0].p) for t in result.layers[0].positions] == pytest.approx(top1(probs), rel=1e-6)


def test_the_counter_counts_and_the_lens_says_where_it_knows(counter_folder):
    result = logit_lens(lm_of(counter_folder), PROMPT, position=-1)
    assert result.tokens == ["3", "5", "7", "9", "11"] and result.positions == [4]
    assert result.layers[-1].positions[0][0].token == "13"  # known answer: counting in twos
    assert result.layers[0].positions[0][0].token != "13"  # the embeddings alone cannot know the step


@pytest.mark.parametrize("block", [0, 1])
def test_attention_matches_eager_output_attentions(folder, block):
    lm = lm_of(folder)
    assert lm.model.config._attn_implementation == "sdpa"  # the code under test runs the fused path
    _, out = reference(folder, attn="eager")
    for position in (-1, 2):
        got = head_attention(lm, PROMPT, str(block), position)
        expected = out.attentions[block][0, :, position]
        assert torch.tensor(got.heads) == pytest.approx(expected, abs=1e-5)
        assert all(sum(row) == pytest.approx(1.0) for row in got.heads)
    assert got.layer.endswith(f".{block}") and got.as_json().keys() == {"layer", "heads"}


def test_half_precision_weights_stay_half_and_the_lens_still_matches(counter_folder, tmp_path):
    from transformers import AutoModelForCausalLM

    folder = tmp_path / "bf16"
    AutoModelForCausalLM.from_pretrained(counter_folder, local_files_only=True).to(torch.bfloat16).save_pretrained(
        folder
    )
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(counter_folder / name, folder / name)
    lm = lm_of(folder)
    assert next(lm.model.parameters()).dtype == torch.bfloat16
    result = logit_lens(lm, PROMPT, position=-1)
    with torch.no_grad():
        logits = lm.model(torch.tensor([[3, 5, 7, 9, 11]])).logits
    assert result.layers[-1].positions[0][0].p == logits.float().softmax(-1)[0, -1].max().item()


# --- one-line refusals ---------------------------------------------------------------------


def test_not_a_causal_lm_is_named(tmp_path):
    folder = save_gpt2(tmp_path / "bare", head=False)
    with pytest.raises(LayerscopeError, match="is a GPT2Model, not a causal language model"):
        lm_of(folder)
    with pytest.raises(LayerscopeError, match=r"resnet18 is a torchvision model \(ResNet\), not a causal"):
        language_model(load_model("resnet18", weights="none", device="cpu"))


def test_a_folder_without_tokenizer(counter_folder, tmp_path):
    folder = tmp_path / "bare"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(counter_folder / name, folder / name)
    with pytest.raises(LayerscopeError, match="has no tokenizer"):
        lm_of(folder)


@pytest.mark.parametrize(
    ("prompt", "layers", "position", "message"),
    [
        ("  ", "auto", "all", "the prompt is empty"),
        (" ".join(["1"] * 17), "auto", "all", "the prompt is 17 tokens; .* reads at most 16"),
        (PROMPT, "model.norm", "all", "'model.norm' is not a decoder block; name embeddings, a block"),
        (PROMPT, "5", "all", "'5' is not a decoder block"),
        (PROMPT, "auto", "5", "position 5 is outside the prompt's 5 tokens"),
        (PROMPT, "auto", "last", "--position takes all, -1 or a token number"),
    ],
)
def test_lens_refusals(counter_folder, prompt, layers, position, message):
    with pytest.raises(LayerscopeError, match=message):
        logit_lens(lm_of(counter_folder), prompt, layers, position=position)


def test_attention_of_something_not_a_block(counter_folder):
    with pytest.raises(LayerscopeError, match="--attention takes one decoder block"):
        head_attention(lm_of(counter_folder), PROMPT, "embeddings")


def test_too_big_for_memory_says_so_before_loading(counter_folder, monkeypatch):
    from layerscope.models.sources import hf

    monkeypatch.setattr(hf, "available_bytes", lambda dev: 1024)
    with pytest.raises(LayerscopeError, match=r"needs 0\.0 GiB of weights; cpu has 0\.0 GiB available"):
        load_model(str(counter_folder), weights="auto", device="cpu")
