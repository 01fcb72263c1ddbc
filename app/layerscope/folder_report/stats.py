"""What the records say over the whole folder: the layer ranking with its uncertainty,
how often one photo's ranking would have picked another layer, accuracy, and classes.

Everything here is computed from the records as written (``records.jsonl``), so the
summary's figures can be checked against that file with nothing else.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# Student's t, 97.5th percentile, for 1–30 degrees of freedom (to 6 decimals); beyond, the
# Cornish–Fisher expansion around the normal quantile is exact to 1e-7.
_T975 = (
    12.706205,
    4.302653,
    3.182446,
    2.776445,
    2.570582,
    2.446912,
    2.364624,
    2.306004,
    2.262157,
    2.228139,
    2.200985,
    2.178813,
    2.160369,
    2.144787,
    2.131450,
    2.119905,
    2.109816,
    2.100922,
    2.093024,
    2.085963,
    2.079614,
    2.073873,
    2.068658,
    2.063899,
    2.059539,
    2.055529,
    2.051831,
    2.048407,
    2.045230,
    2.042272,
)
_Z975 = 1.959963984540054


def t975(df: int) -> float:
    """The two-sided 95% critical value of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    terms = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return z + sum(term / df ** (power + 1) for power, term in enumerate(terms))


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% confidence interval (Student's t; None for fewer than two values)."""

    mean: float
    low: float | None
    high: float | None
    n: int


def mean_ci(values: Sequence[float]) -> Estimate:
    n = len(values)
    if n == 0:
        return Estimate(math.nan, None, None, 0)
    mean = math.fsum(values) / n
    if n < 2:
        return Estimate(mean, None, None, n)
    half = t975(n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n)


def images(records: Sequence[dict]) -> list[dict]:
    """One record per image (the first layer's), in the records' order."""
    seen: dict[str, dict] = {}
    for record in records:
        seen.setdefault(record["image"], record)
    return list(seen.values())


def layer_table(records: Sequence[dict], layers: Sequence[str], access: Sequence[str]) -> list[dict]:
    """Each layer's mean insertion − deletion with its CI, best first (ties keep the given order)."""
    best_counts = single_image_best(records, layers)
    rows = []
    for layer, expression in zip(layers, access):
        mine = [r for r in records if r["layer"] == layer]
        gap = mean_ci([r["insertion_minus_deletion"] for r in mine])
        rows.append(
            {
                "layer": layer,
                "access_expression": expression,
                "mean_insertion_minus_deletion": _r(gap.mean),
                "ci95": None if gap.low is None else [_r(gap.low), _r(gap.high)],
                "n": gap.n,
                "mean_deletion_auc": _r(_mean([r["deletion_auc"] for r in mine])),
                "mean_insertion_auc": _r(_mean([r["insertion_auc"] for r in mine])),
                "mean_average_drop": _r(_mean([r["average_drop"] for r in mine])),
                "increased": sum(bool(r["increased"]) for r in mine),
                "all_zero": sum(bool(r["all_zero"]) for r in mine),
                "best_on_images": best_counts.get(layer, 0),
            }
        )
    rows.sort(key=lambda row: -row["mean_insertion_minus_deletion"] if row["n"] else math.inf)
    return rows


def single_image_best(records: Sequence[dict], layers: Sequence[str]) -> dict[str, int]:
    """How many images ``rank`` on that photo alone would put each layer first for (its sort:
    highest insertion − deletion, all-zero maps last, ties in the given layer order)."""
    place = {layer: i for i, layer in enumerate(layers)}
    by_image: dict[str, list[dict]] = {}
    for record in records:
        by_image.setdefault(record["image"], []).append(record)
    counts: dict[str, int] = {}
    for rows in by_image.values():
        best = min(rows, key=lambda r: (r["all_zero"], -r["insertion_minus_deletion"], place.get(r["layer"], 0)))
        counts[best["layer"]] = counts.get(best["layer"], 0) + 1
    return counts


def disagreement(table: Sequence[dict]) -> dict:
    """How often a single photo's ranking would have chosen another layer than the folder's best."""
    total = sum(row["best_on_images"] for row in table)
    if not table or total == 0:
        return {"images": 0, "agree": 0, "share_disagreeing": None, "note": "no images"}
    best = table[0]
    agree = best["best_on_images"]
    others = sorted((row for row in table[1:] if row["best_on_images"]), key=lambda row: -row["best_on_images"])
    if not others:
        note = f"every image's own ranking also puts {best['layer']} first"
    else:
        listed = ", ".join(f"{row['layer']} on {row['best_on_images']}" for row in others[:3])
        note = (
            f"a single photo's ranking disagrees with the folder's on {total - agree} of {total} images "
            f"({(total - agree) / total:.0%}): it would pick {listed}"
        )
    return {"images": total, "agree": agree, "share_disagreeing": _r((total - agree) / total), "note": note}


def accuracy(records: Sequence[dict]) -> dict:
    """Top-1 accuracy over the labelled images (None when none has a label)."""
    rows = images(records)
    labelled = [r for r in rows if r["label"] is not None]
    correct = sum(bool(r["correct"]) for r in labelled)
    return {
        "images": len(rows),
        "labelled": len(labelled),
        "correct": correct,
        "accuracy": _r(correct / len(labelled)) if labelled else None,
    }


def class_groups(records: Sequence[dict]) -> dict[int, list[dict]]:
    """Images per class: their label where there are labels, else what the model predicted."""
    groups: dict[int, list[dict]] = {}
    for row in images(records):
        key = row["label"] if row["label"] is not None else row["predicted"]
        groups.setdefault(int(key), []).append(row)
    return dict(sorted(groups.items()))


def class_rows(records: Sequence[dict]) -> list[dict]:
    rows = []
    for cls, members in class_groups(records).items():
        labelled = [r for r in members if r["label"] is not None]
        name = members[0]["label_name"] if labelled else members[0]["predicted_name"]
        rows.append(
            {
                "class": cls,
                "name": name,
                "count": len(members),
                "accuracy": _r(sum(bool(r["correct"]) for r in labelled) / len(labelled)) if labelled else None,
            }
        )
    return rows


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def _r(value: float) -> float | None:
    return None if value is None or value != value else round(float(value), 6)
