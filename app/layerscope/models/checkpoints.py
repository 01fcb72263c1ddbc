"""Reading checkpoint files safely and fitting a state_dict to a model.

``torch.load`` runs with ``weights_only=True`` always; a file that needs full unpickling
is refused unless the user passed ``--trust``, because unpickling can run any code the
file's author chose. TorchScript archives and torch.export programs are programs, and
are told apart by their zip members (never the suffix) and refused the same way.
Misfits are reported key by key so the user knows which architecture or checkpoint is
wrong.

Before torch reads a pickle, its opcodes are walked (never run) to refuse calls that
size memory from a number in the file: torch's safe loader allows ``bytearray(n)``, so a
33-byte file could otherwise claim gigabytes. Checkpoints never make such calls.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from layerscope.errors import BadFileError, LayerscopeError, UnavailableError, UnsafeFileError, first_line, with_article
from layerscope.io.files import regular_file

MAX_ZIP_EXPANSION = 20
LEGACY_PICKLES = 5  # torch's pre-zip format: magic number, protocol, sys_info, the object, storage keys
# Calls whose argument can be a size: bytearray(10**10) is allowed by torch's safe loader.
ALLOCATORS = re.compile(r"(builtins|__builtin__)\.(bytearray|bytes)|torch\.(\w+\.)*\w*(Tensor|Storage)")
_CALLS = {"REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ"}
_STRINGS = {"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "STRING", "BINSTRING", "SHORT_BINSTRING"}
# What a program archive is, for the refusal message: loading either one runs code from the file.
PROGRAMS = {
    "torchscript": "a TorchScript archive: loading it runs the TorchScript code stored in the file",
    "export": "a torch.export program (.pt2): torch.export.load unpickles parts of it, which runs code from the file",
}


def archive_kind(path: Path) -> str | None:
    """``"torchscript"``, ``"export"`` or ``None``, read from the zip's member names (never
    the suffix: a TorchScript archive renamed ``.safetensors`` is still a program)."""
    with open(path, "rb") as handle:
        if not zipfile.is_zipfile(handle):
            return None
        try:
            members = zipfile.ZipFile(handle).infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise BadFileError(f"cannot read {path}: a damaged zip archive ({first_line(exc)})") from exc
    _refuse_zip_bomb(path, sum(m.file_size for m in members))
    parts = [m.filename.split("/") for m in members]
    if any(p[-1] == "constants.pkl" or "code" in p[:-1] for p in parts):
        return "torchscript"
    if any(p[-1] == "archive_format" or "models" in p[:-1] for p in parts):
        return "export"
    return None


def _refuse_zip_bomb(path: Path, expanded: int) -> None:
    """torch reads deflated members too: a 40 MB file could expand to 40 GB of zeros in
    memory. torch itself stores members uncompressed, so a large expansion is a warning sign."""
    size = path.stat().st_size
    if expanded > MAX_ZIP_EXPANSION * size and expanded > 1 << 30:
        raise UnsafeFileError(
            f"{path} expands from {size:,} to {expanded:,} bytes when unzipped (a zip bomb?); "
            "torch.save never compresses, so this is not a checkpoint it wrote"
        )


def read_model_file(path: Path, *, trust: bool, what: str = "model file", mmap: bool = False) -> Any:
    """What a file holds: a state_dict-like object, or (only with ``--trust``) a whole
    ``nn.Module`` from a pickle, a TorchScript archive or a torch.export program.

    ``mmap``: tensors of a zip checkpoint stay in the file (mapped), read only when used."""
    regular_file(path, what)
    kind = archive_kind(path)
    if kind is None:
        return read_checkpoint(path, trust=trust, mmap=mmap)
    if not trust:
        raise UnsafeFileError(f"{path} is {PROGRAMS[kind]}; pass --trust only if you trust its source")
    try:
        if kind == "torchscript":
            return torch.jit.load(str(path), map_location="cpu")
        return torch.export.load(str(path)).module()
    except Exception as exc:
        raise BadFileError(f"cannot load {path} ({kind}): {first_line(exc)}") from exc


def read_checkpoint(path: Path, *, trust: bool, mmap: bool = False) -> Any:
    """Read a checkpoint without running its pickle code unless the user said ``--trust``.

    ``mmap`` maps a zip checkpoint's tensors instead of reading them (the legacy format
    cannot be mapped and is read whole)."""
    if path.suffix.lower() == ".safetensors" or is_safetensors(path):
        return _read_safetensors(path)
    is_pickle = refuse_allocating_calls(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        if not is_pickle:
            raise BadFileError(f"cannot read {path}: not a PyTorch checkpoint (corrupt or another format)") from exc
        if not trust:
            raise UnsafeFileError(
                f"{path} needs full unpickling, which can run arbitrary code; pass --trust only if you trust its source"
            ) from exc
    except Exception as exc:
        detail = f" ({first_line(exc)})" if zipfile.is_zipfile(path) else ""
        raise BadFileError(f"cannot read {path}: not a PyTorch checkpoint{detail}") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise BadFileError(f"cannot unpickle {path}: {first_line(exc)}") from exc


def refuse_allocating_calls(path: Path) -> bool:
    """Walk the pickles torch would read (``data.pkl`` of a zip, the legacy format's pickles
    in a row) without running them; raise if one calls an allocator (``ALLOCATORS``).
    ``False`` when the file is not a pickle at all (garbage, another format)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                pickles = [i for i in archive.infolist() if i.filename.endswith(".pkl")]
                for info in pickles:  # every one: which data.pkl torch reads depends on the member order
                    with archive.open(info) as stream:
                        _audit_pickle(_Bounded(stream, info.file_size), path)
                return bool(pickles)
        with open(path, "rb") as handle:
            stream = _Bounded(handle, os.fstat(handle.fileno()).st_size)
            _audit_pickle(stream, path)
            for _ in range(LEGACY_PICKLES - 1):
                if stream.left() == 0:
                    break
                _audit_pickle(stream, path)
        return True
    except LayerscopeError:
        raise
    except Exception:  # not a pickle past this point: torch.load fails on the same bytes
        return _first_pickle_parses(path)


