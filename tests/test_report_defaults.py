"""The report at its defaults (issue 32): a handful of layers, the work said up front, progress
per image, every finished image kept on Ctrl-C, and an images table that keeps its width."""

from __future__ import annotations

import re

import pytest

from layerscope.folder_report import FolderReport, page
from layerscope.folder_report.runner import neighbours, resolve_layers
from layerscope.models import load_model
from layerscope.tree import build_tree
from report_helpers import read_jsonl, request


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("e", ["c", "d", "e", "f", "g"]),  # centred
        ("a", ["a", "b", "c", "d", "e"]),  # the first: the ones after it
        ("h", ["d", "e", "f", "g", "h"]),  # the last (the usual suggestion): the ones before it
        ("x", ["x"]),
    ],
)
def test_neighbours_are_the_suggested_layer_and_the_nearest_of_its_family(name, expected):
    assert neighbours(list("abcdefgh"), name, 5) == expected
    assert neighbours(["a", "b"], "b", 5) == ["a", "b"]


def test_auto_on_mobilenet_v2_is_the_last_five_blocks_and_auto_all_the_family():
    """Hand-checked: the suggested layer is ``features.18`` (the last conv block); its family is
    ``features.0`` to ``features.18`` (16 of them spread for auto-all); ``auto`` takes it and the four before it."""
    loaded = load_model("mobilenet_v2", weights="none")
    tree = build_tree(loaded.model)
    assert resolve_layers(loaded, "auto", None, tree) == [f"features.{i}" for i in range(14, 19)]
    every = resolve_layers(loaded, "auto-all", None, tree)
    assert len(every) == 16 and every[0] == "features.0" and every[-1] == "features.18"


def test_the_work_is_said_before_the_run(report_folder, tmp_path):
    report = FolderReport(request(report_folder, tmp_path / "out", batch_size=None))
    # 12 files, 2 layers, 3 steps: per map 2·3 − 1 passes; per image a forward and backward, the photo, the blank
    assert report.batch_size == 1 and report.forwards_per_image == 2 * 5 + 4
    assert (
        report.work() == "12 images × 2 layers × 5 passes (3 steps) + 4 = 168 model passes; the sanity check "
        "adds 1 images"
    )
    report.store.lock.release()


def test_progress_per_image_ctrl_c_keeps_finished_images_and_resume_matches(report_folder, tmp_path):
    """At the CPU's default batch of one: one call per image, in order; ``within`` counts each
    image's maps; a KeyboardInterrupt from the callback keeps the images done, and the resumed
    run ends with the records of an uninterrupted run (at the same batch size: a batch's maps
    agree with another size's only to float rounding)."""
    reference = tmp_path / "reference"
    FolderReport(request(report_folder, reference, batch_size=None)).run()
    out = tmp_path / "out"
    calls, maps = [], []

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        FolderReport(request(report_folder, out, batch_size=None)).run(progress, lambda *m: maps.append(m))
    assert calls == [(n, 12) for n in range(6)]
    assert maps and all(total == 2 and 0 <= done <= 2 for done, total in maps) and maps[-1] == (2, 2)
    kept = read_jsonl(out / "records.jsonl")
    expected = read_jsonl(reference / "records.jsonl")
    assert kept == expected[: len(kept)] and len(kept) % 2 == 0
    assert len({r["image"] for r in kept}) + len(read_jsonl(out / "skipped.jsonl")) == 5
    resumed = FolderReport(request(report_folder, out, batch_size=None))
    assert resumed.done == 5
    calls.clear()
    resumed.run(lambda done, total: calls.append((done, total)))
    assert calls == [(n, 12) for n in range(5, 13)]
    assert (out / "records.jsonl").read_text() == (reference / "records.jsonl").read_text()


def test_the_images_table_keeps_its_width_with_sixteen_layers(finished_report):
    """Five layer columns at most (the top of the ranking); the others fold into one cell per row."""
    out, summary = finished_report
    records = [r for r in read_jsonl(out / "records.jsonl") if r["layer"] == "features.18"]
    names = [f"features.{i}" for i in range(3, 19)]
    many = [{**r, "layer": name} for r in records for name in names]
    table = page._image_table({**summary, "layers": [{"layer": name} for name in names]}, many)
    head = re.search(r"<thead>(.*?)</thead>", table).group(1)
    assert head.count("<th") == 6 + page.LAYER_COLUMNS + 1 and "11 more layers" in head
    rows = re.findall(r"<tr[^>]*data-image=.*?</tr>", table)
    assert len(rows) == len(records) and all(row.count("<td") == 6 + page.LAYER_COLUMNS + 1 for row in rows)
    assert all(row.count("<li data-layer=") == 11 for row in rows)
    assert page._image_table(summary, read_jsonl(out / "records.jsonl")).count("<details>") == 0
