"""What the evidence lets layerscope claim (issue 29): "best" only when paired intervals
separate the leading candidate from every other eligible one, tied candidates named, and a
map that wins insertion − deletion by an artefact never called best.

Figures are derived by hand in the comments (Student's t, 97.5th percentile: 4.302653 for
two degrees of freedom; the logistic function for a two-class softmax).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image
from torch import nn

from layerscope.cam.core import CamResult
from layerscope.cam.ranking import DROP_LIMIT, layer_sanity, not_eligible, rank_maps
from layerscope.folder_report import FolderReport, ModelArgs, ReportRequest, claims
from layerscope.folder_report.stats import layer_table
from layerscope.models.loaded import LoadedModel, Preprocess

T2 = 4.302653  # t(0.975, 2)


def _records(gaps: dict[str, list[float]], drops: dict[str, float] | None = None) -> list[dict]:
    images = [f"{i}.png" for i in range(len(next(iter(gaps.values()))))]
    return [
        {
            "image": image,
            "layer": layer,
            "insertion_minus_deletion": gap,
            "deletion_auc": 0.5 - gap / 2,
            "insertion_auc": 0.5 + gap / 2,
            "average_drop": (drops or {}).get(layer, 0.1),
            "increased": False,
            "all_zero": False,
        }
        for i, image in enumerate(images)
        for layer, values in gaps.items()
        for gap in [values[i]]
    ]


def _decide(
    gaps: dict[str, list[float]], drops: dict[str, float] | None = None, sanity: dict | None = None
) -> tuple[list[dict], dict]:
    records = _records(gaps, drops)
    table = layer_table(records, list(gaps), [f"model.{name}" for name in gaps])
    claims.annotate(table, sanity or {"images": [], "rho": {}})
    return table, claims.decide(claims.candidates(table, records))


def test_two_layers_with_the_same_scores_are_tied_not_best():
    table, decision = _decide({"x": [0.5, 0.4, 0.3], "y": [0.5, 0.4, 0.3]})
    assert decision["best"] is None and decision["leading"] == "x"  # equal means: the given order
    assert decision["comparisons"] == [{"a": "x", "b": "y", "mean_difference": 0.0, "ci95": [0.0, 0.0], "n": 3}]
    assert decision["tied_with_best"] == ["y"]
    assert decision["claim"] == "x and y: indistinguishable on these 3 images, paired Δ +0.000 [+0.000, +0.000]"
    assert [claims.note(decision, row["layer"]) for row in table] == ["leads", "tied"]


def test_a_layer_that_wins_on_every_image_is_best_though_the_layer_intervals_overlap():
    # x − y per image: 0.2, 0.21, 0.19: mean 0.2, sd 0.01, half-width 4.302653 · 0.01 / √3 = 0.024841
    table, decision = _decide({"x": [0.9, 0.5, 0.1], "y": [0.7, 0.29, -0.09]})
    (xrow, yrow) = table
    assert xrow["ci95"][0] < yrow["ci95"][1]  # the per-layer intervals overlap widely...
    half = T2 * 0.01 / math.sqrt(3)
    (row,) = decision["comparisons"]
    assert (row["a"], row["b"], row["n"]) == ("x", "y", 3)
    assert row["mean_difference"] == pytest.approx(0.2, abs=1e-6)
    assert row["ci95"] == pytest.approx([0.2 - half, 0.2 + half], abs=1e-6)  # ...the paired one excludes 0
    assert (decision["best"], decision["tied_with_best"]) == ("x", [])
    assert decision["claim"] == (
        "x: best on these 3 images, separated from every other eligible candidate "
        "(closest: y, paired Δ +0.200 [+0.175, +0.225])"
    )


def test_the_issues_example_reads_as_it_asks():
    # features.17 − features.18 per image: 0.02, −0.01, 0.005: mean 0.005, sd 0.015
    # half-width 4.302653 · 0.015 / √3 = 0.037262 → [−0.032262, +0.042262]
    _, decision = _decide(
        {"features.17": [0.3, 0.2, 0.105], "features.18": [0.28, 0.21, 0.1], "features.16": [0.1, 0.0, -0.1]}
    )
    assert decision["tied_with_best"] == ["features.18"]
    assert decision["claim"] == (
        "features.17 and features.18: indistinguishable on these 3 images, paired Δ +0.005 [-0.032, +0.042]"
    )
    assert [c["b"] for c in decision["comparisons"]] == ["features.18", "features.16"]


def test_an_ineligible_layer_is_compared_but_never_best():
    # z leads every image by far, but keeping only its map's region loses 95% of the score;
    # y's map survives the randomisation (median ρ 0.95): neither may be best
    table, decision = _decide(
        {"z": [0.9, 0.8, 0.85], "x": [0.5, 0.4, 0.3], "y": [0.1, 0.0, -0.1]},
        drops={"z": 0.95},
        sanity={"images": ["0.png"], "rho": {"z": 0.1, "x": None, "y": 0.95}},
    )
    assert [(r["layer"], r["eligible"], r["sanity"]) for r in table] == [
        ("z", False, "passed"),
        ("x", True, "flat"),
        ("y", False, "class-blind"),
    ]
    assert decision["leading"] == decision["best"] == "x" and decision["tied_with_best"] == []
    assert [c["b"] for c in decision["comparisons"]] == ["z", "y"]
    assert decision["not_eligible"] == {"z": not_eligible(0.95, 0.1), "y": not_eligible(0.1, 0.95)}
    assert decision["not_eligible"]["z"].startswith("average drop 0.950 ≥ 0.8")
    assert decision["not_eligible"]["y"].startswith("fails the sanity check: ρ +0.95 ≥ 0.90")
    assert decision["claim"] == "x: best, the only eligible candidate"
    assert claims.note(decision, "z") == "not eligible"


def test_one_image_gives_no_interval_and_no_best():
    _, decision = _decide({"x": [0.5], "y": [0.2]})
    assert decision["comparisons"] == [{"a": "x", "b": "y", "mean_difference": 0.3, "ci95": None, "n": 1}]
    assert (decision["best"], decision["tied_with_best"]) == (None, ["y"])
    assert decision["claim"] == (
        "x leads on this one image (ins−del +0.500), but one image gives no interval, so no candidate is called best"
    )
    photo = claims.decide([claims.Candidate("x", {"p": 0.5}), claims.Candidate("y", {"p": 0.2})], one_photo=True)
    assert photo["claim"].endswith(
        "one photo gives no interval, so no candidate is called best: run layerscope "
        "report on a folder to see whether the evidence separates them"
    )


def test_sanity_words_per_layer():
    assert [layer_sanity(r) for r in (None, float("nan"), 0.2, 0.9)] == ["not checked", "flat", "passed", "class-blind"]
    assert not_eligible(DROP_LIMIT - 1e-9, 0.89) is None and not_eligible(0.0, None, all_zero=True)


class Border(nn.Module):
    """Two classes: logit 10 · (mean of the 12 border pixels) − 5 against 0, so p = σ(logit)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        border = torch.ones(4, 4, dtype=torch.bool)
        border[1:3, 1:3] = False
        logit = 10 * x[:, 0][:, border].mean(dim=1) - 5
        return torch.stack([logit, torch.zeros_like(logit)], dim=1)