def _first_pickle_parses(path: Path) -> bool:
    """Whether the file's first pickle parses: "a pickle that needs code" versus garbage."""
    try:
        with open(path, "rb") as handle:
            return any(True for _ in pickletools.genops(_Bounded(handle, os.fstat(handle.fileno()).st_size)))
    except Exception:
        return False


class _Bounded:
    """A stream that never asks for more bytes than remain: a pickle's declared length of
    2**60 bytes would otherwise make the reader itself allocate it."""

    def __init__(self, stream, size: int) -> None:
        self.stream, self.size, self.at = stream, size, 0

    def left(self) -> int:
        return self.size - self.at

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(self.left() if n < 0 else min(n, self.left()))
        self.at += len(data)
        return data

    def readline(self) -> bytes:
        data = self.stream.readline(max(self.left(), 0))
        self.at += len(data)
        return data

    def tell(self) -> int:
        return self.at


class _Global(str):
    """A ``module.name`` reference on the emulated stack."""


def _audit_pickle(stream: _Bounded, path: Path) -> None:
    """Follow one pickle's stack symbolically (globals, strings, memo; everything else is
    opaque) by pickletools' own stack effects, with marks kept apart as the unpickler keeps
    them, and refuse any call to an allocator."""
    stack: list[Any] = []
    marks: list[int] = []  # where each open MARK's items begin
    memo: dict[int, Any] = {}
    for op, arg, _ in pickletools.genops(stream):
        name = op.name
        if name in {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}:
            memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
            continue
        if name == "MARK" or (name == "POP" and marks and marks[-1] == len(stack)):  # POP drops an empty mark
            marks.append(len(stack)) if name == "MARK" else marks.pop()
            continue
        popped = _pop(stack, marks, op.stack_before)
        callee = _Global(arg.replace(" ", ".")) if name == "INST" else popped[0] if name in _CALLS else None
        if isinstance(callee, _Global) and ALLOCATORS.fullmatch(callee):
            raise UnsafeFileError(
                f"{path} calls {callee}() while unpickling, which can claim any amount of memory from a few "
                "bytes; checkpoints never need it, so layerscope refuses the file"
            )
        if name == "GLOBAL":
            stack.append(_Global(arg.replace(" ", ".")))
        elif name == "STACK_GLOBAL":
            both = all(isinstance(p, str) for p in popped)
            stack.append(_Global(".".join(popped)) if both else None)
        elif name in _STRINGS:
            stack.append(str(arg))
        elif name in {"GET", "BINGET", "LONG_BINGET"}:
            stack.append(memo.get(arg))
        elif name == "DUP":
            stack.extend(popped * 2)
        else:
            stack.extend(None for _ in op.stack_after)


