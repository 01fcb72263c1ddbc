"""Faithfulness metrics and the sanity check on the real ImageNet mobilenet_v2 and both photos.

The oracle is the issue's protocol written out again here, one forward per perturbed
image and numpy's stable sort, so a shared mistake in the batching, the ordering or
the trapezoid would have to be made twice; pytorch-grad-cam's
``CamMultImageConfidenceChange`` (a dev dependency) checks the confidence change.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

from layerscope.cam import CamCancelled, CamPass, metrics
from layerscope.errors import LayerscopeError
from layerscope.io import imaging
from layerscope.models import load_model

pytestmark = pytest.mark.slow


def oracle(model, x, heatmap, target, steps):
    """The protocol of issue 10, unbatched: (deletion AUC, insertion AUC, average drop, increased)."""

    def score(image):
        with torch.no_grad():
            return float(torch.softmax(model(image), dim=1)[0, target])

    h, w = heatmap.shape
    order = np.argsort(-heatmap.numpy().ravel(), kind="stable")
    curves = {"del": [], "ins": []}
    for k in range(steps + 1):
        chosen = np.zeros(h * w, dtype=bool)
        chosen[order[: round(k * h * w / steps)]] = True
        mask = torch.from_numpy(chosen.reshape(h, w))
        curves["del"].append(score(torch.where(mask, 0.0, x)))
        curves["ins"].append(score(torch.where(mask, x, 0.0)))
    auc = {kind: (sum(p) - (p[0] + p[-1]) / 2) / steps for kind, p in curves.items()}
    y, o = score(x), score(x * heatmap)
    return auc["del"], auc["ins"], max(0.0, y - o) / y, o > y


@pytest.fixture(scope="module")
def mobilenet():
    torch.manual_seed(0)
    return load_model("mobilenet_v2", weights="IMAGENET1K_V1")


@pytest.fixture(scope="module", params=["chelsea", "coffee"])
def photo(request, mobilenet):
    """The photo's input and its Grad-CAM map at features[-1] for the top class."""
    x, _ = imaging.preprocess(imaging.load_image(imaging.SAMPLES / f"{request.param}.png"), mobilenet.preprocess)
    session = CamPass(mobilenet.model, x, ["features[-1]"], categories=mobilenet.categories)
    return request.param, x, session.result("features.18").heatmap, session.target.label


def test_scores_match_the_unbatched_oracle(mobilenet, photo):
    _, x, heatmap, target = photo
    got = metrics.faithfulness(mobilenet.model, x, [heatmap], target, steps=20, batch_size=16)[0]
    deletion, insertion, drop, increased = oracle(mobilenet.model, x, heatmap, target, 20)
    assert got.deletion_auc == pytest.approx(deletion, abs=1e-5)
    assert got.insertion_auc == pytest.approx(insertion, abs=1e-5)
    assert got.average_drop == pytest.approx(drop, abs=1e-5)
    assert got.increased == increased
    assert len(got.deletion_curve) == len(got.insertion_curve) == 21
    assert metrics.deletion_auc(mobilenet.model, x, heatmap, target, 20) == pytest.approx(got.deletion_auc, abs=1e-6)
    assert metrics.insertion_auc(mobilenet.model, x, heatmap, target, 20) == pytest.approx(got.insertion_auc, abs=1e-6)


def test_the_map_beats_its_inverse_at_features_last(mobilenet, photo):
    name, x, heatmap, target = photo
    good, inverted = metrics.faithfulness(mobilenet.model, x, [heatmap, 1 - heatmap], target, steps=10)
    assert good.deletion_auc < inverted.deletion_auc, name
    assert good.insertion_auc > inverted.insertion_auc, name
    assert good.gap > 0 > inverted.gap, name


def test_confidence_change_agrees_with_pytorch_grad_cam(mobilenet, photo):
    from pytorch_grad_cam.metrics import cam_mult_image as cam_mult  # here: seconds to import
    from pytorch_grad_cam.utils import model_targets as targets

    _, x, heatmap, target = photo
    drop, increased = metrics.confidence_change(mobilenet.model, x, heatmap, target)
    change = cam_mult.CamMultImageConfidenceChange()(  # O − Y
        x, heatmap[None].numpy(), [targets.ClassifierOutputSoftmaxTarget(target)], mobilenet.model
    )
    with torch.no_grad():
        y = float(torch.softmax(mobilenet.model(x), dim=1)[0, target])
    assert drop == pytest.approx(max(0.0, -float(change[0])) / y, abs=1e-5)
    assert increased == bool(change[0] > 0)


def test_many_maps_in_one_stream_equal_each_alone(mobilenet, photo):
    _, x, heatmap, target = photo
    maps = [heatmap, heatmap.flip(0), torch.rand(heatmap.shape, generator=torch.Generator().manual_seed(1))]
    together = metrics.faithfulness(mobilenet.model, x, maps, target, steps=5, batch_size=7)
    for one, alone in zip(together, (metrics.faithfulness(mobilenet.model, x, [m], target, steps=5)[0] for m in maps)):
        assert one.deletion_curve == pytest.approx(alone.deletion_curve, abs=1e-5)
        assert one.insertion_curve == pytest.approx(alone.insertion_curve, abs=1e-5)


