"""Hugging Face ``transformers`` models from a folder on disk or the local hub cache.

A folder holding ``config.json`` (what ``save_pretrained`` writes and what the hub
cache keeps per snapshot) is opened with the class its config names
(``architectures[0]``), its weights read from safetensors, its ``id2label`` as the
class names and its saved image processor as the preprocessing. Nothing is ever
downloaded, and nothing from the folder runs unless the user passed ``--trust``:
safetensors hold only tensors, while ``pytorch_model.bin`` is a pickle and an
``auto_map`` / ``*.py`` file is code. A folder with only ``config.json`` builds on
the meta device, so a 70-billion-parameter model is browsable in seconds.

``transformers`` is imported only when such a spec is loaded (it is an optional extra).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from layerscope.checkpoints import extract_state_dict, read_model_file
from layerscope.errors import LayerscopeError, first_line
from layerscope.files import exists, expand, regular_file
from layerscope.loading import FILE_SUFFIXES, IMAGENET_MEAN, IMAGENET_STD, LoadedModel, Preprocess

PREFIX = "hf:"
CONFIG = "config.json"
PREPROCESSOR = "preprocessor_config.json"
_REPO_ID = re.compile(r"[\w.-]+(/[\w.-]+)?(@[\w./-]+)?")
_OTHER_WEIGHTS = (".h5", ".msgpack", ".gguf", ".ckpt.index")


@dataclass(frozen=True)
class HfFolder:
    """What a model folder holds, read without running anything from it."""

    path: Path
    config: dict[str, Any]
    safetensors: tuple[Path, ...]
    pickles: tuple[Path, ...]
    code: tuple[str, ...]  # why the folder counts as code: "auto_map in config.json", "modeling_x.py"
    files: tuple[Path, ...] = ()  # every regular file in it and every shard an index names: inputs


    @property
    def architecture(self) -> str | None:
        names = self.config.get("architectures") or []
        return str(names[0]) if names else None


def is_hf_spec(spec: str) -> bool:
    """``hf:…``, or a folder with a ``config.json`` in it."""
    if spec.startswith(PREFIX):
        return True
    try:
        path = expand(spec)
        return path.is_dir() and exists(path / CONFIG)
    except (OSError, LayerscopeError):
        return False


def load_hf(
    spec: str, *, weights: str, dev: torch.device, trust: bool, kwargs: Mapping[str, Any]
) -> LoadedModel:
    """Build the model of a Hugging Face folder; weights from the folder, never the network."""
    if weights.lower() != "none" and "/" not in weights and not weights.lower().endswith(FILE_SUFFIXES):
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
        if structure_only:
            model = _build_on_meta(cls, config, spec)
        else:
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


# --- where the folder is --------------------------------------------------------------


def resolve_folder(spec: str) -> Path:
    """``hf:PATH`` or a folder as given; ``hf:ORG/NAME[@REVISION]`` from the local hub cache."""
    text = spec.removeprefix(PREFIX)
    path = expand(text, "model folder")
    if path.is_dir():
        if not exists(path / CONFIG):
            raise LayerscopeError(f"{spec} is a folder without {CONFIG}, not a Hugging Face model")
        return path
    if not spec.startswith(PREFIX) or not _REPO_ID.fullmatch(text) or text.startswith((".", "/")) or ".." in text:
        raise LayerscopeError(f"no such folder: {text}")
    return _cached_snapshot(spec, text)


def _cached_snapshot(spec: str, text: str) -> Path:
    repo, _, revision = text.partition("@")
    cache = Path(_hub_cache()).expanduser()
    storage = cache / f"models--{repo.replace('/', '--')}"
    ref = storage / "refs" / (revision or "main")
    commit = ref.read_text().strip() if ref.is_file() else (revision or "")
    snapshot = storage / "snapshots" / commit if commit else None
    if snapshot is None or not (snapshot / CONFIG).is_file():
        raise LayerscopeError(
            f"{spec}: {repo}{'@' + revision if revision else ''} is not in the local Hugging Face cache ({cache}); "
            f"layerscope never downloads: fetch it first (`hf download {repo}`) or give a folder"
        )
    return snapshot


def _hub_cache() -> str:
    """Where ``huggingface_hub`` keeps downloads (``HF_HUB_CACHE`` / ``HF_HOME`` honoured)."""
    try:
        from huggingface_hub import constants
    except ImportError:
        home = os.environ.get("HF_HOME", os.path.join("~", ".cache", "huggingface"))
        return os.environ.get("HF_HUB_CACHE", os.path.join(home, "hub"))
    return constants.HF_HUB_CACHE


def inspect_folder(path: Path, spec: str) -> HfFolder:
    """The folder's config, weight files and code, from file names and JSON only."""
    config = _read_json(path / CONFIG, "config file")
    files = sorted(p for p in path.iterdir() if p.is_file())
    code = ["auto_map in config.json"] if config.get("auto_map") else []
    code += [p.name for p in files if p.suffix == ".py"]
    safetensors = tuple(p for p in files if p.suffix == ".safetensors")
    pickles = tuple(p for p in files if p.suffix == ".bin" and p.name.startswith("pytorch_model"))
    if not safetensors and not pickles and any(p.name.endswith(_OTHER_WEIGHTS) for p in files):
        others = ", ".join(p.name for p in files if p.name.endswith(_OTHER_WEIGHTS))
        raise LayerscopeError(f"{spec} holds only weights layerscope does not read ({others}); "
                              "save them as safetensors (model.save_pretrained)")
    shards = tuple(shard for index in files if index.name.endswith(".index.json") for shard in _shards(index, path))
    return HfFolder(path=path, config=config, safetensors=safetensors, pickles=pickles, code=tuple(code),
                    files=tuple(dict.fromkeys((*files, *shards))))


