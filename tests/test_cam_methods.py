"""Each method's maths against an independent computation on a model small enough to do by hand.

For ``TinyNet`` the logit of class t is Σ_k W[t,k]·mean(relu(conv)_k) + b, so the gradient
with respect to the (pre-ReLU) conv output is W[t,k]/(h·w) where the activation is positive
and 0 elsewhere: the tests build gradients from that formula, not from autograd.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from cam_models import TinyNet, tiny_input
from layerscope.cam import METHODS, compute_cam

TARGET = 1


@pytest.fixture(scope="module")
def setup():
    model = TinyNet(inplace=False)
    x = tiny_input()
    with torch.no_grad():
        a = model.conv(x)  # 1×C×h×w, the hooked activation
    h, w = a.shape[-2:]
    g = (model.fc.weight[TARGET][None, :, None, None] / (h * w)).expand_as(a) * (a > 0)
    return model, x, a, g.detach()


def _reference(raw: torch.Tensor) -> torch.Tensor:
    return F.relu(raw)[0]


def _cam(model, x, method, **kw):
    return compute_cam(model, x, "conv", method, TARGET, **kw)


def test_registry_lists_the_nine_cam_methods_then_the_three_transformer_methods():
    assert list(METHODS) == [
        "gradcam",
        "gradcam++",
        "hirescam",
        "xgradcam",
        "layercam",
        "eigencam",
        "eigengradcam",
        "scorecam",
        "ablationcam",
        "rollout",
        "gradrollout",
        "legrad",
    ]
    assert [name for name, m in METHODS.items() if m.attends] == ["rollout", "gradrollout", "legrad"]


def test_gradcam_weights_are_the_spatial_mean_of_gradients(setup):
    model, x, a, g = setup
    weights = g.mean(dim=(2, 3))
    expected = sum(weights[0, k] * a[0, k] for k in range(a.shape[1]))
    assert torch.allclose(_cam(model, x, "gradcam").raw, F.relu(expected), atol=1e-6)


def test_gradcam_plus_plus_alpha_formula(setup):
    model, x, a, g = setup
    expected = torch.zeros(a.shape[-2:])
    for k in range(a.shape[1]):
        gk, ak = g[0, k], a[0, k]
        denom = 2 * gk**2 + ak.sum() * gk**3
        alpha = torch.where(gk != 0, gk**2 / (denom + 1e-7), torch.zeros_like(gk))
        expected += (F.relu(gk) * alpha).sum() * ak
    assert torch.allclose(_cam(model, x, "gradcam++").raw, F.relu(expected), atol=1e-6)


def test_hirescam_is_elementwise_gradient_times_activation(setup):
    model, x, a, g = setup
    assert torch.allclose(_cam(model, x, "hirescam").raw, _reference((g * a).sum(1)), atol=1e-6)


def test_xgradcam_normalises_by_activation_sum(setup):
    model, x, a, g = setup
    weights = (g * a).sum(dim=(2, 3)) / (a.sum(dim=(2, 3)) + 1e-7)
    expected = (weights[:, :, None, None] * a).sum(1)
    assert torch.allclose(_cam(model, x, "xgradcam").raw, _reference(expected), atol=1e-6)


def test_layercam_uses_positive_gradients_per_position(setup):
    model, x, a, g = setup
    assert torch.allclose(_cam(model, x, "layercam").raw, _reference((g.clamp(min=0) * a).sum(1)), atol=1e-6)


def _svd_projection(matrix_chw: torch.Tensor) -> torch.Tensor:
    c, h, w = matrix_chw.shape
    m = matrix_chw.reshape(c, -1).T.double()
    centred = m - m.mean(0)
    _, _, vt = torch.linalg.svd(centred, full_matrices=False)
    p = centred @ vt[0]
    if torch.dot(p, m.sum(1) - m.sum(1).mean()) < 0:
        p = -p
    return F.relu(p.reshape(h, w)).float()


def test_eigencam_is_the_first_principal_component(setup):
    model, x, a, _ = setup
    assert torch.allclose(_cam(model, x, "eigencam").raw, _svd_projection(a[0]), atol=1e-5)


def test_eigencam_projection_when_channels_outnumber_positions():
    torch.manual_seed(0)
    model = TinyNet(channels=80, inplace=False)
    x = tiny_input(size=4)
    with torch.no_grad():
        a = model.conv(x)
    assert torch.allclose(compute_cam(model, x, "conv", "eigencam").raw, _svd_projection(a[0]), atol=1e-5)


def test_eigengradcam_projects_gradient_times_activation(setup):
    model, x, a, g = setup
    assert torch.allclose(_cam(model, x, "eigengradcam").raw, _svd_projection((g * a)[0]), atol=1e-5)


def test_scorecam_softmax_of_masked_input_scores(setup):
    model, x, a, _ = setup
    scores = []
    for k in range(a.shape[1]):
        mask = F.interpolate(a[:, k : k + 1], size=x.shape[-2:], mode="bilinear", align_corners=False)
        mask = (mask - mask.min()) / (mask.max() - mask.min() + 1e-7)
        with torch.no_grad():
            scores.append(model(x * mask)[0, TARGET])
    weights = torch.softmax(torch.stack(scores), 0)
    expected = (weights[:, None, None] * a[0]).sum(0)
    assert torch.allclose(_cam(model, x, "scorecam", batch_size=3).raw, F.relu(expected), atol=1e-5)


def test_ablationcam_relative_score_drop(setup):
    model, x, a, _ = setup
    with torch.no_grad():

        def score(act):
            return model.fc(F.relu(act).mean(dim=(2, 3)))[0, TARGET]

        base = score(a)
        drops = []
        for k in range(a.shape[1]):
            ablated = a.clone()
            ablated[:, k] = 0
            drops.append((base - score(ablated)) / (base + 1e-7))
    expected = (torch.stack(drops)[:, None, None] * a[0]).sum(0)
    assert torch.allclose(_cam(model, x, "ablationcam", batch_size=3).raw, F.relu(expected), atol=1e-5)


@pytest.mark.parametrize("method", [name for name, m in METHODS.items() if not m.attends])
def test_heatmap_is_min_max_scaled_upsampled_raw(setup, method):
    model, x, _, _ = setup
    result = _cam(model, x, method)
    up = F.interpolate(result.raw[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    expected = (up - up.min()) / (up.max() - up.min())
    assert result.heatmap.dtype == torch.float32 and result.heatmap.shape == x.shape[-2:]
    assert torch.allclose(result.heatmap, expected, atol=1e-5)
    assert result.heatmap.min() == 0 and result.heatmap.max() == pytest.approx(1.0)
    assert result.method == method and result.layer == "conv"
    assert result.target == (None if METHODS[method].class_blind else TARGET)


def test_batch_gives_one_map_per_image_equal_to_single_runs():
    model = TinyNet(inplace=False)
    x = tiny_input(batch=3)
    batch = compute_cam(model, x, "conv", "gradcam")
    assert batch.heatmap.shape == (3, 8, 8) and isinstance(batch.target, tuple)
    for i, single in enumerate(batch.per_image()):
        alone = compute_cam(model, x[i : i + 1], "conv", "gradcam")
        assert torch.allclose(single.heatmap, alone.heatmap, atol=1e-5)
        assert single.target == alone.target


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_documents_its_formula_and_paper(name):
    doc = METHODS[name].compute.__doc__
    formula, _, reference = doc.partition("\n\n")
    assert "=" in formula or "Eigen-CAM of" in formula
    assert re.search(r"https://\S+", reference)
    assert re.search(r'"[^"]{20,}",\s+[A-Za-z\s]*20\d\d\.', reference) or "No paper of its own" in reference


def test_eigencam_sign_follows_the_mean_activation():
    """The principal direction's sign is arbitrary; the rule: the map (before the ReLU) covaries
    positively with each position's mean activation over channels, for any input."""
    from layerscope.cam.methods import CamInputs, eigencam

    for seed in range(8):
        torch.manual_seed(seed)
        activations = torch.randn(1, 16, 7, 7) + torch.linspace(-3, 3, 49).reshape(1, 1, 7, 7)
        raw = eigencam(CamInputs(activations))[0].flatten().double()
        mean = activations[0].mean(dim=0).flatten().double()
        assert torch.dot(raw - raw.mean(), mean - mean.mean()) > 0, seed
        flipped = eigencam(CamInputs(-activations))[0].flatten().double()
        assert torch.dot(flipped - flipped.mean(), -(mean - mean.mean())) > 0, seed


def test_eigencam_claims_no_class_and_the_gradient_methods_do(setup):
    model, x, _, _ = setup
    blind = compute_cam(model, x, "conv", "eigencam")
    assert blind.target is None and blind.target_name is None
    assert METHODS["eigencam"].class_blind and not METHODS["eigengradcam"].class_blind
    assert _cam(model, x, "gradcam").target == TARGET
