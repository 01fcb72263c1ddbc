"""Cost whatever kernel torch picks: CPU equals meta equals the hand count, and a zero is never silent."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision.models as tvm
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from layerscope.cli.main import main
from layerscope.cost import probe_cost
from layerscope.errors import LayerscopeError
from layerscope.models import load_model
from layerscope.running.example_inputs import ExampleInputs, InputSpec, parse_inputs
from sample_models import Siamese


def _on_meta(build):
    with torch.device("meta"):
        return build().eval()


def _cli_json(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


class _OpsSeen(TorchDispatchMode):
    """Which aten ops a forward ran: proof that the CPU really took the kernel a test is about."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func._overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def _ops_run(model: nn.Module, *args: torch.Tensor) -> set[str]:
    with _OpsSeen() as seen, torch.no_grad():
        model(*args)
    return seen.names


# --- attention: the fused fast path and the meta path count the same --------------------------


def _encoder() -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(256, 8, 1024, batch_first=True)
    return nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)


def test_a_transformer_encoder_costs_its_hand_count_on_cpu_and_meta():
    """4 layers, d 256, ff 1024, 64 tokens: per layer q/k/v/out 4·64·256² + QKᵀ and ×V 2·64²·256 + FFN 2·64·256·1024."""
    torch.manual_seed(0)
    cpu = _encoder().eval()
    assert "_transformer_encoder_layer_fwd" in _ops_run(
        cpu, torch.rand(1, 64, 256)
    )  # what torch runs outside the count
    _, on_cpu = probe_cost(cpu, (64, 256))
    _, on_meta = probe_cost(_on_meta(_encoder), (64, 256))
    per_layer = 4 * 64 * 256 * 256 + 2 * 64 * 64 * 256 + 2 * 64 * 256 * 1024
    assert on_cpu.total.macs == on_meta.total.macs == 4 * per_layer == 209_715_200
    assert on_cpu.get("layers.0.self_attn").macs == 4 * 64 * 256 * 256 + 2 * 64 * 64 * 256
    assert on_cpu.uncounted_ops == on_meta.uncounted_ops == {}
    assert on_cpu.total.allocated == on_meta.total.allocated  # meta's attention as the CPU's fused kernel
    assert on_cpu.total.peak == on_meta.total.peak
    assert torch.backends.mha.get_fastpath_enabled()  # the pass gave the switch back
    assert torch.nn.functional.scaled_dot_product_attention is torch._C._nn.scaled_dot_product_attention


class FusedByHand(nn.Module):
    """The encoder layer's fused kernel called directly, as the fast path does: its formula counts it."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(256, 8, 1024, batch_first=True).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.layer
        attn = m.self_attn
        return torch._transformer_encoder_layer_fwd(
            x,
            attn.embed_dim,
            attn.num_heads,
            attn.in_proj_weight,
            attn.in_proj_bias,
            attn.out_proj.weight,
            attn.out_proj.bias,
            False,
            m.norm_first,
            m.norm1.eps,
            m.norm1.weight,
            m.norm1.bias,
            m.norm2.weight,
            m.norm2.bias,
            m.linear1.weight,
            m.linear1.bias,
            m.linear2.weight,
            m.linear2.bias,
            None,
        )


class AttentionByHand(nn.Module):
    """``nn.MultiheadAttention``'s fused kernel called directly."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(256, 8, batch_first=True).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.attn
        return torch._native_multi_head_attention(
            x, x, x, 256, 8, m.in_proj_weight, m.in_proj_bias, m.out_proj.weight, m.out_proj.bias, need_weights=False
        )[0]


def test_the_fused_kernels_formulas_equal_the_unfused_count():
    _, fused = probe_cost(FusedByHand(), (64, 256))
    _, unfused = probe_cost(_encoder().eval().layers[0], (64, 256))
    assert fused.total.macs == unfused.total.macs == 209_715_200 // 4
    _, attention = probe_cost(AttentionByHand(), (64, 256))
    query_key_value = parse_inputs(["64x256"] * 3)  # MultiheadAttention's forward takes three tensors
    _, module = probe_cost(nn.MultiheadAttention(256, 8, batch_first=True).eval(), query_key_value)
    assert attention.total.macs == module.total.macs == 4 * 64 * 256 * 256 + 2 * 64 * 64 * 256


class FailsAfterAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.attn(x, x, x, need_weights=False)[0]
        raise RuntimeError(f"boom after {tuple(out.shape)}")


def test_a_failing_pass_gives_torch_its_switches_back():
    with pytest.raises(LayerscopeError, match=r"shape probe failed with input 4x8: boom after \(1, 4, 8\)"):
        probe_cost(_on_meta(FailsAfterAttention), (4, 8))
    assert torch.backends.mha.get_fastpath_enabled()
    assert torch.nn.functional.scaled_dot_product_attention is torch._C._nn.scaled_dot_product_attention