def _pop(stack: list[Any], marks: list[int], before: list[Any]) -> list[Any]:
    """Take an opcode's arguments off the stack, in stack order: the items of the topmost
    mark when it reads a mark, and the fixed ones, which must lie above the next mark."""
    taken: list[Any] = []
    fixed = len(before)
    if pickletools.markobject in before:
        start = marks.pop()  # IndexError when there is none: a broken pickle, which torch refuses too
        taken, stack[start:] = stack[start:], []
        fixed = before.index(pickletools.markobject)
    if len(stack) - fixed < (marks[-1] if marks else 0):
        raise ValueError("pickle stack underflow")
    below = stack[len(stack) - fixed :]
    del stack[len(stack) - fixed :]
    return below + taken


def is_safetensors(path: Path) -> bool:
    """A safetensors file starts with its JSON header's length (8 bytes) and then ``{``."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as exc:
        raise UnavailableError(".safetensors files need safetensors (pip install 'layerscope[safetensors]')") from exc
    try:
        return load_file(str(path))
    except Exception as exc:
        raise BadFileError(f"cannot read {path}: not a safetensors file ({first_line(exc)})") from exc


def extract_state_dict(obj: Any, spec: str) -> dict[str, torch.Tensor]:
    """Accept a bare state_dict, the usual training checkpoint wrappers around one, or a
    whole module (a trusted pickle or program) whose state_dict is taken."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and _all_tensors(inner):
                obj = inner
                break
        if _all_tensors(obj) and obj:
            _check_loadable(obj, spec)
            return {strip_wrapper_prefix(k): v for k, v in obj.items()}
    raise BadFileError(f"{spec} holds {with_article(type(obj).__name__)}, neither a model nor a state_dict")


def _check_loadable(state: Mapping[str, torch.Tensor], spec: str) -> None:
    """Meta, sparse and quantized tensors cannot be copied into a model's dense weights."""
    for key, tensor in state.items():
        kind = (
            "a meta tensor (shape only, no data)"
            if tensor.is_meta
            else "a quantized tensor"
            if tensor.is_quantized
            else f"a {str(tensor.layout).removeprefix('torch.')} tensor"
            if tensor.layout != torch.strided
            else None
        )
        if kind is not None:
            raise BadFileError(f"{spec}: {key!r} is {kind}; layerscope loads dense tensors that hold their values")


def _all_tensors(mapping: Mapping) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in mapping.items())


def strip_wrapper_prefix(key: str) -> str:
    """DataParallel and torch.compile save keys as ``module.x`` / ``_orig_mod.x``."""
    for prefix in ("module.", "_orig_mod."):
        if key.startswith(prefix):
            return key[len(prefix) :]
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
        parts = [_key_list("missing", missing), _key_list("unexpected", unexpected), _key_list("mis-shaped", misshaped)]
        raise BadFileError(f"{source} does not fit {target}: " + "; ".join(p for p in parts if p))
    model.load_state_dict(state, strict=True)


def _key_list(label: str, keys: list[str], shown: int = 4) -> str:
    if not keys:
        return ""
    more = f", … {len(keys) - shown} more" if len(keys) > shown else ""
    return f"{len(keys)} {label} ({', '.join(keys[:shown])}{more})"


def _shape(t: torch.Tensor) -> str:
    return "×".join(str(d) for d in t.shape) or "scalar"
