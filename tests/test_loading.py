"""Every kind of model spec, and every way a spec can be wrong."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from layerscope.errors import LayerscopeError
from layerscope.models import load_model, parse_kwargs
from layerscope.running.probe import probe_shapes
from layerscope.tree import build_tree
from sample_models import TiedLM


def test_torchvision_name_with_and_without_prefix():
    plain = load_model("resnet18")
    prefixed = load_model("torchvision:resnet18")
    assert type(plain.model) is type(prefixed.model)
    assert plain.source == "torchvision" and not plain.pretrained
    assert plain.categories[285] == "Egyptian cat"
    assert plain.input_shape == (3, 224, 224)


def test_real_imagenet_weights_load_offline_through_torchvision():
    loaded = load_model("mobilenet_v2", weights="IMAGENET1K_V1")
    assert loaded.pretrained and loaded.weights == "MobileNet_V2_Weights.IMAGENET1K_V1"
    cached = Path(torch.hub.get_dir()) / "checkpoints" / "mobilenet_v2-b0353104.pth"
    official = torch.load(cached, weights_only=True)
    assert torch.equal(loaded.model.features[0][0].weight, official["features.0.0.weight"])
    assert loaded.categories[967] == "espresso"
    assert not loaded.model.training


def test_eval_mode_leaves_every_module_as_eval_does_and_keeps_a_classs_own_train():
    from layerscope.models.build import eval_mode

    shared = nn.Dropout()
    plain = nn.Sequential(nn.Linear(2, 2), nn.Sequential(shared, nn.BatchNorm1d(2)), shared)
    eval_mode(plain)
    assert [m.training for m in plain.modules()] == [False] * 5

    class KeepsDropout(nn.Sequential):  # Monte Carlo dropout: its train() keeps the dropout on
        def train(self, mode: bool = True) -> KeepsDropout:
            super().train(mode)
            self[1].train(True)
            return self

    mc = nn.Sequential(KeepsDropout(nn.Linear(2, 2), nn.Dropout()))
    eval_mode(mc)
    assert [m.training for m in mc.modules()] == [False, False, False, True]


def test_weights_preprocessing_follows_the_weights():
    loaded = load_model("inception_v3", device="meta")
    assert loaded.input_shape == (3, 299, 299)


def test_timm_spec_builds_a_timm_model():
    loaded = load_model("timm:resnet18")
    assert loaded.source == "timm"
    assert build_tree(loaded.model).root.total_params == 11_689_512


def test_factory_spec_with_literal_arguments():
    loaded = load_model("sample_models:tied_lm", kwargs=parse_kwargs(["vocab=50", "dim=8"]))
    assert isinstance(loaded.model, TiedLM)
    assert build_tree(loaded.model).root.total_params == 50 * 8 + (8 * 8 + 8) + 2 * 8


def test_meta_device_allocates_no_weight_memory():
    loaded = load_model("sample_models:tied_lm", device="meta", kwargs={"vocab": 10**6, "dim": 4096})
    assert loaded.model.embed.weight.is_meta
    assert build_tree(loaded.model).root.total_params == 10**6 * 4096 + 4096 * 4096 + 4096 + 2 * 4096


def test_meta_probe_gives_shapes_for_free():
    loaded = load_model("resnet50", device="meta")
    shapes = probe_shapes(loaded.model, (3, 224, 224))
    assert shapes["layer4.2"].shape == (1, 2048, 7, 7)
    assert shapes["fc"].shape == (1, 1000)


def test_probe_restores_training_flags_and_removes_hooks_on_error():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(7, 2))
    model.train()
    model[1].eval()
    with pytest.raises(LayerscopeError, match="shape probe failed"):
        probe_shapes(model, (3, 8, 8))
    assert model.training and model[0].training and not model[1].training
    assert all(not m._forward_hooks for m in model.modules())


def test_regnet_builds_on_meta_although_its_builder_computes_with_tensors():
    """RegNet's builder rounds its block widths with ``torch.round(...).tolist()``: parameters and
    buffers go to meta as they are registered, the builder's arithmetic stays on the CPU."""
    model = load_model("regnet_y_400mf", device="meta").model
    tensors = [*model.parameters(), *model.buffers()]
    assert {t.device.type for t in tensors} == {"meta"}
    assert sum(p.numel() for p in model.parameters()) == 4_344_144  # torchvision's published num_params


