"""Every access expression the tree shows evaluates to its very module, and reads back.

The walk covers every torchvision model and a few timm ones, built on the meta device
(no weights, no arithmetic) the way layerscope builds them there (``build_on_meta``: RegNets,
which compute their widths with tensors, get only their parameters and buffers on meta).
"""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn
from torchvision import models

from layerscope.models.meta_build import build_on_meta
from layerscope.tree import ModuleTree, build_tree

TIMM = (
    "coat_tiny",
    "vit_small_patch16_224",
    "convnext_atto",
    "efficientnet_b0",
    "swin_tiny_patch4_window7_224",
    "regnety_002",
    "resnet18d",
)
NO_DOWNLOADS = {"weights_backbone": None}  # detectors would otherwise fetch a backbone


def check_every_node(model: nn.Module, tree: ModuleTree) -> int:
    """``eval(access) is module`` for both spellings, and ``resolve`` reads every spelling back."""
    places = list(model.named_modules(remove_duplicate=False))
    assert [n.name for n in tree] == [name for name, _ in places]
    for node, (_, module) in zip(tree, places):
        for expression in filter(None, (node.access, node.access_negative)):
            assert eval(expression, {"model": model}) is module, expression
            if node.index or tree.get("model") is None:  # then "model" is that child; "" the root
                assert tree.resolve(expression) is node, expression
        assert tree.resolve(node.name) is node, node.name
        assert tree.module_of(model, node) is module
    return len(places)


def _build_on_meta(name: str) -> nn.Module:
    backbones = models.list_models(models.detection) + models.list_models(models.segmentation)
    extra = NO_DOWNLOADS if name in backbones else {}
    return build_on_meta(lambda: models.get_model(name, weights=None, **extra))


@pytest.mark.slow  # about 35 s on a busy 2-core machine: 121 models, over 30,000 nodes
def test_every_torchvision_model_every_node():
    start, checked = time.perf_counter(), 0
    for name in models.list_models():
        model = _build_on_meta(name)
        checked += check_every_node(model, build_tree(model))
    assert len(models.list_models()) == 121 and checked > 30_000
    assert time.perf_counter() - start < 120


@pytest.mark.parametrize("name", TIMM)
def test_timm_models_every_node(name):
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    check_every_node(model, build_tree(model))


def test_ssdlite_positions_are_pythons_not_the_keys():
    """``features[1:]`` keeps keys 1, 2…: ``[key]`` would reach the wrong block."""
    model = _build_on_meta("ssdlite320_mobilenet_v3_large")
    tree = build_tree(model)
    node = tree.get("backbone.features.1.0.1")
    assert node.access == "model.backbone.features[1][0][0]"
    assert eval(node.access, {"model": model}) is model.backbone.features[1][0][0]
    assert tree.resolve("model.backbone.features[1][0][0]") is node


def test_timm_coat_shares_modules_and_every_subtree_counts_them_once():
    """CoaT registers one ``cpe`` module in several blocks: every place is a node and resolves,
    and each subtree's figures are what ``parameters()`` yields there."""
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        model = timm.create_model("coat_tiny", pretrained=False)
    tree = build_tree(model)
    cpe = tree.resolve("serial_blocks1.0.cpe")
    assert cpe.same_as == tree.resolve("cpe1").index
    for node in tree:
        module = tree.module_of(model, node)
        assert node.total_params == sum(p.numel() for p in module.parameters()), node.name
        assert node.own_params <= node.total_params
    assert len(tree) == len(list(model.named_modules(remove_duplicate=False))) > len(list(model.named_modules()))


class Holder(nn.Module):
    """A root whose children are given by name: ``Holder(features=…)``."""

    def __init__(self, **children: nn.Module) -> None:
        super().__init__()
        for key, child in children.items():
            self.add_module(key, child)


def test_a_sliced_sequential_is_indexed_by_position():
    convs = nn.Sequential(*(nn.Conv2d(1, 1, k) for k in (1, 2, 3, 4)))
    model = Holder(features=convs[1:])  # keys '1', '2', '3'
    tree = build_tree(model)
    assert [(n.name, n.access, n.access_negative) for n in tree.children_of(tree.resolve("features"))] == [
        ("features.1", "model.features[0]", None),
        ("features.2", "model.features[1]", None),
        ("features.3", "model.features[2]", "model.features[-1]"),
    ]
    assert tree.resolve("model.features[0]").name == "features.1" and tree.resolve("features.1").name == "features.1"
    check_every_node(model, tree)


def test_ordered_dict_keys_1_10_2_follow_the_order_not_the_numbers():
    from collections import OrderedDict

    model = nn.Sequential(OrderedDict((k, nn.Linear(1, int(k))) for k in ("1", "10", "2")))
    tree = build_tree(model)
    assert tree.resolve("10").access == "model[1]"
    assert tree.resolve("2").access_negative == "model[-1]"
    assert tree.resolve("model[1]").name == "10" and tree.resolve("model[2]").name == "2"
    check_every_node(model, tree)


def test_keys_that_are_not_identifiers_or_are_keywords():
    block = nn.Sequential()
    block.add_module("block1-0", nn.Linear(2, 2))  # torchvision's regnet spelling
    model = Holder(stage=block, **{"block1-0": nn.ReLU(), "lambda": nn.Linear(2, 3), "class": nn.Identity()})
    tree = build_tree(model)
    assert tree.resolve("stage.block1-0").access == "model.stage[0]"
    assert tree.resolve("block1-0").access == "model.get_submodule('block1-0')"
    assert tree.resolve("lambda").access == "model.get_submodule('lambda')"
    assert tree.resolve("class").access == "model.get_submodule('class')"
    assert tree.resolve("model.get_submodule('lambda')").total_params == 9
    check_every_node(model, tree)


