"""Images in and out: every common mode loads as RGB, preprocessing equals torchvision's,
maps land on the right place in the ORIGINAL photo, and colormaps have their known ends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from layerscope.errors import LayerscopeError
from layerscope.io import imaging
from layerscope.models import Preprocess


def _save(tmp_path, image: Image.Image, name: str) -> str:
    path = tmp_path / name
    image.save(path)
    return str(path)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: Image.new("RGBA", (4, 3), (255, 0, 0, 0)), (255, 255, 255)),  # transparent → white
        (lambda: Image.new("RGBA", (4, 3), (255, 0, 0, 255)), (255, 0, 0)),
        (lambda: Image.new("L", (4, 3), 128), (128, 128, 128)),
        (lambda: Image.new("LA", (4, 3), (0, 255)), (0, 0, 0)),
        (lambda: Image.new("I;16", (4, 3), 65535), (255, 255, 255)),
        (lambda: Image.new("RGB", (4, 3), (10, 20, 30)).convert("P", palette=Image.ADAPTIVE), (10, 20, 30)),
    ],
    ids=["rgba-transparent", "rgba-opaque", "grey", "grey-alpha", "16-bit", "palette"],
)
def test_load_image_converts_to_rgb(tmp_path, make, expected):
    image = imaging.load_image(_save(tmp_path, make(), "x.png"))
    assert image.mode == "RGB" and image.size == (4, 3)
    assert image.getpixel((1, 1)) == pytest.approx(expected, abs=2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, not a picture", "not an image file"),
        (None, "no such image"),
        (b"\x89PNG\r\n\x1a\n trunc", "cannot read"),
    ],
)
def test_unreadable_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(LayerscopeError, match=message) as info:
        imaging.load_image(path)
    assert "\n" not in str(info.value)


def test_a_folder_is_not_an_image(tmp_path):
    with pytest.raises(LayerscopeError, match="is a folder"):
        imaging.load_image(tmp_path)


def test_preprocess_equals_the_weights_own_transforms():
    image = imaging.load_image(imaging.SAMPLES / "chelsea.png")
    weights = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1
    tensor, geometry = imaging.preprocess(image, Preprocess())
    assert torch.allclose(tensor[0], weights.transforms()(image), atol=1e-5)
    assert geometry == imaging.Geometry((451, 300), (384, 256), (80, 16, 224, 224))


def test_heatmap_maps_back_onto_the_original_geometry():
    image = Image.new("RGB", (400, 200))
    spec = Preprocess(resize=100, crop=(80, 80))
    _, geometry = imaging.preprocess(image, spec)  # 400×200 → 200×100 → centre crop 80×80 at (60, 10)
    heat = torch.zeros(80, 80)
    heat[38:42, 18:22] = 1.0  # crop pixel (x=20, y=40) → resized (80, 50) → original (160, 100)
    original = imaging.to_original(heat, geometry)
    assert original.shape == (200, 400)
    ys, xs = torch.meshgrid(torch.arange(200.0), torch.arange(400.0), indexing="ij")
    x, y = (original * xs).sum() / original.sum(), (original * ys).sum() / original.sum()
    assert abs(x + 0.5 - 160) < 0.5 and abs(y + 0.5 - 100) < 0.5  # pixel centres sit at +0.5
    assert original[:, :115].abs().max() == 0 and original[:, 285:].abs().max() == 0  # outside the crop


def test_colormaps_have_their_published_end_colours():
    ends = torch.tensor([[0.0, 1.0]])
    assert imaging.colorize(ends, "jet").tolist() == [[[0, 0, 128], [128, 0, 0]]]
    assert imaging.colorize(ends, "viridis").tolist() == [[[68, 1, 84], [253, 231, 37]]]
    assert imaging.colorize(ends, "inferno").tolist() == [[[0, 0, 4], [252, 255, 164]]]
    turbo = imaging.colorize(torch.tensor([[0.0, 0.5, 1.0]]), "turbo")[0].tolist()
    assert turbo[0] == pytest.approx([35, 23, 27], abs=25) and turbo[1][1] > 200  # dark, then green-yellow
    with pytest.raises(LayerscopeError, match="unknown colormap 'hot'"):
        imaging.colorize(ends, "hot")


def test_overlay_blends_with_alpha_and_side_by_side_has_three_panels():
    image = Image.new("RGB", (6, 4), (200, 100, 50))
    heat = torch.ones(4, 6)
    assert imaging.overlay(image, heat, alpha=0.0).getpixel((2, 2)) == (200, 100, 50)
    assert imaging.overlay(image, heat, alpha=1.0).getpixel((2, 2)) == (128, 0, 0)
    assert imaging.overlay(image, heat, alpha=0.5).getpixel((2, 2)) == (164, 50, 25)
    panels = imaging.side_by_side(image, heat)
    assert panels.size == (18, 4) and panels.getpixel((0, 0)) == (200, 100, 50)
    assert panels.getpixel((7, 0)) == (128, 0, 0)
    with pytest.raises(LayerscopeError, match="alpha"):
        imaging.overlay(image, heat, alpha=2)


def test_save_npy_round_trips(tmp_path):
    heat = torch.rand(5, 7)
    path = imaging.save_npy(heat, tmp_path / "map.npy")
    loaded = np.load(path)
    assert loaded.dtype == np.float32 and np.allclose(loaded, heat.numpy())


def test_labelled_grid_lays_out_tiles():
    tiles = [(f"t{i}", Image.new("RGB", (50, 25), (i * 40, 0, 0))) for i in range(5)]
    grid = imaging.labelled_grid(tiles, tile_width=100)
    assert grid.size == (300, 2 * (50 + 18))
    assert grid.getpixel((150, 18 + 25)) == (40, 0, 0)  # second tile, below its caption


def test_seen_mask_covers_only_the_centre_crop_and_the_overlay_leaves_the_rest_untouched():
    photo = Image.new("RGB", (400, 200), (10, 200, 30))
    _, geometry = imaging.preprocess(photo, Preprocess(resize=224, crop=(224, 224)))
    mask = imaging.seen_mask(geometry)
    assert mask.shape == (200, 400)
    columns = mask.any(dim=0).nonzero().flatten()
    assert (int(columns.min()), int(columns.max())) == (100, 299)  # the 200-px-wide centre square
    assert bool(mask[:, 150].all()) and not bool(mask[:, 20].any())
    blended = np.asarray(imaging.overlay(photo, torch.ones(200, 400), alpha=0.5, mask=mask))
    assert tuple(blended[100, 20]) == (10, 200, 30)  # unseen border: the photo as it was
    assert tuple(blended[100, 200]) != (10, 200, 30)  # seen: heat blended in


def test_preprocess_without_a_crop_keeps_the_image_size():
    photo = Image.new("RGB", (300, 120))
    tensor, geometry = imaging.preprocess(photo, Preprocess(resize=None, crop=None, mean=(0, 0, 0), std=(1, 1, 1)))
    assert tensor.shape == (1, 3, 120, 300)
    assert bool(imaging.seen_mask(geometry).all())


def test_save_names_say_what_the_map_is_and_count_up(tmp_path):
    from layerscope.io.savenames import map_stem, unused_stem

    stem = map_stem(
        spec="timm:vit_base_patch16_224",
        layer="blocks.11.norm1",
        method="gradcam++",
        image="photos/my cat.jpg",
        target=282,
        target_name="tiger cat",
    )
    assert stem == "timm_vit_base_patch16_224-blocks.11.norm1-gradcampp-my_cat-282_tiger_cat"
    assert (
        map_stem(spec="ckpt/r18.pth", layer="", method="eigencam", image="x.png", target=None, target_name=None)
        == "r18.pth-model-eigencam-x-top"
    )
    assert unused_stem(tmp_path, "m") == tmp_path / "m"
    (tmp_path / "m.npy").write_bytes(b"")  # either file taken is enough to move on
    (tmp_path / "m-2.png").write_bytes(b"")
    assert unused_stem(tmp_path, "m") == tmp_path / "m-3"
