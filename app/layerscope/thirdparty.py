"""Every private API of torch and torchvision that layerscope uses, in one place.

A name with a leading underscore in another library can change in any release without a
deprecation. Gathered here, each use has one public name in layerscope, a docstring that says
why no public API does the job, and a test in tests/test_thirdparty.py that fails loudly, by
name, when the library changes it. The rest of layerscope imports these names and never
reaches behind a library's underscore itself.

Textual's private imports live in ``layerscope.tui.thirdparty``: the engine must import no
textual (tests/test_engine_is_headless.py), so the two halves are two small modules with the
same name, one per layer.

What stays outside on purpose: ``nn.Module``'s own containers (``_modules``, ``_parameters``,
``_buffers``, its hook dicts), read by the tree, the counts and the CAM hooks. They are
torch's de-facto extension surface (``nn.Module.__getattr__`` reads them; every module library
reads them) and are tested here all the same (``test_module_containers_are_ordered_dicts``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten

# Private aten ops the counted pass needs a FLOP formula for (``cost/formulas``): the kernels
# the CPU picks for attention and recurrent layers, which torch's counter has no formula for.
CPU_FLASH_ATTENTION = aten._scaled_dot_product_flash_attention_for_cpu
CUDNN_RNN = aten._cudnn_rnn
FUSED_LSTM_CELL = aten._thnn_fused_lstm_cell
FUSED_GRU_CELL = aten._thnn_fused_gru_cell
NATIVE_MULTI_HEAD_ATTENTION = aten._native_multi_head_attention
TRANSFORMER_ENCODER_LAYER = aten._transformer_encoder_layer_fwd
# Batch norm in eval mode as the probe dispatches it: its two saved-statistics outputs are C
# elements on meta, empty on the CPU (the counted pass keeps only the first, ``cost/counter``).
BATCH_NORM_NO_TRAINING = aten._native_batch_norm_legit_no_training
# Closed-form products torch's counter has no formula for: ``nn.Bilinear``'s kernel and the two
# kernels ``torch.cdist`` dispatches to (which one depends on the sizes).
TRILINEAR = aten._trilinear
CDIST_FORWARD = aten._cdist_forward
EUCLIDEAN_DIST = aten._euclidean_dist


def cpu_flash_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    is_causal: bool = False,
    attn_mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """The fused CPU attention kernel's output (no dropout), on any device that has the kernel
    or on ``meta`` (shapes only): what ``F.scaled_dot_product_attention`` runs on the CPU.

    Raises ``RuntimeError`` where the kernel refuses the inputs (torch's own message)."""
    return CPU_FLASH_ATTENTION(query, key, value, 0.0, is_causal, attn_mask=attn_mask, scale=scale)[0]


def is_a_view(overload: Any) -> bool:
    """Whether an aten op overload returns a view of an input: its result aliases an input and
    it writes nothing (in-place and ``out=`` variants alias what they write). Read from its schema
    (``_schema``), the only place torch records it; ``torch.Tag`` has no view tag."""
    schema = overload._schema
    return not schema.is_mutable and any(r.alias_info is not None for r in schema.returns)


def cpu_has_amx_tiles() -> bool:
    """Whether this CPU has AMX tiles (fast bfloat16 matrix products): torch's own check, which
    no public API exposes; False on a torch without it."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check is not None and check())


def storage_key(t: torch.Tensor) -> int:
    """One number per storage, the same for every view of it, while the storage lives: how the
    counted pass tells a fresh allocation from a view (``data_ptr()`` is 0 on meta for all)."""
    return t.untyped_storage()._cdata


class _GlobalOnly:
    """Stands in for ``FlopCounterMode``'s module tracker: layerscope attributes per module
    itself, so torch's own per-module table (a hook pair on every module, half the pass on a
    10,000-module model) is never built. torch's table keeps its "Global" row."""

    parents = frozenset({"Global"})

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class OpCountingFlopMode(FlopCounterMode):
    """``FlopCounterMode`` with a public hook per op, ``op_counted``, and no per-module table.

    torch offers no public hook after an op's FLOPs are counted, so this overrides its private
    ``_count_flops`` and replaces its private ``mod_tracker``; subclasses override
    ``op_counted`` only. ``flop_registry`` and ``flop_counts`` are public attributes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mod_tracker = _GlobalOnly()  # type: ignore[assignment]  # duck-typed: what torch reads of it

    def op_counted(self, func_packet: Any, flops: int, out: Any, args: tuple, kwargs: dict) -> None:
        """Called after every op torch counted, with the FLOPs it added to the "Global" row."""

    def _count_flops(self, func_packet: Any, out: Any, args: tuple, kwargs: dict) -> Any:
        counted = self.flop_counts["Global"]
        before = counted.get(func_packet, 0)
        super()._count_flops(func_packet, out, args, kwargs)
        self.op_counted(func_packet, counted.get(func_packet, 0) - before, out, args, kwargs)
        return out
