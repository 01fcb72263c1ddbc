"""Exact figures of the module tree, checked against PyTorch's own iteration methods."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from layerscope.errors import LayerscopeError
from layerscope.models import load_model
from layerscope.tree import build_tree
from layerscope.tree.iteration import iteration_view
from sample_models import TiedLM, WithState


def test_resnet18_totals(resnet18, resnet18_tree):
    root = resnet18_tree.root
    assert root.total_params == 11_689_512
    assert root.total_params == sum(p.numel() for p in resnet18.model.parameters())
    assert root.state_dict_entries == 122 == len(resnet18.model.state_dict())
    assert root.trainable_params == 11_689_512 and root.frozen_params == 0
    assert root.buffers == 60 and root.persistent_buffers == 60
    assert len(resnet18_tree) == len(list(resnet18.model.named_modules())) == 68


def test_resnet18_layer4_and_its_last_block(resnet18_tree):
    assert resnet18_tree.resolve("layer4").total_params == 8_393_728
    last = resnet18_tree.resolve("model.layer4[-1]")
    assert last.name == "layer4.1"
    assert last.total_params == 4_720_640
    assert last.access == "model.layer4[1]"
    assert last.access_negative == "model.layer4[-1]"


def test_state_dict_figures_under_a_prefix(resnet18, resnet18_tree):
    node = resnet18_tree.resolve("layer4.1.bn2")
    entries = {k: v for k, v in resnet18.model.state_dict().items() if k.startswith("layer4.1.bn2.")}
    assert node.state_dict_entries == len(entries) == 5
    assert node.state_dict_bytes == sum(v.numel() * v.element_size() for v in entries.values())
    assert node.dtypes == ("float32", "int64")
    assert node.devices == ("cpu",)


def test_mobilenet_v3_large_totals_and_children():
    tree = build_tree(load_model("mobilenet_v3_large").model)
    assert tree.root.total_params == 5_483_032
    assert [tree.nodes[i].name for i in tree.root.children] == ["features", "avgpool", "classifier"]
    assert tree.resolve("model.features[-1]").name == "features.16"


def test_vgg16_on_meta_counts_without_memory():
    loaded = load_model("vgg16", device="meta")
    tree = build_tree(loaded.model)
    assert tree.root.total_params == 138_357_544
    assert tree.root.devices == ("meta",)
    assert tree.resolve("model.features[-1]").class_name == "MaxPool2d"


def test_tied_weights_count_once_at_the_root_and_in_each_owner():
    model = TiedLM(vocab=100, dim=16)
    tree = build_tree(model)
    expected = sum(p.numel() for p in model.parameters())
    assert tree.root.total_params == expected == 100 * 16 + (16 * 16 + 16) + 2 * 16
    assert tree.resolve("embed").total_params == 1600
    assert tree.resolve("head").total_params == 1600  # the shared matrix is the head's too
    assert tree.resolve("head").own_params == 1600
    assert tree.root.state_dict_entries == len(model.state_dict()) == 6  # state_dict keeps both keys


def test_a_module_under_two_names_is_listed_at_both_as_state_dict_does():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    tree = build_tree(model)
    assert [n.name for n in tree] == [n for n, _ in model.named_modules(remove_duplicate=False)] == ["", "0", "1", "2"]
    assert tree.resolve("2").same_as == tree.resolve("0").index and tree.resolve("0").same_as is None
    assert tree.root.total_params == 12 == sum(p.numel() for p in model.parameters())
    assert tree.resolve("2").total_params == 12
    assert tree.root.state_dict_entries == 4  # 0.weight, 0.bias, 2.weight, 2.bias
    assert tree.root.state_dict_bytes == 2 * 12 * 4 and tree.root.state_dict_unique_bytes == 12 * 4


def test_state_dict_figures_follow_extra_state_hooks_and_views_as_torch_writes_them():
    """Entries are counted from the registrations unless a class or a hook writes its own: then
    from ``state_dict()`` itself. Views of one storage are saved once."""

    class WithExtraState(nn.Linear):
        def get_extra_state(self) -> dict:
            return {"step": 3}

        def set_extra_state(self, state: dict) -> None:
            pass

    storage = torch.zeros(100)
    plain = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    plain[0].register_buffer("a", storage[:10])
    plain[1].register_buffer("b", storage[10:20])
    hooked = nn.Sequential(WithExtraState(2, 2), nn.Linear(2, 2))
    hooked[1].register_state_dict_post_hook(lambda module, sd, prefix, meta: sd.update({f"{prefix}extra": storage}))
    for model, unique in ((plain, 2 * 12 * 4 + 400), (hooked, 2 * 6 * 4 + 400)):
        written = model.state_dict()
        tensors = [v for v in written.values() if isinstance(v, torch.Tensor)]
        root = build_tree(model).root
        assert root.state_dict_entries == len(written)
        assert root.state_dict_bytes == sum(t.numel() * t.element_size() for t in tensors)
        assert root.state_dict_unique_bytes == unique  # the 100-float storage once
    tree = build_tree(hooked)
    assert tree.resolve("0").state_dict_entries == 3 and tree.resolve("1").state_dict_entries == 3


def test_frozen_params_and_non_persistent_buffers():
    tree = build_tree(WithState())
    root = tree.root
    assert root.frozen_params == 20 and root.trainable_params == 10 + 9 + 12
    assert root.buffers == 2 and root.persistent_buffers == 1
    assert root.buffer_elements == 8
    assert root.own_params == 0 and root.own_buffers == 2
    assert root.state_dict_entries == 9  # 8 parameters + the persistent buffer


def test_access_expressions_for_dicts_and_odd_keys():
    tree = build_tree(WithState())
    assert tree.resolve("heads.cls").access == "model.heads['cls']"
    assert tree.resolve("model.heads['box-reg']").name == "heads.box-reg"
    assert tree.resolve("heads.box-reg").access == "model.heads['box-reg']"
    with pytest.raises(LayerscopeError, match=r"no layer 'heads\.box-rex' in WithState; closest: heads\.box-reg"):
        tree.resolve("heads.box-rex")


def test_negative_index_propagates_into_the_last_block():
    tree = build_tree(load_model("resnet50", device="meta").model)
    conv = tree.resolve("layer4.2.conv2")
    assert conv.access == "model.layer4[2].conv2"
    assert conv.access_negative == "model.layer4[-1].conv2"
    assert tree.resolve("model.layer4[-1].conv2") is conv
    assert tree.resolve("layer4.-1.conv2") is conv


@pytest.mark.parametrize("expression", ["layer4[-1]", "model.layer4[1]", "layer4.1", "model.layer4.1"])
def test_every_spelling_of_a_layer_resolves_to_the_same_node(resnet18_tree, expression):
    assert resnet18_tree.resolve(expression).name == "layer4.1"


def test_wrong_layer_names_get_the_closest_matches(resnet18_tree):
    with pytest.raises(LayerscopeError, match=r"no layer 'layer4\.1\.conv9' in ResNet; closest: layer4\.1\.conv[12]"):
        resnet18_tree.resolve("layer4.1.conv9")
    with pytest.raises(LayerscopeError, match="no layer 'layer4\\[5\\]'"):
        resnet18_tree.resolve("layer4[5]")
    with pytest.raises(LayerscopeError, match="cannot read layer name"):
        resnet18_tree.resolve("layer4[")


def test_repeated_blocks_are_recognised():
    tree = build_tree(load_model("resnet50", device="meta").model)
    (run,) = tree.repeat_runs(tree.resolve("layer4"))
    assert (run.class_name, run.length) == ("Bottleneck", 3)
    assert tree.repeat_runs(tree.root) == []  # layer1…layer4 differ inside, so they are not folded
    vit = build_tree(load_model("vit_b_16", device="meta").model)
    (blocks,) = vit.repeat_runs(vit.resolve("encoder.layers"))
    assert (blocks.class_name, blocks.length) == ("EncoderBlock", 12)


def test_iteration_view_matches_pytorch(resnet18):
    view = {row.method: row for row in iteration_view(resnet18.model)}
    assert view["modules()"].count == 68
    assert view["children()"].count == 10
    assert view["named_children()"].first[:2] == ("conv1: Conv2d", "bn1: BatchNorm2d")
    assert view["parameters()"].count == 62
    assert view["buffers()"].count == 60
    assert view["state_dict()"].count == 122
    assert view["named_parameters()"].first[0] == "conv1.weight: Parameter 64×3×7×7 float32"
    assert view["state_dict()"].first[0] == "conv1.weight: Tensor 64×3×7×7 float32"  # plain state_dict() detaches
    assert type(resnet18.model.state_dict()["conv1.weight"]) is torch.Tensor


def test_tree_build_is_linear_not_quadratic():
    """Deep nesting would expose an O(modules × depth) walk: 300 levels (named_modules itself recurses)."""
    model: nn.Module = nn.Linear(2, 2)
    for _ in range(300):
        model = nn.Sequential(model)
    tree = build_tree(model)
    assert tree.root.total_params == 6
    assert tree.nodes[-1].depth == 300
    assert tree.nodes[-1].access.endswith("[0]")


def test_named_sequential_children_get_a_negative_index_too():
    tree = build_tree(load_model("vit_b_16", device="meta").model)
    norm = tree.resolve("model.encoder.layers[-1].ln_1")
    assert norm.name == "encoder.layers.encoder_layer_11.ln_1"
    assert norm.access == "model.encoder.layers.encoder_layer_11.ln_1"
    assert norm.access_negative == "model.encoder.layers[-1].ln_1"


def test_named_siblings_of_one_class_are_not_folded():
    tree = build_tree(load_model("timm:vit_small_patch16_224", device="meta").model)
    assert tree.repeat_runs(tree.root) == []  # patch_drop, norm_pre: two Identity parts, not a repeat
    (blocks,) = tree.repeat_runs(tree.resolve("blocks"))
    assert (blocks.class_name, blocks.length) == ("Block", 12)


def test_a_70b_llama_shape_is_browsable_on_meta():
    loaded = load_model("big_models:llama_70b", device="meta")
    tree = build_tree(loaded.model)
    assert tree.root.total_params == 70_553_706_496
    assert tree.root.param_bytes == 70_553_706_496 * 4  # what it would take, none of it allocated
    assert tree.resolve("model.layers[-1].mlp.down_proj").total_params == 28672 * 8192
    (layers,) = tree.repeat_runs(tree.resolve("layers"))
    assert (layers.class_name, layers.length) == ("LlamaDecoderLayer", 80)


class _Wrapper(nn.Module):
    """Hugging Face style: the network sits in a child called ``model``."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        self.head = nn.Linear(4, 2)


