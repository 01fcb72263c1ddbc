"""Hugging Face ``transformers`` models from a folder on disk or the local hub cache.

A folder holding ``config.json`` (what ``save_pretrained`` writes and what the hub
cache keeps per snapshot) is opened with the class its config names
(``architectures[0]``), its weights read from safetensors, its ``id2label`` as the
class names and its saved image processor as the preprocessing (``hf_folder`` reads
all that). Nothing is ever downloaded, and nothing from the folder runs unless the
user passed ``--trust``: safetensors hold only tensors, while ``pytorch_model.bin`` is
a pickle and an ``auto_map`` / ``*.py`` file is code. A folder with only
``config.json`` builds on the meta device, so a 70-billion-parameter model is
browsable in seconds.

``transformers`` is imported only when such a spec is loaded (it is an optional extra).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from layerscope.errors import LayerscopeError, first_line
from layerscope.io.files import exists, expand
from layerscope.models.build import available_bytes, bounded_build
from layerscope.models.checkpoints import extract_state_dict, read_model_file
from layerscope.models.loaded import LoadedModel, is_path_weights
from layerscope.models.source import LoadRequest
from layerscope.models.sources.hf_folder import (
    CONFIG,
    PREFIX,
    HfFolder,
    categories,
    inspect_folder,
    preprocess_from_folder,
    resolve_folder,
)


class HfSource:
    """``hf:…``, or a folder with a ``config.json`` in it (asked first: a folder is also a path)."""

    name = "huggingface"
    reads_own_weights = False  # ``--weights PATH`` (a state_dict) still applies to the folder's model

    def claims(self, spec: str) -> bool:
        if spec.startswith(PREFIX):
            return True
        try:
            path = expand(spec)
            return path.is_dir() and exists(path / CONFIG)
        except (OSError, LayerscopeError):
            return False

    def auto_weights(self, spec: str) -> str:
        return "none"  # the folder's own weights load whatever --weights says

    def load(self, request: LoadRequest) -> LoadedModel:
        return load_hf(
            request.spec, weights=request.weights, dev=request.device, trust=request.trust, kwargs=request.kwargs
        )


def load_hf(spec: str, *, weights: str, dev: torch.device, trust: bool, kwargs: Mapping[str, Any]) -> LoadedModel:
    """Build the model of a Hugging Face folder; weights from the folder, never the network."""
    if weights.lower() != "none" and not is_path_weights(weights):
        raise LayerscopeError(
            f"{spec} takes its weights from its folder: --weights {weights} does not apply (only a state_dict "
            "path does); layerscope never downloads"
        )
    folder = inspect_folder(resolve_folder(spec), spec)
    if folder.code and not trust:
        raise LayerscopeError(
            f"{spec} ships its own Python code ({', '.join(folder.code)}), which loading would run; "
            "pass --trust only if you trust its source"
        )
    config = _config(folder, spec, trust, kwargs)
    cls = _model_class(folder, config, spec, trust)
    structure_only = dev.type == "meta" or not (folder.safetensors or folder.pickles)
    with _quiet():
        skeleton = _build_on_meta(cls, config, spec)
        if structure_only:
            model = skeleton
        else:
            _check_size(skeleton, folder, dev, spec)
            model = _from_weights(cls, config, folder, spec, trust).to(dev)
    return LoadedModel(
        model=model,
        spec=spec,
        source="huggingface",
        weights="none" if structure_only else _weights_label(folder),
        pretrained=not structure_only,
        device=torch.device("meta") if structure_only else dev,
        categories=categories(getattr(config, "id2label", None), folder.architecture),
        preprocess=preprocess_from_folder(folder.path, folder.config),
        files=folder.files,
    )


# --- config and class -------------------------------------------------------------------


def _transformers():
    try:
        import transformers
    except ImportError as exc:
        raise LayerscopeError(
            "Hugging Face folders need transformers installed (pip install 'layerscope[hf]')"
        ) from exc
    return transformers


def _config(folder: HfFolder, spec: str, trust: bool, kwargs: Mapping[str, Any]):
    transformers = _transformers()
    try:
        with _quiet():
            return transformers.AutoConfig.from_pretrained(
                str(folder.path), local_files_only=True, trust_remote_code=trust, **kwargs
            )
    except (ValueError, KeyError, OSError, TypeError) as exc:
        raise LayerscopeError(f"cannot read the config of {spec}: {first_line(exc)}") from exc


def _model_class(folder: HfFolder, config, spec: str, trust: bool) -> type[nn.Module]:
    """``architectures[0]``: the folder's own class with ``--trust`` and an ``auto_map``,
    else the transformers class of that name; no architecture: the Auto base model."""
    transformers = _transformers()
    arch = folder.architecture
    auto_map = getattr(config, "auto_map", None) or {}
    if trust and auto_map:
        return _remote_class(folder, auto_map, arch, spec)
    if arch is None:
        try:
            return transformers.MODEL_MAPPING[type(config)]
        except KeyError:
            raise LayerscopeError(
                f"{spec}: config.json names no architecture and transformers has no base model "
                f"for model_type {folder.config.get('model_type')!r}"
            ) from None
    cls = getattr(transformers, arch, None)
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise LayerscopeError(
            f"{spec}: config.json names architecture {arch!r}, which transformers {transformers.__version__} "
            "does not have"
        )
    wanted = getattr(cls, "config_class", None)
    if not (isinstance(wanted, type) and isinstance(config, wanted)):  # PreTrainedModel itself; Llama on a ViT config
        takes = f"takes a {wanted.__name__}" if isinstance(wanted, type) else "is no concrete model class"
        raise LayerscopeError(
            f"{folder.path / CONFIG}: architectures names {arch!r}, which {takes}, but model_type "
            f"{folder.config.get('model_type')!r} makes a {type(config).__name__}"
        )
    return cls


def _remote_class(folder: HfFolder, auto_map: Mapping[str, str], arch: str | None, spec: str) -> type[nn.Module]:
    """The Auto class entry whose target is ``arch`` (else the first model entry), as
    ``AutoModel*.from_pretrained(trust_remote_code=True)`` would pick it."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    models = {k: v for k, v in auto_map.items() if k.startswith("AutoModel")}
    if not models:
        raise LayerscopeError(f"{spec}: the auto_map in config.json names no AutoModel class")
    key = next((k for k, v in models.items() if arch and str(v).split(".")[-1] == arch), next(iter(models)))
    reference = models[key][0] if isinstance(models[key], (list, tuple)) else models[key]
    return get_class_from_dynamic_module(reference, str(folder.path), local_files_only=True)


