"""``--engine ray`` on a real local Ray instance (two CPUs): Ray Data decodes the batches and
actors holding the model explain them; the records, skipped files and summary equal the local
engine's, byte for byte where the numbers are concerned."""

from __future__ import annotations

import json

import pytest
from report_helpers import finished_report, read_jsonl, report_folder, request

from layerscope.folder_report import FolderReport

__all__ = ["finished_report", "report_folder"]  # fixtures, imported for pytest
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    import ray  # in the dev extra: CI runs this, never skips it
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_gives_the_local_engines_records(local_ray, finished_report, report_folder, tmp_path):
    reference, local_summary = finished_report
    out = tmp_path / "ray"
    report = FolderReport(request(report_folder, out, engine="ray", workers=2))
    assert report.done == 0 and len(report.pending) == 6
    summary = report.run()
    assert local_ray.is_initialized()  # the caller's instance is used and left running
    assert (out / "records.jsonl").read_text() == (reference / "records.jsonl").read_text()
    assert read_jsonl(out / "skipped.jsonl") == read_jsonl(reference / "skipped.jsonl")
    for record in read_jsonl(out / "records.jsonl"):
        assert (out / record["overlay"]).read_bytes() == (reference / record["overlay"]).read_bytes()
    assert json.dumps(summary["layers"]) == json.dumps(local_summary["layers"])
    assert summary["best_layer"] == local_summary["best_layer"] and summary["accuracy"] == local_summary["accuracy"]