def test_a_child_hidden_by_a_class_attribute_is_reached_through_modules():
    class Shadowed(nn.Module):
        head = None  # a class attribute: ``model.head`` reads it, not the registered child

        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(2, 2)  # Module.__setattr__ registers it in _modules

    model = Shadowed()
    tree = build_tree(model)
    assert tree.resolve("head").access == "model._modules['head']"
    check_every_node(model, tree)


def test_one_relu_at_positions_1_and_3():
    relu = nn.ReLU()
    model = Holder(features=nn.Sequential(nn.Conv2d(1, 2, 1), relu, nn.Conv2d(2, 2, 1), relu))
    tree = build_tree(model)
    last = tree.resolve("model.features[-1]")
    assert (last.name, last.access, last.access_negative) == ("features.3", "model.features[3]", "model.features[-1]")
    assert last.same_as == tree.resolve("features.1").index
    assert tree.resolve("features.3") is last
    check_every_node(model, tree)


class _Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(10, 4)
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(4))


def test_a_root_child_called_model_reads_state_dict_names_and_python_alike():
    """Hugging Face's ``*ForCausalLM``: ``model.layers.2`` is the child's layer, as state_dict spells it."""
    wrapper = Holder(model=_Decoder(), lm_head=nn.Linear(4, 10))
    tree = build_tree(wrapper)
    assert tree.resolve("model.layers.2").name == "model.layers.2"
    assert tree.resolve("model.model.layers[-1]").name == "model.layers.3"
    assert tree.resolve("model.layers.2").access == "model.model.layers[2]"
    assert "model.layers.2.weight" in wrapper.state_dict()
    check_every_node(wrapper, tree)


def test_a_module_registered_as_a_and_b_counts_once_in_every_subtree():
    shared = nn.Linear(4, 4)
    model = Holder(a=shared, pair=Holder(b=shared, c=nn.Linear(4, 1)))
    tree = build_tree(model)
    assert tree.resolve("pair.b").same_as == tree.resolve("a").index
    assert tree.resolve("pair").total_params == 20 + 5 == sum(p.numel() for p in model.pair.parameters())
    assert tree.root.total_params == 25 == sum(p.numel() for p in model.parameters())
    assert tree.root.state_dict_entries == 6 == len(model.state_dict())
    check_every_node(model, tree)


def test_a_parameter_registered_twice_on_one_module_counts_once():
    layer = nn.Linear(2, 2)
    layer.register_parameter("alias", layer.weight)
    tree = build_tree(Holder(layer=layer))
    node = tree.resolve("layer")
    assert node.own_params == node.total_params == 6 == sum(p.numel() for p in layer.parameters())
    assert node.own_param_tensors == node.param_tensors == 2
    assert node.state_dict_entries == 3 and node.state_dict_unique_bytes == 6 * 4


def test_folded_runs_count_tied_tensors_once():
    tied = [nn.Linear(8, 8) for _ in range(3)]
    for layer in tied[1:]:
        layer.weight = tied[0].weight
    model = nn.Sequential(nn.Conv2d(1, 1, 1), *tied)  # the run is part of the container
    tree = build_tree(model)
    (run,) = tree.repeat_runs(tree.root)
    assert run.length == 3 and tree.run_params(run.members) == 64 + 3 * 8
    same = nn.Linear(8, 8)
    twice = build_tree(nn.Sequential(nn.Conv2d(1, 1, 1), same, same, same))
    (run,) = twice.repeat_runs(twice.root)
    assert twice.run_params(run.members) == 72 == sum(p.numel() for p in same.parameters())


def test_a_real_hugging_face_causal_lm_names_every_node():
    """``LlamaForCausalLM``: root children ``model`` and ``lm_head``; the tied head counts once."""
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    model = transformers.LlamaForCausalLM(config)
    tree = build_tree(model)
    check_every_node(model, tree)
    assert tree.resolve("model.layers.2").access == "model.model.layers[2]"
    assert tree.resolve("model.model.layers[-1]") is tree.resolve("model.layers.2")
    assert tree.resolve("model.layers.1.mlp.down_proj").name == "model.layers.1.mlp.down_proj"
    assert tree.root.total_params == sum(p.numel() for p in model.parameters())
    assert tree.root.state_dict_unique_bytes < tree.root.state_dict_bytes  # lm_head.weight is embed_tokens'


class _Scriptable(nn.Module):
    """ModuleList, Sequential and a ModuleDict with a key that is no identifier: the containers
    whose children a ScriptModule cannot reach through ``get_submodule`` (issue 21)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
        self.seq = nn.Sequential(nn.ReLU(), nn.Sequential(nn.Linear(2, 2), nn.Tanh()))
        self.heads = nn.ModuleDict({"a-b": nn.ReLU(), "plain": nn.Identity()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.seq(x) + self.heads["a-b"](x) + self.heads["plain"](x)


@pytest.mark.parametrize("make", [_Scriptable, lambda: models.resnet18(weights=None)], ids=["containers", "resnet18"])
def test_every_expression_of_a_torchscript_model_evaluates_to_its_module(make):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated, and still what users have
        model = torch.jit.script(make().eval())
    tree = build_tree(model)
    assert check_every_node(model, tree) == len(list(model.named_modules(remove_duplicate=False)))
    if make is _Scriptable:
        assert tree.resolve("layers.0").access == "model.layers._modules['0']"
    assert not any("get_submodule" in (node.access or "") for node in tree)
