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
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from layerscope.errors import LayerscopeError
from layerscope.folder_report.dataset import Folder
from layerscope.folder_report.evidence import BatchOutput
from layerscope.folder_report.kept import RunShape, is_record, is_skip, maps_intact, parse_lines
from layerscope.folder_report.lock import LOCK_NAME, FolderLock
from layerscope.io.files import atomic_write, check_writable, expand, read_regular, same_file, status

RUN, RECORDS, SKIPPED = "run.json", "records.jsonl", "skipped.jsonl"
JSON_BYTES = 64 << 20  # run.json, summary.json, sanity.json: kilobytes when layerscope writes them
LINES_BYTES = 1 << 30  # records.jsonl: about 800 bytes a record, a million records
SUMMARY, PAGE, SANITY = "summary.json", "index.html", "sanity.json"


class ReportStore:
    """The folder ``out`` for one command (``identity``), opened to continue where it stopped.

    ``notes``: what the opening found worth a line (records dropped as not this run's)."""

    def __init__(
        self, out: str | Path, identity: Mapping[str, object], folder: Folder, inputs: Iterable[Path] = ()
    ) -> None:
        self.root = _checked_folder(out, folder.root, inputs)
        self.identity = dict(identity)
        self.shape = RunShape.of(folder, self.identity["layers"], str(self.identity["method"]))  # type: ignore[arg-type]
        self.notes: list[str] = []
        self._refuse_foreign()  # before the lock: its file never lands in a folder that is no report
        self.lock = FolderLock(self.root)
        try:
            self._claim()
            self.records, dropped = _read_lines(self.root / RECORDS, lambda row: is_record(row, self.shape))
            self.skipped, dropped_skips = _read_lines(self.root / SKIPPED, lambda row: is_skip(row, self.shape))
        except BaseException:
            self.lock.release()
            raise
        self._dropped = dropped + dropped_skips

    def pending(self, folder: Folder, batch_size: int) -> list[list[int]]:
        """The batches still to compute, in order; the lines of a half-written one are dropped,
        and so are the lines of an image whose maps file is missing or damaged."""
        layers = sorted(self.shape.slots)
        by_image: dict[str, list[str]] = {}
        for record in self.records:
            by_image.setdefault(record["image"], []).append(self.shape.slot(record))
        skips = Counter(r["path"] for r in self.skipped)
        whole = {name for name, got in by_image.items() if sorted(got) == layers and name not in skips}
        damaged = {name for name in whole if not maps_intact(self.root, name, len(layers))}
        finished = (whole - damaged) | {name for name, n in skips.items() if n == 1 and name not in by_image}
        pending = [b for b in folder.batches(batch_size) if not all(folder.files[i].name in finished for i in b)]
        dirty = {folder.files[i].name for batch in pending for i in batch} | (set(by_image) | set(skips)) - finished
        if (
            self._dropped
            or any(r["image"] in dirty for r in self.records)
            or any(r["path"] in dirty for r in self.skipped)
        ):
            self.records = [r for r in self.records if r["image"] not in dirty]
            self.skipped = [r for r in self.skipped if r["path"] not in dirty]
            _rewrite(self.root / RECORDS, self.records)
            _rewrite(self.root / SKIPPED, self.skipped)
        if self._dropped or damaged:
            self.notes.append(_dropped_note(self._dropped, len(damaged)))
            self._dropped = 0
        return pending

    def write(self, output: BatchOutput) -> None:
        """The batch's pictures, then its lines (synced): the lines never name a missing file."""
        for relative, content in output.files.items():
            path = self.root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            _unlink_odd(path)
            atomic_write(path, lambda handle, data=content: handle.write(data))
        _append(self.root / SKIPPED, output.skipped)
        _append(self.root / RECORDS, output.records)
        self.skipped += output.skipped
        self.records += output.records

    def read(self, relative: str, limit: int) -> bytes:
        """One of the report's own files (a maps file), a regular file of at most ``limit`` bytes."""
        data = read_regular(self.root / relative, limit, "report file")
        if data is None:
            raise LayerscopeError(
                f"{self.root / relative} is missing (was the folder edited?); run the same "
                "command again to compute it anew"
            )
        return data

    def read_json(self, relative: str) -> dict | None:
        """A JSON object this folder holds, or None when it is missing, unreadable, a link, a
        FIFO, too large or no object (then it is made again)."""
        try:
            data = read_regular(self.root / relative, JSON_BYTES, "report file")
            found = None if data is None else json.loads(data)
        except (LayerscopeError, ValueError, RecursionError):
            return None
        return found if isinstance(found, dict) else None

    def write_text(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, lambda handle: handle.write(encoded(text)))

    def write_bytes(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, lambda handle: handle.write(data))

    def _refuse_foreign(self) -> None:
        """A folder without ``run.json`` must be empty (but for a lock left by a run killed early)."""
        if status(self.root / RUN) is None and any(p.name != LOCK_NAME for p in self.root.iterdir()):
            raise LayerscopeError(
                f"--out {self.root} is a folder with other files in it, not a layerscope "
                "report; give a new or empty folder"
            )

    def _claim(self) -> None:
        """Write ``run.json``, or check that the one there describes this same command."""
        run = self.root / RUN
        if status(run) is None:
            self._refuse_foreign()
            self.write_text(RUN, json.dumps(self.identity, indent=2, ensure_ascii=False) + "\n")
            return
        data = read_regular(run, JSON_BYTES, "report's run.json") or b""
        try:
            kept = json.loads(data)
        except (ValueError, RecursionError) as exc:
            kept = exc
        if not isinstance(kept, dict):
            raise LayerscopeError(
                f"{run} is not the JSON object layerscope writes there (was it edited?); "
                "delete the folder to start again"
            )
        for key in dict.fromkeys([*self.identity, *kept]):
            if kept.get(key) != self.identity.get(key):
                raise LayerscopeError(
                    f"--out {self.root} holds a report of another command ({key} {_shown(kept.get(key))}, now "
                    f"{_shown(self.identity.get(key))}); give another --out, or delete the folder to start again"
                )


