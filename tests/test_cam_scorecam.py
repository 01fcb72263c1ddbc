"""Score-CAM's shortcuts keep its maps: one forward per distinct mask, the batch size chosen by
measured throughput, batch norms folded on a copy, channels-last copies on the CPU (and a model
that refuses them)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cam_models import FlatNet, NormNet, TinyNet, ViewNet, tiny_input
from layerscope.cam import compute_cam
from layerscope.cam.folding import folded_copy
from layerscope.cam.masks import plan_masks
from layerscope.cam.perturb import BatchSizes

TARGET = 1


def _reference(model, x, layer: str):
    """Score-CAM without any shortcut: every channel's mask run on its own, on the model as it is."""
    with torch.no_grad():
        seen = []
        handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: seen.append(out))
        model(x)
        handle.remove()
        a, scores = seen[0], []
        for k in range(a.shape[1]):
            mask = F.interpolate(a[:, k : k + 1], size=x.shape[-2:], mode="bilinear", align_corners=False)
            mask = (mask - mask.min()) / (mask.max() - mask.min() + 1e-7)
            scores.append(model(x * mask)[0, TARGET])
    scores = torch.stack(scores)
    return F.relu((torch.softmax(scores, 0)[:, None, None] * a[0]).sum(0)), scores


def _rows_seen(model):
    rows: list[int] = []
    model.register_forward_pre_hook(lambda _m, args: rows.append(args[0].shape[0]))
    return rows


def test_flat_and_repeated_channels_share_forwards_and_keep_the_map():
    model, x = FlatNet(), tiny_input()
    expected, scores = _reference(model, x, "relu")
    assert scores[5] == scores[6] == scores[7] and scores[3] == scores[4]  # the premise: equal masks, equal scores
    with torch.no_grad():
        plan = plan_masks(model.relu(model.conv(x))[0], (8, 8))
    assert plan.run.tolist() == [0, 1, 2, 3, 5] and plan.source.tolist() == [0, 1, 2, 3, 3, 4, 4, 4]
    assert plan.saved == 3 and plan.channels_per_run().tolist() == [1, 1, 1, 2, 3]
    rows = _rows_seen(model)
    got = compute_cam(model, x, "relu", "scorecam", TARGET, batch_size=2)
    assert rows == [1, 2, 2, 1]  # the unperturbed pass, then 5 masked copies for 8 channels: 3 forwards saved
    assert torch.allclose(got.raw, expected, atol=1e-6) and float(got.raw.max()) > 0


def test_progress_counts_channels_when_masks_are_shared():
    seen = []
    compute_cam(
        FlatNet(),
        tiny_input(),
        "relu",
        "scorecam",
        TARGET,
        batch_size=2,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(2, 8), (5, 8), (8, 8)]  # the second batch holds channel 3's mask, which channel 4 shares


def test_the_batch_size_climbs_while_copies_get_cheaper_then_keeps_the_best():
    sizes = BatchSizes(None, tune=True)
    per_copy = {2: 1.0, 4: 0.5, 8: 0.6, 16: 0.9, 32: 0.1}
    asked = []
    for _ in range(10):
        size = sizes.next()
        asked.append(size)
        sizes.record(
            size, size, per_copy[size] * size * (3 if size not in sizes.cost and asked.count(size) == 1 else 1)
        )
    # each size timed on its second batch; 16 costs more than 1.25 × the best (4), so 32 is never tried
    assert asked == [2, 2, 4, 4, 8, 8, 16, 16, 4, 4] and sizes.cost == {2: 1.0, 4: 0.5, 8: 0.6, 16: 0.9}
    fixed = BatchSizes(5, tune=True)
    assert [fixed.next() for _ in range(3)] == [5, 5, 5] and BatchSizes(None, tune=False).next() == 32


def test_an_automatic_batch_size_keeps_the_map():
    model, x = TinyNet(channels=40, inplace=False), tiny_input()
    rows = _rows_seen(model)
    chosen = compute_cam(model, x, "conv", "scorecam", TARGET)
    # which size wins depends on the machine's timings: the first probe, sizes of the ladder, every channel once
    assert rows[1:3] == [2, 2] and set(rows[1:-1]) <= set(BatchSizes.LADDER) and sum(rows[1:]) == 40
    assert torch.allclose(chosen.raw, _reference(model, x, "conv")[0], atol=1e-6)


def test_a_model_that_views_its_input_gets_contiguous_copies():
    model, x = ViewNet(channels=6, inplace=False), tiny_input()
    rows = _rows_seen(model)
    got = compute_cam(model, x, "conv", "scorecam", TARGET, batch_size=4)
    assert rows == [1, 4, 4, 2]  # the channels-last batch refused once, then plain copies throughout
    assert torch.allclose(got.raw, _reference(model, x, "conv")[0], atol=1e-6)


def test_batch_norms_are_folded_on_a_copy_and_the_map_is_kept():
    model, x = NormNet(), tiny_input()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = folded_copy(model.eval())
    assert folded is not model and not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-6)
    got = compute_cam(model.train(), x, "relu", "scorecam", TARGET, batch_size=4)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the model itself untouched
    assert torch.allclose(got.raw, _reference(model.eval(), x, "relu")[0], atol=1e-5) and float(got.raw.max()) > 0


def test_a_model_fx_cannot_trace_or_a_hooked_one_runs_unfolded():
    model, x, tiny = NormNet(branchy=True).eval(), tiny_input(), TinyNet().eval()
    assert folded_copy(model) is model and folded_copy(tiny) is tiny  # untraceable; no norm to fold
    hooked = NormNet().eval()
    hooked.norm.register_forward_hook(lambda _m, _i, out: out * 1.5)  # changes what the model computes
    assert folded_copy(hooked) is hooked
    assert torch.allclose(
        compute_cam(hooked, x, "relu", "scorecam", TARGET, batch_size=4).raw,
        _reference(hooked, x, "relu")[0],
        atol=1e-6,
    )
    rows = _rows_seen(model)  # the model itself runs the masked copies
    got = compute_cam(model, x, "relu", "scorecam", TARGET, batch_size=4)
    assert rows == [1, 4, 2]
    assert torch.allclose(got.raw, _reference(model, x, "relu")[0], atol=1e-6)
