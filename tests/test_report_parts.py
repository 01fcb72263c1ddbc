"""The folder report's parts that need no model: which files, which labels, which reason a bad
file is skipped for, the statistics, and the page's table (fast tests)."""

from __future__ import annotations

import math

import pytest
from PIL import Image

from layerscope.errors import LayerscopeError
from layerscope.folder_report import page, stats
from layerscope.folder_report.dataset import discover, folder_label
from layerscope.folder_report.decode import Decoded, Skip, decode
from layerscope.models import Preprocess
from report_helpers import SKIPPED, make_folder

CATEGORIES = [f"class {i}" for i in range(1000)]
CATEGORIES[285], CATEGORIES[967] = "Egyptian cat", "espresso"


def test_class_folders_are_labels_by_index_or_name_and_hidden_files_are_not_candidates(tmp_path):
    folder = discover(make_folder(tmp_path), CATEGORIES)
    assert folder.labelled and folder.note == ""
    assert [(f.name, f.label) for f in folder.files][:4] == [
        ("285/chelsea.png", 285),
        ("285/chelsea_crop.png", 285),
        ("285/chelsea_flip.png", 285),
        ("285/coffee_misfiled.png", 285),
    ]
    assert {f.label for f in folder.files if f.name.startswith("espresso/")} == {967}
    assert len(folder.files) == 12 and not any(".DS_Store" in f.name for f in folder.files)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("285", 285),
        ("espresso", 967),
        ("Egyptian_cat", 285),
        ("EGYPTIAN CAT", 285),
        ("1000", None),
        ("-1", None),
        ("n02124075", None),
    ],
)
def test_folder_names_read_as_classes(name, label):
    assert folder_label(name, CATEGORIES) == label


def test_unknown_class_folders_give_no_labels_and_a_mix_is_refused(tmp_path):
    for name in ("n01", "n02"):
        (tmp_path / "synsets" / name).mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(tmp_path / "synsets" / name / "a.png")
    folder = discover(tmp_path / "synsets", CATEGORIES)
    assert not folder.labelled and {f.label for f in folder.files} == {None}
    assert "are not class indices or names of this model" in folder.note
    (tmp_path / "synsets" / "285").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "synsets" / "285" / "a.png")
    with pytest.raises(LayerscopeError, match=r"class folders 'n01', 'n02' in .* are neither"):
        discover(tmp_path / "synsets", CATEGORIES)


def test_images_at_the_first_level_mean_no_class_folders(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "top.png")
    Image.new("RGB", (32, 32)).save(tmp_path / "sub" / "inner.png")
    folder = discover(tmp_path, CATEGORIES)
    assert not folder.labelled and [f.name for f in folder.files] == ["sub/inner.png", "top.png"]


def test_limit_spreads_over_the_folder_and_batches_are_a_fixed_grid(tmp_path):
    folder = discover(make_folder(tmp_path), CATEGORIES, limit=3)
    assert [f.name for f in folder.files] == ["285/chelsea.png", "285/tiny.png", "espresso/coffee_flip.png"]
    assert folder.batches(2) == [[0, 1], [2]]


def test_no_such_folder_and_an_empty_one_are_one_line(tmp_path):
    with pytest.raises(LayerscopeError, match="no such folder"):
        discover(tmp_path / "nope", CATEGORIES)
    with pytest.raises(LayerscopeError, match="no files in"):
        discover(tmp_path, CATEGORIES)


def test_each_bad_file_is_skipped_with_its_reason(tmp_path):
    folder = discover(make_folder(tmp_path), CATEGORIES)
    results = {f.name: decode(f, Preprocess()) for f in folder.files}
    assert {name: r.reason for name, r in results.items() if isinstance(r, Skip)} == SKIPPED
    cat = results["285/chelsea.png"]
    assert isinstance(cat, Decoded) and tuple(cat.input.shape) == (1, 3, 224, 224)
    assert cat.size == (451, 300) and cat.photo.size == (256, 170) and cat.geometry.original == (256, 170)
    assert results["285/tiny.png"].detail == "9×7 pixels; at least 16×16 needed"


