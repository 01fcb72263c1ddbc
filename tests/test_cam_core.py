"""The engine's promises: clean hooks and flags, no parameter gradients, in-place safety,
grad-mode independence, one pass for a sweep, cancellation, and one-line errors."""

from __future__ import annotations

import copy
import gc
import threading
import warnings

import pytest
import torch
import torchvision
from torch import nn

from cam_models import PairNet, TightNet, TinyNet, tiny_input
from layerscope.cam import CamCancelled, CamPass, compute_cam, compute_sweep
from layerscope.errors import LayerscopeError


def _live_tensors() -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18().eval()


def test_in_place_relu_after_the_layer_does_not_change_the_map():
    x = tiny_input()
    inplace = compute_cam(TinyNet(inplace=True), x, "conv", "gradcam", 0)
    plain = compute_cam(TinyNet(inplace=False), x, "conv", "gradcam", 0)
    assert torch.allclose(inplace.raw, plain.raw) and inplace.raw.max() > 0


def test_resnet_basicblock_bn2_with_in_place_add_and_relu(resnet18):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    safe = copy.deepcopy(resnet18)
    for m in safe.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    for method in ("gradcam", "hirescam", "eigencam"):
        a = compute_cam(resnet18, x, "layer4[-1].bn2", method, 7)
        b = compute_cam(safe, x, "layer4[-1].bn2", method, 7)
        assert torch.allclose(a.raw, b.raw, atol=1e-5), method


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_works_inside_no_grad_and_inference_mode(mode):
    model, x = TinyNet(), tiny_input()
    reference = compute_cam(model, x, "conv", "gradcam", 2)
    context = torch.no_grad() if mode == "no_grad" else torch.inference_mode()
    with context:
        inner_x = x.clone()  # an inference tensor under inference_mode
        result = compute_cam(model, inner_x, "conv", "gradcam", 2)
    assert torch.allclose(result.raw, reference.raw)


def test_no_parameter_gradients_and_flags_restored():
    model = TinyNet()
    model.fc.bias.requires_grad_(False)
    model.train()
    model.relu.eval()
    compute_cam(model, tiny_input(), "conv", "gradcam")
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, False]
    assert model.training and model.conv.training and not model.relu.training
    assert _hooks(model) == 0


def test_runs_in_eval_mode_even_for_a_training_model():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    model[1].running_mean.fill_(0.5)
    before = model[1].running_mean.clone()
    x = tiny_input()
    trained = compute_cam(model.train(), x, "1", "scorecam", 0)
    assert torch.equal(model[1].running_mean, before) and model.training
    assert torch.allclose(trained.raw, compute_cam(model.eval(), x, "1", "scorecam", 0).raw)


class _Boom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.head = nn.Linear(2, 2)

    def forward(self, x):
        features = self.conv(x)  # the hook has fired when the forward fails
        if x.shape[-1] == 13:
            raise RuntimeError("boom")
        return self.head(features.mean((2, 3)))


def test_hooks_and_flags_restored_when_forward_or_target_raises():
    model = _Boom().train()
    with pytest.raises(RuntimeError, match="boom"):
        compute_cam(model, torch.randn(1, 3, 13, 13), "conv")
    with pytest.raises(LayerscopeError, match="out of range"):
        compute_cam(model, torch.randn(1, 3, 8, 8), "conv", target=5)
    assert _hooks(model) == 0 and model.training and all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_perturbation_methods_cancel_cleanly(method):
    model = TinyNet(channels=12)
    calls = []
    stop = threading.Event()

    def progress(done, total):
        calls.append((done, total))
        stop.set()

    with pytest.raises(CamCancelled):
        compute_cam(model, tiny_input(), "conv", method, progress=progress, cancel=stop, batch_size=4)
    assert calls == [(4, 12)]
    assert _hooks(model) == 0 and all(p.requires_grad for p in model.parameters())
    full = []
    compute_cam(
        model, tiny_input(), "conv", method, batch_size=5, progress=lambda d, t: full.append(d), cancel=lambda: False
    )
    assert full == [5, 10, 12]


def test_a_thousand_maps_leave_no_hook_and_no_growth():
    model, x = TinyNet(), tiny_input()

    for _ in range(20):  # warm caches
        compute_cam(model, x, "conv", "gradcam")
    gc.collect()
    before = _live_tensors()
    methods = ["gradcam", "layercam", "eigencam", "hirescam"]
    for i in range(1000):
        result = compute_cam(model, x, "conv", methods[i % 4])
    del result
    gc.collect()
    assert _hooks(model) == 0
    assert _live_tensors() - before <= 2
    assert all(p.grad is None for p in model.parameters())


