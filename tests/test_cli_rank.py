"""``layerscope rank`` end to end on the real mobilenet_v2: the same numbers as the engine, ranked,
the sanity verdict, the grid, and one clear line for each mistake."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from layerscope.cam import CamPass
from layerscope.cam.metrics import faithfulness
from layerscope.cli.main import main
from layerscope.io import imaging
from layerscope.models import load_model

LAYERS = ["features.14", "features.16", "features.18"]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_json_ranks_the_engine_numbers_best_first(capsys, tmp_path):
    png = tmp_path / "grid.png"
    code, out, err = _run(
        capsys,
        "rank",
        "--image",
        str(imaging.SAMPLES / "coffee.png"),
        "--layers",
        ",".join(LAYERS),
        "--steps",
        "4",
        "--json",
        "--out",
        str(png),
    )
    assert code == 0, err
    data = json.loads(out)
    assert (data["target"], data["target_name"], data["method"], data["class_blind"]) == (
        967,
        "espresso",
        "gradcam",
        False,
    )
    assert data["precision"] == "float32"  # only Score-CAM's scores can be anything else
    rows = data["layers"]
    assert sorted(r["layer"] for r in rows) == LAYERS
    gaps = [r["insertion_auc"] - r["deletion_auc"] for r in rows]
    assert gaps == sorted(gaps, reverse=True)
    assert {r["layer"]: r["access_expression"] for r in rows}["features.18"] == "model.features[-1]"
    assert all(r["sanity_rho"] < 0.9 and r["sanity"] == "passed" for r in rows)
    # eligible unless the map's region does not carry the score (average drop ≥ 0.8); one photo: no best
    assert [r["eligible"] for r in rows] == [r["average_drop"] < 0.8 for r in rows]
    assert [r["not_eligible_because"] is None for r in rows] == [r["eligible"] for r in rows]
    leading = next(r["layer"] for r in rows if r["eligible"])
    assert (data["best"], data["leading"]) == (None, leading)
    assert data["claim"].startswith(f"{leading} leads on this one photo")
    assert [c["ci95"] for c in data["comparisons"]] == [None] * (len(rows) - 1)
    # the same maps scored directly through the engine give the same numbers
    loaded = load_model("mobilenet_v2", weights="IMAGENET1K_V1")
    x, _ = imaging.preprocess(imaging.load_image(imaging.SAMPLES / "coffee.png"), loaded.preprocess)
    maps = CamPass(loaded.model, x, LAYERS).results()
    direct = dict(zip(LAYERS, faithfulness(loaded.model, x, [m.heatmap for m in maps], 967, steps=4)))
    for row in rows:
        assert row["deletion_auc"] == pytest.approx(direct[row["layer"]].deletion_auc, abs=1e-5)
        assert row["insertion_auc"] == pytest.approx(direct[row["layer"]].insertion_auc, abs=1e-5)
        assert row["average_drop"] == pytest.approx(direct[row["layer"]].average_drop, abs=1e-5)
    assert err.strip().endswith(f"wrote   {png}")  # stdout stays pure JSON
    assert Image.open(png).size == (2 * 256, 2 * (round(400 * 256 / 600) + 18))


@pytest.mark.slow
def test_table_marks_default_and_eigencam_is_class_blind_and_not_eligible(capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # captured output is a pipe's: whole lines, whatever ran before
    code, out, err = _run(
        capsys,
        "rank",
        "--layers",
        "features.16,features.18",
        "--steps",
        "2",
        "--method",
        "eigencam",
        "--class",
        "tabby",
    )
    assert code == 0, err
    assert "target  none: eigencam uses no class" in out  # the map is the same for every class...
    assert "scores  p(281 tabby), 2 steps, best first by insertion − deletion" in out  # ...but its scores are for tabby
    lines = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert [row[1] for row in lines] == ["features[16]", "features[-1]"]
    # class-blind maps follow no class: neither may be called best, and the output says why (issue 29)
    assert lines[0][6:] == ["+1.00", "not", "eligible"] and lines[1][6:] == ["+1.00", "not", "eligible,", "default"]
    assert "claim   no candidate is eligible to be called best" in out
    assert "excluded features.16: fails the sanity check: ρ +1.00 ≥ 0.90" in " ".join(out.split())
    assert "sanity class-blind: eigencam's maps stay the same (ρ +1.00)" in " ".join(out.split())


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--method", "nope"], "unknown CAM method 'nope'"),
        (["--layers", "features.99"], "features.99"),
        (["--class", "1000"], "class index 1000 is out of range"),
    ],
)
def test_mistakes_are_one_line_and_status_2(capsys, argv, words):
    code, out, err = _run(capsys, "rank", "--steps", "1", *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and words in err


@pytest.mark.parametrize("steps, words", [("0", "at least 1, got 0"), ("5000", "at most 1000, got 5000")])
def test_steps_out_of_bounds_are_usage_errors(capsys, steps, words):
    with pytest.raises(SystemExit) as exit_info:
        main(["rank", "--steps", steps])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and words in err and err.count("\n") == 1


def test_out_onto_the_photo_is_refused_before_any_work(capsys):
    code, out, err = _run(capsys, "rank", "--out", str(imaging.SAMPLES / "chelsea.png"))
    assert code == 2 and out == "" and "is also an input" in err and err.count("\n") == 1


def test_on_random_weights_the_sanity_line_says_the_ranking_means_nothing(capsys, monkeypatch):
    """Random weights pass the randomisation check (re-initialising random layers changes the maps),
    which would read as reassurance; the line says instead that nothing here means anything."""
    monkeypatch.delenv("COLUMNS", raising=False)  # captured output is a pipe's: whole lines
    code, out, err = _run(capsys, "rank", "resnet18", "--weights", "none", "--layers", "layer3,layer4", "--steps", "2")
    assert code == 0, err
    sanity = [line for line in out.splitlines() if line.startswith("sanity")]
    assert sanity == [
        "sanity  meaningless: the weights are random (untrained), so these maps and this ranking mean "
        "nothing; load trained weights (--weights; `layerscope weights` lists those on this machine)"
    ]
    assert "passed" not in out


def test_method_lists_rank_method_by_layer_pairs_with_each_methods_own_numbers(capsys):
    """Each pair's figures equal a one-method ranking of the same layers: one table, same evidence."""
    layers = "blocks.1,blocks.2"
    base = ["rank", "attention_models:tiny_vit", "--layers", layers, "--steps", "3", "--json", "--no-sanity"]
    code, out, err = _run(capsys, *base, "--method", "gradcam,legrad,rollout")
    assert code == 0, err
    mixed = json.loads(out)
    assert mixed["methods"] == ["gradcam", "legrad", "rollout"] and mixed["method"] == "gradcam,legrad,rollout"
    pairs = {(r["method"], r["layer"]): r for r in mixed["layers"]}
    assert set(pairs) == {(m, layer) for m in ("gradcam", "legrad", "rollout") for layer in layers.split(",")}
    order = [(r["all_zero"], -(r["insertion_auc"] - r["deletion_auc"])) for r in mixed["layers"]]
    assert order == sorted(order)  # best first; a zero map claims nothing and goes last
    for method in ("gradcam", "legrad", "rollout"):
        code, out, err = _run(capsys, *base, "--method", method)
        assert code == 0, err
        for row in json.loads(out)["layers"]:
            assert row["method"] == method
            mine = pairs[(method, row["layer"])]
            assert (mine["deletion_auc"], mine["insertion_auc"]) == (row["deletion_auc"], row["insertion_auc"])


def test_all_skips_what_does_not_apply_and_a_named_method_fails_in_one_line(capsys):
    code, out, err = _run(
        capsys,
        "rank",
        "resnet18",
        "--layers",
        "layer4",
        "--steps",
        "2",
        "--json",
        "--no-sanity",
        "--method",
        "gradcam,hirescam",
    )
    assert code == 0, err
    assert json.loads(out)["methods"] == ["gradcam", "hirescam"]
    code, out, err = _run(capsys, "rank", "resnet18", "--layers", "layer4", "--method", "gradcam,legrad")
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("layerscope: error: no attention ran in this model's forward pass")
    code, out, err = _run(
        capsys,
        "rank",
        "attention_models:tiny_vit",
        "--layers",
        "blocks.2",
        "--steps",
        "2",
        "--json",
        "--no-sanity",
        "--method",
        "all",
    )
    assert code == 0, err
    assert json.loads(out)["methods"] == list(__import__("layerscope.cam", fromlist=["METHODS"]).METHODS)
    assert "skipped" not in err
