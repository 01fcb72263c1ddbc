"""Memory and speed of ``layerscope diff`` on a multi-GB pair: figures, not a pass/fail test.

Writes two checkpoints of about ``--size-gib`` each into a temporary folder (safetensors,
written tensor by tensor so this script never holds one whole; ``--format pt`` also
writes ``torch.save`` zip files, which needs one checkpoint in memory while saving),
shaped like a small language model: an embedding, blocks of four 4096×4096 projections,
norms. In B the first half of the blocks is frozen (bit-identical), the rest and the
head are fine-tuned.

Then, side by side, cold (the files dropped from the page cache first, with
``posix_fadvise(DONTNEED)``) and warm:
- a plain sequential read of both files (16 MiB blocks): the disk's speed;
- ``diff_checkpoints(A, B)`` in a fresh process: seconds, MB/s of A + B, and its peak
  resident set (``VmHWM``) next to the same process's resident set after the imports.
Target (issue 18): two 2 GiB files under ~1.5 GB peak RSS, at disk speed.

    python benchmarks/bench_diff.py [--size-gib 2] [--format safetensors|pt|both] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

WIDTH = 4096
APP = Path(__file__).resolve().parent.parent / "app"

CHILD = r"""
import json, sys, time
sys.path.insert(0, {app!r})
from layerscope.diff import diff_checkpoints

def kib(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1])

before = kib('VmRSS:')
open('/proc/self/clear_refs', 'w').write('5')  # the peak (VmHWM) starts from here
t0 = time.perf_counter()
result = diff_checkpoints({a!r}, {b!r})
seconds = time.perf_counter() - t0
print(json.dumps({{'seconds': seconds, 'rss_after_imports_mb': before / 1024, 'peak_rss_mb': kib('VmHWM:') / 1024,
                  'counts': result.counts(), 'relative_change': result.root.relative_change}}))
"""


def layout(size_gib: float) -> list[tuple[str, tuple[int, ...]]]:
    """Tensor names and shapes adding up to about ``size_gib`` of float32."""
    names: list[tuple[str, tuple[int, ...]]] = [("embed.weight", (16384, WIDTH))]
    block = 4 * WIDTH * WIDTH * 4
    blocks = max(2, round((size_gib * 2**30 - 2 * 16384 * WIDTH * 4) / block))
    for i in range(blocks):
        names += [(f"blocks.{i}.{p}.weight", (WIDTH, WIDTH)) for p in ("q", "k", "v", "o")]
        names.append((f"blocks.{i}.norm.weight", (WIDTH,)))
    names.append(("head.weight", (16384, WIDTH)))
    return names


def tensor(name: str, shape: tuple[int, ...], index: int, fine_tuned: bool, blocks: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(index)
    value = torch.randn(shape, generator=generator) * 0.02
    moved = name == "head.weight" or (name.startswith("blocks.") and int(name.split(".")[1]) >= blocks // 2)
    if fine_tuned and moved:
        value += torch.randn(shape, generator=generator) * 1e-4
    return value


def write_safetensors(path: Path, names: list[tuple[str, tuple[int, ...]]], fine_tuned: bool) -> None:
    """The safetensors format by hand (8-byte header length, JSON header, raw bytes), one
    tensor in memory at a time."""
    header, offset = {}, 0
    for name, shape in names:
        size = 4 * int(torch.Size(shape).numel())
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    blocks = sum(1 for name, _ in names if name.endswith(".q.weight"))
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(raw)))
        out.write(raw)
        for index, (name, shape) in enumerate(names):
            out.write(tensor(name, shape, index, fine_tuned, blocks).numpy().tobytes())
        out.flush()
        os.fsync(out.fileno())


def write_pt(path: Path, names: list[tuple[str, tuple[int, ...]]], fine_tuned: bool) -> None:
    blocks = sum(1 for name, _ in names if name.endswith(".q.weight"))
    state = {name: tensor(name, shape, i, fine_tuned, blocks) for i, (name, shape) in enumerate(names)}
    torch.save(state, path)
    del state
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def drop_from_cache(*paths: Path) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def plain_read(*paths: Path) -> float:
    buffer = bytearray(16 << 20)
    start = time.perf_counter()
    for path in paths:
        with open(path, "rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass
    return time.perf_counter() - start


def run_diff(a: Path, b: Path) -> dict:
    code = CHILD.format(app=str(APP), a=str(a), b=str(b))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(label: str, a: Path, b: Path) -> None:
    total_mb = (a.stat().st_size + b.stat().st_size) / 2**20
    print(f"\n{label}: A {a.stat().st_size / 2**30:.2f} GiB + B {b.stat().st_size / 2**30:.2f} GiB")
    print(f"{'run':18} {'seconds':>8} {'MB/s':>8} {'peak RSS MB':>12} {'RSS after imports MB':>21}")
    for cache in ("cold", "warm"):
        if cache == "cold":
            drop_from_cache(a, b)
        seconds = plain_read(a, b)
        print(f"{'plain read ' + cache:18} {seconds:>8.2f} {total_mb / seconds:>8.0f}")
        if cache == "cold":
            drop_from_cache(a, b)
        else:
            plain_read(a, b)  # the diff gives pages back as it goes: warm the cache again
        figures = run_diff(a, b)
        print(
            f"{'diff ' + cache:18} {figures['seconds']:>8.2f} {total_mb / figures['seconds']:>8.0f} "
            f"{figures['peak_rss_mb']:>12.0f} {figures['rss_after_imports_mb']:>21.0f}"
        )
    print(f"statuses: {figures['counts']}, whole-model relative change {figures['relative_change']:.3g}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gib", type=float, default=2.0, help="size of each checkpoint (default 2)")
    parser.add_argument("--format", choices=("safetensors", "pt", "both"), default="safetensors")
    parser.add_argument("--dir", default=None, help="where to write the pair (default: a temporary folder)")
    args = parser.parse_args()
    names = layout(args.size_gib)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-diff-") as folder:
        root = Path(folder)
        print(f"{len(names)} tensors per checkpoint; in B the second half of the blocks and the head moved")
        if args.format in ("safetensors", "both"):
            write_safetensors(root / "a.safetensors", names, fine_tuned=False)
            write_safetensors(root / "b.safetensors", names, fine_tuned=True)
            measure("safetensors", root / "a.safetensors", root / "b.safetensors")
            for path in root.glob("*.safetensors"):
                path.unlink()
        if args.format in ("pt", "both"):
            write_pt(root / "a.pt", names, fine_tuned=False)
            write_pt(root / "b.pt", names, fine_tuned=True)
            measure("torch.save zip (.pt)", root / "a.pt", root / "b.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