def _map(layer: str, border: float, inner: float) -> CamResult:
    heat = torch.full((4, 4), border)
    heat[1:3, 1:3] = inner
    return CamResult(heatmap=heat, raw=heat, target=0, target_name=None, scores=None, layer=layer, method="gradcam")


def test_an_edge_artefact_that_wins_insertion_minus_deletion_is_not_called_best():
    """The border map ranks the 12 border pixels first with tiny values: deleting them in 4 steps
    (4 pixels each) gives p = σ(5), σ(5/3), σ(−5/3), σ(−5), σ(−5); AUC 0.376673, insertion 0.623327,
    gap +0.246654, the object map's the mirror image (−0.246654). But the photo times the border map
    keeps 0.05 of the border: p = σ(−4.5) = 0.010987, an average drop of 0.988939."""
    ranking = rank_maps(
        Border(), torch.ones(1, 1, 4, 4), [_map("object", 0.9, 1.0), _map("edge", 0.05, 0.01)], steps=4, sanity=False
    )
    edge, thing = ranking.layers
    assert (edge.layer, thing.layer) == ("edge", "object")  # the artefact wins the numbers...
    assert edge.scores.deletion_auc == pytest.approx(0.376673, abs=1e-6)
    assert edge.scores.gap == pytest.approx(0.246654, abs=1e-6) and thing.scores.gap == pytest.approx(
        -0.246654, abs=1e-6
    )
    assert edge.scores.average_drop == pytest.approx(0.988939, abs=1e-6)
    assert thing.scores.average_drop == pytest.approx(1 - 0.982014 / 0.993307, abs=1e-6)  # σ(4) / σ(5)
    assert edge.excluded is not None and edge.excluded.startswith("average drop 0.989 ≥ 0.8")
    assert ranking.leading is thing  # ...and is not the one recommended
    decision = claims.decide(
        [claims.Candidate(s.label, {"photo": s.scores.gap}, s.excluded) for s in ranking.layers], one_photo=True
    )
    assert decision["leading"] == "object" and "edge" not in decision["tied_with_best"]
    assert decision["claim"] == "object: best, the only eligible candidate (on this one photo)"


