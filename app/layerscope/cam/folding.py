"""A copy of the model for Score-CAM's many inference-only forwards, batch norms folded away.

In eval mode a batch norm after a convolution is an affine map per channel, so it can be
folded into the convolution's weights and bias (``torch.fx``'s ``fuse``): the same function
to float rounding (scores agree to about 1e-6 relative), without a pass over every feature
map per norm. mobilenet_v2, whose 52 norms sit mostly after cheap depthwise convolutions,
runs its masked copies about 1.5× faster on the CPU this way; resnet50 gains little.

Nothing changes for the caller's model: the copy is made, used and dropped inside one
Score-CAM run. A model with no batch norm, one too large to copy cheaply, one with hooks
(they may change what it computes, and tracing would call them), or one that ``torch.fx``
cannot trace (data-dependent control flow, detectors, most Hugging Face models) runs as it is.
"""

from __future__ import annotations

import logging

from torch import nn
from torch.fx.experimental.optimization import fuse

log = logging.getLogger(__name__)

COPY_LIMIT = 512 * 2**20  # bytes of parameters and buffers: above this, no second copy
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def folded_copy(model: nn.Module) -> nn.Module:
    """``model`` with every batch norm that follows a convolution or linear layer folded into
    it, as a new module; ``model`` itself where folding cannot apply. ``model`` must be in eval
    mode (``model_guard`` puts it there)."""
    modules = list(model.modules())
    if not any(isinstance(m, NORMS) and m.track_running_stats for m in modules) or any(map(_hooked, modules)):
        return model
    size = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    if size > COPY_LIMIT:
        return model
    try:
        return fuse(model)
    except Exception:  # any failure to trace or copy: the model runs unfolded
        log.debug("batch norms not folded for %s", type(model).__name__, exc_info=True)
        return model


def _hooked(module: nn.Module) -> bool:
    """A hook may change what the module computes (weight norm is a pre-hook), and tracing
    would call it with placeholders: a hooked model is left as it is."""
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)
