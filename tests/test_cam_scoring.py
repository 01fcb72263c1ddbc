"""The top-5 list the CLI and the app both print."""

import pytest
import torch

from layerscope.cam import Prediction, top_predictions


def test_top_predictions_are_the_softmax_top_k_with_names():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    top = top_predictions(logits, ["a", "b", "c"], k=3)
    assert [p.index for p in top] == [1, 3, 2]
    assert [p.name for p in top] == ["b", None, "c"]  # class 3 has no name in a 3-name list
    expected = torch.softmax(logits[0], dim=0)
    assert abs(top[0].probability - float(expected[1])) < 1e-6
    assert isinstance(top[0], Prediction)


def test_outputs_that_are_not_logits_have_no_top_list():
    assert top_predictions([{"boxes": torch.zeros(0, 4)}], None) == []
    assert top_predictions(torch.zeros(3), None) == []


def test_class_targets_accept_what_argmax_returns_and_refuse_bools_and_floats():
    import numpy as np
    import pytest

    from cam_models import TinyNet
    from layerscope.cam import compute_cam
    from layerscope.errors import LayerscopeError

    model = TinyNet()
    x = torch.rand(1, 3, 16, 16)
    for target in (np.int64(2), torch.tensor(2), [2], torch.tensor([2])):
        assert compute_cam(model, x, "conv", target=target).target == 2
    with pytest.raises(LayerscopeError, match="target True is a bool"):
        compute_cam(model, x, "conv", target=True)
    with pytest.raises(LayerscopeError, match="not float 1.5"):
        compute_cam(model, x, "conv", target=1.5)


def test_top_five_follows_the_logits_when_the_softmax_is_flat():
    """Random weights: logits a hair apart give float32 probabilities that tie; the list must
    still start with the argmax, the class the map explains by default."""
    logits = torch.zeros(1, 1000)
    logits[0, 500], logits[0, 20] = 1e-8, 5e-9
    assert torch.softmax(logits[0], dim=0).unique().numel() == 1  # every probability the same float
    top = top_predictions(logits, None)
    assert [p.index for p in top[:2]] == [500, 20] and top[0].index == int(logits.argmax())
    assert top[0].logit == pytest.approx(1e-8) and top[0].probability == pytest.approx(1e-3)
