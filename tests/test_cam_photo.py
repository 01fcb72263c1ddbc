"""``PhotoExplainer``: one photo through the model and back onto the photo, and the sweep family."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from cam_models import TinyNet
from conftest import SAMPLES
from layerscope.cam import PhotoExplainer, compute_cam
from layerscope.cam.targets import family_names, spread, table_target
from layerscope.errors import LayerscopeError
from layerscope.io import imaging
from layerscope.models import LoadedModel, load_model
from layerscope.tree import build_tree

CAT = SAMPLES / "chelsea.png"


@pytest.fixture(scope="module")
def mobilenet():
    return load_model("mobilenet_v2", weights="IMAGENET1K_V1")


@pytest.fixture(scope="module")
def explainer(mobilenet):
    return PhotoExplainer(mobilenet, CAT)


def _forwards(model: torch.nn.Module) -> tuple[list[int], object]:
    calls: list[int] = []
    return calls, model.register_forward_hook(lambda *_: calls.append(1))


def test_holds_the_photo_its_input_geometry_and_seen_mask(explainer):
    assert explainer.image.size == (451, 300) and explainer.input.shape == (1, 3, 224, 224)
    # resize the short side to 256, centre crop 224: 80 px cut left and right, 16 top and bottom (resized pixels)
    assert explainer.geometry == imaging.Geometry((451, 300), (384, 256), (80, 16, 224, 224))
    seen_columns = explainer.mask.any(dim=0).nonzero().flatten()
    assert (int(seen_columns[0]), int(seen_columns[-1])) == (94, 356)
    assert not explainer.mask.all(dim=1).any()  # every row keeps unseen borders


def test_a_pil_image_and_its_path_give_the_same_input(mobilenet, explainer):
    from_pil = PhotoExplainer(mobilenet, Image.open(CAT))
    assert torch.equal(from_pil.input, explainer.input) and from_pil.path is None and explainer.path == CAT


def test_maps_are_one_pass_equal_compute_cam_and_lie_on_the_photo(mobilenet):
    explainer = PhotoExplainer(mobilenet, CAT)
    calls, handle = _forwards(mobilenet.model)
    try:
        head, mid = explainer.maps(["features[-1]", "features.14"], target="tiger cat")
    finally:
        handle.remove()
    assert calls == [1]  # both layers from one forward
    assert (head.layer, mid.layer, head.target, head.target_name) == ("features.18", "features.14", 282, "tiger cat")
    alone = compute_cam(mobilenet.model, explainer.input, "features.18", target=282)
    assert torch.allclose(alone.heatmap, head.heatmap)
    assert head.on_photo.shape == (300, 451)
    assert torch.equal(head.on_photo, imaging.to_original(head.heatmap, explainer.geometry))
    # zero beyond the crop (seen columns 94..356; the pixel at each edge is half in, half out)
    assert float(head.on_photo[:, :93].max()) == float(head.on_photo[:, 358:].max()) == 0.0
    row, column = divmod(int(head.on_photo.argmax()), 451)
    assert 180 <= row <= 260 and 220 <= column <= 300  # on the cat's face, lower middle of the photo


def test_a_second_call_on_hooked_layers_runs_no_model(mobilenet):
    explainer = PhotoExplainer(mobilenet, CAT)
    explainer.maps(["features.18"], hook=["features.16", "features.17"])
    assert explainer.hooked == ("features.18", "features.16", "features.17")
    assert explainer.has_pass(["features.17"], "layercam") and not explainer.has_pass(["features.17"], "gradcam", 1)
    calls, handle = _forwards(mobilenet.model)
    try:
        [again] = explainer.maps(["features.17"], "eigencam")
        assert calls == [] and again.layer == "features.17" and again.method == "eigencam"
        explainer.maps(["features.17"], "gradcam", target=1)  # another class: a new pass
        assert calls == [1]
    finally:
        handle.remove()


def test_overlay_is_photo_sized_and_leaves_unseen_pixels_alone(explainer):
    [result] = explainer.maps(["features.18"])
    picture = explainer.overlay(result, colormap="turbo", alpha=0.6)
    assert picture.size == (451, 300)
    assert picture.getpixel((10, 150)) == explainer.image.getpixel((10, 150))  # left of the crop
    assert picture.getpixel((225, 150)) != explainer.image.getpixel((225, 150))
    assert explainer.side_by_side(result).size == (3 * 451, 300)


def test_meta_models_and_unknown_layers_are_refused_in_one_line(mobilenet):
    meta = load_model("mobilenet_v2", device="meta")
    with pytest.raises(LayerscopeError, match="^CAMs need real weights .* not meta$"):
        PhotoExplainer(meta, CAT)
    explainer = PhotoExplainer(mobilenet, CAT)
    explainer.maps(["features.18"], hook=["features.17"])
    with pytest.raises(LayerscopeError, match="no layer 'features.99'"):
        explainer.maps(["features.99"])
    with pytest.raises(LayerscopeError, match="layer 'classifier.1' has no spatial output"):
        explainer.maps(["classifier.1"])
    assert explainer.hooked == ("features.18", "features.17")  # the failed passes left the kept one


def test_a_torchscript_model_is_refused_in_one_line_not_crashed_on():
    """A --trust'ed archive browses, but ScriptModules take no forward hooks: a user error, not a bug."""
    scripted = torch.jit.script(TinyNet().eval())
    loaded = LoadedModel(
        model=scripted,
        spec="tiny.pt",
        source="torchscript",
        weights="tiny.pt",
        pretrained=True,
        device=torch.device("cpu"),
    )
    with pytest.raises(LayerscopeError, match="^Grad-CAM needs forward hooks, which TorchScript modules do not"):
        compute_cam(scripted, torch.rand(1, 3, 32, 32), "conv")
    with pytest.raises(LayerscopeError, match="TorchScript"):
        PhotoExplainer(loaded, CAT).maps(["conv"])


