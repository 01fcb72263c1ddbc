"""One attention call as data, and attention computed with its probabilities in the open."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class AttentionCall:
    """The arguments of one ``F.scaled_dot_product_attention`` call (``query``: ``…×H×L×d``)."""

    query: Tensor
    key: Tensor
    value: Tensor
    attn_mask: Tensor | None = None
    dropout_p: float = 0.0
    is_causal: bool = False
    scale: float | None = None
    enable_gqa: bool = False

    @classmethod
    def of(
        cls,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        attn_mask: Tensor | None = None,
        dropout_p: float = 0.0,
        is_causal: bool = False,
        scale: float | None = None,
        enable_gqa: bool = False,
    ) -> AttentionCall:
        """From ``scaled_dot_product_attention``'s own signature (positional or keyword)."""
        return cls(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)

    def reference(self) -> Tensor:
        """What torch itself computes for this call."""
        return F.scaled_dot_product_attention(
            self.query,
            self.key,
            self.value,
            attn_mask=self.attn_mask,
            dropout_p=self.dropout_p,
            is_causal=self.is_causal,
            scale=self.scale,
            enable_gqa=self.enable_gqa,
        )


def explicit_attention(call: AttentionCall) -> tuple[Tensor, Tensor]:
    """``softmax(QKᵀ·scale + mask)·V`` step by step: the output and the probabilities ``…×H×L×S``.

    The probabilities are the very tensor the output is computed from, so a gradient taken
    with respect to them is ∂output/∂A, which no fused kernel can give. Grouped-query
    attention repeats each key/value head over its group of query heads, as torch does.
    """
    q, k, v = call.query, call.key, call.value
    if call.enable_gqa and q.shape[-3] != k.shape[-3]:
        group = q.shape[-3] // k.shape[-3]
        k, v = k.repeat_interleave(group, dim=-3), v.repeat_interleave(group, dim=-3)
    scale = call.scale if call.scale is not None else 1.0 / math.sqrt(q.shape[-1])
    logits = (q @ k.transpose(-2, -1)) * scale
    if call.is_causal:
        allowed = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
        logits = logits.masked_fill(~allowed, float("-inf"))
    if call.attn_mask is not None:
        mask = call.attn_mask
        logits = logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else logits + mask
    probs = torch.softmax(logits, dim=-1)
    used = F.dropout(probs, call.dropout_p) if call.dropout_p > 0 else probs
    return used @ v, probs
