"""``layerscope report`` on a real folder with the real ImageNet mobilenet_v2: the records and
their fields, one image's numbers equal to ``rank``'s, the summary equal to the records, an
interrupted run resumed to the same records, and one clear line for each refused command."""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import statistics
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image

from layerscope.cli.main import main
from layerscope.folder_report import FolderReport
from report_helpers import (
    APP,
    ARGV,
    IMAGES,
    LAYERS,
    SAMPLES,
    SKIPPED,
    STEPS,
    layerscope_command,
    read_jsonl,
    request,
    subprocess_env,
)

pytestmark = pytest.mark.slow


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_records_name_every_image_at_every_layer_with_real_predictions(finished_report, report_folder):
    out, summary = finished_report
    records = read_jsonl(out / "records.jsonl")
    assert [(r["image"], r["layer"]) for r in records] == [(i, l) for i in IMAGES for l in LAYERS.split(",")]
    for r in records:
        label, predicted = IMAGES[r["image"]]
        assert (r["label"], r["predicted"], r["correct"], r["class"]) == (
            label,
            predicted,
            label == predicted,
            predicted,
        )
        assert r["predicted_name"] == {285: "Egyptian cat", 967: "espresso"}[predicted] == r["class_name"]
        assert r["method"] == "gradcam" and len(r["top5"]) == 5 and r["top5"][0]["class"] == predicted
        assert (
            r["access_expression"]
            == {"features.16": "model.features[16]", "features.18": "model.features[-1]"}[r["layer"]]
        )
        assert 0 <= r["deletion_auc"] <= 1 and 0 <= r["insertion_auc"] <= 1 and isinstance(r["increased"], bool)
        assert r["insertion_minus_deletion"] == pytest.approx(r["insertion_auc"] - r["deletion_auc"], abs=2e-6)
        overlay = Image.open(out / r["overlay"])
        assert max(overlay.size) == 256 and overlay.size[0] / overlay.size[1] == pytest.approx(
            r["width"] / r["height"], rel=0.02
        )
        assert Image.open(out / r["thumbnail"]).size[0] <= 96
    coffee = {r["layer"]: r for r in records if r["image"] == "espresso/coffee.png"}
    assert coffee["features.18"]["insertion_minus_deletion"] > 0.6  # the espresso map earns its class
    assert {s["path"]: s["reason"] for s in read_jsonl(out / "skipped.jsonl")} == SKIPPED
    assert not list(out.rglob("*.tmp"))  # every file renamed into place


def test_one_image_equals_rank_on_that_image(finished_report, report_folder, capsys):
    """The numbers, and the sanity check's ρ (the first image is the check's sample of one)."""
    out, summary = finished_report
    image = "285/chelsea.png"
    assert summary["sanity"]["images"] == [image]
    code, stdout, err = _main(
        capsys, "rank", "--image", str(report_folder / image), "--layers", LAYERS, "--steps", str(STEPS), "--json"
    )
    assert code == 0, err
    ranked = json.loads(stdout)
    mine = {r["layer"]: r for r in read_jsonl(out / "records.jsonl") if r["image"] == image}
    assert ranked["target"] == 285 == mine["features.18"]["class"]
    for row in ranked["layers"]:
        record = mine[row["layer"]]
        assert record["access_expression"] == row["access_expression"]
        for key in ("deletion_auc", "insertion_auc", "average_drop"):
            assert record[key] == pytest.approx(row[key], abs=2e-6), key  # a batch of 2 vs 1: float noise only
        assert record["increased"] == row["increased"]
        assert summary["sanity"]["rho"][row["layer"]] == row["sanity_rho"]