@pytest.mark.parametrize(
    ("spec", "template", "count"),
    [
        ("timm:vit_base_patch16_224", "blocks.{}.norm1", 12),
        ("vit_b_16", "encoder.layers.encoder_layer_{}.ln_1", 12),
        ("resnet50", None, 16),
    ],
)
def test_the_family_is_every_block_s_layer_of_the_suggested_role(spec, template, count):
    model = load_model(spec, device="meta").model
    tree = build_tree(model)
    suggested = table_target(model, tree)
    family = family_names(tree, suggested)
    assert len(family) == count and family[-1] == suggested
    if template is not None:
        assert family == [template.format(i) for i in range(count)]


def test_swin_family_crosses_stages_but_not_roles():
    model = load_model("swin_t", device="meta").model
    tree = build_tree(model)
    family = family_names(tree, table_target(model, tree))
    depths = [2, 2, 6, 2]  # blocks per stage; stages are features.1, .3, .5, .7
    assert family == [f"features.{2 * s + 1}.{b}.norm1" for s, d in enumerate(depths) for b in range(d)]


def test_spread_keeps_the_chosen_layer_and_the_ends():
    names = [f"features.{i}" for i in range(19)]
    picked = spread(names, "features.9", 16)
    assert len(picked) == 16 and {"features.0", "features.9", "features.18"} <= set(picked)
    assert picked == sorted(picked, key=names.index)


def test_layer_family_on_a_real_vit_and_the_eligible_fallback():
    vit = PhotoExplainer(load_model("timm:vit_tiny_patch16_224"), CAT)
    assert vit.layer_family() == [f"blocks.{i}.norm1" for i in range(12)]
    assert vit.layer_family("blocks.3.norm2") == [f"blocks.{i}.norm2" for i in range(12)]
    tiny = LoadedModel(
        model=TinyNet().eval(),
        spec="TinyNet",
        source="test",
        weights="none",
        pretrained=False,
        device=torch.device("cpu"),
    )
    assert PhotoExplainer(tiny, CAT).layer_family("relu") == ["conv", "relu"]  # alone in its role
