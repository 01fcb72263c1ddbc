"""Which kernels the counted pass runs, so the count does not depend on torch's choice.

Two choices would make the same model cost differently by device:

- ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` take a fused "fast path"
  on CPU and CUDA in eval mode without gradients (one op for the whole layer) but the
  ordinary path on meta. The counted pass turns the fast path off, so every device runs
  the same projections and attention and allocates the same activations; the arithmetic
  is the same, only fused differently.
- On meta, ``scaled_dot_product_attention`` falls back to its math decomposition, which
  materialises the S×S scores that every real device's fused kernel never allocates (at
  4,096 tokens that is gigabytes per layer). Meta calls go to the fused CPU kernel's meta
  function instead, grouped-query attention and ``nn.MultiheadAttention`` included, so
  memory is counted as a CPU or GPU run spends it; FLOPs are the same either way.
"""

from __future__ import annotations

import threading

import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode


class _FastPathSwitch:
    """The fast path's switch is process-wide: it is off while any counted pass runs, in any
    thread, and back to what it was when the last one ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._passes = 0
        self._before = True

    def hold_off(self) -> None:
        with self._lock:
            if self._passes == 0:
                self._before = torch.backends.mha.get_fastpath_enabled()
                torch.backends.mha.set_fastpath_enabled(False)
            self._passes += 1

    def release(self) -> None:
        with self._lock:
            self._passes -= 1
            if self._passes == 0:
                torch.backends.mha.set_fastpath_enabled(self._before)


_FAST_PATH = _FastPathSwitch()


class ReferenceKernels:
    """Around one counted pass: the attention fast path off, meta attention as the fused kernel."""

    def __init__(self, *, on_meta: bool) -> None:
        self._meta_attention = _FusedAttentionOnMeta() if on_meta else None

    def __enter__(self) -> ReferenceKernels:
        _FAST_PATH.hold_off()
        if self._meta_attention is not None:
            self._meta_attention.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._meta_attention is not None:
                self._meta_attention.__exit__(*exc)
        finally:
            _FAST_PATH.release()


_REFERENCE_ATTENTION = F.scaled_dot_product_attention


class _FusedAttentionOnMeta(TorchFunctionMode):
    """Meta attention as the fused kernel, called directly or from ``nn.MultiheadAttention``."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _REFERENCE_ATTENTION:
            return fused_attention(*args, **kwargs)
        if func is F.multi_head_attention_forward:
            with _FUNCTIONAL_ATTENTION:
                return func(*args, **kwargs)
        return func(*args, **kwargs)


def fused_attention(query, key, value, *args, **kwargs) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` with meta tensors sent to the fused CPU kernel's meta
    function; any other tensor goes to torch's own function unchanged."""
    fused = _fused_on_meta(query, key, value, *args, **kwargs)
    return fused if fused is not None else _REFERENCE_ATTENTION(query, key, value, *args, **kwargs)


class _FunctionalAttention:
    """``F.multi_head_attention_forward`` calls attention through its module's global name, where
    a function mode cannot see it (a mode does not see calls nested in a call it handles). While
    a meta pass runs it, that name is ``fused_attention``, which changes nothing for other
    devices, so another thread's forward in the meantime computes exactly what it would have."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._passes = 0

    def __enter__(self) -> None:
        with self._lock:
            if self._passes == 0:
                F.scaled_dot_product_attention = fused_attention
            self._passes += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._passes -= 1
            if self._passes == 0:
                F.scaled_dot_product_attention = _REFERENCE_ATTENTION


_FUNCTIONAL_ATTENTION = _FunctionalAttention()


def _fused_on_meta(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                   enable_gqa=False) -> torch.Tensor | None:
    if query.device.type != "meta" or dropout_p or query.dim() != 4 or not _heads_fit(query, key, enable_gqa):
        return None  # elsewhere torch picks the kernel itself; a mistake keeps the reference path's error
    try:
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            query, key, value, 0.0, is_causal, attn_mask=attn_mask, scale=scale)[0]
    except RuntimeError:
        return None


def _heads_fit(query: torch.Tensor, key: torch.Tensor, enable_gqa: bool) -> bool:
    """Equal heads, or grouped-query attention asked for with query heads a multiple of key heads."""
    q, k = query.shape[1], key.shape[1]
    return q == k or (enable_gqa and k > 0 and q % k == 0)
