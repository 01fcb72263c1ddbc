"""What a Hugging Face model folder holds and says, read without running anything from it.

Where the folder is (a path, or ``hf:ORG/NAME`` in the local hub cache), which weight,
shard and code files it holds (``HfFolder``), and what its JSON says about class names
and preprocessing. ``layerscope.models.sources.hf`` builds the model from it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layerscope.errors import LayerscopeError, first_line
from layerscope.io.files import exists, expand, regular_file
from layerscope.models.loaded import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from layerscope.models.sources.hf_checks import check_config, check_preprocessor

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


# --- where the folder is --------------------------------------------------------------


def resolve_folder(spec: str) -> Path:
    """``hf:PATH`` or a folder as given; ``hf:ORG/NAME[@REVISION]`` from the local hub cache."""
    text = spec.removeprefix(PREFIX)
    path = expand(text, "model folder")
    if _is_dir(path):
        if not exists(path / CONFIG):
            raise LayerscopeError(f"{spec} is a folder without {CONFIG}, not a Hugging Face model")
        return path
    if not spec.startswith(PREFIX) or not _REPO_ID.fullmatch(text) or text.startswith((".", "/")) or ".." in text:
        raise LayerscopeError(f"no such folder: {text}")
    return _cached_snapshot(spec, text)


def _is_dir(path: Path) -> bool:
    """``Path.is_dir`` that says no to a name the system refuses (a component over 255 bytes)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _cached_snapshot(spec: str, text: str) -> Path:
    repo, _, revision = text.partition("@")
    cache = Path(hub_cache()).expanduser()
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


def hub_cache() -> str:
    """Where ``huggingface_hub`` keeps downloads (``HF_HUB_CACHE`` / ``HF_HOME`` honoured)."""
    try:
        from huggingface_hub import constants
    except ImportError:
        home = os.environ.get("HF_HOME", os.path.join("~", ".cache", "huggingface"))
        return os.environ.get("HF_HUB_CACHE", os.path.join(home, "hub"))
    return constants.HF_HUB_CACHE


def inspect_folder(path: Path, spec: str, *, config_needed: bool = True) -> HfFolder:
    """The folder's config, weight files and code, from file names and JSON only. Without
    ``config_needed`` a folder with no config.json is a set of shards (config ``{}``): what
    ``diff`` reads, where the architecture comes from ``--arch`` or the keys."""
    if config_needed or exists(path / CONFIG):
        config = read_json(path / CONFIG, "config file")
        check_config(config, path / CONFIG)
    else:
        config = {}
    files = sorted(p for p in path.iterdir() if p.is_file())
    code = ["auto_map in config.json"] if config.get("auto_map") else []
    code += [p.name for p in files if p.suffix == ".py"]
    safetensors = tuple(p for p in files if p.suffix == ".safetensors")
    pickles = tuple(p for p in files if p.suffix == ".bin" and p.name.startswith("pytorch_model"))
    if not safetensors and not pickles and any(p.name.endswith(_OTHER_WEIGHTS) for p in files):
        others = ", ".join(p.name for p in files if p.name.endswith(_OTHER_WEIGHTS))
        raise LayerscopeError(
            f"{spec} holds only weights layerscope does not read ({others}); "
            "save them as safetensors (model.save_pretrained)"
        )
    shards = tuple(shard for index in files if index.name.endswith(".index.json") for shard in _shards(index, path))
    return HfFolder(
        path=path,
        config=config,
        safetensors=safetensors,
        pickles=pickles,
        code=tuple(code),
        files=tuple(dict.fromkeys((*files, *shards))),
    )


def _shards(index: Path, folder: Path) -> list[Path]:
    """The shard files a ``*.index.json`` names, each a plain name of a regular file inside
    ``folder``: transformers opens whatever the ``weight_map`` says (``/dev/zero``, a FIFO,
    ``../../elsewhere``). A hub-cache snapshot's files are links into its repo's ``blobs/``."""
    weight_map = read_json(index, "shard index").get("weight_map")
    if not isinstance(weight_map, Mapping):
        raise LayerscopeError(f"{index}: weight_map is not a JSON object of tensor name → shard file")
    home = (folder.parent.parent if folder.parent.name == "snapshots" else folder).resolve()
    found = []
    for name in dict.fromkeys(weight_map.values()):
        plain = isinstance(name, str) and name not in {"", ".", ".."} and not re.search(r"[/\\\x00]", name)
        if not plain:
            raise LayerscopeError(
                f"{index} names shard {str(name)[:80]!r}: shards must be plain file names inside the model folder"
            )
        shard = regular_file(folder / name, "shard file")
        if not shard.resolve().is_relative_to(home):
            raise LayerscopeError(
                f"{index} names shard {name!r}, a link to {shard.resolve()}, outside the model folder"
            )
        found.append(shard)
    return found


def read_json(file: Path, what: str) -> dict[str, Any]:
    """A JSON object from a regular file (never a FIFO or a device), or a one-line error."""
    try:
        data = json.loads(regular_file(file, what).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LayerscopeError(f"cannot read {file}: {first_line(exc)}") from exc
    except RecursionError as exc:  # 100,000 nested arrays
        raise LayerscopeError(f"cannot read {file}: its JSON is nested too deeply") from exc
    if not isinstance(data, dict):
        raise LayerscopeError(f"{file} is not a JSON object")
    return data


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
    saved = read_json(path / PREPROCESSOR, "preprocessor config") if exists(path / PREPROCESSOR) else None
    if saved is None:  # no processor saved: ImageNet's, at the config's image size (checked: 1 to MAX_SIDE)
        side = config.get("image_size")
        side = side if isinstance(side, int) and side > 0 else 224
        return Preprocess(resize=round(side * 256 / 224), crop=(side, side))
    check_preprocessor(saved, path / PREPROCESSOR)
    resize, crop = _resize_and_crop(saved)
    scale = float(saved.get("rescale_factor", 1 / 255)) if saved.get("do_rescale", True) else 1.0
    normalise = saved.get("do_normalize", True)
    mean = _triple(saved.get("image_mean"), IMAGENET_MEAN) if normalise else (0.0, 0.0, 0.0)
    std = _triple(saved.get("image_std"), IMAGENET_STD) if normalise else (1.0, 1.0, 1.0)
    factor = scale * 255  # layerscope's tensor is pixels/255; the processor's is pixels·scale
    return Preprocess(
        resize=resize,
        crop=crop,
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
        return (int(edge / float(crop_pct)), (edge, edge)) if edge < 384 else ((edge, edge), (edge, edge))
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
