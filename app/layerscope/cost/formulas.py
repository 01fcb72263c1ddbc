"""FLOP formulas torch's counter lacks, and how to tell an op that should have had one.

torch's ``FlopCounterMode`` knows matmuls, convolutions and the CUDA attention kernels.
The kernels the CPU picks for the same work (fused attention, oneDNN recurrent layers)
have no formula in its registry, so a transformer or an LSTM would cost nothing on the
CPU and its full price on meta. Each formula here counts what the op computes whatever
kernel runs it, in torch's convention: 2 FLOPs per multiply-accumulate.

The closed-form products torch leaves out (``mv``, ``dot``, ``addmv``, ``addbmm``,
``nn.Bilinear``'s ``_trilinear``, ``cdist``'s two kernels) are counted here too. Any other op
that ran without a formula is reported by name unless it is known to cost nothing
(``zero_cost``), so a zero is never silent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.utils.flop_counter import sdpa_flop_count

from layerscope.thirdparty import (
    CDIST_FORWARD,
    CPU_FLASH_ATTENTION,
    CUDNN_RNN,
    EUCLIDEAN_DIST,
    FUSED_GRU_CELL,
    FUSED_LSTM_CELL,
    NATIVE_MULTI_HEAD_ATTENTION,
    TRANSFORMER_ENCODER_LAYER,
    TRILINEAR,
)

aten = torch.ops.aten
Shape = Sequence[int]


def cpu_attention_flops(
    query_shape: Shape, key_shape: Shape, value_shape: Shape, *_args, out_shape=None, **_kwargs
) -> int:
    """The CPU's fused attention (grouped heads included): QKᵀ and the product with V."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def recurrent_flops(input_shape: Shape, weights: Sequence[Shape], hidden_size: int = 0, proj_size: int = 0) -> int:
    """An RNN, GRU or LSTM kernel: every weight matrix (input-to-hidden, hidden-to-hidden, the
    projection) is applied once per time step and batch element, whatever the layer or the
    direction, so the MACs are the steps (``input`` is ``T×B×I``, ``B×T×I`` or packed ``ΣB×I``)
    times the sum of the matrices' sizes. Biases and gate nonlinearities are elementwise."""
    steps = math.prod(input_shape[:-1])
    return 2 * steps * sum(math.prod(w) for w in weights if len(w) == 2)


def _onednn_rnn_layer(input_shape, w_ih, w_hh, *_args, out_shape=None, **_kwargs) -> int:
    """``aten.mkldnn_rnn_layer``: one layer, one direction (the CPU's LSTM, GRU and RNN)."""
    return recurrent_flops(input_shape, [w_ih, w_hh])


def _cudnn_rnn(input_shape, weights, *_args, out_shape=None, **_kwargs) -> int:
    """``aten._cudnn_rnn`` / ``aten.miopen_rnn``: every layer and direction in one call."""
    return recurrent_flops(input_shape, weights)


def _fused_cell(*_args, out_shape=None, **_kwargs) -> int:
    """CUDA's fused LSTM/GRU cells get their gates from matmuls counted before them: the
    cell itself only adds and squashes."""
    return 0


def _projections(batch_tokens: int, *weights: Shape) -> int:
    return 2 * batch_tokens * sum(math.prod(w) for w in weights)


def _attention_products(query_shape: Shape, key_shape: Shape, embed_dim: int) -> int:
    """QKᵀ and × V over all heads: ``2 · B · Lq · Lk · E`` MACs."""
    batch = math.prod(query_shape[:-2]) if len(query_shape) > 2 else 1
    return 2 * 2 * batch * query_shape[-2] * key_shape[-2] * embed_dim


def _native_mha(
    query_shape,
    key_shape,
    value_shape,
    embed_dim,
    _heads,
    qkv_weight,
    _qkv_bias,
    proj_weight,
    *_args,
    out_shape=None,
    **_kwargs,
) -> int:
    """``nn.MultiheadAttention``'s fast path: the q, k, v and output projections, and attention."""
    q_rows, kv_rows = math.prod(query_shape[:-1]), math.prod(key_shape[:-1])
    e = embed_dim * embed_dim  # qkv_weight is 3E×E: one E×E block each
    return (
        2 * (q_rows * e + 2 * kv_rows * e)
        + _projections(q_rows, proj_weight)
        + _attention_products(query_shape, key_shape, embed_dim)
    )


