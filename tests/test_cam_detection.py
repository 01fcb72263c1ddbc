"""Faster R-CNN: the FPN dict combined into one map, a box as the target, padding cropped."""

from __future__ import annotations

import pytest
import torch

from layerscope.cam import BoxTarget, CamPass, compute_cam, is_detection_model
from layerscope.models import load_model


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    # box_score_thresh=0 keeps low-confidence boxes, so random weights still "detect" something
    kwargs = {"min_size": 100, "max_size": 1333, "box_score_thresh": 0.0}
    return load_model("fasterrcnn_resnet50_fpn", weights="none", kwargs=kwargs).model


@pytest.fixture(scope="module")
def image():
    return torch.rand(1, 3, 100, 130, generator=torch.Generator().manual_seed(0))


@pytest.mark.slow
def test_eigencam_needs_no_gradients_and_crops_the_padding(detector, image):
    assert is_detection_model(detector)
    result = compute_cam(detector, image, "backbone", "eigencam")
    # 100×130 is padded to 128×160; the stride-16 level is 8×10, of which 7×9 covers the photo
    assert result.raw.shape == (7, 9) and result.heatmap.shape == (100, 130)
    assert torch.isfinite(result.heatmap).all() and not result.all_zero
    assert "feature levels combined" in result.layout and isinstance(result.scores, list)


@pytest.mark.slow
def test_gradcam_explains_one_detected_box(detector, image):
    session = CamPass(detector, image, ["backbone"])  # default target: the best box
    top = session.scores[0]
    assert len(top["scores"]) > 0
    result = session.result("backbone", "gradcam")
    assert torch.isfinite(result.heatmap).all() and result.heatmap.shape == (100, 130)
    label, box = int(top["labels"][0]), tuple(top["boxes"][0].tolist())
    matched = compute_cam(detector, image, "backbone", "gradcam", BoxTarget(label=label, box=box))
    assert torch.allclose(matched.heatmap, result.heatmap, atol=1e-5)
    assert "IoU" in matched.target


def test_box_target_picks_by_label_and_iou_and_scores_zero_without_a_match():
    detections = [
        {
            "boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 40, 40], [21, 21, 41, 41]]),
            "labels": torch.tensor([1, 2, 2]),
            "scores": torch.tensor([0.9, 0.5, 0.7]),
        }
    ]
    assert float(BoxTarget()(detections)[0]) == pytest.approx(0.9)
    assert float(BoxTarget(label=2)(detections)[0]) == pytest.approx(0.7)
    assert float(BoxTarget(label=2, box=(20, 20, 40, 40))(detections)[0]) == pytest.approx(0.5)
    assert float(BoxTarget(label=3)(detections)[0]) == 0.0
    assert float(BoxTarget(box=(100, 100, 120, 120))(detections)[0]) == 0.0