def test_sweep_is_one_forward_and_one_autograd_call(resnet18, monkeypatch):
    x = torch.randn(1, 3, 64, 64)
    forwards, grads = [], []
    real_grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: grads.append(1) or real_grad(*a, **k))
    handle = resnet18.register_forward_pre_hook(lambda *_: forwards.append(1))
    layers = ["layer1[0]", "layer2[-1]", "layer3.0", "layer4[-1]"]
    try:
        results = compute_sweep(resnet18, x, layers, "gradcam", 3)
    finally:
        handle.remove()
    assert len(forwards) == 1 and len(grads) == 1
    assert [r.layer for r in results] == ["layer1.0", "layer2.1", "layer3.0", "layer4.1"]
    for r, layer in zip(results, layers):
        single = compute_cam(resnet18, x, layer, "gradcam", 3)
        assert torch.allclose(r.raw, single.raw, atol=1e-5, rtol=1e-4)


def test_session_redraws_other_layers_and_methods_without_a_forward(resnet18):
    x = torch.randn(1, 3, 64, 64)
    session = CamPass(resnet18, x, ["layer3", "layer4"], target=5)
    forwards = []
    handle = resnet18.register_forward_pre_hook(lambda *_: forwards.append(1))
    try:
        redrawn = session.result("layer3", "layercam")
        other = session.result("model.layer4", "eigengradcam")
    finally:
        handle.remove()
    assert forwards == [] and redrawn.layer == "layer3" and other.layer == "layer4"
    assert torch.allclose(redrawn.raw, compute_cam(resnet18, x, "layer3", "layercam", 5).raw, atol=1e-5)


def test_layer_may_be_the_module_itself():
    model = TinyNet()
    assert compute_cam(model, tiny_input(), model.conv).layer == "conv"


def test_target_callable_and_all_zero_flag():
    model = TinyNet()
    result = compute_cam(model, tiny_input(), "conv", "gradcam", target=lambda out: out[:, 0] * 0)
    assert result.all_zero and result.heatmap.abs().sum() == 0 and result.heatmap.shape == (8, 8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layer": "cnv"}, "no layer 'cnv' in TinyNet; closest: conv"),
        ({"layer": "fc"}, "layer 'fc' has no spatial output: its output 1×3 has no spatial grid"),
        ({"layer": "pool"}, "is 1×1 (after pooling); eligible layers: conv, relu"),
        ({"layer": "conv", "target": 3}, "class index 3 is out of range: the model has 3 classes (0–2)"),
        (
            {"layer": "conv", "target": "dog", "categories": ["cat", "dogs", "car"]},
            "unknown class name 'dog'; closest: dogs",
        ),
        ({"layer": "conv", "target": "cat"}, "these weights have no class names"),
        ({"layer": "conv", "method": "gradcam3"}, "unknown CAM method 'gradcam3'"),
    ],
)
def test_bad_inputs_raise_one_line_value_errors(kwargs, message):
    model = TinyNet()
    with pytest.raises(ValueError) as info:
        compute_cam(model, tiny_input(), **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert _hooks(model) == 0


def test_class_name_resolves_case_insensitively():
    result = compute_cam(TinyNet(), tiny_input(), "conv", target="CAR", categories=["cat", "dog", "car"])
    assert result.target == 2 and result.target_name == "car"


class _DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)

    def forward(self, x):
        return {"logits": self.conv(x).mean((2, 3))}


def test_non_tensor_output_needs_a_target_callable():
    model = _DictOut()
    with pytest.raises(LayerscopeError, match="returns a dict, not a tensor of class scores; pass a target callable"):
        compute_cam(model, tiny_input(), "conv")
    result = compute_cam(model, tiny_input(), "conv", target=lambda out: out["logits"][:, 1])
    assert result.heatmap.shape == (8, 8) and torch.isfinite(result.heatmap).all()
    assert not compute_cam(model, tiny_input(), "conv", "eigencam").all_zero  # no target needed


@pytest.mark.slow
def test_two_hundred_maps_on_a_real_network_keep_no_tensor_and_no_memory(resnet18):
    """The tiny-model test above counts live tensors over 1,000 maps; this checks a real network
    and the process itself. 200 maps suffice: a leak of one 32×32 pass's activations would add
    over 100 tensors and several MB here (it once took 1,000 maps and 489 s on a busy machine)."""

    def rss_mb() -> float:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024

    x = torch.rand(1, 3, 32, 32)
    methods = ["gradcam", "gradcam++", "layercam", "eigencam", "xgradcam"]
    for i in range(20):  # allocator and autograd warm-up
        compute_cam(resnet18, x, "layer3", methods[i % 5])
    gc.collect()
    before, tensors_before = rss_mb(), _live_tensors()
    for i in range(200):
        result = compute_cam(resnet18, x, "layer3", methods[i % 5])
    del result
    gc.collect()
    assert _live_tensors() - tensors_before <= 2
    assert rss_mb() - before < 10  # measured here: under 1 MB
    assert _hooks(resnet18) == 0


