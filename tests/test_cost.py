"""Cost: MACs against torchvision's published figures, attribution, memory formulas, big models on meta."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from big_models import HEAD_DIM, LlamaModel
from layerscope.cost import cost_stats, estimate_memory, own_flops, parse_dtype, probe_cost
from layerscope.errors import LayerscopeError
from layerscope.tree import build_tree

# (builder, the size its weights' transforms crop to is read in the test)
PUBLISHED = [
    "alexnet",
    "resnet18",
    "resnet50",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "efficientnet_b3",
    "densenet121",
    "squeezenet1_1",
    "shufflenet_v2_x1_0",
    "googlenet",
    "convnext_tiny",
    "inception_v3",
    "vit_b_16",
    "swin_t",
]


def _meta(builder: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return tvm.get_model(builder, **kwargs).eval()


@pytest.mark.parametrize("name", PUBLISHED)
def test_macs_match_torchvision_published_ops(name):
    """torchvision publishes GMACs per image (it calls them GFLOPS) at the weights' own crop size."""
    weights = tvm.get_model_weights(name).DEFAULT
    size = weights.transforms().crop_size[0]
    kwargs = {"init_weights": False} if name in ("inception_v3", "googlenet") else {}
    _, table = probe_cost(_meta(name, **kwargs), (3, size, size))
    published = weights.meta["_ops"] * 1e9
    assert table.total.macs == pytest.approx(published, rel=0.01)
    assert table.total.flops == 2 * table.total.macs


def test_children_sum_to_parents_in_a_resnet():
    model = _meta("resnet50")
    _, table = probe_cost(model)
    tree = build_tree(model)
    for node in tree:
        if node.children:
            kids = [table.get(tree.nodes[i].name) for i in node.children]
            assert table.get(node.name).flops == sum(k.flops for k in kids)  # ResNet computes only in leaves
            assert own_flops(tree, node, table) == 0
    assert table.get("layer4").macs == 809_238_528
    assert table.get("fc").macs == 2048 * 1000


def test_own_compute_stays_with_the_parent_llama_attention():
    """SDPA runs in the attention module's own forward: its MACs are the parent's, not a child's."""
    model = LlamaModel(layers=2, dim=512, kv_dim=128, hidden=1024, vocab=1000)
    seq = 8
    _, table = probe_cost(model, (seq,), torch.long, batch=3)
    tree = build_tree(model)
    attn = tree.get("layers.0.self_attn")
    projections = 3 * seq * (512 * 512 + 128 * 512 + 128 * 512 + 512 * 512)
    scores_and_mix = 3 * 2 * seq * seq * 512  # QKᵀ and attention × V over all heads, mask not subtracted
    assert table.get(attn.name).macs == projections + scores_and_mix
    assert own_flops(tree, attn, table) == 2 * scores_and_mix
    root_kids = sum(table.get(tree.nodes[i].name).flops for i in tree.root.children)
    assert table.total.flops == root_kids
    layers = table.get("layers")  # a ModuleList is iterated, never called: it holds its children's sum
    assert layers.calls == 0
    assert layers.flops == table.get("layers.0").flops + table.get("layers.1").flops


def test_linear_on_a_3d_input_counts_every_row():
    """torchinfo #77: a Linear(3, 8) on (5, 10, 3) does 5·10·3·8 multiply-accumulates."""
    _, table = probe_cost(nn.Linear(3, 8), (10, 3), batch=5)
    assert table.total.macs == 5 * 10 * 3 * 8


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(self.shared(x))


def test_a_module_called_twice_counts_twice():
    _, table = probe_cost(Twice(), (4,))
    assert table.get("shared").calls == 2
    assert table.get("shared").macs == 2 * 16 == table.total.macs


def test_memory_formulas_on_a_known_mlp():
    """Three Linear(100, 100) on a batch of 10: each activation is 1,000 floats. Inference keeps
    the input and two activations alive at most; the forward creates three."""
    model = nn.Sequential(nn.Linear(100, 100), nn.ReLU(inplace=True), nn.Linear(100, 100), nn.Linear(100, 100))
    _, table = probe_cost(model, (100,), batch=10)
    root = build_tree(model).root
    cost = table.total
    assert cost.peak.bytes(4) == 3 * 1000 * 4  # ReLU in place adds nothing
    assert cost.allocated.bytes(4) == 3 * 1000 * 4
    params = 3 * (100 * 100 + 100)
    memory = estimate_memory(root, cost, batch=10)
    assert memory.inference_bytes == params * 4 + 3 * 1000 * 4
    assert memory.training_bytes == params * 16 + 3 * 1000 * 2  # bf16 activations in mixed precision
    half = estimate_memory(root, cost, batch=10, dtype=torch.float16)
    assert half.inference_bytes == params * 2 + 3 * 1000 * 2
    assert "peak live activations (float16, batch 10)" in half.inference_formula
    stats = cost_stats(root, table)
    assert stats["macs"] == 10 * params - 10 * 300 and stats["activation_bytes"] == 12_000
    assert stats["memory"]["inference_bytes"] == memory.inference_bytes


def test_batch_scales_a_cnn_linearly_and_meta_equals_cpu():
    model = tvm.resnet18().eval()
    _, cpu = probe_cost(model, batch=2)
    _, meta = probe_cost(_meta("resnet18"), batch=2)
    _, one = probe_cost(_meta("resnet18"))
    assert cpu.total.macs == meta.total.macs == 2 * one.total.macs == 2 * 1_814_073_344
    # meta's eval batch norm returns saved statistics the CPU leaves empty: not counted on either
    assert meta.total.peak == cpu.total.peak and meta.total.allocated == cpu.total.allocated


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS")).split()[1])


