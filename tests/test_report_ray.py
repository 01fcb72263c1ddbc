"""``--engine ray`` on a real local Ray instance (two CPUs): Ray Data decodes the batches and
actors holding the model explain them; the records, skipped files, pictures and summary equal
the local engine's, byte for byte."""

from __future__ import annotations

import json

import pytest

from layerscope.folder_report import FolderReport
from report_helpers import read_jsonl, request

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    import ray  # in the dev extra: CI runs this test, never skips it

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_gives_the_local_engines_records(local_ray, report_folder, tmp_path):
    # 4 of the 12 files (two photos, the misfiled espresso, the empty file): two batches of two
    local = FolderReport(request(report_folder, tmp_path / "local", limit=4, sanity_images=0))
    local_summary = local.run()
    on_ray = FolderReport(request(report_folder, tmp_path / "ray", limit=4, sanity_images=0, engine="ray", workers=2))
    assert on_ray.done == 0 and on_ray.pending == [[0, 1], [2, 3]]
    summary = on_ray.run()
    assert local_ray.is_initialized()  # the caller's instance is used and left running
    records = read_jsonl(tmp_path / "ray" / "records.jsonl")
    assert [r["image"] for r in records[::2]] == ["285/chelsea.png", "285/coffee_misfiled.png", "espresso/coffee.png"]
    assert (tmp_path / "ray" / "records.jsonl").read_text() == (tmp_path / "local" / "records.jsonl").read_text()
    assert read_jsonl(tmp_path / "ray" / "skipped.jsonl") == [
        {"path": "espresso/empty.jpg", "reason": "empty", "detail": "the file is empty (0 bytes)"}
    ]
    for record in records:
        for key in ("overlay", "thumbnail", "maps"):
            assert (tmp_path / "ray" / record[key]).read_bytes() == (tmp_path / "local" / record[key]).read_bytes()
    assert json.dumps(summary["layers"]) == json.dumps(local_summary["layers"])
    assert (summary["best_layer"], summary["accuracy"]) == (local_summary["best_layer"], pytest.approx(2 / 3, abs=1e-6))
