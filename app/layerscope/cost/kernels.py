"""Which kernels the counted pass runs, so the count does not depend on torch's choice.

Two choices would make the same model cost differently by device:

- ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` take a fused "fast path"
  on CPU and CUDA in eval mode without gradients (one op for the whole layer) but the
  ordinary path on meta. The counted pass runs under ``attention.AttentionMode``, a
  function mode on the calling thread, and with a function mode active both modules take
  the ordinary path: every device runs the same projections and attention and allocates
  the same activations. Torch's global switch is never touched, so another thread's model
  keeps its fast path.
- On meta, ``scaled_dot_product_attention`` falls back to its math decomposition, which
  materialises the S×S scores that every real device's fused kernel never allocates (at
  4,096 tokens that is gigabytes per layer). The mode sends meta calls, direct or inside
  ``nn.MultiheadAttention``, to the fused CPU kernel's meta function instead, grouped-query
  attention included, so memory is counted as a CPU or GPU run spends it; FLOPs are the
  same either way.
"""

from __future__ import annotations

import torch

from layerscope.attention import AttentionCall, AttentionMode
from layerscope.thirdparty import cpu_flash_attention


def reference_kernels(*, on_meta: bool) -> AttentionMode:
    """Around one counted pass: ordinary attention paths, and meta attention as the fused kernel."""
    return AttentionMode(fused_attention if on_meta else _as_torch_does)


def _as_torch_does(call: AttentionCall) -> torch.Tensor:
    return call.reference()


def fused_attention(call: AttentionCall) -> torch.Tensor:
    """Attention with meta tensors sent to the fused CPU kernel's meta function; any other
    tensor goes to torch's own function unchanged."""
    fused = _fused_on_meta(call)
    return fused if fused is not None else call.reference()


def _fused_on_meta(call: AttentionCall) -> torch.Tensor | None:
    query = call.query
    if query.device.type != "meta" or call.dropout_p or query.dim() != 4 or not _heads_fit(call):
        return None  # elsewhere torch picks the kernel itself; a mistake keeps the reference path's error
    try:
        return cpu_flash_attention(
            query, call.key, call.value, is_causal=call.is_causal, attn_mask=call.attn_mask, scale=call.scale
        )
    except RuntimeError:
        return None


def _heads_fit(call: AttentionCall) -> bool:
    """Equal heads, or grouped-query attention asked for with query heads a multiple of key heads."""
    q, k = call.query.shape[1], call.key.shape[1]
    return q == k or (call.enable_gqa and k > 0 and q % k == 0)
