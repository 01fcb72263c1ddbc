"""layerscope's maps against pytorch-grad-cam's and torchcam's, the references users compare with.

The gradient and eigen methods run on the real ImageNet mobilenet_v2 at ``features[-1]`` (a
cheap backward); the perturbation methods (Score-CAM, Ablation-CAM: one forward per channel in
the references) on a seeded small network whose target layer has 16 channels, so the whole file
stays a few seconds. The references are dev dependencies: these tests run in CI, never skip.
"""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from layerscope.cam import compute_cam
from layerscope.io import imaging
from layerscope.models import load_model

pytestmark = pytest.mark.slow  # real weights, two reference libraries: a few seconds

EGYPTIAN_CAT = 285

# method → (pytorch-grad-cam class, torchcam class or None, least Pearson r with pytorch-grad-cam);
# classes by name: the references are imported by the tests that use them, not at collection
# (pytorch-grad-cam pulls in OpenCV and scikit-learn, seconds for every test process)
GRADIENT_METHODS = {
    "gradcam": ("GradCAM", "GradCAM", 0.9999),
    "gradcam++": ("GradCAMPlusPlus", "GradCAMpp", 0.998),  # eps 1e-6 there, 1e-7 here: r = 0.9986
    "hirescam": ("HiResCAM", None, 0.9999),
    "xgradcam": ("XGradCAM", "XGradCAM", 0.9999),
    "layercam": ("LayerCAM", "LayerCAM", 0.9999),
    "eigencam": ("EigenCAM", None, 0.9999),
    "eigengradcam": ("EigenGradCAM", None, 0.9999),
}
# torchcam's Grad-CAM++ keeps alpha = g² / (2g² + Σ A·g³) without pytorch-grad-cam's eps: r = 0.970
TORCHCAM_LEAST_R = {"gradcam++": 0.96}
PERTURBATION_METHODS = {
    "scorecam": ("ScoreCAM", 0.97),  # pytorch-grad-cam upsamples its masks with align_corners=True
    "ablationcam": ("AblationCAM", 0.9999),
}


def pearson(a, b) -> float:
    u, v = (torch.as_tensor(m).flatten().double() for m in (a, b))
    u, v = u - u.mean(), v - v.mean()
    return float((u @ v) / (u.norm() * v.norm()))


def pgc_map(name: str, model, x, layer, target):
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with getattr(pgc, name)(model=model, target_layers=[layer]) as cam, contextlib.redirect_stderr(io.StringIO()):
        cam.batch_size = 16
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]


@pytest.fixture(scope="module")
def mobilenet_on_chelsea():
    loaded = load_model("mobilenet_v2", weights="IMAGENET1K_V1")
    x, _ = imaging.preprocess(imaging.load_image(imaging.SAMPLES / "chelsea.png"), loaded.preprocess)
    return loaded.model, x


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_gradient_maps_equal_the_references(mobilenet_on_chelsea, method):
    model, x = mobilenet_on_chelsea
    reference, torchcam_cls, least_r = GRADIENT_METHODS[method]
    ours = compute_cam(model, x, "features.18", method, EGYPTIAN_CAT).heatmap
    assert ours.shape == (224, 224)
    assert pearson(ours, pgc_map(reference, model, x, model.features[18], EGYPTIAN_CAT)) >= least_r
    if torchcam_cls is not None:
        import torchcam.methods

        extractor = getattr(torchcam.methods, torchcam_cls)(model, ["features.18"])
        try:
            cams = extractor(EGYPTIAN_CAT, model(x))
        finally:
            extractor.remove_hooks()
        theirs = F.interpolate(cams[0][:, None], size=(224, 224), mode="bilinear", align_corners=False)[0, 0]
        assert pearson(ours, theirs.detach()) >= TORCHCAM_LEAST_R.get(method, 0.999)
    model.zero_grad(set_to_none=True)


def small_classifier() -> nn.Module:
    torch.manual_seed(7)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    ).eval()


@pytest.mark.parametrize("method", PERTURBATION_METHODS)
def test_perturbation_maps_equal_pytorch_grad_cam(method):
    model = small_classifier()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    target = int(model(x).argmax())
    reference, least_r = PERTURBATION_METHODS[method]
    ours = compute_cam(model, x, "4", method, target).heatmap
    theirs = pgc_map(reference, model, x, model[4], target)
    assert ours.shape == theirs.shape == (32, 32)
    assert pearson(ours, theirs) >= least_r