def test_t_quantiles_match_the_tables():
    assert [round(stats.t975(df), 3) for df in (1, 2, 4, 10, 30)] == [12.706, 4.303, 2.776, 2.228, 2.042]
    assert stats.t975(60) == pytest.approx(2.000298, abs=1e-6) and stats.t975(10**6) == pytest.approx(
        1.959966, abs=1e-6
    )
    estimate = stats.mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (estimate.mean, estimate.n) == (3.0, 5)
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert (estimate.low, estimate.high) == (pytest.approx(3 - half), pytest.approx(3 + half))
    assert stats.mean_ci([0.5]).low is None and math.isnan(stats.mean_ci([]).mean)


def _record(image: str, layer: str, gap: float, label: int | None = 1, predicted: int = 1) -> dict:
    return {
        "image": image,
        "layer": layer,
        "insertion_minus_deletion": gap,
        "deletion_auc": 0.5 - gap / 2,
        "insertion_auc": 0.5 + gap / 2,
        "average_drop": 0.1,
        "increased": False,
        "all_zero": False,
        "label": label,
        "label_name": "one" if label is not None else None,
        "predicted": predicted,
        "predicted_name": "one",
        "correct": None if label is None else label == predicted,
        "class": predicted,
        "class_name": "one",
        "top5": [{"class": predicted, "name": "one", "probability": 0.9}],
        "overlay": f"overlays/{image}/{layer}.png",
        "thumbnail": f"thumbs/{image}.png",
    }


def test_single_photo_rankings_are_counted_against_the_folder_best():
    records = [
        _record("a", "x", 0.5),
        _record("a", "y", 0.1),
        _record("b", "x", 0.4),
        _record("b", "y", 0.2),
        _record("c", "x", 0.0, label=2),
        _record("c", "y", 0.3, label=2),
    ]
    table = stats.layer_table(records, ["x", "y"], ["model.x", "model.y"])
    assert [(row["layer"], row["mean_insertion_minus_deletion"], row["best_on_images"]) for row in table] == [
        ("x", 0.3, 2),
        ("y", 0.2, 1),
    ]
    assert stats.disagreement(table) == {
        "images": 3,
        "agree": 2,
        "share_disagreeing": 0.333333,
        "note": "a single photo's ranking disagrees with the folder's on 1 of 3 images (33%): it would pick y on 1",
    }
    assert stats.accuracy(records) == {"images": 3, "labelled": 3, "correct": 2, "accuracy": 0.666667}
    assert [(c["class"], c["count"], c["accuracy"]) for c in stats.class_rows(records)] == [(1, 2, 1.0), (2, 1, 0.0)]


def test_the_page_holds_every_record_and_escapes_names():
    records = [_record("<b>.png", "x", 0.5), _record("<b>.png", "y", 0.1)]
    table = stats.layer_table(records, ["x", "y"], ["model.x", "model.y"])
    summary = {
        "model": "m",
        "weights": "w",
        "images_folder": "/d",
        "method": "gradcam",
        "class": "predicted",
        "steps": 3,
        "images": 1,
        "skipped": 0,
        "counts": {**stats.accuracy(records), "skipped": 0},
        "accuracy": 1.0,
        "labels_note": "",
        "layers": table,
        "best_layer": "x",
        "best_access_expression": "model.x",
        "leading_layer": "x",
        "claim": "x: best",
        "not_eligible": {"y": "<why>"},
        "single_image": stats.disagreement(table),
        "classes": stats.class_rows(records),
        "sanity": {"verdict": "not checked"},
    }
    html = page.render(summary, records, [{"path": "bad.txt", "reason": "not an image", "detail": "<x>"}])
    assert html.count('class="num record"') == 2 and 'data-image="&lt;b&gt;.png" data-layer="y"' in html
    assert "<b>.png" not in html and "&lt;x&gt;" in html and "y: &lt;why&gt;" in html  # the not-eligible line
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