def test_summary_means_and_counts_equal_the_records(finished_report):
    out, summary = finished_report
    assert json.loads((out / "summary.json").read_text()) == summary
    records = read_jsonl(out / "records.jsonl")
    for row in summary["layers"]:
        gaps = [r["insertion_minus_deletion"] for r in records if r["layer"] == row["layer"]]
        mean, half = statistics.fmean(gaps), 2.446912 * statistics.stdev(gaps) / math.sqrt(7)  # t(0.975, 6)
        assert row["n"] == 7 and row["mean_insertion_minus_deletion"] == pytest.approx(mean, abs=1e-6)
        assert row["ci95"] == pytest.approx([mean - half, mean + half], abs=1e-6)
        assert row["mean_deletion_auc"] == pytest.approx(
            statistics.fmean(r["deletion_auc"] for r in records if r["layer"] == row["layer"]), abs=1e-6
        )
    means = [row["mean_insertion_minus_deletion"] for row in summary["layers"]]
    assert means == sorted(means, reverse=True) and summary["leading_layer"] == summary["layers"][0]["layer"]
    # the paired comparison, recomputed from the records: per image, leading − other, Student's t with 6 df
    lead, other = summary["leading_layer"], summary["layers"][1]["layer"]
    gap = {(r["image"], r["layer"]): r["insertion_minus_deletion"] for r in records}
    diffs = [gap[image, lead] - gap[image, other] for image, layer in gap if layer == lead]
    mean, half = statistics.fmean(diffs), 2.446912 * statistics.stdev(diffs) / math.sqrt(7)
    (row,) = summary["comparisons"]
    assert (row["a"], row["b"], row["n"]) == (lead, other, 7)
    assert row["mean_difference"] == pytest.approx(mean, abs=1e-6)
    assert row["ci95"] == pytest.approx([mean - half, mean + half], abs=1e-6)
    separated = mean - half > 0 or mean + half < 0
    assert summary["best_layer"] == (lead if separated else None)
    assert summary["tied_with_best"] == ([] if separated else [other])
    assert all(r["eligible"] and r["sanity"] == "passed" for r in summary["layers"])
    best = {}
    for r in records:
        if r["insertion_minus_deletion"] > best.get(r["image"], (None, -9))[1]:
            best[r["image"]] = (r["layer"], r["insertion_minus_deletion"])
    agree = sum(layer == summary["best_layer"] for layer, _ in best.values())
    assert (summary["single_image"]["images"], summary["single_image"]["agree"]) == (7, agree)
    assert (summary["accuracy"], summary["counts"]["correct"], summary["counts"]["labelled"]) == (
        pytest.approx(6 / 7, abs=1e-6),
        6,
        7,
    )
    assert summary["counts"]["skipped_by_reason"] == {"empty": 1, "not an image": 2, "too small": 1, "truncated": 1}
    assert [(c["class"], c["name"], c["count"], c["accuracy"]) for c in summary["classes"]] == [
        (285, "Egyptian cat", 4, 0.75),
        (967, "espresso", 3, 1.0),
    ]
    assert all(Image.open(out / c["mean_map"]).size == (112, 112) for c in summary["classes"])
    sanity = summary["sanity"]
    assert len(sanity["images"]) == 1 and sanity["class_blind"] is False
    assert sanity["verdict"].startswith("passed on 1 image: gradcam's maps change")