@pytest.mark.slow
def test_vit_b_32_on_cpu_costs_torchvision_published_ops():
    """The CPU's MultiheadAttention took the fused fast path and counted 2.9 GMACs; now 4.409 like meta."""
    torch.manual_seed(0)
    weights = tvm.ViT_B_32_Weights.DEFAULT
    _, cpu = probe_cost(tvm.vit_b_32().eval())
    _, meta = probe_cost(_on_meta(tvm.vit_b_32))
    assert cpu.total.macs == meta.total.macs == pytest.approx(weights.meta["_ops"] * 1e9, rel=0.01)
    assert cpu.total.allocated == meta.total.allocated  # meta no longer counts the S×S scores
    assert cpu.get("encoder.layers.encoder_layer_0.self_attention").macs == 50 * 768 * 768 * 4 + 2 * 50 * 50 * 768


def _tiny_llama(device: str, kv_heads: int = 2):
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        hidden_size=256,
        intermediate_size=512,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        num_hidden_layers=2,
        vocab_size=1000,
    )
    torch.manual_seed(0)
    with torch.device(device):
        return transformers.LlamaForCausalLM(config).eval()


def test_grouped_query_attention_on_meta_allocates_what_the_cpu_does():
    """2 key/value heads for 4 query heads at 512 tokens: meta counted the S×S scores (about 4× the CPU)."""
    _, cpu = probe_cost(_tiny_llama("cpu"), (512,), torch.long)
    _, meta = probe_cost(_tiny_llama("meta"), (512,), torch.long)
    assert meta.total.macs == cpu.total.macs
    assert meta.total.allocated.bytes() == pytest.approx(cpu.total.allocated.bytes(), rel=0.15)
    assert meta.total.peak.bytes() == pytest.approx(cpu.total.peak.bytes(), rel=0.15)
    scores = 2 * 4 * 512 * 512 * 4  # one layer's S×S scores in float32, times the two layers
    assert meta.total.allocated.bytes() < cpu.total.allocated.bytes() + scores


# --- recurrent layers ----------------------------------------------------------------------


class LSTMNet(nn.Module):
    """torchinfo's own test model (``tests/fixtures/models.py``), with the cell as a parameter."""

    def __init__(self, cell: type[nn.RNNBase] = nn.LSTM, **options) -> None:
        super().__init__()
        self.embedding = nn.Embedding(20, 300)
        self.encoder = cell(300, 512, num_layers=2, batch_first=True, **options)
        width = options.get("proj_size") or 512
        self.decoder = nn.Linear(width * (2 if options.get("bidirectional") else 1), 20)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.encoder(self.embedding(x))
        return self.decoder(out)


@pytest.mark.parametrize(("cell", "gates"), [(nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1)])
def test_recurrent_layers_cost_their_formula_on_cpu_and_meta(cell, gates):
    """100 steps: every step applies gates·H·(I + H) per layer; the decoder 100·512·20."""
    torch.manual_seed(0)
    model = LSTMNet(cell).eval()
    if cell is nn.LSTM:  # the CPU's oneDNN kernel, which torch's counter has no formula for
        assert "mkldnn_rnn_layer" in _ops_run(model, torch.zeros(1, 100, dtype=torch.long))
    _, cpu = probe_cost(model, (100,), torch.long)
    _, meta = probe_cost(_on_meta(lambda: LSTMNet(cell)), (100,), torch.long)
    recurrent = 100 * gates * 512 * ((300 + 512) + (512 + 512))
    assert cpu.get("encoder").macs == meta.get("encoder").macs == recurrent
    assert cpu.total.macs == meta.total.macs == recurrent + 100 * 512 * 20
    if cell is nn.LSTM:
        assert recurrent == 376_012_800  # the hand count for torchinfo's LSTMNet


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize(("proj", "kernel"), [(0, "mkldnn_rnn_layer"), (128, "mm")])
def test_a_bidirectional_lstm_with_or_without_projections_equals_meta(proj, kernel):
    """Every weight matrix once per step and direction: w_ih, w_hh (P wide with a projection) and w_hr.
    oneDNN runs the plain one; with projections the CPU falls back to torch's own loop."""
    options = dict(bidirectional=True, proj_size=proj)
    model = LSTMNet(nn.LSTM, **options).eval()
    assert kernel in _ops_run(model, torch.zeros(1, 10, dtype=torch.long))
    _, cpu = probe_cost(model, (10,), torch.long)
    _, meta = probe_cost(_on_meta(lambda: LSTMNet(nn.LSTM, **options)), (10,), torch.long)
    out = proj or 512
    first, second = 4 * 512 * (300 + out) + proj * 512, 4 * 512 * (2 * out + out) + proj * 512
    assert cpu.get("encoder").macs == meta.get("encoder").macs == 10 * 2 * (first + second)


# --- several inputs ---------------------------------------------------------------------------


def test_a_two_input_model_is_counted_from_specs_and_from_tensors():
    specs = parse_inputs(["3x8x8", "3x8x8", "scale=1"])
    assert specs[2] == InputSpec((1,), torch.float32, "scale")
    shapes, table = probe_cost(Siamese(), specs, batch=2)
    assert table.total.macs == 2 * (2 * 192 * 16 + 16)
    assert table.get("tower").calls == 2 and table.inputs == "3x8x8, 3x8x8, scale=1"
    assert shapes["head"].describe() == "2×1"
    given = ExampleInputs((torch.rand(5, 3, 8, 8), torch.rand(5, 3, 8, 8)))
    _, from_tensors = probe_cost(Siamese(), given)
    assert from_tensors.total.macs == 5 * (2 * 192 * 16 + 16) and from_tensors.inputs == "5x3x8x8, 5x3x8x8"


