"""A loaded Hugging Face causal language model with its tokenizer, and its prompt checks.

Everything the lens refuses, it refuses here in one line, before any forward pass: a
model that is not a causal LM (named for what it is), a folder without a tokenizer, an
empty prompt, a prompt longer than the model's context, and a layer that is not a block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from layerscope.errors import LayerscopeError, first_line
from layerscope.models.loaded import LoadedModel
from layerscope.models.sources.hf_folder import resolve_folder

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
# where configs keep the longest input the positions were made for
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


@dataclass(frozen=True)
class LanguageModel:
    """The model, its tokenizer and its context length (None when the config names none)."""

    loaded: LoadedModel
    tokenizer: Any
    context: int | None

    @property
    def model(self) -> nn.Module:
        return self.loaded.model

    def encode(self, prompt: str) -> Tensor:
        """``1×T`` token ids on the model's device, special tokens (a BOS) as the tokenizer adds them."""
        if not prompt.strip():
            raise LayerscopeError("the prompt is empty; give some text with --prompt")
        ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"]
        if ids.numel() == 0:
            raise LayerscopeError(f"the prompt {prompt[:40]!r} makes no tokens")
        if self.context is not None and ids.shape[-1] > self.context:
            raise LayerscopeError(
                f"the prompt is {ids.shape[-1]:,} tokens; {self.loaded.spec} reads at most "
                f"{self.context:,} (its context)"
            )
        return ids.to(self.loaded.device)

    def token_texts(self, ids: list[int]) -> list[str]:
        """Each token as the text it stands for (``decode`` one at a time: a BPE ``Ġthe`` reads `` the``)."""
        return [self.tokenizer.decode([i]) for i in ids]


def language_model(loaded: LoadedModel) -> LanguageModel:
    """``loaded`` checked to be a causal LM with weights, and its folder's tokenizer."""
    check_causal_lm(loaded)
    tokenizer = load_tokenizer(loaded.spec)
    config = getattr(loaded.model, "config", None)
    context = next((v for k in CONTEXT_KEYS if isinstance(v := getattr(config, k, None), int) and v > 0), None)
    return LanguageModel(loaded, tokenizer, context)


def check_causal_lm(loaded: LoadedModel) -> None:
    """A Hugging Face ``*ForCausalLM`` (or ``*LMHeadModel``) with real weights, else one line saying what it is."""
    name = type(loaded.model).__name__
    if loaded.source != "huggingface":
        raise LayerscopeError(
            f"{loaded.spec} is a {loaded.source} model ({name}), not a causal language model; "
            "lens reads Hugging Face causal LM folders"
        )
    if name not in _causal_lm_classes() or not isinstance(_output_head(loaded.model), nn.Module):
        raise LayerscopeError(
            f"{loaded.spec} is a {name}, not a causal language model (a *ForCausalLM class with an output head)"
        )
    if loaded.device.type == "meta":
        raise LayerscopeError(f"{loaded.spec} has no weights (config only): the lens needs the trained model")


def _causal_lm_classes() -> set[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    names: set[str] = set()
    for value in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        names.update([value] if isinstance(value, str) else value)
    return names


def _output_head(model: nn.Module) -> object:
    getter = getattr(model, "get_output_embeddings", None)
    return getter() if callable(getter) else None


def load_tokenizer(spec: str) -> Any:
    """The folder's own tokenizer, never downloaded and never its code."""
    folder = resolve_folder(spec)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise LayerscopeError(
            f"{spec} has no tokenizer ({', '.join(TOKENIZER_FILES[:3])}, …): the lens needs "
            "one to read the prompt; save it beside the model (tokenizer.save_pretrained)"
        )
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except (ValueError, OSError, TypeError, KeyError, ImportError) as exc:
        raise LayerscopeError(f"cannot read the tokenizer of {spec}: {first_line(exc)}") from exc


def no_grad_forward(model: nn.Module, ids: Tensor) -> Tensor:
    """The model's logits for ``ids`` (``1×T×V``), without a cache or gradients."""
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False).logits
