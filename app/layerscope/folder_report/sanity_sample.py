"""The randomisation sanity check, as ``rank`` runs it, on a few images spread over the folder.

Per sampled image: its maps at every layer (``PhotoExplainer``, the same pass ``rank``
makes) compared, by Spearman ρ, with the maps after re-initialising the layers above
(``cam.sanity.randomization_checks``). Per layer the median ρ over the sample decides:
a method whose maps survive the model's randomisation at every layer is class-blind.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from layerscope.cam import PhotoExplainer
from layerscope.cam.reshape import Reshape
from layerscope.cam.sanity import BLIND, is_blind, randomization_checks
from layerscope.errors import LayerscopeError
from layerscope.folder_report.stats import images
from layerscope.models import LoadedModel
from layerscope.tree import ModuleTree


def sample(records: Sequence[dict], count: int) -> list[dict]:
    """``count`` images evenly spread over the records (one record each)."""
    rows = images(records)
    if count >= len(rows):
        return rows
    return [rows[i * len(rows) // count] for i in range(count)]


def sanity_check(
    loaded: LoadedModel,
    root: Path,
    chosen: Sequence[dict],
    layers: Sequence[str],
    method: str,
    *,
    reshape: Reshape = None,
    tree: ModuleTree | None = None,
) -> dict:
    """``{"images", "rho", "class_blind", "verdict"}`` for the ``chosen`` records' images."""
    rhos: dict[str, list[float]] = {layer: [] for layer in layers}
    used = []
    for row in chosen:
        try:
            explainer = PhotoExplainer(loaded, root / row["image"], reshape=reshape, tree=tree)
        except LayerscopeError:
            continue  # the file changed since its record was made: the others still decide
        maps = explainer.maps(layers, method, row["class"])
        found = randomization_checks(
            loaded.model,
            explainer.input,
            layers,
            method,
            row["class"],
            originals=[m.heatmap for m in maps],
            categories=loaded.categories,
            reshape=reshape,
        )
        for layer in layers:
            rhos[layer].append(found[layer])
        used.append(row["image"])
    medians = {layer: _median(values) for layer, values in rhos.items()}
    blind = bool(used) and all(is_blind(rho) for rho in medians.values())
    return {
        "images": used,
        "rho": {k: None if v != v else round(v, 6) for k, v in medians.items()},
        "class_blind": blind,
        "verdict": verdict(method, medians, len(used), blind),
    }


def sanity_checks(
    loaded: LoadedModel,
    root: Path,
    chosen: Sequence[dict],
    layers: Sequence[str],
    methods: Sequence[str],
    *,
    reshape: Reshape = None,
    tree: ModuleTree | None = None,
) -> dict:
    """``sanity_check`` for each method; with several, ρ is keyed ``method@layer``, the verdict
    is each method's joined by "; ", and the set is class-blind only when every method is."""
    if len(methods) == 1:
        return sanity_check(loaded, root, chosen, layers, methods[0], reshape=reshape, tree=tree)
    found = {m: sanity_check(loaded, root, chosen, layers, m, reshape=reshape, tree=tree) for m in methods}
    return {
        "images": next(iter(found.values()))["images"],
        "rho": {f"{m}@{layer}": rho for m, result in found.items() for layer, rho in result["rho"].items()},
        "class_blind": all(result["class_blind"] for result in found.values()),
        "verdict": "; ".join(result["verdict"] for result in found.values()),
    }


def verdict(method: str, medians: dict[str, float], count: int, blind: bool) -> str:
    """One line, in the words ``rank`` uses, for a sample of ``count`` images."""
    if count == 0:
        return "not checked"
    finite = [rho for rho in medians.values() if rho == rho]
    if not finite:
        span = "the maps went flat"
    else:
        low, high = f"{min(finite):+.2f}", f"{max(finite):+.2f}"
        span = f"median ρ {low}" if low == high else f"median ρ {low} to {high}"
    images = f"{count} image{'s' if count > 1 else ''}"
    if blind:
        return (
            f"class-blind on {images}: {method}'s maps stay the same ({span}, ρ ≥ {BLIND}) when every layer "
            f"after the target is re-initialised; they show where the layer is active, not what decided the class"
        )
    return (
        f"passed on {images}: {method}'s maps change when the layers after the target are re-initialised "
        f"({span}); they follow the model"
    )


def _median(values: list[float]) -> float:
    finite = [v for v in values if v == v]
    return statistics.median(finite) if finite else float("nan")
