"""Each head's attention from one position over the prompt, for one decoder block.

The probabilities are recorded by ``AttentionRecorder`` (``layerscope.cam.attention``) on a
scoped call: the model runs on its own attention implementation (SDPA by default), and
every attention call is computed in the open with its causal mask (``explicit_attention``)
on this thread only, so what is shown is what the model computed, not a re-run in eager mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.hooks import RemovableHandle

from layerscope.cam.attention import AttentionRecorder
from layerscope.errors import LayerscopeError
from layerscope.lens.language import LanguageModel
from layerscope.lens.logit_lens import EMBEDDINGS, choose_layers, choose_positions, decoder_blocks


@dataclass(frozen=True)
class HeadAttention:
    """``heads[h][t]``: head ``h``'s attention from ``position`` to token ``t`` of ``tokens``."""

    layer: str
    position: int
    tokens: list[str]
    heads: list[list[float]]

    def as_json(self) -> dict[str, object]:
        return {"layer": self.layer, "heads": self.heads}


def head_attention(lm: LanguageModel, prompt: str, layer: str, position: str | int = -1) -> HeadAttention:
    """One recorded forward; the block's probabilities ``H×T`` at ``position`` (``all`` means the last)."""
    ids = lm.encode(prompt)
    blocks = decoder_blocks(lm.model)
    chosen = choose_layers(layer, blocks)
    if len(chosen) != 1 or chosen[0] == EMBEDDINGS:
        raise LayerscopeError(
            f"--attention takes one decoder block ({blocks[0]} … {blocks[-1]} or a block number), not {layer!r}"
        )
    count = ids.shape[-1]
    row = choose_positions(-1 if position == "all" else position, count)[0]
    handles: list[RemovableHandle] = []
    recorder = AttentionRecorder(lm.model, handles)
    try:
        with torch.no_grad(), recorder.recording():
            lm.model(input_ids=ids, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    probs = next((r.probs for r in recorder.records if r.block == chosen[0] and r.probs is not None), None)
    if probs is None:
        raise LayerscopeError(f"{chosen[0]} ran no attention in {lm.loaded.spec}'s forward pass")
    heads = probs[0, :, row, :].float().tolist()
    return HeadAttention(chosen[0], row, lm.token_texts(ids[0].tolist()), heads)