def test_a_batch_of_photos_scores_each_as_alone(mobilenet):
    """Two photos, different classes and map counts, in one stream whose batches mix them: each
    photo's scores are what ``faithfulness`` gives it alone (the rank command's path)."""
    names = ("chelsea", "coffee")
    xs = [imaging.preprocess(imaging.load_image(imaging.SAMPLES / f"{n}.png"), mobilenet.preprocess)[0] for n in names]
    x = torch.cat(xs)
    cam_pass = CamPass(mobilenet.model, x, ["features.16", "features.18"], categories=mobilenet.categories)
    maps = [r.per_image() for r in cam_pass.results()]
    targets = [int(k) for k in cam_pass.target.classes]
    assert targets == [285, 967]  # Egyptian cat, espresso
    per_image = [[maps[0][0].heatmap, maps[1][0].heatmap], [maps[1][1].heatmap]]
    together = metrics.faithfulness_batch(mobilenet.model, x, per_image, targets, steps=4, batch_size=5)
    assert [len(s) for s in together] == [2, 1]
    for i, (photo_maps, scores) in enumerate(zip(per_image, together)):
        alone = metrics.faithfulness(mobilenet.model, xs[i], photo_maps, targets[i], steps=4)
        for one, single in zip(scores, alone):
            assert one.deletion_curve == pytest.approx(single.deletion_curve, abs=1e-6)
            assert one.insertion_curve == pytest.approx(single.insertion_curve, abs=1e-6)
            assert (one.average_drop, one.increased) == (pytest.approx(single.average_drop, abs=1e-6), single.increased)
    assert together[1][0].gap > 0.5  # the espresso map at features[-1] earns its class (ins − del ≈ 0.70)


def test_progress_counts_every_perturbed_pass_and_cancel_stops(mobilenet, photo):
    _, x, heatmap, target = photo
    seen: list[tuple[int, int]] = []
    metrics.faithfulness(
        mobilenet.model,
        x,
        [heatmap, heatmap],
        target,
        steps=4,
        batch_size=5,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(5, 14), (10, 14), (14, 14)]  # 2 maps × (3 deletion + 3 insertion + 1 product)
    stop = threading.Event()
    with pytest.raises(CamCancelled, match="after 5 of 14"):
        metrics.faithfulness(
            mobilenet.model,
            x,
            [heatmap, heatmap],
            target,
            steps=4,
            batch_size=5,
            progress=lambda done, total: stop.set(),
            cancel=stop,
        )


def test_no_hook_left_and_flags_restored(mobilenet, photo):
    _, x, heatmap, target = photo
    model = mobilenet.model
    model.train()
    try:
        metrics.faithfulness(model, x, [heatmap], target, steps=2)
        metrics.randomization_check(model, x, "features[-1]")
        assert all(m.training for m in model.modules())
        assert all(p.requires_grad for p in model.parameters())
        assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())
        assert torch.is_grad_enabled()
    finally:
        model.eval()


@pytest.mark.parametrize(
    "bad, words",
    [(torch.zeros(7, 7), "must be 224×224 like the input, got 7×7"), (torch.zeros(1, 224, 224), "got 1×224×224")],
)
def test_a_map_of_the_wrong_size_is_one_clear_error(mobilenet, photo, bad, words):
    _, x, _, target = photo
    with pytest.raises(LayerscopeError, match=words):
        metrics.deletion_auc(mobilenet.model, x, bad, target)


def test_a_class_out_of_range_is_one_clear_error(mobilenet, photo):
    _, x, heatmap, _ = photo
    with pytest.raises(LayerscopeError, match="class index 1000 is out of range: the model has 1000 classes"):
        metrics.insertion_auc(mobilenet.model, x, heatmap, 1000, steps=2)


def test_sanity_check_separates_gradcam_from_eigencam(mobilenet, photo):
    name, x, _, _ = photo
    grad = metrics.randomization_check(mobilenet.model, x, "features[-1]", "gradcam")
    eigen = metrics.randomization_check(mobilenet.model, x, "features[-1]", "eigencam")
    assert eigen == pytest.approx(1.0, abs=1e-9), name  # the head cannot touch the layer's activations
    assert grad < 0.5, name  # re-initialise the classifier and Grad-CAM's map is another map
    assert not metrics.is_blind(grad) and metrics.is_blind(eigen)


def test_cascade_equals_each_layer_checked_alone(mobilenet, photo):
    _, x, _, _ = photo
    layers = ["features.18", "features.14", "features.10"]
    cascade = metrics.randomization_checks(mobilenet.model, x, layers, "gradcam")
    assert list(cascade) == layers
    for layer in layers[1:]:
        assert cascade[layer] == pytest.approx(metrics.randomization_check(mobilenet.model, x, layer), abs=1e-9)


def test_the_last_module_has_nothing_after_it(mobilenet, photo):
    _, x, _, _ = photo
    with pytest.raises(LayerscopeError, match="no module with weights runs after 'classifier.1'"):
        metrics.randomization_check(mobilenet.model, x, "classifier.1", "eigencam")


def test_spearman_matches_a_rank_table_by_hand():
    a = torch.tensor([[1.0, 2.0], [2.0, 5.0]])
    b = torch.tensor([[0.0, 3.0], [1.0, 1.0]])
    ra, rb = np.array([1, 2.5, 2.5, 4]), np.array([1, 4, 2.5, 2.5])  # average ranks of ties
    expected = np.corrcoef(ra, rb)[0, 1]
    assert metrics.spearman(a, b) == pytest.approx(expected, abs=1e-12)
    assert metrics.spearman(a, a) == pytest.approx(1.0) and metrics.spearman(a, -a) == pytest.approx(-1.0)
    assert math.isnan(metrics.spearman(a, torch.zeros(2, 2)))
