"""``AttentionMode``: a function mode that sends every attention call to one kernel."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from layerscope.attention.calls import AttentionCall
from layerscope.attention.mha import bind_arguments, decomposable, multi_head_attention

Kernel = Callable[[AttentionCall], Tensor]

# Taken once, at import: the mode compares the function it is handed with these, so a later
# reassignment of ``F.scaled_dot_product_attention`` by anyone cannot redirect us.
_SDPA = F.scaled_dot_product_attention
_MHA = F.multi_head_attention_forward
_SOFTMAX = frozenset({torch.Tensor.softmax, torch.softmax, F.softmax})


class AttentionMode(TorchFunctionMode):
    """While entered (on this thread only), every ``F.scaled_dot_product_attention`` call, direct
    or inside ``nn.MultiheadAttention``, is computed by ``kernel``; everything else runs as is.

    ``probabilities``, when given, also sees every softmax over the last axis of an
    ``N×H×T×T`` tensor: the probabilities of an eager attention path written out by hand
    (timm with ``fused_attn`` off, Hugging Face's eager attention), which runs no attention
    kernel to hand over. The caller gets the very tensor the model goes on with.

    A side effect that callers rely on: with any function mode active, ``nn.MultiheadAttention``
    and ``nn.TransformerEncoderLayer`` skip their fused fast paths (they check
    ``has_torch_function``), so they run the ordinary, interceptable path on every device,
    on this thread alone, with torch's global fast-path switch untouched.
    """

    def __init__(self, kernel: Kernel, probabilities: Callable[[Tensor], None] | None = None) -> None:
        super().__init__()
        self.kernel = kernel
        self.probabilities = probabilities

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.probabilities is not None and func in _SOFTMAX:
            out = func(*args, **kwargs)
            if _attention_shaped(out, kwargs.get("dim", args[1] if len(args) > 1 else None)):
                self.probabilities(out)
            return out
        if func is _SDPA:
            return self.kernel(AttentionCall.of(*args, **kwargs))
        if func is _MHA:
            arguments = bind_arguments(args, kwargs)
            if decomposable(arguments):
                return multi_head_attention(arguments, self.kernel)
        return func(*args, **kwargs)


def _attention_shaped(out: object, dim: object) -> bool:
    return isinstance(out, Tensor) and out.dim() == 4 and dim in (-1, 3) and out.shape[-1] == out.shape[-2]
