"""Each private API of torch, torchvision and textual that layerscope uses (``layerscope.thirdparty``,
``layerscope.tui.thirdparty``) still exists and does what layerscope relies on. A failure here
names the library change to adapt to, before it shows up as a wrong count somewhere else."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torchvision.models as tvm
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from layerscope import thirdparty
from layerscope.models.weights_cache import SafeWeights


def _argument_names(packet) -> list[str]:
    return [a.name for a in packet.default._schema.arguments]


@pytest.mark.parametrize(
    ("packet", "first"),
    [
        (thirdparty.CPU_FLASH_ATTENTION, ["query", "key", "value", "dropout_p", "is_causal", "attn_mask", "scale"]),
        (thirdparty.CUDNN_RNN, ["input", "weight", "weight_stride0", "weight_buf", "hx", "cx", "mode", "hidden_size"]),
        (thirdparty.FUSED_LSTM_CELL, ["input_gates", "hidden_gates", "cx", "input_bias", "hidden_bias"]),
        (thirdparty.FUSED_GRU_CELL, ["input_gates", "hidden_gates", "hx", "input_bias", "hidden_bias"]),
        (thirdparty.NATIVE_MULTI_HEAD_ATTENTION, ["query", "key", "value", "embed_dim", "num_head", "qkv_weight"]),
        (thirdparty.TRANSFORMER_ENCODER_LAYER, ["src", "embed_dim", "num_heads", "qkv_weight", "qkv_bias"]),
        (thirdparty.BATCH_NORM_NO_TRAINING, ["input", "weight", "bias", "running_mean", "running_var", "momentum"]),
        (thirdparty.TRILINEAR, ["i1", "i2", "i3", "expand1", "expand2", "expand3", "sumdim"]),
        (thirdparty.CDIST_FORWARD, ["x1", "x2", "p"]),
        (thirdparty.EUCLIDEAN_DIST, ["x1", "x2"]),
    ],
)
def test_the_private_aten_ops_keep_the_arguments_the_formulas_read(packet, first):
    """``cost/formulas`` reads these ops' arguments by position."""
    assert _argument_names(packet)[: len(first)] == first


def test_cpu_flash_attention_is_softmax_attention():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    expected = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(4), dim=-1) @ v
    torch.testing.assert_close(thirdparty.cpu_flash_attention(q, k, v), expected)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    masked = torch.softmax((q @ k.transpose(-2, -1) / 2).masked_fill(~causal, -math.inf), dim=-1) @ v
    torch.testing.assert_close(thirdparty.cpu_flash_attention(q, k, v, is_causal=True), masked)


def test_cpu_flash_attention_gives_shapes_on_meta():
    q, kv = torch.empty(2, 3, 5, 4, device="meta"), torch.empty(2, 3, 7, 4, device="meta")
    assert thirdparty.cpu_flash_attention(q, kv, kv).shape == (2, 3, 5, 4)


def test_cpu_has_amx_tiles_is_torchs_own_answer():
    check = torch.cpu._is_amx_tile_supported
    assert inspect.signature(check).parameters == {}
    assert thirdparty.cpu_has_amx_tiles() is bool(check())


def test_storage_key_is_shared_by_views_and_differs_between_storages():
    a, b = torch.zeros(4, 4), torch.zeros(4, 4)
    assert thirdparty.storage_key(a) == thirdparty.storage_key(a[1:].t()) == thirdparty.storage_key(a.view(16))
    assert thirdparty.storage_key(a) != thirdparty.storage_key(b)
    m1, m2 = torch.empty(3, device="meta"), torch.empty(3, device="meta")
    assert thirdparty.storage_key(m1) != thirdparty.storage_key(m2)  # data_ptr() is 0 for both


def test_flop_counter_mode_still_has_the_private_hook_and_tracker():
    assert list(inspect.signature(FlopCounterMode._count_flops).parameters) == [
        "self",
        "func_packet",
        "out",
        "args",
        "kwargs",
    ]
    assert hasattr(FlopCounterMode(display=False), "mod_tracker")


class _Seen(thirdparty.OpCountingFlopMode):
    def __init__(self) -> None:
        super().__init__(display=False)
        self.seen: list[tuple[str, int]] = []

    def op_counted(self, func_packet, flops, out, args, kwargs) -> None:
        self.seen.append((func_packet.__name__, flops))


def test_op_counting_flop_mode_reports_each_op_and_builds_no_module_table():
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    with _Seen() as mode:
        model(torch.ones(5, 3))
    assert [s for s in mode.seen if s[1]] == [("addmm", 2 * 5 * 3 * 8), ("addmm", 2 * 5 * 8 * 2)]
    assert "relu" in {name for name, _ in mode.seen}
    assert mode.get_total_flops() == 2 * 5 * (3 * 8 + 8 * 2)
    assert set(mode.flop_counts) == {"Global"}  # torch's per-module rows never built


def test_module_containers_are_what_the_tree_and_the_hooks_read():
    """``nn.Module``'s own containers, read directly by tree/ and cam/ (see the module docstring)."""
    m = nn.BatchNorm1d(2)
    m.register_buffer("scratch", torch.zeros(1), persistent=False)
    m.extra = nn.Linear(1, 1)
    assert list(m._parameters) == ["weight", "bias"] and list(m._modules) == ["extra"]
    assert list(m._buffers) == ["running_mean", "running_var", "num_batches_tracked", "scratch"]
    assert m._non_persistent_buffers_set == {"scratch"}
    assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)
    assert not (m._state_dict_hooks or m._state_dict_pre_hooks)
    handle = m.register_forward_hook(lambda *a: None)
    assert len(m._forward_hooks) == 1
    handle.remove()
    assert callable(nn.Module._save_to_state_dict)


def test_torchvision_builders_accept_the_safe_weights_stand_in():
    """``models/weights_cache.SafeWeights`` passes ``verify`` and compares equal to its member."""
    member = tvm.ResNet18_Weights.IMAGENET1K_V1
    safe = SafeWeights(member, trust=False)
    assert tvm.ResNet18_Weights.verify(safe) is safe
    assert safe == member and hash(safe) == hash(member) and safe.meta is member.meta
    with pytest.raises(TypeError):
        tvm.ResNet50_Weights.verify(safe)


def test_textual_footer_key_keeps_what_the_fitting_footer_reads():
    from layerscope.tui.thirdparty import FooterKey

    params = inspect.signature(FooterKey.__init__).parameters
    assert list(params)[1:5] == ["key", "key_display", "description", "action"]
    key = FooterKey("q", "Q", "quit", "app.quit")
    assert (key.key_display, key.description, key.action) == ("Q", "quit", "app.quit")


def test_is_a_view_reads_the_schema_torch_records_aliasing_in():
    aten = torch.ops.aten
    assert thirdparty.is_a_view(aten.view.default) and thirdparty.is_a_view(aten.transpose.int)
    assert not thirdparty.is_a_view(aten.relu_.default)  # in place: writes its input
    assert not thirdparty.is_a_view(aten._fft_r2c.out)  # out=: aliases what it writes
    assert not thirdparty.is_a_view(aten.mm.default)