def check_outdir(out: str | Path, images: Path) -> Path:
    """``out`` expanded, unless it is a file or overlaps the (resolved) images folder: checked
    before the model loads, so the mistake costs nothing."""
    root = expand(out, "output folder")
    info = status(root)
    if info is not None and not root.is_dir():
        raise LayerscopeError(f"--out {root} is a file; the report needs a folder")
    resolved = root.resolve()
    if same_file(resolved, images) or images in resolved.parents or resolved in images.parents:
        raise LayerscopeError(
            f"--out {root} and --images {images} overlap; the report would read its own files "
            "or write among the images: give a folder outside the images"
        )
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
            raise LayerscopeError(
                f"--out {root} holds {source}, which the model was read from; give a folder that holds no input"
            )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LayerscopeError(f"cannot create {root}: {exc.strerror or exc}") from exc
    return root


def _read_lines(path: Path, keep: Callable[[object], bool]) -> tuple[list[dict], int]:
    """The lines of ``path`` that ``keep`` accepts, and how many complete lines it did not; a
    torn last line (a run killed mid-write) is cut off the file."""
    data = read_regular(path, LINES_BYTES, "report file")
    if data is None:
        return [], 0
    complete = data[: data.rfind(b"\n") + 1]
    rows, bad = parse_lines(complete)
    kept = [row for row in rows if keep(row)]
    if len(complete) != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
    return kept, bad + len(rows) - len(kept)  # type: ignore[return-value]


def _unlink_odd(path: Path) -> None:
    """A link, FIFO or socket where the report keeps a picture is removed (itself, never what
    a link points to), so that the picture can be written again; a folder there is left to
    ``atomic_write``'s one line."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        path.unlink()


def _dropped_note(lines: int, maps: int) -> str:
    parts = (
        [f"{lines} line{'s' * (lines != 1)} that are no record of this run (edited, or another run's image or layer)"]
        if lines
        else []
    )
    parts += [f"{maps} image{'s' * (maps != 1)} whose maps file is missing or damaged"] if maps else []
    return f"dropped {' and '.join(parts)}; computed again"


def _append(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with open(path, "ab") as handle:
        handle.write(_jsonl(rows))
        handle.flush()
        os.fsync(handle.fileno())


def _rewrite(path: Path, rows: list[dict]) -> None:
    atomic_write(path, lambda handle: handle.write(_jsonl(rows)))


def _jsonl(rows: list[dict]) -> bytes:
    return encoded("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def encoded(text: str) -> bytes:
    """UTF-8, a file name that is not UTF-8 on disk (its surrogates) written as ``\\udcff``:
    a JSON escape that reads back as the same name, and plain text on the page."""
    return text.encode("utf-8", "backslashreplace")


def _shown(value: object) -> str:
    return "none" if value is None else json.dumps(value, ensure_ascii=False)
