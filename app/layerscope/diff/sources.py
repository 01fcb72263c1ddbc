"""Checkpoints read one tensor at a time: the one interface a diff reads through.

A diff never holds two checkpoints: it asks each side for a key's shape and dtype
(from the file's header, no data read), then for the tensor itself, compares, and lets
it go. Each format gets the cheapest honest reader:

- ``.safetensors``: ``safe_open``, which maps the file;
- zip checkpoints (``torch.save``'s format since 1.6): ``torch.load(mmap=True,
  weights_only=True)`` through ``layerscope.models.checkpoints``;
  in both, pages are read as a comparison reaches them and handed back slice by slice
  (``layerscope.diff.pages``), so not even one large tensor is resident whole;
- anything else ``--weights`` accepts (the legacy format, trusted whole-model pickles,
  TorchScript with ``--trust``) is read whole, with the same rules as everywhere;
- Hugging Face folders: shard by shard (``layerscope.diff.shards``).

Keys are normalised as ``--weights`` does (``module.`` / ``_orig_mod.`` prefixes dropped).
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import torch
from torch import nn

from layerscope.diff import pages
from layerscope.diff.compare import info_of
from layerscope.diff.records import TensorInfo
from layerscope.errors import LayerscopeError, first_line
from layerscope.io.files import regular_file
from layerscope.models.checkpoints import (
    archive_kind,
    extract_state_dict,
    is_safetensors,
    read_model_file,
    strip_wrapper_prefix,
)

SAFETENSORS_DTYPES = {  # the header's names → torch's
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "U16": "uint16",
    "I16": "int16",
    "U32": "uint32",
    "I32": "int32",
    "U64": "uint64",
    "I64": "int64",
    "F16": "float16",
    "BF16": "bfloat16",
    "F32": "float32",
    "F64": "float64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "C64": "complex64",
}


class TensorSource:
    """One checkpoint: its keys in file order, each key's header, each tensor on demand."""

    label: str

    def keys(self) -> list[str]:
        raise NotImplementedError

    def info(self, key: str) -> TensorInfo:
        raise NotImplementedError

    def read(self, key: str) -> torch.Tensor:
        raise NotImplementedError

    def prefetch(self, key: str) -> None:
        """A hint that ``key`` is read next: a mapped reader asks the disk for it now, so reading
        overlaps the comparison before it."""

    def release(self, key: str, tensor: torch.Tensor) -> None:
        """Called with ``key``'s tensor, or a slice of it, once compared: a mapped reader gives
        those pages back; one that holds tensors in memory does nothing."""

    def close(self) -> None:
        """Closes the file handles (a reader that holds none does nothing)."""

    def __enter__(self) -> TensorSource:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class SafetensorsFile(TensorSource):
    """A ``.safetensors`` file: the header lists every tensor; bytes are read per tensor."""

    def __init__(self, path: Path, label: str) -> None:
        self.label = label
        try:
            from safetensors import safe_open
        except ImportError as exc:
            raise LayerscopeError(
                ".safetensors files need safetensors (pip install 'layerscope[safetensors]')"
            ) from exc
        try:
            self.handle = safe_open(str(path), framework="pt")  # mapped: a tensor's bytes are read as they are used
            self.pages = pages.mapping(path)
            self.names = unique_keys(self.handle.keys(), label)
        except LayerscopeError:
            raise
        except Exception as exc:
            raise LayerscopeError(f"cannot read {label}: not a safetensors file ({first_line(exc)})") from exc

    def keys(self) -> list[str]:
        return list(self.names)

    def info(self, key: str) -> TensorInfo:
        part = self.handle.get_slice(self.names[key])
        raw = str(part.get_dtype())
        return TensorInfo(shape=tuple(int(d) for d in part.get_shape()), dtype=SAFETENSORS_DTYPES.get(raw, raw.lower()))

    def read(self, key: str) -> torch.Tensor:
        try:
            return self.handle.get_tensor(self.names[key])  # a view of the mapped file: nothing read yet
        except Exception as exc:  # a header that promises bytes the file does not have
            raise LayerscopeError(f"cannot read {key!r} from {self.label}: {first_line(exc)}") from exc

    def prefetch(self, key: str) -> None:
        pages.prefetch(self.read(key))

    def release(self, key: str, tensor: torch.Tensor) -> None:
        if self.pages is not None:
            self.pages.release(tensor)

    def close(self) -> None:
        exit_ = getattr(self.handle, "__exit__", None)
        if exit_ is not None:
            exit_(None, None, None)


class StateDictFile(TensorSource):
    """Any other file ``--weights`` accepts, through ``layerscope.models.checkpoints``: a zip
    checkpoint mapped (never read whole), the rest read whole; code runs only with ``trust``."""

    def __init__(self, path: Path, label: str, *, trust: bool) -> None:
        self.label = label
        obj = read_model_file(path, trust=trust, what="checkpoint", mmap=True)
        self.module = obj if isinstance(obj, nn.Module) else None  # a whole model (trusted): its own tree
        self.state = extract_state_dict(obj, label)
        self.pages = pages.mapping(path) if zipfile.is_zipfile(path) else None  # the legacy format is in memory

    def keys(self) -> list[str]:
        return list(self.state)

    def info(self, key: str) -> TensorInfo:
        return info_of(self.state[key])

    def read(self, key: str) -> torch.Tensor:
        return self.state[key]

    def prefetch(self, key: str) -> None:
        if self.pages is not None:
            pages.prefetch(self.state[key])

    def release(self, key: str, tensor: torch.Tensor) -> None:
        if self.pages is not None:
            self.pages.release(tensor)


class InMemory(StateDictFile):
    """A state_dict (or a module's) the caller holds: ``diff_checkpoints(model.state_dict(), "tuned.pt")``.
    Nothing is copied: each tensor is read detached, as it is now."""

    def __init__(self, held: Mapping[str, torch.Tensor] | nn.Module, label: str) -> None:
        self.label = label
        self.module = held if isinstance(held, nn.Module) else None  # its own tree, as a whole-model file's
        state = held.state_dict(keep_vars=True) if isinstance(held, nn.Module) else held
        bad = next((k for k, v in state.items() if not isinstance(v, torch.Tensor)), None)
        if bad is not None:
            raise LayerscopeError(f"{label}: {bad!r} holds a {type(state[bad]).__name__}, not a tensor")
        self.state = {k: v.detach() for k, v in state.items()}
        self.pages = None


def held_label(held: object) -> str:
    """How results and messages name an in-memory side."""
    return (
        f"{type(held).__name__}.state_dict() (in memory)" if isinstance(held, nn.Module) else "state_dict (in memory)"
    )


def unique_keys(raw: list[str], label: str) -> dict[str, str]:
    """Normalised key → the file's own spelling; two spellings of one key are a broken file."""
    names: dict[str, str] = {}
    for key in raw:
        plain = strip_wrapper_prefix(key)
        if plain in names:
            raise LayerscopeError(f"{label} holds {key!r} and {names[plain]!r}, the same key twice")
        names[plain] = key
    return names


def open_file(path: Path, label: str, *, trust: bool, what: str = "checkpoint") -> TensorSource:
    """The reader for one file, picked from its bytes (never its suffix): a TorchScript archive
    renamed ``.safetensors`` is still a program and still needs ``--trust``."""
    regular_file(path, what)
    if archive_kind(path) is None and is_safetensors(path):
        return SafetensorsFile(path, label)
    return StateDictFile(path, label, trust=trust)