def _shards(index: Path, folder: Path) -> list[Path]:
    """The shard files a ``*.index.json`` names, each a plain name of a regular file inside
    ``folder``: transformers opens whatever the ``weight_map`` says (``/dev/zero``, a FIFO,
    ``../../elsewhere``). A hub-cache snapshot's files are links into its repo's ``blobs/``."""
    weight_map = _read_json(index, "shard index").get("weight_map")
    if not isinstance(weight_map, Mapping):
        raise LayerscopeError(f"{index}: weight_map is not a JSON object of tensor name → shard file")
    home = (folder.parent.parent if folder.parent.name == "snapshots" else folder).resolve()
    found = []
    for name in dict.fromkeys(weight_map.values()):
        plain = isinstance(name, str) and name not in {"", ".", ".."} and not re.search(r"[/\\\x00]", name)
        if not plain:
            raise LayerscopeError(f"{index} names shard {str(name)[:80]!r}: shards must be plain file names "
                                  "inside the model folder")
        shard = regular_file(folder / name, "shard file")
        if not shard.resolve().is_relative_to(home):
            raise LayerscopeError(f"{index} names shard {name!r}, a link to {shard.resolve()}, outside the model folder")
        found.append(shard)
    return found


def _read_json(file: Path, what: str) -> dict[str, Any]:
    """A JSON object from a regular file (never a FIFO or a device), or a one-line error."""
    try:
        data = json.loads(regular_file(file, what).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LayerscopeError(f"cannot read {file}: {first_line(exc)}") from exc
    if not isinstance(data, dict):
        raise LayerscopeError(f"{file} is not a JSON object")
    return data


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
            raise LayerscopeError(f"{spec}: config.json names no architecture and transformers has no base model "
                                  f"for model_type {folder.config.get('model_type')!r}") from None
    cls = getattr(transformers, arch, None)
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise LayerscopeError(
            f"{spec}: config.json names architecture {arch!r}, which transformers {transformers.__version__} "
            "does not have"
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


def _build_on_meta(cls, config, spec: str) -> nn.Module:
    dtype = getattr(config, "dtype", None)
    try:
        with torch.device("meta"):
            return cls._from_config(config, dtype=dtype if isinstance(dtype, torch.dtype) else None)
    except (ValueError, TypeError, RuntimeError, NotImplementedError) as exc:
        raise LayerscopeError(f"{spec} cannot be built on the meta device: {first_line(exc)}") from exc


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
        model, info = cls.from_pretrained(
            config=config, local_files_only=True, output_loading_info=True, ignore_mismatched_sizes=True, **source
        )
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


# --- labels and preprocessing ---------------------------------------------------------------


def categories(id2label: Mapping[Any, str] | None, architecture: str | None) -> list[str] | None:
    """``id2label`` in index order; transformers' placeholder ``LABEL_k`` names only count on a
    classifier (elsewhere every config carries two of them)."""
    try:
        labels = {int(k): str(v) for k, v in (id2label or {}).items()}
    except (TypeError, ValueError):
        return None
    if not labels or sorted(labels) != list(range(len(labels))):
        return None
    names = [labels[i] for i in range(len(labels))]
    placeholder = all(name == f"LABEL_{i}" for i, name in enumerate(names))
    if placeholder and "Classification" not in (architecture or ""):
        return None
    return names


def preprocess_from_folder(path: Path, config: Mapping[str, Any]) -> Preprocess:
    """The saved image processor's resize, crop and normalisation, as numbers.

    ``size: {height, width}`` resizes to exactly that (ViT, Swin), ``shortest_edge`` the
    shorter side (with ``crop_pct``, ConvNeXt's resize-then-crop); ``rescale_factor`` and
    ``do_normalize`` fold into mean and std, so the tensor equals the processor's output
    (up to the resampling filter, which is always bilinear here).
    """
    saved = _read_json(path / PREPROCESSOR, "preprocessor config") if exists(path / PREPROCESSOR) else None
    if saved is None:  # no processor saved: ImageNet's, at the config's image size
        side = config.get("image_size")
        side = side if isinstance(side, int) and side > 0 else 224
        return Preprocess(resize=round(side * 256 / 224), crop=(side, side))
    resize, crop = _resize_and_crop(saved)
    scale = float(saved.get("rescale_factor", 1 / 255)) if saved.get("do_rescale", True) else 1.0
    normalise = saved.get("do_normalize", True)
    mean = _triple(saved.get("image_mean"), IMAGENET_MEAN) if normalise else (0.0, 0.0, 0.0)
    std = _triple(saved.get("image_std"), IMAGENET_STD) if normalise else (1.0, 1.0, 1.0)
    factor = scale * 255  # layerscope's tensor is pixels/255; the processor's is pixels·scale
    return Preprocess(
        resize=resize, crop=crop,
        mean=tuple(m / factor for m in mean),  # type: ignore[arg-type]
        std=tuple(s / factor for s in std),  # type: ignore[arg-type]
    )


def _resize_and_crop(saved: Mapping[str, Any]) -> tuple[int | tuple[int, int] | None, tuple[int, int] | None]:
    size = saved.get("size") if saved.get("do_resize", True) else None
    crop = _hw(saved.get("crop_size")) if saved.get("do_center_crop") else None
    if isinstance(size, int):
        size = {"height": size, "width": size}
    if not isinstance(size, Mapping):
        return None, crop
    if "height" in size and "width" in size:
        exact = (int(size["height"]), int(size["width"]))
        return exact, crop or exact
    edge = size.get("shortest_edge")
    if edge is None:
        return None, crop
    edge, crop_pct = int(edge), saved.get("crop_pct")
    if crop_pct and "do_center_crop" not in saved:  # ConvNeXt's rule: crop below 384, warp from 384 on
        return ((int(edge / float(crop_pct)), (edge, edge)) if edge < 384 else ((edge, edge), (edge, edge)))
    return edge, crop


def _hw(value: object) -> tuple[int, int] | None:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, Mapping) and "height" in value and "width" in value:
        return (int(value["height"]), int(value["width"]))
    return None


def _triple(value: object, default: tuple[float, float, float]) -> tuple[float, float, float]:
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    if isinstance(value, (list, tuple)) and len(value) == 3:
        return tuple(float(v) for v in value)  # type: ignore[return-value]
    return default


# --- what the rest of layerscope asks of a Hugging Face model ---------------------------------


def text_model_problem(model: nn.Module) -> str | None:
    """Why a model cannot take an image: a transformers model whose main input is token ids
    (or audio: ``input_values``, ``input_features``)."""
    main = getattr(model, "main_input_name", None)
    if main is None or main == "pixel_values":
        return None
    kind, probe = ("a text model", "--input 128:long") if main == "input_ids" else ("not an image model", "--input")
    return (
        f"{type(model).__name__} takes {main} ({kind}), not an image; Grad-CAM needs a layer with a "
        f"spatial or token-grid output over an image. Browse it with tree/stats/api and {probe}"
    )


_LAST_LAYER = {  # model_type → the module to take the last of (named_modules order)
    "vit": "layernorm_before", "deit": "layernorm_before", "beit": "layernorm_before",
    "swin": "layernorm_before", "swinv2": "layernorm_before",
    "convnext": "stages", "convnextv2": "stages", "resnet": "stages",
}


def suggested_layer(model: nn.Module) -> str | None:
    """The usual Grad-CAM target of a transformers vision model: ViT/DeiT's last layer's
    ``layernorm_before`` (timm's ``blocks[-1].norm1``), Swin's last stage's last block's,
    ConvNeXt's and ResNet's last stage."""
    config = getattr(model, "config", None)
    leaf = _LAST_LAYER.get(getattr(config, "model_type", None) or "")
    if leaf is None:
        return None
    found = None
    for name, module in model.named_modules():
        parts = name.split(".")
        if parts[-1] == leaf and leaf != "stages":
            found = name
        elif leaf == "stages" and parts[-1] == "stages" and isinstance(module, (nn.ModuleList, nn.Sequential)):
            found = f"{name}.{len(module) - 1}" if len(module) else None
    return found


def checkpoint_renamer(model: nn.Module) -> Callable[[str], str | None] | None:
    """How a layer name written against a checkpoint or older code maps onto this model.

    transformers 5 renamed modules (``vit.encoder.layer.2.attention`` is now
    ``vit.layers.2.attention``) and renames checkpoint keys as it loads them; names people
    copy from a checkpoint's keys, from 4.x code or from papers (``model.vit.encoder.layer[-1]
    .layernorm_before``) go through the same renames. ``None`` for any other model.
    """
    transformers = sys.modules.get("transformers")
    if transformers is None or not isinstance(model, transformers.PreTrainedModel):
        return None
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightRenaming, rename_source_key
    except ImportError:  # transformers 4 renames nothing
        return None
    renames = [r for r in get_model_conversion_mapping(model) if isinstance(r, WeightRenaming)]
    if not renames:
        return None

    def rename(text: str) -> str | None:
        dotted = re.sub(r"\[\s*(-?\d+)\s*\]", r".\1", text.strip())
        for candidate in (dotted, dotted.removeprefix("model.")):
            renamed, _ = rename_source_key(candidate, renames, [])
            if renamed != candidate:
                return re.sub(r"\.(-?\d+)(?=\.|$)", r"[\1]", renamed)
        return None

    return rename