def test_tree_and_cam_resolve_every_spelling_alike():
    from layerscope.cam import resolve_layer

    wrapper = _Wrapper()
    tree = build_tree(wrapper)
    for expression, expected in [
        ("model", "model"),
        ("model.model", "model"),
        ("model.model[-1]", "model.1"),
        ("head", "head"),
        ("", ""),
    ]:
        assert tree.resolve(expression).name == expected, expression
        assert resolve_layer(wrapper, expression)[0] == expected, expression
    for wrong in ("model[0]", "head.0"):  # the wrapper and a Linear are not indexable
        with pytest.raises(LayerscopeError):
            tree.resolve(wrong)
        with pytest.raises(LayerscopeError):
            resolve_layer(wrapper, wrong)


def test_positions_only_index_sequences(resnet18_tree):
    with pytest.raises(LayerscopeError, match="no layer '0'"):
        resnet18_tree.resolve("0")  # a ResNet is not indexable: model[0] is not valid Python
    assert resnet18_tree.resolve("layer4[0]").name == "layer4.0"


def test_a_folded_run_counts_tied_tensors_once():
    tied = nn.Sequential(*(nn.Linear(8, 8) for _ in range(3)))
    for layer in tied[1:]:
        layer.weight = tied[0].weight
    tree = build_tree(nn.Sequential(tied))
    (run,) = tree.repeat_runs(tree.resolve("0"))
    assert tree.run_params(run.members) == 64 + 3 * 8 == sum(p.numel() for p in tied.parameters())


def test_a_lazy_modules_uninitialized_parameters_count_zero_and_are_marked():
    """``nn.LazyLinear`` before its first forward holds ``UninitializedParameter``s, whose
    ``numel`` raises (issue 21): counted 0, marked ``uninitialized``, the rest exact."""
    model = nn.Sequential(nn.LazyConv2d(4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3), nn.Linear(3, 2))
    tree = build_tree(model)
    lazy, plain = tree.resolve("3"), tree.resolve("4")
    assert (lazy.total_params, lazy.param_tensors, lazy.state_dict_bytes) == (0, 2, 0)
    assert lazy.uninitialized and lazy.dtypes == ("uninitialized",)
    assert plain.total_params == 8 and not plain.uninitialized and plain.dtypes == ("float32",)
    root = tree.nodes[0]
    assert root.total_params == 8 and root.uninitialized and root.state_dict_entries == 6
    model(torch.zeros(1, 3, 5, 5))  # sized now: 4·3·3·3+4 and 36·3+3
    sized = build_tree(model)
    assert sized.nodes[0].total_params == 112 + 111 + 8 and not sized.nodes[0].uninitialized
