"""Every attention call of a forward pass, seen on the calling thread only.

PyTorch computes attention in fused kernels that never return the probabilities
(``scaled_dot_product_attention``; ``nn.MultiheadAttention``'s fast path), and picks the
kernel per device. Two parts of layerscope need to step in: the counted pass (``cost``),
which must run the same kernel on every device, and the transformer-native maps
(``cam.attention``), which need the probabilities themselves, inside the autograd graph.
Both go through ``AttentionMode``: a ``TorchFunctionMode`` entered on the calling thread,
which hands every attention call to a kernel of the caller's choosing. Nothing of torch is
reassigned, no process-wide switch is flipped, and another thread running a model meanwhile
sees torch exactly as it is.
"""

from layerscope.attention.calls import AttentionCall, explicit_attention
from layerscope.attention.mode import AttentionMode

__all__ = ["AttentionCall", "AttentionMode", "explicit_attention"]