class Twins(nn.Module):
    """``relu`` and ``same`` (an identity) hold the same tensor: Grad-CAM's maps are equal by construction."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.relu = nn.ReLU()
        self.same = nn.Identity()
        self.head = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.same(self.relu(self.conv(x))).mean(dim=(2, 3)))


def test_a_folder_where_two_layers_are_the_same_says_they_are_indistinguishable(tmp_path, capsys):
    torch.manual_seed(0)
    model = Twins().eval()
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor([[20.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))  # class 0: channel 0, saturated
        model.head.bias.zero_()
    images = tmp_path / "images"
    images.mkdir()
    generator = torch.Generator().manual_seed(1)
    for i in range(4):
        pixels = (torch.rand(32, 32, 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(images / f"{i}.png")
    loaded = LoadedModel(
        model=model,
        spec="Twins",
        source="test",
        weights="none",
        pretrained=True,
        device=torch.device("cpu"),
        categories=["a", "b", "c"],
        preprocess=Preprocess(resize=None, crop=(32, 32), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
    )
    request = ReportRequest(
        images=images,
        out=tmp_path / "out",
        model=ModelArgs("Twins"),
        layers="relu,same",
        steps=4,
        batch_size=2,
        workers=0,
        sanity_images=0,
    )
    summary = FolderReport(request, loaded=loaded).run()
    records = [json.loads(line) for line in (tmp_path / "out/records.jsonl").read_text().splitlines()]
    gaps = {(r["image"], r["layer"]): r["insertion_minus_deletion"] for r in records}
    assert all(gaps[image, "relu"] == gaps[image, "same"] for image, _ in gaps)  # the same maps, the same scores
    assert all(row["eligible"] for row in summary["layers"])
    assert summary["comparisons"] == [{"a": "relu", "b": "same", "mean_difference": 0.0, "ci95": [0.0, 0.0], "n": 4}]
    assert (summary["best"], summary["best_layer"], summary["leading_layer"], summary["tied_with_best"]) == (
        None,
        None,
        "relu",
        ["same"],
    )
    assert summary["claim"] == "relu and same: indistinguishable on these 4 images, paired Δ +0.000 [+0.000, +0.000]"
    html = (tmp_path / "out/index.html").read_text()
    assert summary["claim"] in html and "none separated" in html


def _twins_folder(tmp_path, count: int = 4):
    torch.manual_seed(0)
    model = Twins().eval()
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor([[20.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
        model.head.bias.zero_()
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    generator = torch.Generator().manual_seed(1)
    for i in range(count):
        pixels = (torch.rand(32, 32, 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(images / f"{i}.png")
    loaded = LoadedModel(
        model=model,
        spec="Twins",
        source="test",
        weights="none",
        pretrained=True,
        device=torch.device("cpu"),
        categories=["a", "b", "c"],
        preprocess=Preprocess(resize=None, crop=(32, 32), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
    )
    return images, loaded


def _run(images, loaded, out, method: str) -> tuple[dict, list[dict]]:
    request = ReportRequest(
        images=images,
        out=out,
        model=ModelArgs("Twins"),
        layers="relu,same",
        method=method,
        steps=4,
        batch_size=2,
        workers=0,
        sanity_images=1,
    )
    summary = FolderReport(request, loaded=loaded).run()
    return summary, [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_report_summarises_method_by_layer_pairs_and_resumes(tmp_path):
    images, loaded = _twins_folder(tmp_path)
    _, alone = _run(images, loaded, tmp_path / "alone", "gradcam++")
    summary, records = _run(images, loaded, tmp_path / "both", "gradcam,gradcam++")
    assert summary["method"] == "gradcam,gradcam++" and len(records) == 4 * 2 * 2
    # each method's records are those of a report with that method alone
    key = ("image", "layer", "deletion_auc", "insertion_auc", "insertion_minus_deletion", "average_drop")
    assert [[r[k] for k in key] for r in records if r["method"] == "gradcam++"] == [[r[k] for k in key] for r in alone]
    assert {r["overlay"].rsplit("/", 1)[-1] for r in records} == {
        "gradcam@relu.png",
        "gradcam@same.png",
        "gradcam++@relu.png",
        "gradcam++@same.png",
    }  # gradcam++ kept apart
    labels = {row["layer"] for row in summary["layers"]}
    assert labels == {"gradcam@relu", "gradcam@same", "gradcam++@relu", "gradcam++@same"}
    assert all(row["method"] == row["layer"].split("@")[0] for row in summary["layers"])
    assert set(summary["sanity"]["rho"]) == labels and all(row["sanity"] != "not checked" for row in summary["layers"])
    lead = summary["leading_layer"]
    twin = lead.replace("@relu", "@same") if lead.endswith("@relu") else lead.replace("@same", "@relu")
    twin_row = next(c for c in summary["comparisons"] if c["b"] == twin)
    assert (twin_row["a"], twin_row["mean_difference"], twin_row["ci95"]) == (lead, 0.0, [0.0, 0.0])
    assert twin in summary["tied_with_best"] and summary["best"] is None
    assert len(summary["comparisons"]) == 3 and {c["a"] for c in summary["comparisons"]} == {lead}
    # a torn run: the last batch's lines lost; the same command computes them again, identically
    out = tmp_path / "both"
    lines = (out / "records.jsonl").read_text().splitlines(keepends=True)
    (out / "records.jsonl").write_text("".join(lines[:-5]))
    again, resumed = _run(images, loaded, out, "gradcam,gradcam++")
    assert resumed == records and again["comparisons"] == summary["comparisons"]


def test_report_method_all_and_bad_lists(tmp_path):
    from layerscope.cam.applies import methods_for
    from layerscope.errors import LayerscopeError
    from layerscope.folder_report.runner import method_names

    assert method_names("all") == [] and method_names("GradCAM, gradcam,eigencam") == ["gradcam", "eigencam"]
    with pytest.raises(LayerscopeError, match="unknown CAM method 'nope'"):
        method_names("gradcam,nope")
    with pytest.raises(LayerscopeError, match="--method names no method"):
        method_names(" , ")
    images, loaded = _twins_folder(tmp_path, count=1)
    request = ReportRequest(
        images=images,
        out=tmp_path / "all",
        model=ModelArgs("Twins"),
        layers="relu",
        method="all",
        steps=2,
        batch_size=1,
        workers=0,
        sanity_images=0,
    )
    report = FolderReport(request, loaded=loaded)
    assert report.settings.methods == tuple(methods_for(loaded.model))
    assert "rollout" not in report.settings.methods  # no attention in a convnet
    report.store.lock.release()


class Pair(nn.Module):
    """Class 0's logit is 6 · mean(red) + 0.5 · mean(1 − red) − 1: ``good`` holds the red channel
    (what decides), ``bad`` its negative (weakly used): Grad-CAM at ``bad`` ranks the dark pixels first."""

    def __init__(self) -> None:
        super().__init__()
        self.good = nn.ReLU()
        self.bad = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = x[:, :1]
        score = 6 * self.good(red).mean(dim=(2, 3)) + 0.5 * self.bad(1 - red).mean(dim=(2, 3)) - 1
        return torch.cat([score, torch.zeros_like(score), torch.zeros_like(score)], dim=1)


def test_a_folder_where_one_layer_clearly_wins_calls_it_best(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    generator = torch.Generator().manual_seed(2)
    for i in range(6):  # a bright red square somewhere on a dim background
        pixels = torch.rand(32, 32, 3, generator=generator) * 60
        top, left = (int(v) for v in torch.randint(0, 20, (2,), generator=generator))
        pixels[top : top + 12, left : left + 12, 0] = 255
        Image.fromarray(pixels.to(torch.uint8).numpy()).save(images / f"{i}.png")
    loaded = LoadedModel(
        model=Pair().eval(),
        spec="Pair",
        source="test",
        weights="none",
        pretrained=True,
        device=torch.device("cpu"),
        categories=["a", "b", "c"],
        preprocess=Preprocess(resize=None, crop=(32, 32), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
    )
    request = ReportRequest(
        images=images,
        out=tmp_path / "out",
        model=ModelArgs("Pair"),
        layers="good,bad",
        target="0",
        steps=8,
        batch_size=3,
        workers=0,
        sanity_images=0,
    )
    summary = FolderReport(request, loaded=loaded).run()
    records = [json.loads(line) for line in (tmp_path / "out/records.jsonl").read_text().splitlines()]
    gap = {(r["image"], r["layer"]): r["insertion_minus_deletion"] for r in records}
    diffs = [gap[image, "good"] - gap[image, "bad"] for image, layer in gap if layer == "good"]
    mean = sum(diffs) / 6
    half = 2.570582 * math.sqrt(sum((d - mean) ** 2 for d in diffs) / 5) / math.sqrt(6)  # t(0.975, 5)
    assert mean - half > 0  # good wins on these images by more than the noise
    assert summary["comparisons"] == [
        {
            "a": "good",
            "b": "bad",
            "mean_difference": pytest.approx(mean, abs=1e-6),
            "ci95": pytest.approx([mean - half, mean + half], abs=1e-6),
            "n": 6,
        }
    ]
    assert (summary["best"], summary["best_layer"], summary["tied_with_best"]) == ("good", "good", [])
    assert summary["claim"].startswith("good: best on these 6 images, separated from every other eligible candidate")
