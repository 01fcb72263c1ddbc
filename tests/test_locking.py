"""Passes that hook a model take its lock: threads sharing a model get the maps they asked for."""

from __future__ import annotations

import threading

import torch

from layerscope.cam import compute_cam
from layerscope.running.probe import probe_shapes


def test_parallel_maps_and_probes_on_one_model_equal_the_serial_ones(resnet18):
    model = resnet18.model
    torch.manual_seed(1)
    inputs = [torch.rand(1, 3, 64, 64) for _ in range(4)]
    layers = ["layer3", "layer3.1", "layer2", "layer3.0"]
    serial = [compute_cam(model, x, layer).raw for x, layer in zip(inputs, layers)]
    found: dict[int, torch.Tensor] = {}
    errors: list[BaseException] = []

    def explain(i: int) -> None:
        try:
            found[i] = compute_cam(model, inputs[i], layers[i]).raw
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def probe() -> None:
        try:
            probe_shapes(model, (3, 64, 64))
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=explain, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=probe) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, expected in enumerate(serial):
        assert torch.allclose(found[i], expected, atol=1e-5), f"map {i} was disturbed by another thread"
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
