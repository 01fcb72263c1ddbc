"""Which candidate the evidence calls best, and which it cannot tell apart from it.

Every candidate (a layer, or ``method@layer`` when several methods ran) is scored on the
same images, so candidates are compared *paired*: per image, the leading candidate's
insertion − deletion minus the other's, and the mean of those differences with a 95%
interval (Student's t on the paired differences, ``stats.mean_ci``; one image: no
interval). Overlapping per-candidate intervals are the wrong tool: the images' own spread
is shared by both candidates and cancels in the difference.

The leading candidate is the first *eligible* one in the table's order; a candidate whose
map fails the sanity check or whose region does not carry the score
(``cam.ranking.not_eligible``) is compared but never called best. "Best" is said only
when every interval against another eligible candidate excludes 0; otherwise the
candidates it cannot be told from are named as tied. ``rank`` (one photo) and ``report``
(a folder) say it in the same words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from layerscope.cam.ranking import layer_sanity, not_eligible
from layerscope.folder_report.stats import mean_ci


@dataclass(frozen=True)
class Candidate:
    """One candidate's insertion − deletion per image, and why it cannot be best (None: it can)."""

    name: str
    gaps: Mapping[str, float]
    excluded: str | None = None


def compare(a: Candidate, b: Candidate) -> dict:
    """``{"a", "b", "mean_difference", "ci95", "n"}`` over the images both were scored on."""
    shared = [image for image in a.gaps if image in b.gaps]
    estimate = mean_ci([a.gaps[image] - b.gaps[image] for image in shared])
    low, high = estimate.low, estimate.high
    ci = None if low is None or high is None else [_r(low), _r(high)]
    return {
        "a": a.name,
        "b": b.name,
        "mean_difference": _r(estimate.mean) if shared else None,
        "ci95": ci,
        "n": estimate.n,
    }


def separated(comparison: dict) -> bool:
    """Whether the paired interval excludes 0 (no interval: not separated)."""
    ci = comparison["ci95"]
    return ci is not None and (ci[0] > 0 or ci[1] < 0)


def decide(candidates: Sequence[Candidate], *, one_photo: bool = False) -> dict:
    """The claim the evidence supports, from ``candidates`` in the table's order (best first).

    ``{"best", "leading", "comparisons", "tied_with_best", "not_eligible", "claim"}``:
    ``best`` is None unless every eligible rival is separated; ``one_photo``: the words of
    ``rank``, which points to ``report`` for an interval."""
    scored = [c for c in candidates if c.gaps]
    leading = next((c for c in scored if c.excluded is None), None)
    not_eligible = {c.name: c.excluded for c in scored if c.excluded is not None}
    if leading is None:
        claim = "no candidate is eligible to be called best" if scored else "no image was explained"
        return {
            "best": None,
            "leading": None,
            "comparisons": [],
            "tied_with_best": [],
            "not_eligible": not_eligible,
            "claim": claim,
        }
    found = [compare(leading, c) for c in scored if c is not leading]
    rivals = [row for row, c in zip(found, (c for c in scored if c is not leading)) if c.excluded is None]
    tied = [row for row in rivals if not separated(row)]
    best = None if tied else leading.name
    return {
        "best": best,
        "leading": leading.name,
        "comparisons": found,
        "tied_with_best": [row["b"] for row in tied],
        "not_eligible": not_eligible,
        "claim": _claim(leading, rivals, tied, one_photo),
    }


def _claim(leading: Candidate, rivals: list[dict], tied: list[dict], one_photo: bool) -> str:
    n = len(leading.gaps)
    gap = leading.gaps[next(iter(leading.gaps))] if n == 1 else None
    if n == 1 and rivals:
        what = "photo" if one_photo else "image"
        where = ": run layerscope report on a folder to see whether the evidence separates them" if one_photo else ""
        return (
            f"{leading.name} leads on this one {what} (ins−del {gap:+.3f}), but one {what} gives no interval, "
            f"so no candidate is called best{where}"
        )
    if not rivals:
        return f"{leading.name}: best, the only eligible candidate" + (" (on this one photo)" if one_photo else "")
    images = f"these {n} images"
    if tied:
        names = [leading.name, *(row["b"] for row in tied)]
        listed = f"{', '.join(names[:-1])} and {names[-1]}"
        deltas = ", ".join(_delta(row) + (f" ({row['b']})" if len(tied) > 1 else "") for row in tied)
        return f"{listed}: indistinguishable on {images}, paired Δ {deltas}"
    closest = min(rivals, key=lambda row: abs(row["mean_difference"]))
    return (
        f"{leading.name}: best on {images}, separated from every other eligible candidate "
        f"(closest: {closest['b']}, paired Δ {_delta(closest)})"
    )


def excluded_line(not_eligible: Mapping[str, str]) -> str:
    """The candidates that cannot be best and why, in one line ('' when there are none)."""
    return "; ".join(f"{name}: {why}" for name, why in not_eligible.items())


def _delta(row: dict) -> str:
    ci = row["ci95"]
    return f"{row['mean_difference']:+.3f}" + ("" if ci is None else f" [{ci[0]:+.3f}, {ci[1]:+.3f}]")


def _r(value: float) -> float:
    return round(float(value), 6)


def annotate(table: Sequence[dict], sanity: Mapping) -> None:
    """Each row of the layer table gains its sanity verdict (the sample's median ρ; a checked
    layer without one went flat) and whether it may be called best, and why not (its mean
    average drop, its ρ, all-zero maps)."""
    checked = bool(sanity.get("images"))
    for row in table:
        median = sanity.get("rho", {}).get(row["layer"])
        row["sanity_rho"] = median
        row["sanity"] = layer_sanity(float("nan") if checked and median is None else median)
        why = None if not row["n"] else not_eligible(row["mean_average_drop"], median, row["all_zero"] == row["n"])
        row["eligible"], row["not_eligible_because"] = why is None and bool(row["n"]), why


def candidates(table: Sequence[dict], records: Sequence[dict], key: str = "layer") -> list[Candidate]:
    """The table's rows as candidates, each with its insertion − deletion per image."""
    gaps: dict[str, dict[str, float]] = {}
    for record in records:
        gaps.setdefault(record[key], {})[record["image"]] = record["insertion_minus_deletion"]
    return [Candidate(row[key], gaps.get(row[key], {}), row["not_eligible_because"]) for row in table]


def note(decision: dict, name: str) -> str:
    """``best``, ``leads`` / ``tied`` (not separated), ``not eligible`` or nothing: a candidate's
    place in what the paired evidence supports (``folder_report.claims.decide``)."""
    if name == decision["best"]:
        return "best"
    if name == decision["leading"]:
        return "leads"
    if name in decision["tied_with_best"]:
        return "tied"
    return "not eligible" if name in decision["not_eligible"] else ""
