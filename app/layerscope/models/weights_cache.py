"""Which pretrained weights are already on this machine: what ``--weights auto`` picks
(each source's ``auto_weights`` asks here).

``auto`` must never download (the default has to work offline and instantly), so it
only looks at the caches torchvision and timm read from: torch hub's
``checkpoints/`` folder and the Hugging Face hub cache. Found: the pretrained
weights; not found: random init, which the app and CLI then flag loudly.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

HF_FILENAMES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def cached_torchvision_weights(name: str) -> list[str]:
    """Names of ``name``'s torchvision weights whose file is in torch hub's cache, DEFAULT's first."""
    import torchvision.models as tvm

    try:
        enum = tvm.get_model_weights(name)
    except (ValueError, KeyError):
        return []
    members = sorted(enum, key=lambda w: w is not enum.DEFAULT)
    return [w.name for w in members if _hub_checkpoint(w.url).is_file()]


def timm_weights_cached(name: str) -> bool:
    """Whether timm's pretrained file for ``name`` is in the Hugging Face or torch hub cache."""
    try:
        import timm.models
    except ImportError:
        return False
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except (RuntimeError, KeyError, ValueError):
        return False
    if cfg is None:
        return False
    if cfg.hf_hub_id:  # timm reads these from the Hugging Face hub whenever it can, never from the url
        return _in_hf_cache(cfg.hf_hub_id, cfg.hf_hub_filename)
    return bool(cfg.url) and _hub_checkpoint(cfg.url).is_file()


def cached_hint(spec: str) -> str:
    """The tail of a failed torchvision download's message: which weights load without the network.

    (timm needs no hint: its DEFAULT is the one file ``auto`` would find.)
    """
    cached = cached_torchvision_weights(spec.removeprefix("torchvision:"))
    return f"; cached here, no download needed: --weights {' or '.join(cached)}" if cached else ""


def _hub_checkpoint(url: str) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` keeps ``url``'s file."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def _in_hf_cache(repo_id: str, filename: str | None) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    names = (filename,) if filename else HF_FILENAMES
    return any(isinstance(try_to_load_from_cache(repo_id, n), str) for n in names)
