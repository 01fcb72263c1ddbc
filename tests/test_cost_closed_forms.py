"""Issue 29: the closed-form products torch's counter skips are counted (hand counts, and torch's
own count of the same product written as ``mm``/``bmm`` as oracle), and an op that is neither
counted nor free by convention is named whatever its name says."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from layerscope.cost import probe_cost
from layerscope.cost.zero_cost import ZERO_COST_OPS, costs_nothing
from layerscope.running.example_inputs import ExampleInputs

aten = torch.ops.aten


def _torch_macs(fn, *tensors: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(*tensors)
    return counter.get_total_flops() // 2


def _macs(module: nn.Module, *tensors: torch.Tensor) -> tuple[int, dict[str, int]]:
    _, table = probe_cost(module, ExampleInputs(tensors, {}))
    return table.total.macs, table.uncounted_ops


class Call(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.fn(*tensors)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_bilinear_counts_n_out_in1_in2(device):
    with torch.device(device):
        layer, a, b = nn.Bilinear(3, 4, 5), torch.randn(2, 3), torch.randn(2, 4)
    assert _macs(layer, a, b) == (2 * 5 * 3 * 4, {})  # 120; the bias add is elementwise
    as_einsum = _torch_macs(lambda x, y: torch.einsum("ni,oij,nj->no", x, layer.weight, y), a, b)
    assert as_einsum >= 2 * 5 * 3 * 4  # torch's own count of the same contraction, as bmm steps


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize(
    ("fn", "shapes", "as_mm", "hand"),
    [
        (torch.mv, [(6, 7), (7,)], lambda m, v: m @ v[:, None], 6 * 7),
        (torch.dot, [(9,), (9,)], lambda a, b: a[None] @ b[:, None], 9),
        (lambda c, m, v: torch.addmv(c, m, v), [(6,), (6, 7), (7,)], lambda c, m, v: m @ v[:, None], 6 * 7),
        (
            lambda c, a, b: torch.addbmm(c, a, b),
            [(5, 8), (3, 5, 4), (3, 4, 8)],
            lambda c, a, b: torch.bmm(a, b),
            3 * 5 * 4 * 8,
        ),
    ],
)
def test_vector_and_batched_products_equal_torchs_count_of_the_same_mm(device, fn, shapes, as_mm, hand):
    tensors = [torch.randn(s, device=device) for s in shapes]
    assert _macs(Call(fn), *tensors) == (hand, {})
    assert _torch_macs(as_mm, *tensors) == hand


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("points", [10, 30])  # torch picks _cdist_forward below 25 rows, _euclidean_dist above
def test_cdist_counts_every_coordinate_of_every_pair_whichever_kernel(device, points):
    x1, x2 = torch.randn(2, points, 4, device=device), torch.randn(2, 7, 4, device=device)
    assert _macs(Call(torch.cdist), x1, x2) == (2 * points * 7 * 4, {})


@torch.library.custom_op("layerscope_test::mymm", mutates_args=())
def mymm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a @ b


@mymm.register_fake
def _(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a.new_empty(a.shape[0], b.shape[1])


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_a_custom_op_with_no_multiply_add_word_is_named(device):
    a, b = torch.randn(3, 4, device=device), torch.randn(4, 5, device=device)
    assert _macs(Call(mymm), a, b) == (0, {"layerscope_test.mymm": 1})


def test_integer_only_work_is_not_named():
    assert _macs(Call(torch.bincount), torch.tensor([0, 1, 1, 3])) == (0, {})


@pytest.mark.parametrize(
    ("packet", "free"),
    [
        (aten.relu, True),
        (aten.relu_, True),
        (aten.view, True),
        (aten.add, True),
        (aten.mean, True),
        (aten._softmax, True),
        (aten.native_layer_norm, True),
        (aten.upsample_bilinear2d, True),
        (aten.linalg_vector_norm, True),
        (aten.max_pool2d_with_indices, True),
        (aten.copy_, True),
        (aten._fft_r2c, False),
        (aten._int_mm, False),
        (aten.slow_conv_dilated2d, False),
        (aten.linalg_cholesky_ex, False),
        (aten.mkldnn_rnn_layer, False),
        (aten.addmm_, False),
        (torch.ops.layerscope_test.mymm, False),
    ],
)
def test_what_an_op_is_decides_whether_it_is_free(packet, free):
    assert costs_nothing(packet) is free


def test_every_zero_cost_name_is_still_an_aten_op():
    """Renamed in a torch release, a name would silently stop matching: fail here instead."""
    assert sorted(name for name in ZERO_COST_OPS if not hasattr(aten, name)) == []
