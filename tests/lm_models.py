"""Language model folders for the lens tests: the counting Llama (``layerscope.lens.toy``) and a GPT-2."""

from __future__ import annotations

from pathlib import Path

import torch

from layerscope.lens.toy import CONTEXT, WORDS, save_counter, word_tokenizer

__all__ = ["CONTEXT", "WORDS", "save_counter", "save_gpt2", "word_tokenizer"]


def save_gpt2(folder: Path, *, head: bool = True) -> Path:
    """An untrained 2-block GPT-2 (learned positions, LayerNorm, a tied head) with the same
    tokenizer; ``head=False`` saves the bare ``GPT2Model``, which is no causal LM."""
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model

    torch.manual_seed(1)
    config = GPT2Config(
        vocab_size=len(WORDS) + 1,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=CONTEXT,
        bos_token_id=None,
        eos_token_id=None,
    )
    (GPT2LMHeadModel if head else GPT2Model)(config).eval().save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    return folder
