"""Which ops cost nothing by layerscope's convention, decided by what an op is.

An op that ran without a FLOP formula is named under ``uncounted_ops`` unless it is one of
these: a view or in-place variant of one (its schema says its result aliases an input),
an elementwise op (torch tags it ``pointwise``), a reduction (tagged ``reduction``), or an
op in ``ZERO_COST_OPS``: copies and data movement, indexing, factories, softmax, norms,
pooling and interpolation. Those conventions are the cost guide's table. Anything else with
floating-point inputs (a custom op called ``mymm``, a new aten kernel) is named, whatever
its name says, so a zero is never silent.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import torch

from layerscope.cost.records import tensors_in
from layerscope.thirdparty import is_a_view

# Names as torch's dispatcher spells them (private names are strings here, never called:
# tests/test_cost_kernels.py checks every one is still an aten op).
_DATA_MOVEMENT = {
    "_to_copy",
    "to",
    "copy",
    "clone",
    "contiguous",
    "cat",
    "stack",
    "concat",
    "_unsafe_view",
    "unsafe_split",
    "unsafe_split_with_sizes",
    "unsafe_chunk",
    "split_with_sizes_copy",
    "roll",
    "flip",
    "repeat",
    "repeat_interleave",
    "constant_pad_nd",
    "reflection_pad1d",
    "reflection_pad2d",
    "reflection_pad3d",
    "replication_pad1d",
    "replication_pad2d",
    "replication_pad3d",
    "_reshape_alias",
    "index",
    "_unsafe_index",
    "index_select",
    "gather",
    "scatter",
    "scatter_add",
    "index_put",
    "_unsafe_index_put",
    "index_add",
    "index_copy",
    "masked_scatter",
    "masked_select",
    "take",
    "embedding",
    "_embedding_bag",
    "embedding_bag",
    "narrow_copy",
    "lift_fresh_copy",
    "where",
    "tril",
    "triu",
    "pixel_shuffle",
    "pixel_unshuffle",
    "native_channel_shuffle",
    "channel_shuffle",
    "im2col",
    "col2im",
    "sort",
    "topk",
    "argsort",
    "cumsum",
    "cumprod",
    "nonzero",
    "unique_dim",
    "_unique2",
    "bucketize",
    "searchsorted",
    "one_hot",
    "diag_embed",
    "nan_to_num",
}
_FACTORIES = {
    "new_zeros",
    "new_ones",
    "new_empty",
    "new_full",
    "new_empty_strided",
    "empty_like",
    "zeros_like",
    "ones_like",
    "full_like",
    "rand_like",
    "randn_like",
    "fill",
    "zero",
    "bernoulli",
    "native_dropout",
    "dropout",
    "feature_dropout",
    "alpha_dropout",
    "uniform",
    "normal",
    "exponential",
    "resize",
    "set",
}
_ELEMENTWISE_UNTAGGED = {
    "hardswish",
    "_prelu_kernel",
    "glu",
    "log_sigmoid_forward",
    "div",
    "_softmax",
    "_log_softmax",
    "_safe_softmax",
    "softmax",
    "log_softmax",
    "rrelu_with_noise",
    "_masked_softmax",
}
_NORMS = {
    "native_batch_norm",
    "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training",
    "_native_batch_norm_legit_functional",
    "_batch_norm_with_update",
    "_batch_norm_no_update",
    "cudnn_batch_norm",
    "miopen_batch_norm",
    "native_layer_norm",
    "native_group_norm",
    "_fused_rms_norm",
    "rms_norm",
    "_weight_norm_interface",
    "renorm",
}
_POOLING = {
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "max_pool2d_with_indices",
    "max_pool3d_with_indices",
    "mkldnn_max_pool2d",
    "adaptive_avg_pool1d",
    "_adaptive_avg_pool2d",
    "_adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "fractional_max_pool2d",
    "fractional_max_pool3d",
}
_INTERPOLATION = {
    "upsample_nearest1d",
    "upsample_nearest2d",
    "upsample_nearest3d",
    "_upsample_nearest_exact1d",
    "_upsample_nearest_exact2d",
    "_upsample_nearest_exact3d",
    "upsample_linear1d",
    "upsample_bilinear2d",
    "_upsample_bilinear2d_aa",
    "upsample_bicubic2d",
    "_upsample_bicubic2d_aa",
    "upsample_trilinear3d",
    "grid_sampler_2d",
    "grid_sampler_3d",
    "affine_grid_generator",
}
ZERO_COST_OPS = frozenset(_DATA_MOVEMENT | _FACTORIES | _ELEMENTWISE_UNTAGGED | _NORMS | _POOLING | _INTERPOLATION)
_ZERO_COST_TAGS = (torch.Tag.pointwise, torch.Tag.reduction)


def op_name(packet: Any) -> str:
    """``_cdist_forward`` for an aten op, ``mylib.mymm`` for any other namespace's."""
    text = str(packet)
    return packet.__name__ if text.startswith("aten.") else text


@cache
def costs_nothing(packet: Any) -> bool:
    """Whether an op without a FLOP formula is free by convention (see the module's docstring)."""
    if not str(packet).startswith("aten."):
        return False  # another library's op: only its author knows what it computes
    name = packet.__name__
    overloads = [getattr(packet, o) for o in packet.overloads()]
    if any(torch.Tag.inplace in o.tags for o in overloads) and name.endswith("_"):
        base = getattr(torch.ops.aten, name.rstrip("_"), None)
        return base is not None and costs_nothing(base)  # relu_ costs what relu costs; copy_, fill_ move data
    if name in ZERO_COST_OPS:
        return True
    if any(tag in o.tags for o in overloads for tag in _ZERO_COST_TAGS):
        return True
    return any(is_a_view(o) for o in overloads)  # views


def has_floating_input(args: tuple, kwargs: dict) -> bool:
    """Whether an op read floating-point (or complex) data: integer index work costs no MACs."""
    return any(t.is_floating_point() or t.is_complex() for t in tensors_in((args, kwargs)))