def test_a_builder_that_reads_its_weights_says_why_meta_fails_in_one_line():
    with pytest.raises(
        LayerscopeError, match=r"reads_its_weights cannot be built on the meta device .*use --device cpu"
    ):
        load_model("sample_models:reads_its_weights", device="meta")
    assert len(load_model("sample_models:reads_its_weights", device="cpu").model.layers) == 2  # the hint holds


def test_unknown_model_suggests_close_names():
    with pytest.raises(LayerscopeError, match=r"unknown model 'resnet5'; did you mean resnet50"):
        load_model("resnet5")


def test_unknown_weights_name_lists_the_choices():
    with pytest.raises(
        LayerscopeError, match=r"unknown weights 'IMAGENET9K' for resnet18; choose one of: DEFAULT, IMAGENET1K_V1"
    ):
        load_model("resnet18", weights="IMAGENET9K")


NOWHERE = "http://nowhere.invalid:3128"  # a proxy no resolver knows (.invalid is reserved): no network


def test_failed_download_says_so_and_suggests_weights_none(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("https_proxy", NOWHERE)
    with pytest.raises(
        LayerscopeError,
        match=r"could not download ResNet18_Weights.IMAGENET1K_V1 "
        r"\(no network: nowhere.invalid:3128 cannot be reached .*--weights none",
    ):
        load_model("resnet18", weights="IMAGENET1K_V1")


@pytest.mark.slow  # a fresh interpreter importing torch and torchvision: seconds
def test_without_network_the_download_fails_in_one_line_before_it_starts(tmp_path):
    """``layerscope tree mobilenet_v3_large --weights DEFAULT`` offline, end to end: torch's
    ``Downloading: "https://…"`` never appears; one line on stderr, status 2, nothing on stdout."""
    env = {**os.environ, "TORCH_HOME": str(tmp_path), "https_proxy": NOWHERE}
    done = subprocess.run(
        [sys.executable, "-m", "layerscope", "tree", "mobilenet_v3_large", "--weights", "DEFAULT"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1 and "Downloading" not in done.stderr
    assert done.stderr.startswith(
        "layerscope: error: could not download MobileNet_V3_Large_Weights.IMAGENET1K_V2 "
        "(no network: nowhere.invalid:3128 cannot be reached"
    )
    assert not list(tmp_path.rglob("*.pth*"))  # no partial file left in the cache


def test_a_resolver_that_never_answers_is_given_up_on_in_the_timeout(monkeypatch):
    """A hung name lookup (the 28 s the first user waited) costs ``timeout``, not the resolver's own limit."""
    import socket
    import threading
    import time

    from layerscope.models.network import check_reachable

    released = threading.Event()
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda *_a, **_k: released.wait(30) and [(0, 0, 0, "", ("127.0.0.1", 1))]
    )
    started = time.monotonic()
    with pytest.raises(
        ConnectionError,
        match=r"no network: download.pytorch.org:443 cannot be reached "
        r"\(name lookup took over 0.2 s\)",
    ):
        check_reachable("https://download.pytorch.org/models/x.pth", timeout=0.2)
    assert time.monotonic() - started < 5
    released.set()


def test_state_dict_file_needs_an_architecture(tmp_path, resnet18):
    path = tmp_path / "r18.pth"
    torch.save(resnet18.model.state_dict(), path)
    with pytest.raises(LayerscopeError, match=r"holds a state_dict \(122 tensors\).*--arch"):
        load_model(str(path))
    loaded = load_model(str(path), arch="resnet18")
    assert torch.equal(loaded.model.fc.weight, resnet18.model.fc.weight)
    assert loaded.pretrained and loaded.weights == str(path)


def test_weights_path_for_a_builder(tmp_path, resnet18):
    path = tmp_path / "r18.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in resnet18.model.state_dict().items()}}, path)
    loaded = load_model("resnet18", weights=str(path))
    assert torch.equal(loaded.model.conv1.weight, resnet18.model.conv1.weight)


def test_safetensors_state_dict(tmp_path, resnet18):
    from safetensors.torch import save_file

    path = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in resnet18.model.state_dict().items()}, str(path))
    loaded = load_model(str(path), arch="resnet18")
    assert torch.equal(loaded.model.layer4[1].conv2.weight, resnet18.model.layer4[1].conv2.weight)


