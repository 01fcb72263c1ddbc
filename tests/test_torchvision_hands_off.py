"""Pretrained torchvision models load through layerscope's reader without touching torchvision:
nothing of it is reassigned (issue 27, point 1), and the model built is the one torchvision's
own path builds from the same file (frozen batch norms, dropped auxiliary heads, eps)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
import torchvision.models as tvm
from torchvision.models import WeightsEnum

from layerscope.models import load_model
from layerscope.models.weights_cache import hub_checkpoint


def test_nothing_of_torchvision_is_reassigned_while_a_pretrained_model_loads():
    """A second thread sees torchvision's own ``get_state_dict`` before, during and after."""
    original = WeightsEnum.__dict__["get_state_dict"]
    member = tvm.MobileNet_V2_Weights.IMAGENET1K_V1
    seen: list[object] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(WeightsEnum.__dict__["get_state_dict"])
            seen.append(member.get_state_dict.__func__)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        loaded = load_model("mobilenet_v2", weights="IMAGENET1K_V1")
    finally:
        done.set()
        watcher.join()
    assert loaded.pretrained
    assert len(seen) > 2 and all(f is original for f in seen)
    assert WeightsEnum.__dict__["get_state_dict"] is original


def test_a_thread_building_meanwhile_reads_with_torchvisions_own_reader(tmp_path, monkeypatch):
    """While layerscope loads, another thread's ``weights=`` build goes through torch hub (here
    it reads a file of the test's own, which torch hub unpickles and layerscope would refuse)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    member = tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1
    _plant(member, StateDict(tvm.squeezenet1_1(weights=None).state_dict()))
    built: list[torch.nn.Module] = []
    other = threading.Thread(target=lambda: built.append(tvm.squeezenet1_1(weights=member)))
    other.start()
    with pytest.raises(ValueError, match="needs full unpickling"):
        load_model("squeezenet1_1", weights="IMAGENET1K_V1")
    other.join()
    assert len(built) == 1  # torchvision's own reader loaded what layerscope refused


@pytest.mark.parametrize("name", ["googlenet", "fasterrcnn_mobilenet_v3_large_320_fpn"])
def test_the_model_is_the_one_torchvisions_own_path_builds(name, tmp_path, monkeypatch):
    """Same module types (``FrozenBatchNorm2d`` in detectors), same frozen parameters, same
    values; googlenet's auxiliary heads dropped after loading as torchvision drops them."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    builder, member = tvm.get_model_builder(name), tvm.get_model_weights(name).DEFAULT
    torch.manual_seed(0)
    reference_state = _plain_state(builder, member)
    _plant(member, reference_state)
    theirs = builder(weights=member)
    ours = load_model(name, weights="DEFAULT").model
    assert _shape(ours) == _shape(theirs)
    assert ours.state_dict().keys() == theirs.state_dict().keys() <= reference_state.keys()
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))


def _plain_state(builder, member) -> dict[str, torch.Tensor]:
    """A state dict with the keys ``member``'s file has: the model built with the weights'
    architecture, minus what frozen batch norms do not keep."""
    kwargs = {"num_classes": len(member.meta["categories"])}
    if "googlenet" in builder.__name__:
        kwargs |= {"aux_logits": True, "init_weights": True}
    if "rcnn" in builder.__name__:
        kwargs |= {"weights_backbone": None}
    state = builder(weights=None, **kwargs).state_dict()
    return {k: v for k, v in state.items() if not ("rcnn" in builder.__name__ and k.endswith("num_batches_tracked"))}


class StateDict(dict):
    """A state dict of a class only a full unpickle rebuilds."""


def _plant(member, state: dict) -> Path:
    path = hub_checkpoint(member.url)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _shape(model: torch.nn.Module) -> list[tuple[str, str, tuple[bool, ...], tuple[float, ...]]]:
    """Each module's name, class, which parameters train and its eps (0 for COCO_V1 detectors)."""
    return [
        (
            n,
            type(m).__name__,
            tuple(p.requires_grad for p in m.parameters(recurse=False)),
            (float(m.eps),) if hasattr(m, "eps") else (),
        )
        for n, m in model.named_modules()
    ]