def test_the_cli_takes_one_input_per_argument_and_keywords(capsys):
    data = _cli_json(
        capsys,
        "stats",
        "sample_models:Siamese",
        "--cost",
        "--json",
        "--input",
        "3x8x8",
        "--input",
        "3x8x8",
        "--input",
        "scale=1",
    )
    assert data["macs"] == 2 * 192 * 16 + 16 and data["uncounted_ops"] == {}
    assert main(["tree", "sample_models:Siamese", "--cost", "--input", "3x8x8", "--input", "3x8x8"]) == 0
    assert "per batch of 1 at 3x8x8, 3x8x8" in capsys.readouterr().out


def test_a_t5_encoder_decoder_is_counted_with_keyword_inputs(capsys):
    """Encoder: 2 layers of q/k/v/o, attention, ReLU FFN over 16 tokens; decoder: self- and cross-attention
    over 8; the head 8·64·100. T5 computes attention with ``torch.matmul``: counted as it runs."""
    transformers = pytest.importorskip("transformers")
    config = transformers.T5Config(
        vocab_size=100,
        d_model=64,
        d_kv=16,
        num_heads=4,
        d_ff=128,
        num_layers=2,
        num_decoder_layers=2,
        decoder_start_token_id=0,
    )
    model = _on_meta(lambda: transformers.T5ForConditionalGeneration(config))
    _, table = probe_cost(model, parse_inputs(["input_ids=16:long", "decoder_input_ids=8:long"]))
    d, ff, enc, dec = 64, 128, 16, 8
    encoder = 2 * (4 * enc * d * d + 2 * enc * enc * d + 2 * enc * d * ff)
    decoder = 2 * (
        4 * dec * d * d + 2 * dec * dec * d + 2 * dec * d * d + 2 * enc * d * d + 2 * dec * enc * d + 2 * dec * d * ff
    )
    assert table.total.macs == encoder + decoder + dec * d * 100 == 2_131_968
    assert table.get("encoder").macs == encoder


def test_input_specs_are_checked_before_anything_runs():
    with pytest.raises(LayerscopeError, match="--input ids=… is given more than once"):
        parse_inputs(["ids=8:long", "ids=9:long"])
    with pytest.raises(LayerscopeError, match="unknown input dtype 'complex'"):
        parse_inputs(["3x8x8:complex"])
    with pytest.raises(LayerscopeError, match="--input expects SHAPE"):
        parse_inputs(["1ids=8"])


# --- a zero is never silent ------------------------------------------------------------------


class Distances(nn.Module):
    """``torch.cdist`` has no FLOP formula in torch; layerscope counts it (tests/test_cost_closed_forms.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        points = self.embed(x)
        return torch.cdist(points, points)


def test_cdist_is_counted_and_nothing_is_left_uncounted(capsys):
    _, table = probe_cost(Distances(), (10, 4))
    assert table.get("embed").macs == 10 * 4 * 8  # the Linear
    assert table.total.macs == 10 * 4 * 8 + 10 * 10 * 8  # plus one MAC per coordinate of each pair
    assert table.uncounted_ops == {}
    data = _cli_json(capsys, "stats", "test_cost_kernels:Distances", "--cost", "--json", "--input", "10x4")
    assert data["uncounted_ops"] == {} and data["macs"] == 1120


# --- the models that failed under the defaults ---------------------------------------------------


REGNETS = [name for name in tvm.list_models() if name.startswith("regnet")]


@pytest.mark.slow
def test_every_regnet_is_counted_on_meta_under_the_defaults():
    assert len(REGNETS) == 15
    for name in REGNETS:
        loaded = load_model(name, device="meta")
        _, table = probe_cost(loaded.model, loaded.input_shape)
        published = tvm.get_model_weights(name).DEFAULT.meta["_ops"] * 1e9
        assert table.total.macs == pytest.approx(published, rel=0.01), name


def test_stats_cost_of_a_regnet_needs_no_flag(capsys):
    data = _cli_json(capsys, "stats", "regnet_y_400mf", "--cost", "--json")
    assert data["devices"] == ["meta"] and data["macs"] == 401_842_848  # published: 0.402 GFLOPS


@pytest.mark.slow
def test_vit_h_14_is_built_at_its_default_weights_size(capsys):
    """DEFAULT crops 518 pixels: the model is built for 518 as the weights describe (on meta, free)."""
    published = tvm.ViT_H_14_Weights.DEFAULT.meta["_ops"] * 1e9
    root = _cli_json(capsys, "stats", "vit_h_14", "--cost", "--json")
    assert root["devices"] == ["meta"] and root["macs"] == pytest.approx(published, rel=0.001)
    loaded = load_model("vit_h_14", device="meta")
    assert loaded.input_shape == (3, 518, 518) and loaded.model.image_size == 518