def test_state_dict_that_does_not_fit_lists_missing_unexpected_and_misshaped(tmp_path, resnet18):
    state = dict(resnet18.model.state_dict())
    del state["fc.bias"]
    state["head.weight"] = torch.zeros(2)
    state["conv1.weight"] = torch.zeros(32, 3, 7, 7)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(LayerscopeError) as info:
        load_model(str(path), arch="resnet18")
    message = str(info.value)
    assert "1 missing (fc.bias)" in message
    assert "1 unexpected (head.weight)" in message
    assert "1 mis-shaped (conv1.weight (file 32×3×7×7, model 64×3×7×7))" in message
    assert "\n" not in message


def test_torchscript_archive(tmp_path):
    scripted = torch.jit.script(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
    path = tmp_path / "model.pt"
    scripted.save(str(path))
    with pytest.raises(LayerscopeError, match="is a TorchScript archive: loading it runs"):
        load_model(str(path))
    loaded = load_model(str(path), trust=True)
    assert loaded.source == "torchscript"
    tree = build_tree(loaded.model)
    assert tree.root.total_params == 8 * 27 + 8
    assert tree.resolve("0").class_name == "Conv2d"


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_crafted_pickle_does_not_run_without_trust(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump(_Payload(str(marker)), fh)
    with pytest.raises(LayerscopeError, match="needs full unpickling.*--trust"):
        load_model(str(path))
    assert not marker.exists()


def test_whole_pickled_module_loads_only_with_trust(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(TiedLM(vocab=20, dim=4), path)
    with pytest.raises(LayerscopeError, match="--trust"):
        load_model(str(path))
    loaded = load_model(str(path), trust=True)
    assert isinstance(loaded.model, TiedLM) and loaded.source == "pickle"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("missing/model.pt", "no such model file: missing/model.pt"),
        ("sample_models:nothing", "'sample_models' has no callable named 'nothing'"),
        ("sample_models:not_a_module", "sample_models:not_a_module returned str, not a torch.nn.Module"),
        ("no_such_pkg.mod:make", "cannot import 'no_such_pkg.mod'"),
    ],
)
def test_bad_specs_raise_one_line(spec, message):
    with pytest.raises(LayerscopeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_model(spec)


def test_corrupt_file_is_reported(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(LayerscopeError, match=r"cannot read .*junk.pth: not a PyTorch checkpoint"):
        load_model(str(path))


def test_bad_arguments():
    with pytest.raises(LayerscopeError, match="--arg expects key=value"):
        parse_kwargs(["vocab"])
    with pytest.raises(LayerscopeError, match="resnet18 does not accept those arguments"):
        load_model("resnet18", kwargs={"nonsense": 1})
    with pytest.raises(LayerscopeError, match="unknown device"):
        load_model("resnet18", device="tpu")


def test_auto_weights_are_the_cached_ones_and_never_a_download(monkeypatch, tmp_path):
    cached = load_model("mobilenet_v2", weights="auto")  # IMAGENET1K_V1 is in this machine's torch cache
    assert cached.pretrained and cached.weights == "MobileNet_V2_Weights.IMAGENET1K_V1"
    assert cached.categories[285] == "Egyptian cat"
    assert not load_model("resnet50", weights="auto", device="meta").pretrained
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: random init, and no download tried
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", pytest.fail)
    empty = load_model("mobilenet_v2", weights="auto")
    assert not empty.pretrained and empty.weights_label == "random weights (untrained)"


def test_failed_default_download_names_the_cached_weights(monkeypatch):
    monkeypatch.setenv("https_proxy", NOWHERE)  # DEFAULT is IMAGENET1K_V2: not cached
    with pytest.raises(
        LayerscopeError,
        match=r"could not download MobileNet_V2_Weights.IMAGENET1K_V2 .*"
        r"cached here, no download needed: --weights IMAGENET1K_V1$",
    ):
        load_model("mobilenet_v2", weights="DEFAULT")


def test_auto_finds_timm_weights_in_the_hugging_face_cache(monkeypatch, tmp_path):
    import huggingface_hub.constants

    from layerscope.models import auto_weights

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert auto_weights("timm:resnet18") == "none"
    repo = tmp_path / "models--timm--resnet18.a1_in1k"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "model.safetensors").write_bytes(b"")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    assert auto_weights("timm:resnet18") == "DEFAULT"
    assert auto_weights("sample_models:tied_lm") == "none"