@pytest.mark.parametrize(
    "method", ["gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "eigencam", "eigengradcam"]
)
def test_sweep_batches_same_shaped_layers_without_changing_any_map(resnet18, method):
    """Blocks of one stage are computed as one batch; each map must equal its own single run."""
    torch.manual_seed(3)
    x = torch.randn(2, 3, 64, 64)
    layers = ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.1"]
    results = compute_sweep(resnet18, x, layers, method, [3, 5])
    for r, layer in zip(results, layers):
        single = compute_cam(resnet18, x, layer, method, [3, 5])
        assert r.layer == layer and r.heatmap.shape == (2, 64, 64)
        assert torch.allclose(r.raw, single.raw, atol=1e-5, rtol=1e-4), (method, layer)
        assert torch.allclose(r.heatmap, single.heatmap, atol=1e-5), (method, layer)


def test_ablationcam_on_a_layer_returning_a_tensor_and_an_int():
    plain, pair = TinyNet(inplace=False), PairNet()
    x = tiny_input()
    expected = compute_cam(plain, x, "conv", "ablationcam", target=1, batch_size=3).raw
    got = compute_cam(pair, x, "block", "ablationcam", target=1, batch_size=3)
    assert torch.allclose(got.raw, expected, atol=1e-6) and float(expected.max()) > 0


@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_out_of_memory_is_one_clear_line_and_never_retried_larger(method):
    model, x = TightNet(rows=2), tiny_input()
    model.budget.calls.clear()
    with pytest.raises(LayerscopeError) as raised:
        compute_cam(model, x, "conv", method, target=1, batch_size=4)
    assert str(raised.value) == (
        "out of memory running 4 perturbed copies at once on cpu; "
        "use a smaller batch size (now 4; the CLI's --batch-size)"
    )
    assert model.budget.calls == [1, 4]  # the unperturbed pass, then the first batch: no retry
    assert _hooks(model) == 0 and all(p.requires_grad for p in model.parameters())
    fits = compute_cam(model, x, "conv", method, target=1, batch_size=2)
    assert torch.allclose(fits.raw, compute_cam(TinyNet(inplace=False), x, "conv", method, target=1).raw, atol=1e-5)


def test_the_cpu_allocator_failing_in_the_pass_itself_is_one_line_too():
    model = TightNet(rows=0)
    with pytest.raises(LayerscopeError) as raised:
        compute_cam(model, tiny_input(), "conv", "gradcam", target=1)
    assert str(raised.value) == "out of memory running TightNet on a 1×3×8×8 input on cpu; close other programs"
    assert _hooks(model) == 0 and all(p.requires_grad for p in model.parameters())


@pytest.fixture
def trees_built(monkeypatch) -> list[str]:
    """The class name of every model a ``ModuleTree`` is built for, counted at the one builder."""
    from layerscope.tree import build as tree_build

    built: list[str] = []
    real = tree_build.TreeBuilder.build

    def counted(self):
        built.append(type(self.model).__name__)
        return real(self)

    monkeypatch.setattr(tree_build.TreeBuilder, "build", counted)
    return built


SIXTEEN = [f"layer{stage}.{block}.{conv}" for stage in (1, 2, 3, 4) for block in (0, 1) for conv in ("conv1", "conv2")]


def test_a_16_layer_sweep_builds_one_module_tree(resnet18, trees_built):
    results = compute_sweep(resnet18, torch.rand(1, 3, 64, 64), SIXTEEN, "gradcam", 3)
    assert [r.layer for r in results] == SIXTEEN
    assert trees_built == ["ResNet"]


def test_a_pass_resolves_more_names_with_its_own_tree(resnet18, trees_built):
    cam_pass = CamPass(resnet18, torch.rand(1, 3, 64, 64), SIXTEEN[:2], target=3)
    assert cam_pass.result("model.layer1[0].conv1").layer == "layer1.0.conv1"
    assert trees_built == ["ResNet"]


def test_the_sanity_check_builds_one_tree_for_all_its_layers(resnet18, trees_built):
    from layerscope.cam.sanity import randomization_checks

    rhos = randomization_checks(resnet18, torch.rand(1, 3, 64, 64), ["layer3", "layer4[-1]"], "gradcam", 3)
    assert sorted(rhos) == ["layer3", "layer4.1"]
    assert trees_built == ["ResNet"]  # the copy the check randomises is resolved with the same tree