def test_llama_70b_cost_on_meta_without_allocating():
    before = _rss_kib()
    with torch.device("meta"):
        model = LlamaModel()
    seq = 16
    _, table = probe_cost(model, (seq,), torch.long)
    tree = build_tree(model)
    dim, layers = 8192, 80
    linear = sum(p.numel() for n, p in model.named_parameters() if n.endswith("proj.weight") or "lm_head" in n)
    assert table.total.macs == seq * linear + layers * 2 * seq * seq * dim
    assert dim // HEAD_DIM == 64
    memory = estimate_memory(tree.root, table.total, batch=1, dtype=torch.bfloat16)
    assert tree.root.total_params == 70_553_706_496
    assert memory.inference_bytes > 2 * 70_553_706_496  # 141 GB of bf16 weights, none of it allocated here
    assert _rss_kib() - before < 300 * 1024


def test_unknown_dtype_is_one_line():
    with pytest.raises(LayerscopeError, match="unknown --dtype 'fp7'"):
        parse_dtype("fp7")


def test_attention_on_meta_is_counted_as_the_fused_kernel_runs():
    """Meta's reference attention would materialise the S×S scores; the count follows the fused
    kernel a CPU or GPU runs, so meta and CPU agree on MACs and on every byte allocated."""
    torch.manual_seed(0)
    config = dict(layers=2, dim=512, kv_dim=512, hidden=1024, vocab=1000)
    cpu_model = LlamaModel(**config)
    with torch.device("meta"):
        meta_model = LlamaModel(**config)
    _, cpu = probe_cost(cpu_model, (64,), torch.long)
    _, meta = probe_cost(meta_model, (64,), torch.long)
    assert meta.total.macs == cpu.total.macs
    assert meta.total.allocated == cpu.total.allocated
    assert meta.total.peak == cpu.total.peak


def test_a_bfloat16_model_is_estimated_in_bfloat16_despite_float32_buffers():
    model = nn.Sequential(nn.Linear(10, 10)).to(torch.bfloat16)
    model.register_buffer("inv_freq", torch.ones(4))  # float32, as Llama's rotary embedding keeps it
    _, table = probe_cost(model, (10,))
    memory = estimate_memory(build_tree(model).root, table.total, batch=1)
    assert memory.dtype == "bfloat16"
    assert memory.inference_bytes == 110 * 2 + 16 + table.total.peak.bytes(2)


def test_a_hugging_face_config_alone_is_counted_on_meta(tmp_path):
    """Llama with grouped-query attention, from ``config.json`` only: nothing to download or allocate."""
    pytest.importorskip("transformers")
    import json

    from layerscope.models import load_model

    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 512,
        "intermediate_size": 1024,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "vocab_size": 1000,
        "torch_dtype": "bfloat16",
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = load_model(str(tmp_path))
    _, table = probe_cost(loaded.model, (64,), torch.long)
    per_layer = 512 * 512 * 2 + 512 * 128 * 2 + 3 * 512 * 1024  # q, o; k, v (2 of 8 heads); the MLP
    attention = 2 * 64 * 64 * 512  # QKᵀ and × V
    assert table.total.macs == 64 * (2 * per_layer + 512 * 1000) + 2 * attention
    assert table.get("model.layers").calls == 0 and table.get("model.layers").macs == 2 * (64 * per_layer + attention)


def test_estimate_memory_refuses_a_batch_the_probe_did_not_run():
    """Issue 32: a batch-1 probe's activations under a "batch 32" formula were batch 1's bytes."""
    from layerscope.errors import LayerscopeError

    model = nn.Sequential(nn.Linear(100, 50), nn.ReLU())
    root = build_tree(model).root
    _, one = probe_cost(model, (100,))
    with pytest.raises(LayerscopeError, match="probed at batch 1, not 32: activations are measured, never scaled"):
        estimate_memory(root, one.total, batch=32)
    _, thirty_two = probe_cost(model, (100,), batch=32)
    memory = estimate_memory(root, thirty_two.total)  # the probe's own batch
    assert memory.batch == 32 and "batch 32" in memory.inference_formula
    params = 100 * 50 + 50
    assert memory.inference_bytes == params * 4 + 32 * 100 * 4 + 2 * 32 * 50 * 4  # input, Linear, ReLU out
    assert estimate_memory(root, thirty_two.total, batch=32) == memory


def test_activation_figures_are_one_answer_on_meta_and_cpu():
    """Issue 32: mobilenet_v2 ``features[-1]`` read 512,000 / 574,720 B on meta and 501,760 /
    564,480 B on the CPU: meta's eval batch norm returned two saved-statistics vectors of C."""
    figures = {}
    for device in ("meta", "cpu"):
        with torch.device(device):
            model = tvm.mobilenet_v2().eval()
        _, table = probe_cost(model, (3, 224, 224))
        node = table.get("features.18")
        figures[device] = (node.allocated.bytes(4), node.peak.bytes(4))
    one = 1280 * 7 * 7 * 4  # the 1×1 convolution's output, then batch norm's, then ReLU6 in place
    assert figures["meta"] == figures["cpu"] == (2 * one, 2 * one + 320 * 7 * 7 * 4)