# --- building --------------------------------------------------------------------------


# what transformers raises on a config it cannot build (a value no check foresaw): the user's file
BUILD_ERRORS = (
    ValueError,
    TypeError,
    RuntimeError,
    NotImplementedError,
    AttributeError,
    KeyError,
    IndexError,
    ArithmeticError,
    ImportError,
)
WEIGHTS_SLACK = 4  # fp32 built from fp16 files, tied or derived buffers: generous, and still far below a bomb
WEIGHTS_MARGIN = 64 * 2**20


def _build_on_meta(cls, config, spec: str) -> nn.Module:
    dtype = getattr(config, "dtype", None)
    try:
        with torch.device("meta"), bounded_build(spec, on_meta=True):
            return cls._from_config(config, dtype=dtype if isinstance(dtype, torch.dtype) else None)
    except LayerscopeError:
        raise
    except BUILD_ERRORS as exc:
        raise LayerscopeError(
            f"{spec}: transformers cannot build {cls.__name__} from its config.json "
            f"({type(exc).__name__}: {first_line(exc)})"
        ) from exc


def _check_size(skeleton: nn.Module, folder: HfFolder, dev: torch.device, spec: str) -> None:
    """The structure (built on meta) against the bytes its weights files hold and the memory
    free: ``hidden_size: 65536`` beside a tiny weights file would allocate gigabytes of random
    tensors before any mismatch could be reported."""
    needed = sum(t.numel() * t.element_size() for t in (*skeleton.parameters(), *skeleton.buffers()))
    held = sum(p.stat().st_size for p in folder.safetensors or folder.pickles)
    if needed > WEIGHTS_SLACK * held + WEIGHTS_MARGIN:
        raise LayerscopeError(
            f"{folder.path / CONFIG} describes {needed / 2**20:,.1f} MiB of tensors, but the "
            f"weights files hold {held / 2**20:,.1f} MiB: the config does not match its weights "
            "(hidden_size, image_size, vocab_size?)"
        )
    available = available_bytes(dev)
    if available is not None and needed > available:
        raise LayerscopeError(
            f"{spec} needs {needed / 2**30:,.1f} GiB of weights; {dev.type} has {available / 2**30:,.1f} GiB available"
        )


def _from_weights(cls, config, folder: HfFolder, spec: str, trust: bool) -> nn.Module:
    """safetensors through transformers' own loader (renames, ties, shards); a pickle only
    with ``--trust``, read by layerscope's checkpoint reader."""
    from safetensors import SafetensorError  # a dependency of transformers

    if folder.safetensors:
        source: dict[str, Any] = {"pretrained_model_name_or_path": str(folder.path), "use_safetensors": True}
    elif not trust:
        names = ", ".join(p.name for p in folder.pickles)
        raise LayerscopeError(
            f"{spec} holds its weights only as a pickle ({names}), which can run code when read; "
            "pass --trust only if you trust its source, or save them as safetensors"
        )
    else:
        state: dict[str, torch.Tensor] = {}
        for path in folder.pickles:
            state.update(extract_state_dict(read_model_file(path, trust=True, what="weights file"), str(path)))
        source = {"pretrained_model_name_or_path": None, "state_dict": state}
    try:
        with bounded_build(spec, on_meta=False):
            model, info = cls.from_pretrained(
                config=config, local_files_only=True, output_loading_info=True, ignore_mismatched_sizes=True, **source
            )
    except LayerscopeError:
        raise
    except (ValueError, KeyError, OSError, RuntimeError, SafetensorError) as exc:
        raise LayerscopeError(f"cannot load the weights of {spec}: {first_line(exc)}") from exc
    _check_fit(info, spec, cls.__name__)
    return model


def _check_fit(info: Mapping[str, Any], spec: str, arch: str) -> None:
    """Missing or mis-shaped tensors would silently stay random: name them instead."""
    problems = []
    for label, key in (("missing", "missing_keys"), ("mis-shaped", "mismatched_keys")):
        keys = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get(key) or ())
        if keys:
            more = f", … {len(keys) - 4} more" if len(keys) > 4 else ""
            problems.append(f"{len(keys)} {label} ({', '.join(keys[:4])}{more})")
    if problems:
        raise LayerscopeError(f"the weights in {spec} do not fit {arch}: {'; '.join(problems)}")


def _weights_label(folder: HfFolder) -> str:
    files = folder.safetensors or folder.pickles
    shards = f" + {len(files) - 1} more shard(s)" if len(files) > 1 else ""
    return f"{files[0]}{shards}"


@contextmanager
def _quiet() -> Iterator[None]:
    """transformers' progress bars and warnings would break the CLI's one-line contract."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