def test_an_interrupted_run_resumes_to_the_same_records(finished_report, report_folder, tmp_path):
    """Ctrl-C after the first batch lands (a real, piped process: plain progress lines, no Ray
    imported), then a crash's leftovers (one image of the next batch written, a torn line): the
    same command finishes with the uninterrupted records."""
    reference, _ = finished_report
    out = tmp_path / "out"
    records = out / "records.jsonl"
    child = subprocess.Popen(
        layerscope_command(*ARGV, "--images", str(report_folder), "--out", str(out)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    seen: list[str] = []
    try:
        # the first progress line is printed once its batch's records are written: Ctrl-C after it,
        # so the interruption never lands between a batch's write and its line
        assert child.stderr is not None
        for line in child.stderr:
            seen.append(line)
            if line.startswith("report ") and records.exists() and len(records.read_text().splitlines()) >= 4:
                break
        child.send_signal(signal.SIGINT)
        stdout, rest = child.communicate(timeout=120)
        stderr = "".join(seen) + rest
    finally:
        child.kill()
    assert child.returncode == 130, stderr
    assert "interrupted:" in stderr and "run the same command again to continue" in stderr
    assert stdout.strip().endswith("no ray")  # the local engine never imported Ray
    progress = [line for line in stderr.splitlines() if line.startswith("report ")]
    assert progress and all(re.fullmatch(r"report  \d+/12 files  [\d.]+ images/s, ETA .+", line) for line in progress)
    assert "\x1b[" not in stderr  # piped: plain lines, one per batch, no bar
    landed = read_jsonl(records)
    assert 4 <= len(landed) < 14 and len(landed) % 2 == 0
    expected = read_jsonl(reference / "records.jsonl")
    assert landed == expected[: len(landed)]  # whole images only, in order
    following = [r for r in expected[len(landed) :] if r["image"] == expected[len(landed)]["image"]]
    with records.open("a") as handle:  # a crash's leftovers: half of the next batch, then a torn line
        handle.writelines(json.dumps(r) + "\n" for r in following)
        handle.write('{"image": "espresso/cof')
    report = FolderReport(request(report_folder, out))
    assert report.done < 12
    report.run()
    assert (out / "records.jsonl").read_text() == (reference / "records.jsonl").read_text()
    assert sorted(read_jsonl(out / "skipped.jsonl"), key=str) == sorted(
        read_jsonl(reference / "skipped.jsonl"), key=str
    )


def test_a_finished_report_run_again_computes_nothing(finished_report, report_folder, tmp_path, capsys):
    out = tmp_path / "again"
    shutil.copytree(finished_report[0], out)
    before = (out / "records.jsonl").read_text()
    code, stdout, err = _main(capsys, *ARGV, "--images", str(report_folder), "--out", str(out))
    assert code == 0, err
    assert "resume  12 of 12 files already done" in stdout and f"wrote   {out / 'index.html'}" in stdout
    assert (out / "records.jsonl").read_text() == before


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (["--steps", "4"], "(steps 3, now 4)"),
        (["--method", "hirescam"], '(method "gradcam", now "hirescam")'),
        (["--layers", "features.18"], '(layers ["features.16", "features.18"], now ["features.18"])'),
    ],
)
def test_a_changed_command_into_the_same_outdir_is_refused(finished_report, report_folder, capsys, change, words):
    out, _ = finished_report
    before = (out / "records.jsonl").read_text()
    flag, value = change
    argv = [*ARGV, "--images", str(report_folder), "--out", str(out)]
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    code, stdout, err = _main(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and "holds a report of another command" in err and words in err, err
    assert (out / "records.jsonl").read_text() == before


@pytest.mark.parametrize(
    ("where", "words"),
    [
        ("inside", "overlap"),
        ("same", "overlap"),
        ("busy", "is a folder with other files in it"),
        ("weights cache", "which the model was read from"),
        ("package", "is inside layerscope's own package"),
        ("package by a symlink", "is inside layerscope's own package"),
    ],
)
def test_an_outdir_that_would_touch_the_inputs_is_refused(report_folder, tmp_path, capsys, where, words):
    (tmp_path / "tree").symlink_to(APP / "layerscope" / "tree", target_is_directory=True)
    out = {
        "inside": report_folder / "285" / "out",
        "same": report_folder,
        "busy": tmp_path,
        "weights cache": Path(torch.hub.get_dir()),
        "package": APP / "layerscope" / "samples" / "report",
        "package by a symlink": tmp_path / "tree" / ".." / "cam" / "report",
    }[where]
    package = _package_files()
    cache = sorted(p.name for p in Path(torch.hub.get_dir()).rglob("*"))
    (tmp_path / "mine.txt").write_text("keep me")
    code, stdout, err = _main(capsys, *ARGV, "--images", str(report_folder), "--out", str(out))
    assert code == 2 and err.count("\n") == 1 and words in err, err
    assert not (report_folder / "285" / "out").exists() and not (report_folder / "run.json").exists()
    assert (tmp_path / "mine.txt").read_text() == "keep me" and not (tmp_path / "run.json").exists()
    assert sorted(p.name for p in Path(torch.hub.get_dir()).rglob("*")) == cache
    assert _package_files() == package


def _package_files() -> list[str]:
    """The package's files, bytecode caches aside (other test processes may be writing those)."""
    return sorted(str(p) for p in (APP / "layerscope").rglob("*") if "__pycache__" not in p.parts)


def test_label_without_labels_is_refused(tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(SAMPLES / "chelsea.png", flat / "cat.png")
    code, stdout, err = _main(capsys, *ARGV, "--images", str(flat), "--out", str(tmp_path / "out"), "--class", "label")
    assert code == 2 and err.count("\n") == 1 and "--class label needs labelled images" in err, err


def test_a_folder_of_unusable_files_still_ends_with_a_summary_and_a_page(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.png").write_bytes(b"")
    (bad / "notes.txt").write_text("no images here\n")
    code, stdout, err = _main(capsys, *ARGV, "--images", str(bad), "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert "images  0 explained, 2 skipped, 1 empty, 1 not an image" in stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["best_layer"], summary["records"], summary["sanity"]["verdict"]) == (None, 0, "not checked")
    assert [row["n"] for row in summary["layers"]] == [0, 0]
    assert "Skipped files (2)" in (tmp_path / "out" / "index.html").read_text()
