"""The precision of Score-CAM's masked forwards: float32, or bfloat16 where it is much faster.

Only the scores of the masked copies are affected: the activations, the map's arithmetic and
every other method stay float32. bfloat16 runs under ``torch.autocast`` (convolutions and
matrix products in bfloat16, the rest float32); each score is read back as float32.

``"auto"`` (the default) runs bfloat16 when all three hold, else float32:

1. the CPU's matrix units run bfloat16 natively (Intel AMX, ``amx_bf16``; ``fast_bfloat16``):
   elsewhere autocast emulates it, slower than float32;
2. the run has at least ``MIN_MASKS`` masked copies: fewer take seconds at most, and with
   few channels each score weighs more in the map (mobilenet_v2's 24-channel ``features.2``:
   r = 0.974 against float32; its 32-channel ``features.4``: 0.997);
3. one copy costs at least ``MIN_FLOPS`` floating-point operations (counted by torch's
   ``FlopCounterMode`` on one unmasked copy; ``choose_precision``).

Why the third rule: bfloat16 pays where the copies are bound by convolution arithmetic, which
is where AMX is fast, and that is the heavy models. Measured per copy on the 2-core AMX
machine this was written on, at two threads: resnet50 (8.2 GFLOPs a copy at 224×224) costs
about 2.7× less in bfloat16; mobilenet_v2 (0.6 GFLOPs, mostly depthwise convolutions and
memory traffic) 1.2–2× less, as the load and the batch size move it from run to run; a small
network more (its casts cost more than its arithmetic). A rule on the model's arithmetic is
the same on every run, so the same photo gets the same map; a rule timed on the run itself
flipped mobilenet_v2 between precisions from one run to the next on the shared machine.

What bfloat16 changes in the map: against the float32 map, r = 0.9984 (mobilenet_v2 on the
cat) and 1.0000 (on the cup); against pytorch-grad-cam's float32 map, 0.9829 and 0.9959
(float32: 0.9734 and 0.9952), all above issue 20's bar of 0.97; resnet50 (random weights,
seed 0) on the cat, 0.9995 in both precisions.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from layerscope.errors import LayerscopeError
from layerscope.running.example_inputs import ExampleInputs
from layerscope.thirdparty import cpu_has_amx_tiles

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "float32", "bfloat16")
MIN_MASKS = 256  # fewer masked copies than this: float32
MIN_FLOPS = 2e9  # floating-point operations per copy from which bfloat16 is worth it


def check_precision(precision: str) -> str:
    """``precision`` if it is one of ``PRECISIONS``, else one line saying which are."""
    if precision not in PRECISIONS:
        raise LayerscopeError(f"unknown precision {precision!r}; use one of: {', '.join(PRECISIONS)}")
    return precision


def fast_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 matrix products natively: a CPU with AMX tiles and a
    oneDNN build that uses them. GPUs are not considered (their float32 is fast already)."""
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    return cpu_has_amx_tiles()


def considered(device: torch.device, masks: int) -> bool:
    """Whether ``"auto"`` looks at the model's arithmetic before a run of ``masks`` copies on
    ``device`` (rules 1 and 2); if not, it runs float32."""
    return masks >= MIN_MASKS and fast_bfloat16(device)


def choose_precision(flops_per_copy: float) -> str:
    """The precision ``"auto"`` runs once rules 1 and 2 hold: rule 3."""
    return "bfloat16" if flops_per_copy >= MIN_FLOPS else "float32"


def flops_per_copy(model: nn.Module, copy: Tensor) -> float:
    """Floating-point operations of one forward of ``copy`` (one image), counted by layerscope's
    own counted pass (``cost``: the same kernels on every device, fused attention included, the
    figure ``tree --cost`` prints); 0 for a model the counter cannot follow."""
    from layerscope.cost import probe_cost  # the counted pass: only when a precision is chosen

    try:
        _, table = probe_cost(model, ExampleInputs((copy,)))
    except Exception:  # any failure to count: the model runs in float32
        log.debug("no operation count for %s", type(model).__name__, exc_info=True)
        return 0.0
    return float(table.total.flops)


@contextlib.contextmanager
def scores_in(precision: str, device: torch.device) -> Iterator[None]:
    """The masked forwards' arithmetic in ``precision`` (``"float32"`` or ``"bfloat16"``)."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
        yield


def label(precision: str) -> str:
    """How a map says what scored it: nothing for float32, else ``"bfloat16 scores"``."""
    return "" if precision == "float32" else f"{precision} scores"
