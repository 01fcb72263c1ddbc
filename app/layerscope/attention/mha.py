"""``F.multi_head_attention_forward`` with its attention step handed to a kernel of our choosing.

``nn.MultiheadAttention`` calls attention from inside torch's functional code, where a
function mode cannot see it (a mode sees only the outermost call it handles). So for the
calls that take the attention kernel (``need_weights=False``, no added key/value biases,
no zero-attention column, no static keys) this module runs the same steps torch runs, in
the same order and with the same intermediate tensors (so the counted pass allocates what
torch's own path allocates), and hands the ``scaled_dot_product_attention`` step to
``attend``. Every other call goes to torch's function unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from layerscope.attention.calls import AttentionCall

Attend = Callable[[AttentionCall], Tensor]
_SIGNATURE = inspect.signature(F.multi_head_attention_forward)


def bind_arguments(args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by name, defaults filled in."""
    bound = _SIGNATURE.bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def decomposable(a: dict[str, Any]) -> bool:
    """Whether the call takes the attention kernel in torch's own code (and so here)."""
    return (
        not a["need_weights"]
        and a["bias_k"] is None
        and a["bias_v"] is None
        and not a["add_zero_attn"]
        and a["static_k"] is None
        and a["static_v"] is None
        and a["query"].dim() in (2, 3)
    )


def multi_head_attention(a: dict[str, Any], attend: Attend) -> tuple[Tensor, None]:
    """torch's ``need_weights=False`` path, step for step, with ``attend`` as the kernel."""
    query, key, value = a["query"], a["key"], a["value"]
    batched = query.dim() == 3
    key_padding_mask = a["key_padding_mask"]
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        key_padding_mask = key_padding_mask.unsqueeze(0) if key_padding_mask is not None else None
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    heads = a["num_heads"]
    head_dim = embed_dim // heads
    q, k, v = _projections(query, key, value, a)
    attn_mask, is_causal = _mask(a, key_padding_mask, query.dtype, bsz, heads, tgt_len, src_len)
    q = q.view(tgt_len, bsz * heads, head_dim).transpose(0, 1).view(bsz, heads, tgt_len, head_dim)
    k = k.view(k.shape[0], bsz * heads, head_dim).transpose(0, 1).view(bsz, heads, src_len, head_dim)
    v = v.view(v.shape[0], bsz * heads, head_dim).transpose(0, 1).view(bsz, heads, src_len, head_dim)
    dropout_p = a["dropout_p"] if a["training"] else 0.0
    out = attend(AttentionCall(q, k, v, attn_mask, dropout_p, is_causal))
    out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
    out = F.linear(out, a["out_proj_weight"], a["out_proj_bias"])
    out = out.view(tgt_len, bsz, out.size(1))
    return (out if batched else out.squeeze(1)), None


def _projections(query: Tensor, key: Tensor, value: Tensor, a: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
    weight, bias = a["in_proj_weight"], a["in_proj_bias"]
    if a["use_separate_proj_weight"]:
        biases = bias.chunk(3) if bias is not None else (None, None, None)
        return (
            F.linear(query, a["q_proj_weight"], biases[0]),
            F.linear(key, a["k_proj_weight"], biases[1]),
            F.linear(value, a["v_proj_weight"], biases[2]),
        )
    e = query.size(-1)
    if key is value and query is key:  # self-attention: one packed projection
        proj = F.linear(query, weight, bias).unflatten(-1, (3, e)).unsqueeze(0).transpose(0, -2).squeeze(-2)
        proj = proj.contiguous()
        return proj[0], proj[1], proj[2]
    if key is value:
        w_q, w_kv = weight.split([e, e * 2])
        b_q, b_kv = bias.split([e, e * 2]) if bias is not None else (None, None)
        kv = F.linear(key, w_kv, b_kv).unflatten(-1, (2, e)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
        return F.linear(query, w_q, b_q), kv[0], kv[1]
    w_q, w_k, w_v = weight.chunk(3)
    b_q, b_k, b_v = bias.chunk(3) if bias is not None else (None, None, None)
    return F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)


def _mask(
    a: dict[str, Any],
    key_padding_mask: Tensor | None,
    dtype: torch.dtype,
    bsz: int,
    heads: int,
    tgt_len: int,
    src_len: int,
) -> tuple[Tensor | None, bool]:
    """torch's mask rules: boolean masks become additive ``-inf``, the padding mask joins the
    attention mask per head, and ``is_causal`` stands alone only without a padding mask."""
    key_padding_mask = _additive(key_padding_mask, dtype)
    is_causal = a["is_causal"]
    attn_mask = None if is_causal and key_padding_mask is None else _additive(a["attn_mask"], dtype)
    if key_padding_mask is not None:
        is_causal = False
    if attn_mask is not None and attn_mask.dim() == 2:
        attn_mask = attn_mask.unsqueeze(0)
    if key_padding_mask is not None:
        padding = key_padding_mask.view(bsz, 1, 1, src_len).expand(-1, heads, -1, -1).reshape(bsz * heads, 1, src_len)
        attn_mask = padding if attn_mask is None else attn_mask + padding
    if attn_mask is not None:
        single = attn_mask.size(0) == 1 and attn_mask.dim() == 3
        attn_mask = attn_mask.unsqueeze(0) if single else attn_mask.view(bsz, heads, -1, src_len)
    return attn_mask, is_causal


def _additive(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    if mask is None or mask.is_floating_point():
        return mask
    return torch.zeros_like(mask, dtype=dtype).masked_fill_(mask, float("-inf"))
