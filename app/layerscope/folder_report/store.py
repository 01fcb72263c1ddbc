"""The report folder: what the run is (``run.json``), its results so far, and resuming.

A batch lands in two steps: its pictures (each written to a temporary file and renamed),
then its lines, appended to ``records.jsonl`` and ``skipped.jsonl`` and synced. A crash
or Ctrl-C can only lose the batch in flight: on the next run a torn last line is cut
off, a batch whose files are not all accounted for is dropped whole and computed again
(on the same batch grid, so with the same neighbours and the same numbers), and every
finished batch is skipped. ``run.json`` holds everything that decides a record's value;
a command that differs in any of it is refused rather than mixed in. One run writes a
folder at a time (``lock.FolderLock``, held from opening to the end of the run).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from layerscope.errors import LayerscopeError
from layerscope.files import atomic_write, check_writable, expand, same_file, status
from layerscope.folder_report.dataset import Folder
from layerscope.folder_report.evidence import BatchOutput
from layerscope.folder_report.lock import LOCK_NAME, FolderLock

RUN, RECORDS, SKIPPED = "run.json", "records.jsonl", "skipped.jsonl"
SUMMARY, PAGE, SANITY = "summary.json", "index.html", "sanity.json"


class ReportStore:
    """The folder ``out`` for one command (``identity``), opened to continue where it stopped."""

    def __init__(self, out: str | Path, identity: Mapping[str, object], folder: Folder,
                 inputs: Iterable[Path] = ()) -> None:
        self.root = _checked_folder(out, folder.root, inputs)
        self.identity = dict(identity)
        self._refuse_foreign()  # before the lock: its file never lands in a folder that is no report
        self.lock = FolderLock(self.root)
        try:
            self._claim()
            self.records = _read_lines(self.root / RECORDS)
            self.skipped = _read_lines(self.root / SKIPPED)
        except BaseException:
            self.lock.release()
            raise

    @property
    def fresh(self) -> bool:
        return not self.records and not self.skipped

    def pending(self, folder: Folder, batch_size: int) -> list[list[int]]:
        """The batches still to compute, in order; the lines of a half-written one are dropped."""
        layers = len(self.identity["layers"])  # type: ignore[arg-type]
        counts: dict[str, int] = {}
        for record in self.records:
            counts[record["image"]] = counts.get(record["image"], 0) + 1
        finished = {r["path"] for r in self.skipped} | {name for name, n in counts.items() if n == layers}
        pending = [b for b in folder.batches(batch_size) if not all(folder.files[i].name in finished for i in b)]
        dirty = {folder.files[i].name for batch in pending for i in batch}
        dirty |= {name for name, n in counts.items() if n != layers}
        if any(r["image"] in dirty for r in self.records) or any(r["path"] in dirty for r in self.skipped):
            self.records = [r for r in self.records if r["image"] not in dirty]
            self.skipped = [r for r in self.skipped if r["path"] not in dirty]
            _rewrite(self.root / RECORDS, self.records)
            _rewrite(self.root / SKIPPED, self.skipped)
        return pending

    def write(self, output: BatchOutput) -> None:
        """The batch's pictures, then its lines (synced): the lines never name a missing file."""
        for relative, content in output.files.items():
            path = self.root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda handle, data=content: handle.write(data))
        _append(self.root / SKIPPED, output.skipped)
        _append(self.root / RECORDS, output.records)
        self.skipped += output.skipped
        self.records += output.records

    def read(self, relative: str) -> bytes:
        return (self.root / relative).read_bytes()

    def read_json(self, relative: str) -> dict | None:
        """A JSON file this folder holds, or None when it is missing or unreadable (then remade)."""
        try:
            return json.loads((self.root / relative).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def write_text(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, lambda handle: handle.write(text.encode()))

    def write_bytes(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, lambda handle: handle.write(data))

    def _refuse_foreign(self) -> None:
        """A folder without ``run.json`` must be empty (but for a lock left by a run killed early)."""
        if status(self.root / RUN) is None and any(p.name != LOCK_NAME for p in self.root.iterdir()):
            raise LayerscopeError(f"--out {self.root} is a folder with other files in it, not a layerscope "
                                  "report; give a new or empty folder")

    def _claim(self) -> None:
        """Write ``run.json``, or check that the one there describes this same command."""
        run = self.root / RUN
        if status(run) is None:
            self._refuse_foreign()
            self.write_text(RUN, json.dumps(self.identity, indent=2, ensure_ascii=False) + "\n")
            return
        try:
            kept = json.loads(run.read_text())
        except (OSError, ValueError) as exc:
            raise LayerscopeError(f"cannot read {run}: {exc}") from exc
        for key in dict.fromkeys([*self.identity, *kept]):
            if kept.get(key) != self.identity.get(key):
                raise LayerscopeError(
                    f"--out {self.root} holds a report of another command ({key} {_shown(kept.get(key))}, now "
                    f"{_shown(self.identity.get(key))}); give another --out, or delete the folder to start again")


def check_outdir(out: str | Path, images: Path) -> Path:
    """``out`` expanded, unless it is a file or overlaps the (resolved) images folder: checked
    before the model loads, so the mistake costs nothing."""
    root = expand(out, "output folder")
    info = status(root)
    if info is not None and not root.is_dir():
        raise LayerscopeError(f"--out {root} is a file; the report needs a folder")
    resolved = root.resolve()
    if same_file(resolved, images) or images in resolved.parents or resolved in images.parents:
        raise LayerscopeError(f"--out {root} and --images {images} overlap; the report would read its own files "
                              "or write among the images: give a folder outside the images")
    check_writable(root, (), "--out")
    return root


def _checked_folder(out: str | Path, images: Path, inputs: Iterable[Path]) -> Path:
    """``out``, created, unless ``check_outdir`` refuses it or it holds a file the model was read
    from: the report writes nothing that could replace an input."""
    root = check_outdir(out, images)
    inputs = list(inputs)
    check_writable(root, inputs, "--out")
    resolved = root.resolve()
    for source in inputs:
        if resolved in source.resolve().parents:
            raise LayerscopeError(f"--out {root} holds {source}, which the model was read from; give a folder "
                                  "that holds no input")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LayerscopeError(f"cannot create {root}: {exc.strerror or exc}") from exc
    return root


def _read_lines(path: Path) -> list[dict]:
    """The JSON lines of ``path``; a torn last line (a run killed mid-write) is cut off the file."""
    if status(path) is None:
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    rows = []
    for number, line in enumerate(complete.splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except ValueError as exc:
            raise LayerscopeError(f"{path} line {number} is not JSON (was the file edited?); "
                                  "delete the folder to start again") from exc
    if len(complete) != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
    return rows


def _append(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _rewrite(path: Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    atomic_write(path, lambda handle: handle.write(text.encode()))


def _shown(value: object) -> str:
    return "none" if value is None else json.dumps(value, ensure_ascii=False)
