"""The one loader behind every command: a model spec in, a ready ``nn.Module`` out.

Specs are torchvision builder names (optionally ``torchvision:NAME``), ``timm:NAME``,
``package.module:callable`` factories, files (TorchScript, state_dict, pickled
module), or Hugging Face folders (``layerscope.hf``). Keeping every spec in one
function means the CLI and the app can never disagree about what a name means or
which weights were used.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from layerscope.checkpoints import extract_state_dict, fit_state_dict, read_model_file
from layerscope.errors import LayerscopeError, first_line
from layerscope.files import exists, expand
from layerscope.weights_cache import (
    auto_weights, cached_hint, hub_checkpoint, read_cached_weights, safe_torchvision_reads, timm_cached_file,
)

STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
FILE_SUFFIXES = STATE_DICT_SUFFIXES + (".safetensors", ".jit", ".torchscript", ".pt2")
DEVICE_TYPES = ("cpu", "cuda", "mps", "meta")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the model's input; kept as numbers, not a transform object,
    so that a heatmap can be mapped back onto the original photo's geometry."""

    resize: int | tuple[int, int] | None = 256  # shorter side, or an exact H×W (Hugging Face ViT)
    crop: tuple[int, int] | None = (224, 224)  # None: keep the image's own size (detectors)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


