"""Every pretrained weights file already on this machine, named as ``--weights`` takes it:
what ``layerscope weights`` lists and what the app's ``l`` prompt completes.

Two caches are read, by file name only (nothing is opened): torch hub's ``checkpoints/``
folder, whose files are matched to torchvision's weight enums through the file name at the
end of each member's url, and the Hugging Face hub cache, whose ``timm/…`` repos are timm
models (``timm:NAME``) and whose other repos are ``hf:ORG/NAME`` folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from layerscope.models.sources.hf_folder import hub_cache


@dataclass(frozen=True)
class CachedWeights:
    """One set of pretrained weights found on disk: ``layerscope tree MODEL --weights WEIGHTS`` loads it offline."""

    model: str
    weights: str  # "" for an ``hf:`` folder: the spec alone loads its weights
    size: int  # bytes on disk
    path: Path


def cached_weights() -> list[CachedWeights]:
    """torch hub's files first, then the Hugging Face cache's, each sorted by model."""
    return sorted(_torch_hub(), key=lambda w: (w.model, w.weights)) + sorted(_hugging_face(), key=lambda w: w.model)


def cached_weight_names(model: str) -> list[str]:
    """``model``'s cached weights names (``torchvision:`` prefix or none), for completion and suggestions."""
    name = model.removeprefix("torchvision:")
    return [w.weights for w in cached_weights() if w.model == name]


def _torch_hub() -> list[CachedWeights]:
    import torch.hub

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    if not folder.is_dir():
        return []
    owners = _torchvision_files()
    return [
        CachedWeights(model=model, weights=weights, size=path.stat().st_size, path=path)
        for path in sorted(folder.iterdir())
        if path.is_file()
        for model, weights in owners.get(path.name, ())
    ]


def _torchvision_files() -> dict[str, list[tuple[str, str]]]:
    """File name → the (model, weights name) pairs whose url ends in it (a backbone's file can serve several)."""
    import torchvision.models as tvm

    owners: dict[str, list[tuple[str, str]]] = {}
    for model in tvm.list_models():
        try:
            enum = tvm.get_model_weights(model)
        except (ValueError, KeyError):
            continue
        for member in enum:
            owners.setdefault(Path(urlparse(member.url).path).name, []).append((model, member.name))
    return owners


def _hugging_face() -> list[CachedWeights]:
    cache = Path(hub_cache()).expanduser()
    if not cache.is_dir():
        return []
    found = []
    for storage in sorted(cache.glob("models--*")):
        org, _, name = storage.name.removeprefix("models--").partition("--")
        files = {f.resolve() for f in (storage / "snapshots").glob("*/*") if f.is_file()}
        if not files or not name:
            continue
        model = f"timm:{name}" if org == "timm" else f"hf:{org}/{name}"
        found.append(
            CachedWeights(
                model=model,
                weights="DEFAULT" if org == "timm" else "",
                size=sum(f.stat().st_size for f in files),
                path=storage,
            )
        )
    return found
