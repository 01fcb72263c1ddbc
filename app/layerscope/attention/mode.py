"""``AttentionMode``: a function mode that sends every attention call to one kernel."""

from __future__ import annotations

from collections.abc import Callable

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


class AttentionMode(TorchFunctionMode):
    """While entered (on this thread only), every ``F.scaled_dot_product_attention`` call, direct
    or inside ``nn.MultiheadAttention``, is computed by ``kernel``; everything else runs as is.

    A side effect that callers rely on: with any function mode active, ``nn.MultiheadAttention``
    and ``nn.TransformerEncoderLayer`` skip their fused fast paths (they check
    ``has_torch_function``), so they run the ordinary, interceptable path on every device,
    on this thread alone, with torch's global fast-path switch untouched.
    """

    def __init__(self, kernel: Kernel) -> None:
        super().__init__()
        self.kernel = kernel

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _SDPA:
            return self.kernel(AttentionCall.of(*args, **kwargs))
        if func is _MHA:
            arguments = bind_arguments(args, kwargs)
            if decomposable(arguments):
                return multi_head_attention(arguments, self.kernel)
        return func(*args, **kwargs)
