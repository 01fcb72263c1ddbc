"""A model held in Python, not loaded from a spec: ``PhotoExplainer`` on a plain module with the
caller's transforms, a diff against the weights in memory, and timm's own preprocessing."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from conftest import SAMPLES
from diff_models import edited_pair, tiny_resnet
from layerscope.cam import PhotoExplainer
from layerscope.diff import diff_checkpoints
from layerscope.errors import LayerscopeError
from layerscope.io import imaging
from layerscope.models import LoadedModel, Preprocess, load_model
from layerscope.tree import build_tree

CAT = SAMPLES / "chelsea.png"
IMAGENET = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def mobilenet():
    return load_model("mobilenet_v2", weights="IMAGENET1K_V1")


@pytest.mark.parametrize(
    "transform",
    [T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(**IMAGENET)]), "weights.transforms()"],
)
def test_photo_explainer_on_a_plain_module_equals_the_spec_loaded_path(mobilenet, transform):
    if transform == "weights.transforms()":
        from torchvision.models import MobileNet_V2_Weights

        transform = MobileNet_V2_Weights.IMAGENET1K_V1.transforms()
    spec_path = PhotoExplainer(mobilenet, CAT)
    own = PhotoExplainer(mobilenet.model, CAT, preprocess=transform, categories=mobilenet.categories)
    assert torch.equal(own.input, spec_path.input) and own.geometry == spec_path.geometry
    assert torch.equal(own.input, transform(Image.open(CAT).convert("RGB"))[None])  # the caller's own pixels
    [a], [b] = spec_path.maps(["auto"], "gradcam"), own.maps(["auto"], "gradcam")
    assert a.layer == b.layer and a.target == b.target and a.target_name == b.target_name
    assert torch.equal(a.heatmap, b.heatmap) and torch.equal(spec_path.on_photo(a), own.on_photo(b))


def test_plain_module_preprocessing_one_line_refusals():
    model = tiny_resnet()
    with pytest.raises(LayerscopeError, match="a RandomResizedCrop step cannot be mapped back onto the photo"):
        PhotoExplainer(model, CAT, preprocess=T.Compose([T.RandomResizedCrop(224), T.ToTensor()]))
    with pytest.raises(LayerscopeError, match="preprocess: cannot read a function"):
        PhotoExplainer(model, CAT, preprocess=lambda image: image)
    with pytest.raises(LayerscopeError, match="categories must be a list of class names"):
        LoadedModel.from_module(model, categories="cat")
    loaded = LoadedModel.from_module(model, preprocess=T.Compose([T.Resize((64, 96)), T.ToTensor()]))
    assert loaded.preprocess == Preprocess(resize=(64, 96), crop=None, mean=(0.0,) * 3, std=(1.0,) * 3)
    assert loaded.device == torch.device("cpu") and loaded.diff_base() is model


def test_diff_against_the_weights_in_memory_equals_the_files(tmp_path):
    a, b = edited_pair()
    torch.save(a, tmp_path / "a.pt")
    torch.save(b, tmp_path / "b.pt")
    from_files = diff_checkpoints(str(tmp_path / "a.pt"), str(tmp_path / "b.pt"))
    from_memory = diff_checkpoints(a, str(tmp_path / "b.pt"))
    assert from_memory.a == "state_dict (in memory)"
    assert dataclasses.replace(from_memory, a=from_files.a) == from_files

    model = tiny_resnet()
    model.load_state_dict(a)
    on_module = diff_checkpoints(model, str(tmp_path / "b.pt"))
    assert on_module.a == "TinyResNet.state_dict() (in memory)" and on_module.architecture == "TinyResNet"
    assert on_module.tensors == from_files.tensors
    with_tree = diff_checkpoints(model.state_dict(), b, tree=build_tree(model))
    assert with_tree.b == "state_dict (in memory)" and with_tree.tensors == from_files.tensors
    with pytest.raises(LayerscopeError, match="'x' holds a str, not a tensor"):
        diff_checkpoints({"x": "no"}, b)


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "resnet18"])
@pytest.mark.parametrize("photo", ["chelsea.png", "coffee.png"])
def test_timm_preprocessing_is_timms_own_bit_for_bit(name, photo):
    timm_data = pytest.importorskip("timm.data")
    loaded = load_model(f"timm:{name}", weights="none")
    image = imaging.load_image(SAMPLES / photo)
    theirs = timm_data.create_transform(**timm_data.resolve_data_config({}, model=loaded.model))(image)
    ours, _ = imaging.preprocess(image, loaded.preprocess)
    assert loaded.preprocess.interpolation == "bicubic"
    assert torch.equal(ours, theirs[None])
    assert LoadedModel.from_module(loaded.model).preprocess == loaded.preprocess  # a timm module held in Python too