@dataclass
class LoadedModel:
    """A model plus what the rest of layerscope needs to know about where it came from."""

    model: nn.Module
    spec: str
    source: str
    weights: str
    pretrained: bool
    device: torch.device
    categories: list[str] | None = None
    preprocess: Preprocess = field(default_factory=Preprocess)
    files: tuple[Path, ...] = ()  # every file the model was read from: outputs must never replace them

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The C×H×W the weights were trained at: the probe's default input."""
        return (3, *(self.preprocess.crop or (224, 224)))

    @property
    def weights_label(self) -> str:
        return self.weights if self.pretrained else "random weights (untrained)"


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

    ``weights="auto"``: the pretrained weights already in the local cache, else random init.
    """
    if not spec.strip():
        raise LayerscopeError("empty model spec; name a model (e.g. resnet18) or a file")
    dev = _parse_device(device)
    if weights.lower() == "auto":
        weights = auto_weights(spec, dev.type)
    kwargs = dict(kwargs or {})
    from layerscope import hf  # Hugging Face folders; transformers itself is imported only for one

    if hf.is_hf_spec(spec):
        loaded = hf.load_hf(spec, weights=weights, dev=dev, trust=trust, kwargs=kwargs)
    elif _looks_like_file(spec):
        loaded = _load_file(expand(spec, "model file"), spec, arch=arch, dev=dev, trust=trust, kwargs=kwargs)
    elif spec.startswith("timm:"):
        loaded = _load_timm(spec.removeprefix("timm:"), spec, weights, dev, kwargs, trust)
    elif ":" in spec and not spec.startswith("torchvision:"):
        loaded = _load_factory(spec, dev, kwargs)
    else:
        loaded = _load_torchvision(spec.removeprefix("torchvision:"), spec, weights, dev, kwargs, trust)
    if _is_path_weights(weights) and loaded.source not in {"file", "torchscript", "export"}:
        _apply_state_dict_file(loaded, expand(weights, "weights file"), trust=trust)
    if loaded.source != "export":  # an exported graph was traced in eval mode; its .eval() raises
        loaded.model.eval()
    return loaded


def parse_kwargs(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ``key=value`` strings into keyword arguments; values are Python literals."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.isidentifier():
            raise LayerscopeError(f"--arg expects key=value, got {pair!r}")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def _parse_device(device: str) -> torch.device:
    """Only the device types layerscope supports, and only when torch can reach them here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise LayerscopeError(f"unknown device {device!r} (use {', '.join(DEVICE_TYPES)})") from exc
    if dev.type not in DEVICE_TYPES:
        raise LayerscopeError(f"device type {dev.type!r} is not supported (use {', '.join(DEVICE_TYPES)})")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LayerscopeError("--device cuda asked for, but torch sees no CUDA GPU here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise LayerscopeError("--device mps asked for, but MPS is not available here")
    return dev


def _looks_like_file(spec: str) -> bool:
    path = Path(spec)
    return path.suffix.lower() in FILE_SUFFIXES or "/" in spec or spec.startswith("~") or exists(path)


def _is_path_weights(weights: str) -> bool:
    return "/" in weights or weights.lower().endswith(FILE_SUFFIXES)


def _within_device(dev: torch.device, build: Callable[[], nn.Module], what: str) -> nn.Module:
    """Build on ``dev`` directly, so ``meta`` never allocates weight memory."""
    try:
        with dev:
            return build()
    except LayerscopeError:
        raise
    except Exception as exc:
        if dev.type == "meta":
            raise LayerscopeError(
                f"{what} cannot be built on the meta device ({first_line(exc)}); use --device cpu"
            ) from exc
        raise


def _check_fits(dev: torch.device, build: Callable[[], nn.Module], what: str, kwargs: dict[str, Any]) -> None:
    """Builder arguments are sizes users type (``--arg num_classes=10000000000`` asks for
    terabytes): build the structure on ``meta`` first, for free, and refuse weights that
    cannot fit."""
    if not kwargs or dev.type == "meta":
        return
    available = _available_bytes(dev)
    if available is None:
        return
    try:
        with torch.device("meta"):
            skeleton = build()
    except Exception:
        return  # builders that cannot run on meta meet their own errors in the real build
    tensors = [*skeleton.parameters(), *skeleton.buffers()]
    needed = sum(t.numel() * t.element_size() for t in tensors)
    if needed > available:
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise LayerscopeError(f"{what} with {given} needs {needed / 2**30:,.1f} GiB of weights; "
                              f"{dev.type} has {available / 2**30:,.1f} GiB available")


def _available_bytes(dev: torch.device) -> int | None:
    """Free memory where the weights would go: MemAvailable on Linux, the GPU's free bytes."""
    if dev.type == "cuda":
        return torch.cuda.mem_get_info(dev)[0]
    if dev.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as info:
            line = next(line for line in info if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) * 1024


# --- torchvision -----------------------------------------------------------------


def _load_torchvision(
    name: str, spec: str, weights: str, dev: torch.device, kwargs: dict[str, Any], trust: bool
) -> LoadedModel:
    import torchvision.models as tvm

    known = tvm.list_models()
    if name not in known:
        raise LayerscopeError(_unknown_model_message(name, known))
    builder = tvm.get_model_builder(name)
    enum = _weights_enum(name)
    chosen = _pick_weights(enum, weights, name) if not _is_path_weights(weights) else None
    if chosen is not None and dev.type == "meta":
        raise LayerscopeError("--device meta builds the structure only; use --weights none with it")
    reference = chosen or (enum.DEFAULT if enum is not None else None)
    if chosen is None and "weights_backbone" in inspect.signature(builder).parameters:
        kwargs.setdefault("weights_backbone", None)  # detectors would otherwise download a backbone
    if chosen is None:
        _check_fits(dev, lambda: _call_builder(builder, None, name, kwargs), name, kwargs)
    if chosen is None:
        model = _within_device(dev, lambda: _call_builder(builder, chosen, name, kwargs), name)
    else:
        with safe_torchvision_reads(trust):
            model = _within_device(dev, lambda: _call_builder(builder, chosen, name, kwargs), name)
    return LoadedModel(
        model=model,
        spec=spec,
        source="torchvision",
        weights=_weights_name(chosen) if chosen else "none",
        pretrained=chosen is not None,
        device=dev,
        categories=list(reference.meta.get("categories") or []) or None if reference else None,
        preprocess=_preprocess_from_weights(reference),
        files=(hub_checkpoint(chosen.url),) if chosen else (),
    )


def _weights_enum(name: str):
    import torchvision.models as tvm

    try:
        return tvm.get_model_weights(name)
    except (ValueError, KeyError):
        return None


def _pick_weights(enum, weights: str, name: str):
    if weights.lower() == "none":
        return None
    if enum is None:
        raise LayerscopeError(f"torchvision has no pretrained weights for {name}; use --weights none")
    if weights.upper() == "DEFAULT":
        return enum.DEFAULT
    short = weights.split(".")[-1]
    if short in enum.__members__:
        return enum[short]
    options = ", ".join(["DEFAULT", *(name for name, member in enum.__members__.items() if member.name == name)])
    raise LayerscopeError(f"unknown weights {weights!r} for {name}; choose one of: {options}, none")


def _weights_name(weights) -> str:
    return f"{type(weights).__name__}.{weights.name}"


def _call_builder(builder, chosen, name: str, kwargs: dict[str, Any]) -> nn.Module:
    try:
        return builder(weights=chosen, **kwargs)
    except LayerscopeError:
        raise  # the cached weights file was refused
    except TypeError as exc:
        raise LayerscopeError(f"{name} does not accept those arguments: {first_line(exc)}") from exc
    except (ValueError, AssertionError) as exc:
        raise _bad_arguments(name, kwargs, exc) from exc
    except (OSError, RuntimeError) as exc:
        if chosen is None or not _is_download_error(exc):
            raise _bad_arguments(name, kwargs, exc) from exc
        raise LayerscopeError(
            f"could not download {_weights_name(chosen)} ({first_line(exc)}); "
            f"use --weights none for random weights, or --weights PATH for a local file{cached_hint(name)}"
        ) from exc


def _bad_arguments(name: str, kwargs: dict[str, Any], exc: BaseException) -> BaseException:
    """A builder that fails on the user's ``--arg`` values is a user error; without any, a bug."""
    if not kwargs:
        return exc
    given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return LayerscopeError(f"{name} failed to build with {given}: {first_line(exc)}")


def _is_download_error(exc: BaseException) -> bool:
    import urllib.error

    chain: BaseException | None = exc
    while chain is not None:
        if isinstance(chain, (urllib.error.URLError, ConnectionError, TimeoutError)):
            return True
        chain = chain.__cause__ or chain.__context__
    text = str(exc).lower()
    return any(word in text for word in ("urlopen", "download", "name resolution", "connection"))


def _preprocess_from_weights(weights) -> Preprocess:
    if weights is None:
        return Preprocess()
    try:
        tf = weights.transforms()
    except Exception:  # some weights need arguments (e.g. video); fall back to defaults
        return Preprocess()
    crop = getattr(tf, "crop_size", None)
    resize = getattr(tf, "resize_size", None)
    mean = getattr(tf, "mean", IMAGENET_MEAN)
    std = getattr(tf, "std", IMAGENET_STD)
    if not crop:  # detection weights: the model resizes and normalises inside its own transform
        return Preprocess(resize=None, crop=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    side = int(crop[0])
    return Preprocess(
        resize=int(resize[0]) if resize else None,
        crop=(side, side),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
    )


def _unknown_model_message(name: str, known: list[str], listing: str = "torchvision.models.list_models()") -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else f" (see {listing})"
    return f"unknown model {name!r}{hint}"


# --- timm --------------------------------------------------------------------------


def _load_timm(
    name: str, spec: str, weights: str, dev: torch.device, kwargs: dict[str, Any], trust: bool
) -> LoadedModel:
    try:
        import timm
    except ImportError as exc:
        raise LayerscopeError("timm: specs need timm installed (pip install 'layerscope[timm]')") from exc
    if not timm.is_model(name):
        raise LayerscopeError(_unknown_model_message(name, timm.list_models(), "timm.list_models()"))
    pretrained = weights.lower() not in {"none"} and not _is_path_weights(weights)
    if pretrained and dev.type == "meta":
        raise LayerscopeError("--device meta builds the structure only; use --weights none with it")
    cached = timm_cached_file(name) if pretrained else None
    overlay = {}  # a cached file: read by layerscope's reader, handed to timm as a state_dict
    if cached is not None:
        overlay = {"pretrained_cfg_overlay": {"source": "", "state_dict": dict(read_cached_weights(cached, trust=trust))}}

    def build() -> nn.Module:
        try:
            return timm.create_model(name, pretrained=pretrained, **kwargs, **overlay)
        except TypeError as exc:
            raise LayerscopeError(f"timm:{name} does not accept those arguments: {first_line(exc)}") from exc
        except (OSError, RuntimeError) as exc:
            if pretrained and _is_download_error(exc):
                raise LayerscopeError(
                    f"could not download timm weights for {name} ({first_line(exc)}); use --weights none"
                ) from exc
            raise _bad_arguments(f"timm:{name}", kwargs, exc) from exc
        except (ValueError, AssertionError, KeyError) as exc:
            raise _bad_arguments(f"timm:{name}", kwargs, exc) from exc

    if not pretrained:
        _check_fits(dev, build, f"timm:{name}", kwargs)
    model = _within_device(dev, build, name)
    if isinstance(getattr(model, "pretrained_cfg", None), dict):
        model.pretrained_cfg.pop("state_dict", None)  # the weights are in the model now; free the copy
    return LoadedModel(
        model=model,
        spec=spec,
        source="timm",
        weights=f"timm pretrained ({name})" if pretrained else "none",
        pretrained=pretrained,
        device=dev,
        preprocess=_preprocess_from_timm(model),
        files=(cached,) if cached else (),
    )


def _preprocess_from_timm(model: nn.Module) -> Preprocess:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = cfg.get("input_size", (3, 224, 224))
    crop_pct = cfg.get("crop_pct", 0.875) or 0.875
    side = int(size[-1])
    return Preprocess(
        resize=int(round(side / crop_pct)),
        crop=(int(size[-2]), side),
        mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(cfg.get("std", IMAGENET_STD)),
    )


# --- user factories ------------------------------------------------------------------


def _load_factory(spec: str, dev: torch.device, kwargs: dict[str, Any]) -> LoadedModel:
    """``package.module:callable``. The user's own code may fail in any way; that is their
    mistake to fix, so it becomes one line naming the factory and the exception (``--debug``
    keeps the traceback)."""
    module_name, _, attr = spec.partition(":")
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", module_name) or not attr.isidentifier():
        raise LayerscopeError(f"cannot read model spec {spec!r}: a factory is package.module:callable")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LayerscopeError(f"cannot import {module_name!r} for {spec!r}: {first_line(exc)}") from exc
    except Exception as exc:
        raise LayerscopeError(f"importing {module_name!r} raised {type(exc).__name__}: {first_line(exc)}") from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise LayerscopeError(f"{module_name!r} has no callable named {attr!r}")
    try:
        model = _within_device(dev, lambda: factory(**kwargs), spec)
    except LayerscopeError:
        raise
    except TypeError as exc:
        raise LayerscopeError(f"{spec} does not accept those arguments: {first_line(exc)}") from exc
    except Exception as exc:
        raise LayerscopeError(f"{spec} raised {type(exc).__name__}: {first_line(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise LayerscopeError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    return LoadedModel(model=model, spec=spec, source="factory", weights="none", pretrained=False, device=dev,
                       files=_source_files(module, factory))


def _source_files(module: Any, factory: Any) -> tuple[Path, ...]:
    """The factory's module and the file its function was written in (often the same)."""
    found = [getattr(module, "__file__", None)]
    try:
        found.append(inspect.getsourcefile(factory))
    except TypeError:  # a builtin or a C extension's callable
        pass
    return tuple(dict.fromkeys(Path(f) for f in found if f))


# --- files ---------------------------------------------------------------------------


def _load_file(
    path: Path, spec: str, *, arch: str | None, dev: torch.device, trust: bool, kwargs: dict[str, Any]
) -> LoadedModel:
    obj = read_model_file(path, trust=trust)
    if isinstance(obj, nn.Module):
        return _whole_model(obj, spec, path, dev)
    state = extract_state_dict(obj, spec)
    if arch is None:
        raise LayerscopeError(
            f"{spec} holds a state_dict ({len(state)} tensors), not a model; "
            "name the architecture to load it into with --arch SPEC (e.g. --arch resnet18)"
        )
    if dev.type == "meta":
        raise LayerscopeError("a state_dict cannot be loaded on the meta device; use --device cpu")
    loaded = load_model(arch, weights="none", device=str(dev), trust=trust, kwargs=kwargs)
    fit_state_dict(loaded.model, state, source=spec, target=arch)
    loaded.spec, loaded.weights, loaded.pretrained, loaded.source = spec, str(path), True, "file"
    loaded.files = (path, *loaded.files)
    return loaded


def _whole_model(model: nn.Module, spec: str, path: Path, dev: torch.device) -> LoadedModel:
    """A module read whole from a file the user trusted: a pickle, TorchScript or torch.export."""
    scripted = isinstance(model, torch.jit.ScriptModule)
    if scripted and dev.type == "meta":
        raise LayerscopeError("TorchScript archives cannot be loaded on the meta device; use --device cpu")
    source = "torchscript" if scripted else "export" if isinstance(model, torch.fx.GraphModule) else "pickle"
    return LoadedModel(model=model.to(dev), spec=spec, source=source, weights=str(path), pretrained=True, device=dev,
                       files=(path,))


def _apply_state_dict_file(loaded: LoadedModel, path: Path, *, trust: bool) -> None:
    if loaded.device.type == "meta":
        raise LayerscopeError("a state_dict cannot be loaded on the meta device; use --device cpu")
    state = extract_state_dict(read_model_file(path, trust=trust, what="weights file"), str(path))
    fit_state_dict(loaded.model, state, source=str(path), target=loaded.spec)
    loaded.weights, loaded.pretrained = str(path), True
    loaded.files = (*loaded.files, path)
