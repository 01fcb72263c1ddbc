"""Reading checkpoint files safely and fitting a state_dict to a model.

``torch.load`` runs with ``weights_only=True`` always; a file that needs full unpickling
is refused unless the user passed ``--trust``, because unpickling can run any code the
file's author chose. Misfits are reported key by key so the user knows which
architecture or checkpoint is wrong.
"""

from __future__ import annotations

import pickle
import pickletools
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from layerscope.errors import LayerscopeError, first_line


def is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in archive.namelist())


def read_checkpoint(path: Path, *, trust: bool) -> Any:
    """Read a checkpoint without running its pickle code unless the user said ``--trust``."""
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not _is_pickle_stream(path):
            raise LayerscopeError(f"cannot read {path}: not a PyTorch checkpoint (corrupt or another format)") from exc
        if not trust:
            raise LayerscopeError(
                f"{path} needs full unpickling, which can run arbitrary code; "
                "pass --trust only if you trust its source"
            ) from exc
    except Exception as exc:
        raise LayerscopeError(f"cannot read {path}: not a PyTorch checkpoint ({first_line(exc)})") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise LayerscopeError(f"cannot unpickle {path}: {first_line(exc)}") from exc


def _is_pickle_stream(path: Path) -> bool:
    """Tell "valid pickle that needs code" from garbage by reading opcodes, never executing them."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                data = archive.read(name) if name else b""
        else:
            data = path.read_bytes()
        for _ in pickletools.genops(data):
            pass
        return bool(data)
    except Exception:
        return False


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as exc:
        raise LayerscopeError(".safetensors files need safetensors (pip install 'layerscope[safetensors]')") from exc
    try:
        return load_file(str(path))
    except Exception as exc:
        raise LayerscopeError(f"cannot read {path}: not a safetensors file ({first_line(exc)})") from exc


def extract_state_dict(obj: Any, spec: str) -> dict[str, torch.Tensor]:
    """Accept a bare state_dict or the usual training checkpoint wrappers around one."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and _all_tensors(inner):
                obj = inner
                break
        if _all_tensors(obj) and obj:
            return {_strip_wrapper_prefix(k): v for k, v in obj.items()}
    raise LayerscopeError(f"{spec} holds a {type(obj).__name__}, neither a model nor a state_dict")


def _all_tensors(mapping: Mapping) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in mapping.items())


def _strip_wrapper_prefix(key: str) -> str:
    """DataParallel and torch.compile save keys as ``module.x`` / ``_orig_mod.x``."""
    for prefix in ("module.", "_orig_mod."):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def fit_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, target: str) -> None:
    """Load ``state`` into ``model`` or say exactly which keys do not fit."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} (file {_shape(state[k])}, model {_shape(expected[k])})"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or misshaped:
        parts = [
            _key_list("missing", missing),
            _key_list("unexpected", unexpected),
            _key_list("mis-shaped", misshaped),
        ]
        raise LayerscopeError(
            f"{source} does not fit {target}: " + "; ".join(p for p in parts if p)
        )
    model.load_state_dict(state, strict=True)


def _key_list(label: str, keys: list[str], shown: int = 4) -> str:
    if not keys:
        return ""
    more = f", … {len(keys) - shown} more" if len(keys) > shown else ""
    return f"{len(keys)} {label} ({', '.join(keys[:shown])}{more})"


def _shape(t: torch.Tensor) -> str:
    return "×".join(str(d) for d in t.shape) or "scalar"