def _encoder_layer(
    src_shape, embed_dim, _heads, qkv_weight, _qkv_bias, proj_weight, _proj_bias, *args, out_shape=None, **_kwargs
) -> int:
    """``nn.TransformerEncoderLayer``'s fast path: attention as above plus the two FFN matrices."""
    ffn_1, ffn_2 = args[7], args[9]  # after use_gelu, norm_first, eps, norm_weight/bias_1, norm_weight/bias_2
    rows = math.prod(src_shape[:-1])
    return _projections(rows, qkv_weight, proj_weight, ffn_1, ffn_2) + _attention_products(
        src_shape, src_shape, embed_dim
    )


def _mv(matrix_shape: Shape, vector_shape: Shape, *_args, out_shape=None, **_kwargs) -> int:
    """``mv``: an n×m matrix times an m-vector, n·m MACs."""
    return 2 * math.prod(matrix_shape)


def _addmv(_self_shape: Shape, matrix_shape: Shape, vector_shape: Shape, *_args, out_shape=None, **_kwargs) -> int:
    """``addmv``: the ``mv`` product; the added vector is elementwise."""
    return 2 * math.prod(matrix_shape)


def _dot(a_shape: Shape, _b_shape: Shape, *_args, out_shape=None, **_kwargs) -> int:
    """``dot`` / ``vdot``: n MACs."""
    return 2 * math.prod(a_shape)


def _addbmm(_self_shape: Shape, batch1: Shape, batch2: Shape, *_args, out_shape=None, **_kwargs) -> int:
    """``addbmm``: b products of n×m by m×p, summed: b·n·m·p MACs."""
    return 2 * math.prod(batch1) * batch2[-1]


def _trilinear(
    i1: Shape,
    i2: Shape,
    i3: Shape,
    expand1: Sequence[int],
    expand2: Sequence[int],
    expand3: Sequence[int],
    *_args,
    out_shape=None,
    **_kwargs,
) -> int:
    """``_trilinear`` (``nn.Bilinear``, ``F.bilinear``): each input gets size-1 axes at its
    ``expand`` positions and the product runs over every index of the broadcast space, one
    MAC per index: N·out·in1·in2 for ``nn.Bilinear``."""
    shapes = [_expanded(list(shape), expand) for shape, expand in ((i1, expand1), (i2, expand2), (i3, expand3))]
    return 2 * math.prod(max(sizes) for sizes in zip(*shapes, strict=True))


def _expanded(shape: list[int], expand: Sequence[int]) -> list[int]:
    for axis in sorted(expand):
        shape.insert(axis, 1)
    return shape


def _distances(x1: Shape, x2: Shape, *_args, out_shape=None, **_kwargs) -> int:
    """``_cdist_forward`` / ``_euclidean_dist``: one MAC per coordinate of every pair of
    points, batch·P·R·M (``cdist`` picks the kernel by size; both count the same)."""
    return 2 * math.prod(x1) * x2[-2]


MISSING_FORMULAS = {
    aten.mv: _mv,
    aten.addmv: _addmv,
    aten.dot: _dot,
    aten.vdot: _dot,
    aten.addbmm: _addbmm,
    TRILINEAR: _trilinear,
    CDIST_FORWARD: _distances,
    EUCLIDEAN_DIST: _distances,
    CPU_FLASH_ATTENTION: cpu_attention_flops,
    aten.mkldnn_rnn_layer: _onednn_rnn_layer,
    CUDNN_RNN: _cudnn_rnn,
    aten.miopen_rnn: _cudnn_rnn,
    FUSED_LSTM_CELL: _fused_cell,
    FUSED_GRU_CELL: _fused_cell,
    NATIVE_MULTI_HEAD_ATTENTION: _native_mha,
    TRANSFORMER_ENCODER_LAYER: _encoder_layer,
}
