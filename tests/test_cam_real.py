"""The real ImageNet mobilenet_v2 on the two bundled photos: the right class, and every
method's map peaking on the cat / the cup (boxes drawn by hand on the ORIGINAL photos)."""

from __future__ import annotations

import pytest
import torch

from layerscope.cam import METHODS, CamPass, compute_cam
from layerscope.io import imaging
from layerscope.models import load_model

# (left, top, right, bottom) in original-image pixels
PHOTOS = {
    "chelsea": ("Egyptian cat", (110, 60, 360, 300)),  # 451×300: eyes, nose, mouth and chin (not forehead, ears)
    "coffee": ("espresso", (150, 20, 460, 300)),  # 600×400: cup and crema, not the table
}
# Score-CAM runs one forward per channel: at features.17 (320 channels) it stays in seconds.
LAYER_FOR = {"scorecam": "features[-2]"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mobilenet():
    return load_model("mobilenet_v2", weights="IMAGENET1K_V1")


@pytest.fixture(scope="module", params=list(PHOTOS))
def photo(request, mobilenet):
    image = imaging.load_image(imaging.SAMPLES / f"{request.param}.png")
    x, geometry = imaging.preprocess(image, mobilenet.preprocess)
    session = CamPass(mobilenet.model, x, ["features[-1]"], categories=mobilenet.categories)
    return request.param, image, x, geometry, session


def test_top1_is_the_photo_subject(photo, mobilenet):
    name, _, _, _, session = photo
    expected, _ = PHOTOS[name]
    assert mobilenet.categories[int(session.scores.argmax())] == expected
    assert session.target.name == expected


@pytest.mark.parametrize("method", [name for name, m in METHODS.items() if not m.attends])
def test_each_method_peaks_on_the_subject(photo, mobilenet, method):
    name, image, x, geometry, session = photo
    if method in ("scorecam",):
        result = compute_cam(mobilenet.model, x, LAYER_FOR[method], method, categories=mobilenet.categories)
    else:
        result = session.result("features.18", method, batch_size=64)
    heat = imaging.to_original(result.heatmap, geometry)
    assert heat.shape == (image.height, image.width) and not result.all_zero
    y, x0 = divmod(int(heat.argmax()), heat.shape[1])
    left, top, right, bottom = PHOTOS[name][1]
    assert left <= x0 <= right and top <= y <= bottom, (method, x0, y)
    seen = imaging.seen_mask(geometry)  # compare only where the model saw the photo: unseen borders are 0
    box = torch.zeros_like(seen)
    box[top:bottom, left:right] = True
    inside, outside = heat[box & seen].mean(), heat[~box & seen].mean()
    assert inside > 1.5 * outside, (method, float(inside), float(outside))
