"""The one loader behind every command: a model spec in, a ready ``nn.Module`` out.

Specs are Hugging Face folders (``hf:…``), files (TorchScript, state_dict, pickled
module), ``timm:NAME``, ``package.module:callable`` factories, and torchvision
builder names (optionally ``torchvision:NAME``). ``SOURCES`` asks each kind in that
order whether a spec is its own; ``load_model`` wraps the one that is in the steps
every kind shares (the device, ``--weights auto`` and ``--weights PATH``, ``eval()``),
so the CLI and the app can never disagree about what a name means or which weights
were used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from layerscope.errors import BadArgumentError
from layerscope.io.files import expand
from layerscope.models.build import eval_mode, parse_device
from layerscope.models.loaded import LoadedModel, is_path_weights
from layerscope.models.source import LoadRequest, ModelSource
from layerscope.models.sources.factory import FactorySource
from layerscope.models.sources.file import FileSource, apply_weights_file
from layerscope.models.sources.hf import HfSource
from layerscope.models.sources.timm import TimmSource
from layerscope.models.sources.torchvision import TorchvisionSource
from layerscope.running.gcpause import gc_paused

# Asked in order: a Hugging Face folder is also a path, and torchvision takes whatever is left.
SOURCES: tuple[ModelSource, ...] = (HfSource(), FileSource(), TimmSource(), FactorySource(), TorchvisionSource())


def source_for(spec: str) -> ModelSource:
    """The first source in ``SOURCES`` that claims ``spec`` (torchvision claims every spec)."""
    return next(source for source in SOURCES if source.claims(spec))


def auto_weights(spec: str, device: str = "cpu") -> str:
    """The ``--weights`` value ``auto`` stands for: a cached pretrained set, else ``none``
    (never a download: the default has to work offline and instantly)."""
    if device == "meta":
        return "none"  # meta holds no weights
    return source_for(spec).auto_weights(spec)


def load_model(
    spec: str,
    *,
    weights: str = "none",
    device: str = "cpu",
    arch: str | None = None,
    trust: bool = False,
    kwargs: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Build or read the model that ``spec`` names, on ``device``, in eval mode.

    For a model you already hold in Python, ``LoadedModel.from_module(model)`` makes the same
    result without a spec.

    Args:
        spec: ``resnet18`` (torchvision), ``timm:NAME``, ``module.path:factory``, a model
            file (``.pt``, ``.safetensors``, TorchScript, ``.pt2``), or a Hugging Face folder / ``hf:`` spec.
        weights: ``"none"`` (random init), ``"DEFAULT"`` or a named set (torchvision), a
            state_dict file, or ``"auto"``: the pretrained weights already in the local cache, else none.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"meta"`` (shapes only, no memory).
        arch: the architecture a bare state_dict file belongs to (a spec).
        trust: allow files that run code when read (pickled modules, TorchScript).
        kwargs: keyword arguments for the model's builder (``num_classes=10``).

    Returns:
        A ``LoadedModel``: the module, its class names and preprocessing, and where it came from.

    Raises:
        LayerscopeError: an unknown spec, a missing or unsafe file, weights that do not fit (one line).

    Examples:
        >>> from layerscope.models import load_model
        >>> loaded = load_model("resnet18", device="meta")
        >>> loaded.input_shape, loaded.model.training
        ((3, 224, 224), False)
    """
    if not spec.strip():
        raise BadArgumentError("empty model spec; name a model (e.g. resnet18) or a file")
    dev = parse_device(device)
    source = source_for(spec)
    if weights.lower() == "auto":
        weights = auto_weights(spec, dev.type)
    request = LoadRequest(
        spec=spec,
        weights=weights,
        device=dev,
        trust=trust,
        kwargs=dict(kwargs or {}),
        arch=arch,
        load_arch=lambda name: load_model(name, weights="none", device=str(dev), trust=trust, kwargs=kwargs),
    )
    with gc_paused():  # building a model allocates objects that live on: no collector passes over them
        loaded = source.load(request)
        if is_path_weights(weights) and not source.reads_own_weights:
            apply_weights_file(loaded, expand(weights, "weights file"), trust=trust)
        if loaded.source != "export":  # an exported graph was traced in eval mode; its .eval() raises
            eval_mode(loaded.model)
    return loaded
